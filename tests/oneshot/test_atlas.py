"""The feature atlas on a small simulated survey: top activations, maps, ranking, sub-spaces."""

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

from pipeline.errors import InputError
from pipeline.oneshot import atlas, search, survey
from pipeline.oneshot.galaxies import GalaxySet
from pipeline.oneshot.store import build_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("atlas")
    catalog = survey.simulate_survey(root / "survey", n=120, seed=3, size=48)
    return build_store(GalaxySet.open(catalog), root / "index", size=64, scheduler="synchronous")


def test_top_images_are_those_with_the_largest_stored_activation(store):
    rows, values = store.top_activations()
    assert rows.shape == values.shape == (1280, min(atlas.TOP_K, 120))
    for k in (0, 11, 41, 541, 835, 1279):
        expected = np.sort(np.asarray(store.features)[:, k])[::-1][:rows.shape[1]]
        np.testing.assert_allclose(values[k], expected)
        np.testing.assert_allclose(np.asarray(store.features)[rows[k], k], values[k])
    assert (store.folder / "top_rows.npy").is_file()  # made when the store was built


def test_a_channel_map_pools_to_the_stored_feature(store):
    rows, _ = store.top_activations()
    chosen = rows[541, :3]
    maps = atlas.feature_maps(store, 541, chosen)
    assert maps.shape == (3, 2, 2)  # 64 px input / 32
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), np.asarray(store.features)[chosen, 541], rtol=2e-3, atol=2e-3)
    again = atlas.feature_maps(store, 11, chosen)  # from the disk cache: every channel was kept
    np.testing.assert_allclose(again.mean(axis=(1, 2)), np.asarray(store.features)[chosen, 11], rtol=2e-3, atol=2e-3)
    png = atlas.overlay(store.galaxies.rgb(int(chosen[0])), maps[0])
    image = Image.open(__import__("io").BytesIO(png))
    assert image.format == "PNG" and image.size[0] > image.size[1] == 192  # the cutout plus its colour bar
    jpeg = Image.open(__import__("io").BytesIO(atlas.overlay(store.galaxies.rgb(int(chosen[0])), maps[0],
                                                             image_format="JPEG")))
    assert jpeg.format == "JPEG" and jpeg.size == image.size
    assert np.abs(np.asarray(jpeg, float) - np.asarray(image.convert("RGB"), float)).mean() < 4  # the same picture
    with pytest.raises(InputError, match="numbered 0 to 1279"):
        atlas.feature_maps(store, 1280, chosen)


def test_rank_features_by_auroc(store):
    ranking = atlas.rank_features(store, "bpt_class", "AGN")
    assert len(ranking) == 1280 and ranking["separation"][0] >= ranking["separation"][-1]
    best = ranking[0]
    assert best["low"] <= best["auroc"] <= best["high"]
    # AUROC by brute force for the best feature: P(positive > other)
    x = np.asarray(store.features)[:, best["feature"]]
    pos = np.asarray(store.catalog["bpt_class"]) == "AGN"
    brute = np.mean(x[pos][:, None] > x[~pos][None]) + 0.5 * np.mean(x[pos][:, None] == x[~pos][None])
    assert best["auroc"] == pytest.approx(brute)
    with pytest.raises(InputError, match="both positive and other"):
        atlas.rank_features(store, "bpt_class", "quasar")


def test_contributions_sum_to_the_similarity(store):
    """Shares of the network's features' cosine similarity (the atlas explains those features; the
    search itself runs through the invariance head)."""
    found = search.one_shot(store, store.catalog["id"][0], 5)
    shares = atlas.contributions(store, store.catalog["id"][0], list(found["id"]))
    assert shares.shape == (1280,)
    unit = search.unit_rows(store.features[[store.row_of(i) for i in [store.catalog["id"][0], *found["id"]]]])
    assert shares.sum() == pytest.approx(float(np.mean(unit[1:] @ unit[0])), abs=1e-4)


def test_subspace_search(store):
    proto = store.catalog["id"][0]
    same = atlas.subspace_search(store, proto, 10)  # all features, weight 1: cosine on the network's features
    unit = search.unit_rows(store.features)
    similarity = unit @ unit[0]
    assert list(same["id"]) == list(store.catalog["id"][np.argsort(-similarity)[1:11]])
    top20 = list(atlas.rank_features(store, "bpt_class", "AGN")["feature"][:20])
    sub = atlas.subspace_search(store, proto, 10, features=top20)
    assert len(sub) == 10 and proto not in list(sub["id"])
    with pytest.raises(InputError, match="at least one feature"):
        atlas.subspace_search(store, proto, 10, features=[])


def test_write_top_activations(store, tmp_path):
    csv = atlas.write_top_activations(store, 41, 4, tmp_path / "f41")
    table = Table.read(csv, format="ascii.csv")
    assert list(table["rank"]) == [1, 2, 3, 4] and len(list((tmp_path / "f41").glob("*.png"))) == 4
    assert (np.diff(table["activation"]) <= 0).all()


def test_cli_top_activations_and_rank_features(store, tmp_path):
    from tests.conftest import run_cli as run

    result = run("top-activations", store.folder, "--feature", "835", "--n", "3", "--out", tmp_path / "f")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "f").glob("*.png"))) == 3 and (tmp_path / "f" / "top.csv").is_file()
    result = run("rank-features", store.folder, "--label", "bpt_class", "--positive", "AGN", "-o", tmp_path / "r.csv")
    assert result.returncode == 0, result.stderr
    assert "AUROC" in result.stdout
    assert Table.read(tmp_path / "r.csv", format="ascii.csv").colnames[:4] == ["feature", "auroc", "low", "high"]
    result = run("top-activations", store.folder, "--feature", "5000", "--out", tmp_path / "g")
    assert result.returncode == 2 and "numbered 0 to 1279" in result.stderr


def test_edge_share_tells_a_frame_from_a_galaxy():
    ring = np.ones((7, 7))
    ring[1:-1, 1:-1] = 0
    centre = np.zeros((7, 7))
    centre[3, 3] = 5
    share = atlas.edge_share(np.stack([ring, centre, np.ones((7, 7)), np.zeros((7, 7))]))
    assert share[:3] == pytest.approx([1.0, 0.0, 24 / 49]) and np.isnan(share[3])
    assert atlas.edge_cells_share(7, 7) == pytest.approx(24 / 49) and atlas.edge_cells_share(2, 2) == 1.0


def test_on_edge_is_half_way_from_an_even_spread_to_all_on_the_ring():
    even = atlas.edge_cells_share(7, 7)
    assert not atlas.on_edge(even, even) and not atlas.on_edge(0.1, even)
    assert atlas.on_edge(1.0, even) and atlas.on_edge(even + 0.5 * (1 - even), even)
    assert not atlas.on_edge(even + 0.49 * (1 - even), even) and not atlas.on_edge(float("nan"), even)
    assert not atlas.on_edge(1.0, atlas.edge_cells_share(2, 2))  # no inside to tell the edge from


def test_feature_edge_share_is_the_mean_over_its_top_images(store):
    rows, values = store.top_activations()
    feature = int(np.argmax(values[:, 0]))  # one that fires
    share, even = atlas.feature_edge_share(store, feature, images=5)
    maps = atlas.feature_maps(store, feature, rows[feature, :5])
    assert np.isfinite(share) and share == pytest.approx(float(np.nanmean(atlas.edge_share(maps))))
    assert even == atlas.edge_cells_share(2, 2) == 1.0  # 2 x 2 maps are all ring
    with pytest.raises(InputError, match="numbered 0 to 1279"):
        atlas.feature_edge_share(store, -1)


def test_edge_shares_of_every_feature_are_each_features_own(store):
    rows = [0, 5, 9]
    shares, even = atlas.edge_shares(store, rows)
    assert shares.shape == (1280,) and even == 1.0
    every = atlas.channel_maps(store, rows)
    assert every.shape == (3, 1280, 2, 2)
    np.testing.assert_allclose(every[:, 541], atlas.feature_maps(store, 541, rows))
    fires = np.clip(every, 0, None).sum(axis=(0, 2, 3)) > 0
    assert np.all(np.isnan(shares[~fires])) and np.allclose(shares[fires], 1.0)  # 2 x 2 maps: all ring


def test_edge_shares_sum_the_activation_over_the_images(monkeypatch):
    maps = np.zeros((2, 3, 7, 7))
    maps[:, 0, 0, :] = 1.0  # channel 0: the top row of every image, on the ring
    maps[:, 1, 3, 3] = 2.0  # channel 1: the centre
    maps[0, 2, 0, 0], maps[1, 2, 3, 3] = 1.0, 3.0  # channel 2: a corner in one image, the centre in the other
    monkeypatch.setattr(atlas, "channel_maps", lambda store, rows: maps)
    shares, even = atlas.edge_shares(None, [0, 1])
    assert shares == pytest.approx([1.0, 0.0, 0.25]) and even == pytest.approx(24 / 49)
