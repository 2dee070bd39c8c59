"""faiss indexes: exact results equal brute force, the approximate one keeps its recall."""

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
    assert again.info == info and again.index.nprobe == info.nprobe
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
