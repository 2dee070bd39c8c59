"""Feature stores: built on Dask, resumable, reopened with their index and model."""

import os
import threading

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

from pipeline.errors import Cancelled, InputError
from pipeline.oneshot import features as feat
from pipeline.oneshot import search, store
from pipeline.oneshot.galaxies import GalaxySet


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """Nine 32-px cutouts: three families of looks (discs, rings, noise), three of each."""
    folder = tmp_path_factory.mktemp("set")
    (folder / "img").mkdir()
    yy, xx = np.mgrid[:32, :32] - 15.5
    r = np.hypot(xx, yy)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(9):
        kind = ["disc", "ring", "noise"][i % 3]
        if kind == "disc":
            grey = 255 * np.exp(-r**2 / (20 + 5 * i))
        elif kind == "ring":
            grey = 255 * np.exp(-(r - 9 - i / 9) ** 2 / 4)
        else:
            grey = rng.uniform(0, 255, r.shape)
        Image.fromarray(np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)).save(folder / "img" / f"{i}.png")
        rows.append((f"G{i}", f"img/{i}.png", kind))
    Table(rows=rows, names=["id", "file", "kind"]).write(folder / "catalog.csv", format="ascii.csv")
    return GalaxySet.open(folder / "catalog.csv")


def test_build_open_and_search(tiny_set, tmp_path):
    progress = []
    built = store.build_store(tiny_set, tmp_path / "idx", size=64, scheduler="synchronous", chunk=4,
                              progress=lambda d, t: progress.append((d, t)))
    assert progress[-1] == (9, 9) and not (tmp_path / "idx" / "parts").exists()
    again = store.FeatureStore.open(tmp_path / "idx")
    np.testing.assert_array_equal(again.features, built.features)
    assert again.features.shape == (9, feat.N_FEATURES) and list(again.catalog["id"]) == tiny_set.ids
    assert again.meta["model_label"] == feat.load_backbone().label and again.meta["input_px"] == 64
    assert "Lupton" in again.meta["preprocessing"] and "EfficientNet-Lite0" in again.describe()
    # the stored features are those of the images
    direct = feat.extract(feat.load_backbone(), tiny_set.rgb_batch([4]), size=64)
    np.testing.assert_allclose(again.features[4], direct[0], atol=1e-4)
    # a disc's nearest galaxies are discs
    found = search.one_shot(again, "G0", 2)
    assert list(found["kind"]) == ["disc", "disc"]
    assert again.galaxies.rgb(0).shape == (32, 32, 3)


def test_an_interrupted_build_resumes(tiny_set, tmp_path, monkeypatch):
    calls = []
    real = store.chunk_features

    def counting(files, *args):
        calls.append(len(files))
        return real(files, *args)

    monkeypatch.setattr(store, "chunk_features", counting)
    stop = threading.Event()

    def progress(done, total):
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


def test_local_dask_cluster_gives_the_same_features(tiny_set, tmp_path):
    local = store.build_store(tiny_set, tmp_path / "dask", size=64, scheduler="local", chunk=5)
    inproc = store.build_store(tiny_set, tmp_path / "sync", size=64, scheduler="synchronous", chunk=5)
    np.testing.assert_allclose(local.features, inproc.features, atol=1e-5)


def test_unreachable_scheduler_says_so(tiny_set, tmp_path, monkeypatch):
    monkeypatch.setattr(store, "SCHEDULER_TIMEOUT", "1s")
    with pytest.raises(InputError, match="Cannot reach the Dask scheduler"):
        store.build_store(tiny_set, tmp_path / "x", size=64, scheduler="tcp://127.0.0.1:9", chunk=5)


def test_cli_index_and_search(tiny_set, tmp_path):
    from tests.test_cli import run

    out = tmp_path / "idx"
    result = run("index", tiny_set.folder, "--catalog", tiny_set.folder / "catalog.csv", "--out", out,
                 "--size", "64", "--scheduler", "synchronous", "--quiet")
    assert result.returncode == 0, result.stderr
    result = run("search", out, "--prototype", "G0", "--n", "2", "--iterations", "2", "--label", "kind",
                 "--positive", "disc", "-o", tmp_path / "r.csv")
    assert result.returncode == 0, result.stderr
    found = Table.read(tmp_path / "r.csv", format="ascii.csv")
    assert found.colnames[:5] == ["id", "distance", "iteration", "parent", "file"]
    assert "iteration 1 (2 found): kind = disc: 2/2" in result.stdout and "direct query of" in result.stdout
    # an image as prototype: the cutout of G3 finds G3 itself first, at distance ~0
    result = run("search", out, "--prototype-image", tiny_set.folder / "img" / "3.png", "--n", "1",
                 "-o", tmp_path / "v.vot", "--quiet")
    assert result.returncode == 0, result.stderr
    assert str(Table.read(tmp_path / "v.vot")["id"][0]) == "G3"
    for args, message in [(("--prototype", "nope"), "No galaxy with id 'nope'"),
                          (("--prototype", "G0", "--label", "kind"), "--label and --positive go together"),
                          (("--prototype", "G0", "--label", "kind", "--positive", "spiral"), "values are disc, noise, ring"),
                          ((), "Give the prototype")]:
        result = run("search", out, *args, "-o", tmp_path / "x.csv")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    result = run("index", tiny_set.folder, "--catalog", tmp_path / "none.csv", "--out", out)
    assert result.returncode == 2 and "No galaxy catalogue" in result.stderr


def test_auto_scheduler_extracts_a_small_set_in_this_process(tiny_set, tmp_path, monkeypatch):
    pids = []
    real = store.chunk_features

    def recording(*args):
        pids.append(os.getpid())  # a local cluster would run this in its workers, not here
        return real(*args)

    monkeypatch.setattr(store, "chunk_features", recording)
    store.build_store(tiny_set, tmp_path / "idx", size=64, chunk=5)  # the default scheduler is "auto"
    assert pids == [os.getpid()] * 2


def test_auto_scheduler_picks_a_local_cluster_for_a_large_set(monkeypatch):
    monkeypatch.setattr(store, "LOCAL_CLUSTER_FROM", 100)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert store.pick_scheduler("auto", 99) == "synchronous"
    assert store.pick_scheduler("auto", 100) == "local"
    for given in ("synchronous", "local", "tcp://host:8786"):  # a scheduler given is the one used
        assert store.pick_scheduler(given, 10) == store.pick_scheduler(given, 10_000) == given
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # one core: no cluster can help
    assert store.pick_scheduler("auto", 10_000) == "synchronous"
