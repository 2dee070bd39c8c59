"""What the network sees: the galaxy crop, the rotations and flips, and the invariance head."""

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.oneshot import features as feat
from pipeline.oneshot import views
from pipeline.oneshot.head import InvarianceHead, fit_head


def gaussian(size=64, x0=31.5, y0=31.5, sigma=4.0, peak=200.0, sky=10.0, noise=2.0, seed=0):
    yy, xx = np.mgrid[:size, :size]
    light = sky + peak * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    light = light + np.random.default_rng(seed).normal(0, noise, light.shape)
    return np.repeat(np.clip(light, 0, 255)[..., None], 3, axis=2).astype(np.uint8)


def test_galaxy_extent_finds_the_centre_and_r90_of_the_light():
    for size in (64, 424):  # 424: segmented block-averaged, measured in the cutout's pixels
        s = size / 64
        x, y, r90 = views.galaxy_extent(gaussian(size, x0=30 * s, y0=36 * s, sigma=4 * s))
        assert (x, y) == (pytest.approx(30 * s, abs=0.3 * s), pytest.approx(36 * s, abs=0.3 * s))
        # a round Gaussian holds 90% of its light within sigma sqrt(-2 ln 0.1) = 2.15 sigma
        assert r90 == pytest.approx(2.15 * 4 * s, rel=0.15)


def test_the_central_source_is_chosen_not_the_brightest():
    image = np.maximum(gaussian(x0=33, y0=30, sigma=3, peak=120), gaussian(x0=8, y0=8, sigma=5, peak=250, seed=1))
    x, y, _ = views.galaxy_extent(image)
    assert (x, y) == (pytest.approx(33, abs=0.5), pytest.approx(30, abs=0.5))


def test_crops_follow_the_galaxy_and_reflect_beyond_the_cutout():
    small, big = gaussian(sigma=2.0), gaussian(sigma=7.0)
    assert views.view(small, "galaxy").shape[0] < views.view(big, "galaxy").shape[0] <= 64
    assert views.view(small, "galaxy").shape[0] >= 64 * views.MIN_HALF_FRACTION * 2 - 1
    assert views.view(small, "frame") is small
    blank = np.full((40, 40, 3), 7, np.uint8)
    assert views.crop_box(blank, "galaxy") == (19.5, 19.5, 20)  # nothing found: the whole cutout
    edge = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    cut = views.cut(edge, 0.5, 4.5, 3.0)  # columns -2..3: runs 2 px past the left edge, mirrored, no frame
    np.testing.assert_array_equal(cut[:, 0], edge[2:8, 2])
    np.testing.assert_array_equal(cut[:, 2:], edge[2:8, 0:4])
    # a centre halfway between pixels rounds up, whichever way the cutout is turned
    assert views.cut(edge, 4.0, 4.0, 3.0)[0, 0].tolist() == edge[2, 2].tolist()


def test_the_eight_turns_are_the_dihedral_group():
    image = np.arange(5 * 5, dtype=np.uint8).reshape(5, 5)
    turns = views.dihedral(image)
    assert len({t.tobytes() for t in turns}) == 8
    np.testing.assert_array_equal(turns[0], image)
    # the set of turns of a turned image is the same set: features averaged over it are invariant
    assert {t.tobytes() for t in views.dihedral(np.rot90(image))} == {t.tobytes() for t in turns}
    rng = np.random.default_rng(0)
    augmented = views.augmented_views(gaussian(), "galaxy", rng)
    assert len(augmented) == 8
    np.testing.assert_array_equal(augmented[0], views.view(gaussian(), "galaxy"))


def test_dihedral_features_do_not_change_when_the_galaxy_turns():
    backbone = feat.load_backbone()
    image = np.maximum(gaussian(sigma=6), gaussian(x0=44, y0=31.5, sigma=2, peak=240, seed=2))  # lopsided
    upright, turned, mirrored = (views.view_features(backbone, [im], "frame", "dihedral", size=64)[0]
                                 for im in (image, np.rot90(image), image[:, ::-1]))
    np.testing.assert_allclose(turned, upright, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mirrored, upright, rtol=1e-4, atol=1e-4)
    one = views.view_features(backbone, [np.rot90(image)], "frame", "none", size=64)[0]
    plain = views.view_features(backbone, [image], "frame", "none", size=64)[0]
    assert np.abs(one - plain).max() > 1e-2  # one view alone does change
    with pytest.raises(InputError, match="invariance must be"):
        views.view_features(backbone, [image], "frame", "average", size=64)


def test_the_head_pulls_the_views_of_a_galaxy_together():
    """Features = what the galaxy is (shared by its views) + what the view is (a nuisance, the
    same for every galaxy's k-th view): the head learns to remove the nuisance."""
    rng = np.random.default_rng(0)
    galaxies, per_view, dim = 60, 8, 24
    identity = rng.normal(0, 1, (galaxies, 1, dim))
    nuisance = rng.normal(0, 1, (1, per_view, dim)) * np.r_[np.zeros(dim - 6), np.full(6, 3.0)]
    observed = identity + nuisance + rng.normal(0, 0.05, (galaxies, per_view, dim))
    head = fit_head(observed)

    def spread(x):  # mean distance of the views to their galaxy's mean, over the distance between galaxies
        return np.linalg.norm(x - x.mean(axis=1, keepdims=True), axis=2).mean() / np.linalg.norm(
            x.mean(axis=1)[:, None] - x.mean(axis=1)[None], axis=2).mean()

    mapped = head.apply(observed.reshape(-1, dim)).reshape(observed.shape)
    assert spread(mapped) < 0.2 * spread(observed)
    # new galaxies seen in the same ways: the head carries over
    fresh = rng.normal(0, 1, (20, 1, dim)) + nuisance
    assert spread(head.apply(fresh.reshape(-1, dim)).reshape(fresh.shape)) < 0.2 * spread(fresh)
    with pytest.raises(InputError, match="several views"):
        fit_head(observed[:1])


def test_a_head_file_is_read_as_plain_arrays(tmp_path):
    head = fit_head(np.random.default_rng(1).normal(size=(5, 3, 4)))
    head.save(tmp_path / "head.npz")
    back = InvarianceHead.load(tmp_path / "head.npz", 4)
    np.testing.assert_array_equal(back.weights, head.weights)
    with pytest.raises(InputError, match="shape"):
        InvarianceHead.load(tmp_path / "head.npz", 5)  # a head for other features
    np.savez(tmp_path / "pickled.npz", mean=np.zeros(4), weights=np.array([object()] * 4, dtype=object))
    with pytest.raises(InputError, match="not a readable invariance head"):
        InvarianceHead.load(tmp_path / "pickled.npz", 4)  # an object array would need pickle: refused
    np.savez(tmp_path / "big.npz", mean=np.zeros(4), weights=np.zeros((400, 400)))
    with pytest.raises(InputError, match="bytes at most"):
        InvarianceHead.load(tmp_path / "big.npz", 4)  # refused before it is read
    np.save(tmp_path / "plain.npy", np.zeros(4))
    (tmp_path / "plain.npz").write_bytes((tmp_path / "plain.npy").read_bytes())
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    damaged = bytearray((tmp_path / "head.npz").read_bytes())
    damaged[len(damaged) // 3] ^= 0xFF  # a flipped byte inside a member: its CRC fails
    (tmp_path / "damaged.npz").write_bytes(bytes(damaged))
    for name in ("plain.npz", "junk.npz", "damaged.npz"):
        with pytest.raises(InputError, match="not a readable"):
            InvarianceHead.load(tmp_path / name, 4)
    nan = fit_head(np.random.default_rng(1).normal(size=(5, 3, 4)))
    nan.mean[0] = np.nan
    nan.save(tmp_path / "nan.npz")
    with pytest.raises(InputError, match="not finite"):
        InvarianceHead.load(tmp_path / "nan.npz", 4)


def test_views_that_never_differ_give_a_head_not_an_error():
    same = np.repeat(np.random.default_rng(2).normal(size=(1, 1, 6)), 4, axis=0).repeat(8, axis=1)
    head = fit_head(same)  # blank or repeated cutouts: nothing to learn, nothing to fail
    np.testing.assert_allclose(head.apply(same[:, 0]), same[:, 0], atol=1e-5)


def test_a_store_with_a_head_brings_a_turned_galaxy_closer(tiny_set, tmp_path):
    """The views of the tiny set's galaxies, turned: through the head their features lie closer
    to the upright view's than the network's own features do."""
    from pipeline.oneshot.search import unit_rows
    from pipeline.oneshot.store import build_store

    built = build_store(tiny_set, tmp_path / "idx", size=64, scheduler="synchronous")
    backbone = feat.load_backbone()
    rows = [2, 5, 8]  # the noise cutouts: round discs and rings look the same turned
    ups, turned = [], []
    for r in rows:
        view = built.view(r)
        ups.append(feat.extract(backbone, [view], size=64)[0])
        turned.append(feat.extract(backbone, [np.rot90(view)[:, ::-1].copy()], size=64)[0])
    ups, turned = np.array(ups), np.array(turned)

    def distance(a, b):
        return float(np.mean(1 - np.sum(unit_rows(a) * unit_rows(b), axis=1)))

    assert distance(built.head.apply(ups), built.head.apply(turned)) < 0.7 * distance(ups, turned)


def test_atlas_maps_of_a_dihedral_store_average_to_its_features(tiny_set, tmp_path):
    from pipeline.oneshot import atlas
    from pipeline.oneshot.store import build_store

    built = build_store(tiny_set, tmp_path / "idx", size=64, scheduler="synchronous", crop="frame",
                        invariance="dihedral")
    rows = [0, 2, 4]
    for feature in (5, 700):
        maps = atlas.feature_maps(built, feature, rows)
        np.testing.assert_allclose(maps.mean(axis=(1, 2)), built.features[rows, feature], atol=2e-3)
