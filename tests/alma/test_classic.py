"""Classic finders on the integrated image (pipeline.alma.classic): photutils and PyBDSF."""

import math
import sys

import numpy as np
import pytest

from pipeline.alma import classic, measure
from pipeline.alma.catalog import COLUMN_NAMES
from pipeline.alma.cube import open_cube
from pipeline.alma.gaussian import gaussian_covariance
from pipeline.alma.simulate import simulate_cube, write_cube
from pipeline.errors import InputError


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A 128 x 128 x 32 simulated dirty cube on disk, opened, with its truth."""
    sim = simulate_cube(seed=1, size=128, channels=32)
    path = write_cube(tmp_path_factory.mktemp("classic") / "sim.fits", sim.dirty_cube,
                      sim.frequency_hz, sim.observation, sim.beams)
    with open_cube(path) as cube:
        yield cube, sim.truth


def central_flux_jy_kms(truth_row, cube):
    """Analytic integrated flux of a simulated 3-D Gaussian source, Jy km/s."""
    area = math.pi / (4 * math.log(2)) * truth_row["fwhm_x"] * truth_row["fwhm_y"]
    line = math.sqrt(math.pi / (4 * math.log(2))) * truth_row["fwhm_z"]
    return truth_row["peak_jy_per_pix"] * area * line * cube.channel_width()["kms"]


def check_finds_central_source(table, cube, truth, detector):
    assert tuple(table.colnames) == COLUMN_NAMES
    assert set(table["detector"]) == {detector}
    assert list(table["id"]) == list(range(1, len(table) + 1))
    assert list(table["snr"]) == sorted(table["snr"], reverse=True)  # brightest first
    centre = truth[0]
    distance = np.hypot(table["x"] - centre["x"], table["y"] - centre["y"])
    best = table[int(np.argmin(distance))]
    assert distance.min() < 3.0
    assert abs(best["z"] - centre["z"]) <= 2
    assert best["z0"] <= best["z"] < best["z1"] and best["z1"] - best["z0"] >= 2
    assert best["x0"] <= centre["x"] < best["x1"] and best["y0"] <= centre["y"] < best["y1"]
    assert best["snr"] > 10 and best["score"] == best["snr"]
    assert best["freq"] == pytest.approx(np.interp(best["z"], np.arange(cube.nchan), cube.frequency_hz))
    assert best["flux"] == pytest.approx(central_flux_jy_kms(centre, cube), rel=0.35)
    # intrinsic sizes: the source (2 x 3.3 px) is smaller than the beam (about 6 px): resolved
    # along its long axis at most, 0 (unresolved) along the other is a right answer
    assert 0 <= best["fwhm_x"] < 8 and 0 <= best["fwhm_y"] < 8 and 0 < max(best["fwhm_x"], best["fwhm_y"])
    assert 0 <= best["pa"] < 90 or (np.isnan(best["pa"]) and best["fwhm_y"] >= 0.9 * best["fwhm_x"])


def test_photutils_finds_the_central_source(simulated):
    cube, truth = simulated
    table = classic.detect_photutils(cube)
    check_finds_central_source(table, cube, truth, "photutils")


def test_pybdsf_finds_the_central_source(simulated):
    pytest.importorskip("bdsf")
    cube, truth = simulated
    table = classic.CLASSIC_DETECTORS["pybdsf"](cube)
    check_finds_central_source(table, cube, truth, "pybdsf")


def test_channel_range_limits_the_search(simulated):
    cube, truth = simulated
    z = round(float(truth[0]["z"]))
    # integrating only channels far from the line leaves nothing as bright as the source
    far = (z + 8, cube.nchan - 1) if z < cube.nchan // 2 else (0, z - 8)
    table = classic.detect_photutils(cube, first_channel=far[0], last_channel=far[1])
    assert not (table["snr"] > 10).any()
    near = classic.detect_photutils(cube, first_channel=max(0, z - 3), last_channel=z + 3)
    assert len(near) >= 1 and abs(near["z"][0] - truth[0]["z"]) <= 2


def test_small_casa_cube_with_blank_edges(make_cube):
    """The conftest cube: a bright source at (10, 8), channel 6; NaN-blanked columns x < 2."""
    with open_cube(make_cube(layout="casa")) as cube:
        table = classic.detect_photutils(cube)
    assert len(table) == 1
    row = table[0]
    assert (row["x"], row["y"]) == pytest.approx((10.0, 8.0), abs=0.5)
    assert row["z"] == 6 and row["z0"] < 6 < row["z1"]


def test_registry():
    assert classic.CLASSIC_DETECTORS == {"photutils": classic.detect_photutils,
                                         "pybdsf": classic.detect_pybdsf}


# --- building blocks --------------------------------------------------------------------------

def test_deconvolve_subtracts_the_beam():
    beam = gaussian_covariance(6.0, 5.0, 174.0)
    source = gaussian_covariance(4.0, 2.0, 30.0)
    major, minor, theta = measure.deconvolve(beam + source, beam)
    assert (major, minor, theta) == pytest.approx((4.0, 2.0, 30.0), abs=1e-6)
    # narrower than the beam: unresolved, size 0
    assert measure.deconvolve(beam * 0.9, beam)[:2] == (0.0, 0.0)


def test_emission_range_of_a_gaussian_line():
    channels = np.arange(64)
    spectrum = 10.0 * np.exp(-4 * np.log(2) * ((channels - 30) / 6.0) ** 2)
    z, z0, z1 = measure.emission_range(spectrum, 0, 63, spectral_threshold=2.0)
    # noise-free: the range is where the line exceeds peak / 16, i.e. peak +- FWHM
    assert z == 30 and (z0, z1) == (25, 36)
    # the peak is looked for within the given channels only
    assert measure.emission_range(spectrum, 40, 63)[0] == 40


def test_beam_angle_on_the_pixel_grid(make_cube):
    """North up, east left (CDELT1 < 0): a beam at PA 30 deg east of north is at 120 deg from +x."""
    with open_cube(make_cube(layout="3d")) as cube:
        image = measure.integrated_image(cube)
    assert image.beam_theta_deg == pytest.approx(120.0, abs=0.01)
    assert image.beam_fwhm_px == pytest.approx((5.0, 4.0))
    assert image.first == 0 and image.last == 11


# --- bad input --------------------------------------------------------------------------------

def test_single_channel_cube(make_cube):
    with open_cube(make_cube(layout="3d", nchan=1, data=np.ones((1, 20, 24)))) as cube, \
            pytest.raises(InputError, match="single channel"):
        classic.detect_photutils(cube)


def test_cube_smaller_than_the_beams(make_cube):
    with open_cube(make_cube(layout="3d", nx=8, ny=8, data=np.ones((12, 8, 8)))) as cube, \
            pytest.raises(InputError, match="less than 3 beams across"):
        classic.detect_photutils(cube)


def test_blank_integrated_image(make_cube):
    data = np.ones((12, 20, 24), np.float32)
    data[:4] = np.nan
    with open_cube(make_cube(layout="3d", data=data)) as cube:
        with pytest.raises(InputError, match="all NaN"):
            classic.detect_photutils(cube, first_channel=0, last_channel=3)
        with pytest.raises(InputError, match="constant"):
            classic.detect_photutils(cube)
        with pytest.raises(InputError, match="outside"):
            classic.detect_photutils(cube, first_channel=0, last_channel=40)


def test_pybdsf_missing_says_how_to_install(make_cube, monkeypatch):
    monkeypatch.setitem(sys.modules, "bdsf", None)  # import bdsf now raises ImportError
    with open_cube(make_cube(layout="3d")) as cube, pytest.raises(InputError, match="pip install bdsf"):
        classic.detect_pybdsf(cube)


def test_fit_covariance_recovers_a_source_that_moments_of_a_cut_segment_shrink():
    """An elliptical source seen through a beam: the fit gives the observed covariance, and its
    deconvolution the intrinsic size and angle; a segment cut at a threshold would shrink it."""
    import numpy as np

    from pipeline.alma.measure import deconvolve, fit_covariance

    beam = gaussian_covariance(5.0, 4.0, 30.0)
    intrinsic = gaussian_covariance(6.0, 3.0, 120.0)
    observed = beam + intrinsic
    yy, xx = np.mgrid[0:64, 0:64]
    d = np.stack([xx - 31.3, yy - 30.6])
    inv = np.linalg.inv(observed)
    image = np.exp(-0.5 * np.einsum("iyx,ij,jyx->yx", d, inv, d))
    image += 0.01 * np.random.default_rng(1).standard_normal(image.shape)
    fitted = fit_covariance(image, 31.0, 31.0, beam, half_size=12)
    major, minor, theta = deconvolve(fitted, beam)
    assert abs(major - 6.0) < 0.3 and abs(minor - 3.0) < 0.3 and abs(theta - 120.0) < 3.0
    assert np.allclose(fit_covariance(np.zeros((64, 64)), 31, 31, beam, 12), beam)  # nothing to fit
