"""The embedded galaxy sets: the simulated SDSS-like survey (pipeline.oneshot.survey: labels,
images; .render: the renderer) and the Hubble Deep Field cutouts (.hubble_deep_field), and their
one-time build into the cache (.galaxy_sets)."""

import threading

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from PIL import Image

from pipeline.errors import Cancelled, InputError
from pipeline.oneshot import galaxy_sets, render, survey
from pipeline.oneshot.galaxies import GalaxySet

SIZE = 32


@pytest.fixture(scope="module")
def small_survey(tmp_path_factory):
    """400 galaxies of 32 px: a few seconds."""
    return survey.simulate_survey(tmp_path_factory.mktemp("survey") / "set", n=400, seed=3, size=SIZE)


@pytest.fixture(scope="module")
def population():
    """3000 hosts with labels, not rendered (half a second)."""
    rng = np.random.default_rng(11)
    return survey.assign_labels(survey.draw_galaxies(3000, rng), rng)


def concentration(image, inner=2.0, outer=8.0):
    """r-band light within ``inner`` px of the cutout's centre (the galaxy's) over the light within
    ``outer`` px."""
    band = image[1]
    centre = band.shape[0] // 2
    radius = np.hypot(*np.mgrid[:band.shape[0], :band.shape[1]] - centre)
    return band[radius <= inner].sum() / band[radius <= outer].sum()


def test_labels_follow_ulisse_fractions_and_images_read_back(small_survey):
    catalog = Table.read(small_survey, format="ascii.csv")
    n = len(catalog)
    assert n == 400 and len(set(catalog["id"])) == n and catalog["id"][0] == "SIM000001"
    for label, fraction in survey.BPT_FRACTIONS.items():
        assert abs(np.sum(catalog["bpt_class"] == label) - fraction * n) <= 1
    xray = np.asarray(catalog["xray_class"].filled("") if hasattr(catalog["xray_class"], "filled")
                      else catalog["xray_class"])
    assert abs(np.sum(xray == "AGN") - 0.002 * n) <= 1 and abs(np.sum(xray == "non-AGN") - 0.056 * n) <= 1
    assert np.sum(xray == "") > 0.9 * n  # unknown: left empty
    for column in ("morphology", "bulge_to_total", "agn_strength", "inclination_deg", "r_mag", "g_r",
                   "redshift", "ra", "dec", "simulated"):
        assert column in catalog.colnames
    assert (catalog["agn_strength"][catalog["bpt_class"] == "star-forming"] == 0).all()
    folder = small_survey.parent
    assert (folder / "README.txt").read_text().startswith(survey.SIMULATED_NOTE)
    for row in catalog[:5]:
        with fits.open(folder / row["file"]) as hdul:
            header, data = hdul[0].header, hdul[0].data
            assert data.shape == (3, SIZE, SIZE) and data.dtype == np.float32  # int16 scaled back
            assert (header["BAND1"], header["BAND2"], header["BAND3"]) == ("g", "r", "i")
            assert header["PIXSCALE"] == pytest.approx(0.396) and header["SIMULATE"] is True
            assert np.isfinite(data).all() and data[1].max() > 5 * np.std(data[1][:4, :4])  # a galaxy
    raw = fits.getdata(folder / catalog["file"][0], do_not_scale_image_data=True)
    assert raw.dtype.kind == "i" and raw.dtype.itemsize == 2  # stored as int16 + BSCALE/BZERO
    gs = GalaxySet.open(small_survey)
    assert gs.size == SIZE and {"bpt_class", "xray_class", "morphology"} <= set(gs.label_columns)
    assert gs.rgb(0).shape == (SIZE, SIZE, 3)


def test_same_seed_same_set_other_seed_differs(tmp_path):
    paths = [survey.simulate_survey(tmp_path / name, n=12, seed=seed, size=SIZE)
             for name, seed in (("a", 5), ("b", 5), ("c", 6))]
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b and a != c
    image = "images/SIM000007.fits"
    assert (paths[0].parent / image).read_bytes() == (paths[1].parent / image).read_bytes()
    assert not np.array_equal(fits.getdata(paths[0].parent / image), fits.getdata(paths[2].parent / image))


def test_agn_prefer_early_type_hosts(population):
    bpt = np.asarray(population["bpt_class"])
    early = np.isin(population["morphology"], ["elliptical", "lenticular"])
    agn = bpt == "AGN"
    assert early[agn].mean() > early[~agn].mean() + 0.15
    assert early[bpt == "unclassified"].mean() > 0.6 and early[bpt == "star-forming"].mean() < 0.15
    strength = np.asarray(population["agn_strength"])
    # from invisible to dominant, mostly faint
    assert strength[agn].min() < 0.005 and strength[agn].max() > 0.5 and np.median(strength[agn]) < 0.1
    xray_agn = np.asarray(population["xray_class"]) == "AGN"
    assert xray_agn.sum() == 6 and np.mean(bpt[xray_agn] == "AGN") >= 0.5
    assert np.median(strength[xray_agn]) > np.median(strength[agn])
    assert 0.05 < np.median(population["redshift"]) < 0.15 and np.max(population["r_mag"]) < 17.8


def test_nucleus_makes_the_centre_concentrated(population):
    resolved = population["disk_re_arcsec"] > 2.0  # a host larger than the PSF
    strong = population[np.flatnonzero((population["agn_strength"] > 0.3) & resolved)[:1]]
    host_only = strong.copy()
    host_only["agn_strength"] = 0.0
    with_nucleus, = render.render_galaxies(strong, SIZE * 2, noise=False)
    without, = render.render_galaxies(host_only, SIZE * 2, noise=False)
    assert concentration(with_nucleus) > 1.3 * concentration(without)
    assert with_nucleus[1].sum() == pytest.approx(without[1].sum(), rel=0.02)  # r_mag is the total
    # statistically too: strong AGN against non-AGN of the same type
    ellipticals = population["morphology"] == "elliptical"
    agn = population[ellipticals & (population["agn_strength"] > 0.1)][:15]
    others = population[ellipticals & (population["agn_strength"] == 0)][:15]
    c_agn = [concentration(im) for im in render.render_galaxies(agn, SIZE * 2, noise=False)]
    c_others = [concentration(im) for im in render.render_galaxies(others, SIZE * 2, noise=False)]
    assert np.median(c_agn) > np.median(c_others)


def test_renderer_flux_and_psf(population):
    """A galaxy that is almost all nucleus is the PSF: its FWHM is the catalogue's seeing and its
    pixels add up to the catalogue's magnitude; the Sersic mixtures hold their light."""
    row = population[:1].copy()
    row["agn_strength"], row["n_stars"], row["n_background"] = 0.9999, 0, 0
    row["agn_g_r"], row["agn_r_i"] = 0.5, 0.2
    image, = render.render_galaxies(row, 64, noise=False)
    flux = 10 ** (-0.4 * (row["r_mag"][0] - 22.5))
    assert image[1].sum() == pytest.approx(flux, rel=0.02)
    fwhm_px = 2 * np.sqrt(np.sum(image[1] > image[1].max() / 2) / np.pi)
    assert fwhm_px * render.PIXEL_SCALE_ARCSEC == pytest.approx(row["seeing_r_arcsec"][0], rel=0.15)
    g, r, i = image.sum(axis=(1, 2))
    assert -2.5 * np.log10(g / r) == pytest.approx(0.5, abs=0.02)
    assert -2.5 * np.log10(r / i) == pytest.approx(0.2, abs=0.02)
    r = np.linspace(0, 12, 20001)
    for n in (1.0, 4.0):
        fluxes, variances = render.sersic_mixture(n)
        light = np.cumsum(render.sersic_profile(r, n) * r)
        model = 1 - (fluxes * np.exp(-r[:, None] ** 2 / (2 * variances))).sum(1)
        assert np.abs(light / light[-1] - model).max() < 0.025


def test_cancel_leaves_nothing(tmp_path):
    cancel = threading.Event()
    seen = []

    def progress(done, total, stage):
        seen.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        survey.simulate_survey(tmp_path / "set", n=60, size=SIZE, progress=progress, cancel=cancel)
    assert seen == [25] and list(tmp_path.iterdir()) == []


def test_replaces_an_older_set_but_not_other_folders(tmp_path):
    first = survey.simulate_survey(tmp_path / "set", n=3, seed=1, size=SIZE)
    second = survey.simulate_survey(tmp_path / "set", n=5, seed=2, size=SIZE)
    assert first == second and len(Table.read(second, format="ascii.csv")) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no leftovers
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="not a galaxy set"):
        survey.simulate_survey(tmp_path / "mine", n=3, size=SIZE)
    with pytest.raises(InputError, match="whole number"):
        survey.simulate_survey(tmp_path / "new", n=0)


@pytest.fixture(scope="module")
def default_sets_twice(tmp_path_factory):
    """default_sets() called twice in a fresh cache, with a tiny survey: paths and file mtimes."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALMA_ULISSE_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(survey, "DEFAULT_N", 20)
        first = galaxy_sets.default_sets()
        stamps = {name: path.stat().st_mtime_ns for name, path in first.items()}
        image = first[galaxy_sets.SIMULATED_SET_NAME].parent / "images" / "SIM000001.fits"
        image_stamp = image.stat().st_mtime_ns
        second = galaxy_sets.default_sets()
        yield first, second, stamps, image, image_stamp


def test_default_sets_are_built_once(default_sets_twice):
    first, second, stamps, image, image_stamp = default_sets_twice
    assert set(first) == {galaxy_sets.SIMULATED_SET_NAME, galaxy_sets.HDF_SET_NAME} and first == second
    assert {name: path.stat().st_mtime_ns for name, path in second.items()} == stamps
    assert image.stat().st_mtime_ns == image_stamp
    assert first[galaxy_sets.SIMULATED_SET_NAME].parent.name == f"simulated-sdss-v{survey.SURVEY_VERSION}"
    assert len(Table.read(first[galaxy_sets.SIMULATED_SET_NAME], format="ascii.csv")) == 20


def test_hubble_deep_field_cutouts(default_sets_twice):
    path = default_sets_twice[0][galaxy_sets.HDF_SET_NAME]
    catalog = Table.read(path, format="ascii.csv")
    assert len(catalog) > 50 and len(set(catalog["id"])) == len(catalog)
    assert {"id", "file", "x", "y", "area_px", "flux"} <= set(catalog.colnames)
    assert not {"bpt_class", "xray_class"} & set(catalog.colnames)  # real: unlabelled
    for row in catalog[:: max(1, len(catalog) // 10)]:
        with Image.open(path.parent / row["file"]) as im:
            assert im.size == (render.DEFAULT_SIZE, render.DEFAULT_SIZE) and im.mode == "RGB"
    assert all((path.parent / f).is_file() for f in catalog["file"])
    gs = GalaxySet.open(path)
    assert gs.size == render.DEFAULT_SIZE and gs.label_columns == []
