"""faiss indexes: exact results equal brute force, the approximate one keeps its recall."""

import faiss
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.oneshot import index as ix


def clustered(n, dim=64, centres=50, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)) * 3
    return ((c[rng.integers(0, centres, n)] + rng.normal(size=(n, dim))).astype(np.float32)
            * rng.uniform(0.5, 2, (n, 1)).astype(np.float32))


@pytest.mark.parametrize("metric", ix.METRICS)
def test_exact_index_is_brute_force(metric):
    x = clustered(500)
    index = ix.FeatureIndex.build(x, metric=metric)
    assert index.info.kind == "exact" and index.info.recall == 1.0
    d, rows = index.search(x[:3], 10)
    if metric == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        brute = 1 - u[:3] @ u.T
    else:
        brute = np.linalg.norm(x[:3, None] - x[None], axis=2)
    expected = np.argsort(brute, axis=1)[:, :10]
    np.testing.assert_array_equal(rows[:, 0], [0, 1, 2])  # each vector is its own nearest
    np.testing.assert_allclose(d, np.take_along_axis(brute, expected, 1), atol=1e-3)
    assert (np.diff(d, axis=1) >= -1e-6).all()


def test_cosine_ignores_the_vectors_length():
    x = clustered(200)
    index = ix.FeatureIndex.build(x)
    d, rows = index.search(5 * x[7], 1)
    assert rows[0, 0] == 7 and d[0, 0] == pytest.approx(0, abs=1e-5)


def test_large_sets_get_an_approximate_index_with_measured_recall(monkeypatch, tmp_path):
    monkeypatch.setattr(ix, "EXACT_LIMIT", 1000)
    x = clustered(8000, seed=1)
    index = ix.FeatureIndex.build(x)
    info = index.info
    assert info.kind == "approximate" and info.nlist > 1 and 1 <= info.nprobe <= info.nlist
    assert info.recall >= ix.RECALL_TARGET
    # measured again on other queries, against the exact index
    exact = ix.FeatureIndex.build(x, kind="exact")
    queries = x[::160] + np.random.default_rng(9).normal(size=(50, 64)).astype(np.float32)  # new, alike
    _, a = index.search(queries, 100)
    _, b = exact.search(queries, 100)
    assert np.mean([len(np.intersect1d(p, q)) / 100 for p, q in zip(a, b, strict=True)]) >= 0.9
    index.save(tmp_path)
    again = ix.FeatureIndex.load(tmp_path)
    assert again.info == info
    np.testing.assert_array_equal(again.search(queries, 10)[1], index.search(queries, 10)[1])
    assert "approximate cosine index of 8,000" in again.describe() and "recall@100" in again.describe()


def test_more_neighbours_than_vectors_and_bad_input(tmp_path):
    index = ix.FeatureIndex.build(clustered(5))
    d, rows = index.search(clustered(1), 10)
    assert rows.shape == (1, 5)
    with pytest.raises(InputError, match="holds 64"):
        index.search(np.zeros((1, 3)), 2)
    with pytest.raises(InputError, match="metric"):
        ix.FeatureIndex.build(clustered(5), metric="hamming")
    with pytest.raises(InputError, match="NaN"):
        ix.FeatureIndex.build(np.full((3, 4), np.nan))
    with pytest.raises(InputError, match="python -m pipeline index"):
        ix.FeatureIndex.load(tmp_path)


@pytest.mark.parametrize("metric", ix.METRICS)
def test_compressed_index_reranks_on_vectors_on_disk(monkeypatch, tmp_path, metric):
    monkeypatch.setattr(ix, "BUILD_CHUNK", 1500)  # several chunks
    x = clustered(6000, seed=2)
    with pytest.raises(InputError, match="folder"):
        ix.FeatureIndex.build(x, kind="compressed", metric=metric)
    memmapped = tmp_path / "features.npy"
    np.save(memmapped, x)
    index = ix.FeatureIndex.build(np.load(memmapped, mmap_mode="r"), kind="compressed", metric=metric,
                                  folder=tmp_path / "built", transform=lambda block: 2 * block)
    info = index.info
    assert info.code_bytes == 8 and info.rerank in ix.RERANK_FACTORS and info.recall >= ix.RECALL_TARGET
    assert isinstance(index.vectors, np.memmap) and index.vectors.dtype == np.float16
    exact = ix.FeatureIndex.build(2 * x, kind="exact", metric=metric)
    queries = x[::120] + np.random.default_rng(9).normal(size=(50, 64)).astype(np.float32)
    d, a = index.search(2 * queries, 100)
    de, b = exact.search(2 * queries, 100)
    assert np.mean([len(np.intersect1d(p, q)) / 100 for p, q in zip(a, b, strict=True)]) >= 0.9
    # distances are the exact ones of the rows found (float16 vectors), nearest first
    assert (np.diff(d, axis=1) >= 0).all()
    np.testing.assert_allclose(d[:, 0], de[:, 0], rtol=2e-2, atol=1e-3)
    index.save(tmp_path / "saved")  # elsewhere: the vectors go with it
    again = ix.FeatureIndex.load(tmp_path / "saved")
    assert again.info == info
    np.testing.assert_array_equal(again.search(queries[:5], 10)[1], index.search(queries[:5], 10)[1])
    assert info.rotated and isinstance(index.index, faiss.IndexPreTransform)  # OPQ before the codes
    assert "compressed" in again.describe() and "8-byte rotated codes" in again.describe()
    np.save(tmp_path / "saved" / "vectors.npy", np.zeros((3, 64), np.float16))
    with pytest.raises(InputError, match="vectors.npy is missing or damaged"):
        ix.FeatureIndex.load(tmp_path / "saved")


def test_auto_compresses_above_the_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(ix, "EXACT_LIMIT", 100)
    monkeypatch.setattr(ix, "COMPRESSED_FROM", 1000)
    assert ix.FeatureIndex.build(clustered(800)).info.kind == "approximate"
    assert ix.FeatureIndex.build(clustered(2000), folder=tmp_path).info.kind == "compressed"
    assert ix._code_bytes(1280) == 160 and ix._code_bytes(100) == 10 and ix._code_bytes(7) == 1


def test_a_cosine_distance_is_never_below_zero():
    """An image searched for itself can score a cosine a rounding above 1: it shows as 0, not -0.000."""
    d = ix.distances(np.array([[1.0000001, 0.5, 0.0]], np.float32), np.array([[0, 1, -1]]), "cosine")
    assert d[0, 0] == 0 and d[0, 1] == np.float32(0.5) and np.isinf(d[0, 2])
