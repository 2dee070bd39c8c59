"""Feature stores: built on Dask, resumable, reopened with their index and model (the nine-cutout
``tiny_set`` comes from tests/conftest.py)."""

import os
import threading

import numpy as np
import pytest

from pipeline.errors import Cancelled, InputError
from pipeline.oneshot import extraction, search, store, views
from pipeline.oneshot import features as feat


def test_build_open_and_search(tiny_set, tmp_path):
    progress = []
    built = store.build_store(tiny_set, tmp_path / "idx", size=64, scheduler="synchronous", chunk=4,
                              progress=lambda d, t, stage: progress.append((d, t)))
    assert progress[-1] == (9, 9) and not (tmp_path / ".idx.parts").exists()  # the parts go once built
    again = store.FeatureStore.open(tmp_path / "idx")
    np.testing.assert_array_equal(again.features, built.features)
    assert again.features.shape == (9, feat.N_FEATURES) and list(again.catalog["id"]) == tiny_set.ids
    assert again.meta["model_label"] == feat.load_backbone().label and again.meta["input_px"] == 64
    assert "Lupton" in again.meta["preprocessing"] and "EfficientNet-Lite0" in again.describe()
    # the stored features are those of the galaxies' views; the index holds them through the head
    assert (again.meta["crop"], again.meta["invariance"]) == ("galaxy", "head") and again.head is not None
    assert "central galaxy" in again.describe() and "head" in again.meta["preprocessing"]
    direct = views.view_features(feat.load_backbone(), tiny_set.rgb_batch([4]), "galaxy", "none", size=64)
    np.testing.assert_allclose(again.features[4], direct[0], atol=1e-4)
    vectors = search.unit_rows(again.head.apply(again.features))
    np.testing.assert_allclose(again.index.index.reconstruct_n(0, 9), vectors, atol=1e-5)
    assert again.view(4).shape[0] < 32  # the disc, cropped to its light
    # a disc's nearest galaxies are discs
    found = search.one_shot(again, "G0", 2)
    assert list(found["kind"]) == ["disc", "disc"]
    assert again.galaxies.rgb(0).shape == (32, 32, 3)


def test_an_interrupted_build_resumes(tiny_set, tmp_path, monkeypatch):
    calls = []
    real = extraction.chunk_features

    def counting(files, *args):
        calls.append(len(files))
        return real(files, *args)

    monkeypatch.setattr(extraction, "chunk_features", counting)
    stop = threading.Event()

    def progress(done, total, stage):
        if done >= 3:
            stop.set()

    with pytest.raises(Cancelled):
        store.build_store(tiny_set, tmp_path / "idx", size=64, scheduler="synchronous", chunk=3,
                          progress=progress, cancel=stop)
    assert calls == [3] and not (tmp_path / "idx" / "store.json").exists()
    with pytest.raises(InputError, match="no complete feature store"):
        store.FeatureStore.open(tmp_path / "idx")
    store.build_store(tiny_set, tmp_path / "idx", size=64, scheduler="synchronous", chunk=3)
    assert calls == [3, 3, 3]  # the first chunk was not computed again


def test_local_dask_cluster_gives_the_same_features(tiny_set, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # one worker process for both chunks (each imports torch)
    local = store.build_store(tiny_set, tmp_path / "dask", size=64, scheduler="local", chunk=5)
    inproc = store.build_store(tiny_set, tmp_path / "sync", size=64, scheduler="synchronous", chunk=5)
    np.testing.assert_allclose(local.features, inproc.features, atol=1e-5)


def test_a_pool_of_threads_gives_the_same_features_with_one_network_thread_each(tiny_set, tmp_path, monkeypatch):
    from pipeline.oneshot import features

    threads, real = [], features.onnx_session

    def recording(backbone, size=224, int8=False):
        session = real(backbone, size, int8)
        threads.append((threading.current_thread().name, session.get_session_options().intra_op_num_threads))
        return session

    monkeypatch.setattr(features, "onnx_session", recording)
    pooled = store.build_store(tiny_set, tmp_path / "threads", size=64, scheduler="threads", chunk=3)
    inproc = store.build_store(tiny_set, tmp_path / "sync", size=64, scheduler="synchronous", chunk=3)
    np.testing.assert_allclose(pooled.features, inproc.features, atol=1e-5)
    pooled_runs = threads[:len(threads) // 2]
    assert all(name.startswith("task") and count == 1 for name, count in pooled_runs)
    assert all(name == "MainThread" for name, _ in threads[len(threads) // 2:])


def test_unreachable_scheduler_says_so(tiny_set, tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.scheduling.SCHEDULER_TIMEOUT", "1s")
    with pytest.raises(InputError, match="Cannot reach the Dask scheduler"):
        store.build_store(tiny_set, tmp_path / "x", size=64, scheduler="tcp://127.0.0.1:9", chunk=5)


def test_auto_scheduler_extracts_in_this_process(tiny_set, tmp_path, monkeypatch):
    pids = []
    real = extraction.chunk_features

    def recording(*args):
        pids.append(os.getpid())  # a local cluster would run this in its workers, not here
        return real(*args)

    monkeypatch.setattr(extraction, "chunk_features", recording)
    store.build_store(tiny_set, tmp_path / "idx", size=64, chunk=5)  # the default scheduler is "auto"
    assert pids == [os.getpid()] * 2


def test_auto_scheduler_picks_a_thread_per_core(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert extraction.pick_scheduler("auto", 1) == "synchronous"
    assert extraction.pick_scheduler("auto", 100) == "threads"
    for given in ("synchronous", "local", "tcp://host:8786"):  # a scheduler given is the one used
        assert extraction.pick_scheduler(given, 10) == extraction.pick_scheduler(given, 10_000) == given
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # one core: no cluster can help
    assert extraction.pick_scheduler("auto", 10_000) == "synchronous"


def test_compressed_and_sharded_stores(tiny_set, tmp_path):
    compressed = store.build_store(tiny_set, tmp_path / "c", size=64, scheduler="synchronous", kind="compressed",
                                   invariance="none")
    assert compressed.index.info.kind == "compressed" and compressed.meta["index_kind"] == "compressed"
    assert list(search.one_shot(compressed, "G0", 2)["kind"]) == ["disc", "disc"]
    with pytest.raises(InputError, match="kind compressed"):
        store.build_store(tiny_set, tmp_path / "bad", size=64, kind="exact", shards=2)
    sharded = store.build_store(tiny_set, tmp_path / "s", size=64, scheduler="synchronous", shards=2)
    try:
        assert "in 2 shards" in sharded.describe() and sharded.index.info.build == sharded.meta["build"]
        assert list(search.one_shot(sharded, "G0", 2)["kind"]) == ["disc", "disc"]
    finally:
        sharded.close()
    with open(tmp_path / "c" / "vectors.npy", "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"garbled!")
    with pytest.raises(InputError, match="vectors.npy does not match"):
        store.FeatureStore.open(tmp_path / "c")
