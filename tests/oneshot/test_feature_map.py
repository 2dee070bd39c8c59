"""The map of a feature store: neighbours stay neighbours, made once per build, large sets placed."""

import numpy as np

from pipeline.oneshot import feature_map


def clusters(n_each=40, dim=64, seed=0):
    """Three tight clusters on the unit sphere, and which one each vector belongs to."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim))
    kinds = np.repeat(np.arange(3), n_each)
    return (centres[kinds] + 0.15 * rng.normal(size=(len(kinds), dim))).astype(np.float32), kinds


def separated(positions, kinds) -> bool:
    """Every point is nearer its own cluster's centre on the map than any other's."""
    centres = np.array([positions[kinds == k].mean(axis=0) for k in range(3)])
    nearest = np.argmin(np.linalg.norm(positions[:, None] - centres[None], axis=2), axis=1)
    return bool(np.all(nearest == kinds))


def test_the_layout_keeps_clusters_apart_and_is_repeatable():
    vectors, kinds = clusters()
    positions = feature_map.compute_layout(vectors)
    assert positions.shape == (120, 2) and positions.dtype == np.float32 and separated(positions, kinds)
    np.testing.assert_array_equal(positions, feature_map.compute_layout(vectors))  # seed 0: the same map


def test_beyond_the_limit_the_rest_is_placed_by_its_neighbours(monkeypatch):
    monkeypatch.setattr(feature_map, "TSNE_LIMIT", 60)
    vectors, kinds = clusters()
    progress = []
    positions = feature_map.compute_layout(vectors, progress=lambda d, t, stage: progress.append(stage))
    assert separated(positions, kinds)
    assert any("placing 60 more" in stage for stage in progress)


def test_tiny_sets_get_a_line():
    assert feature_map.compute_layout(np.ones((3, 8), np.float32)).tolist() == [[0, 0], [1, 0], [2, 0]]


def test_a_store_map_is_made_once_per_build(tiny_index, monkeypatch):
    from pipeline.oneshot.store import FeatureStore

    store = FeatureStore.open(tiny_index)
    first = feature_map.layout(store)
    assert first.shape == (len(store.catalog), 2)
    monkeypatch.setattr(feature_map, "compute_layout", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    np.testing.assert_array_equal(feature_map.layout(store), first)  # from the cache, not computed again


def test_the_map_from_the_command_line(tiny_index, tmp_path):
    from astropy.table import Table

    from tests.conftest import run_cli

    result = run_cli("map", tiny_index, "-o", tmp_path / "map.csv")
    assert result.returncode == 0, result.stderr
    table = Table.read(tmp_path / "map.csv", format="ascii.csv", comment="#")
    assert table.colnames[:3] == ["id", "map_x", "map_y"] and "kind" in table.colnames and len(table) == 9
    assert "t-SNE" in (tmp_path / "map.csv").read_text()
