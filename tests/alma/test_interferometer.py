"""Antenna configurations, uv tracks, weighting, PSF and beam fit (pipeline.alma.interferometer)."""

import numpy as np
import pytest

from pipeline.alma import interferometer as itf
from pipeline.errors import InputError

# CASA 6.7 reference: simobserve with alma.cycle9.3.cfg, 230 GHz, declination -30 deg, 1200 s on
# source at transit in 30 s integrations; tclean niter=0, Briggs robust 0.5, 128 px at 0.07".
# Median of the BEAMS table of casa_sample/cycle9.3_cube09_000.fits (64 channels from 229.68 GHz).
CASA_BMAJ_ARCSEC = 0.67687
CASA_BMIN_ARCSEC = 0.56521
CASA_BPA_DEG = 85.57


@pytest.fixture(scope="module")
def casa_uv():
    """The uv coverage of the CASA reference observation (metres)."""
    return itf.uv_tracks("alma.cycle9.3", -30.0, -10 / 60, 10 / 60, 30.0)


def test_shipped_configurations():
    names = itf.available_configurations()
    assert "alma.cycle9.3" in names
    assert [n for n in names if n.startswith("alma.cycle11.")] == [
        f"alma.cycle11.{i}" for i in range(1, 11)]
    config = itf.load_configuration("alma.cycle9.3")
    assert config.xyz_m.shape == (43, 3)
    assert np.all(config.diameter_m == 12.0)
    assert config.n_baselines == 903
    # same file by path
    by_path = itf.load_configuration(itf.CONFIG_DIR / "alma.cycle9.3.cfg")
    assert np.array_equal(by_path.xyz_m, config.xyz_m)


def test_unknown_configuration_lists_the_known_ones():
    with pytest.raises(InputError, match="alma.cycle9.3"):
        itf.load_configuration("alma.cycle99.1")


def test_uv_tracks_geometry():
    """An east-west and a north-south baseline against the textbook formulae."""
    config = itf.AntennaConfiguration("two", np.array([[0, 0, 0], [100.0, 0, 0]]), np.full(2, 12.0))
    dec, lat = -30.0, -23.0229
    uv = itf.uv_tracks(config, dec, -3.0, 3.0, 3600.0, latitude_deg=lat)
    ha = np.radians(15 * itf.hour_angles_h(-3.0, 3.0, 3600.0))
    assert uv.shape == (12, 2)
    assert np.allclose(uv[:6, 0], 100 * np.cos(ha))
    assert np.allclose(uv[:6, 1], 100 * np.sin(np.radians(dec)) * np.sin(ha))
    assert np.array_equal(uv[6:], -uv[:6])

    config = itf.AntennaConfiguration("two", np.array([[0, 0, 0], [0, 100.0, 0]]), np.full(2, 12.0))
    uv = itf.uv_tracks(config, dec, -0.01, 0.01, 72.0, latitude_deg=lat)  # one sample at transit
    assert np.allclose(uv[0], [0.0, 100 * np.cos(np.radians(dec - lat))])


def test_uv_tracks_size(casa_uv):
    assert casa_uv.shape == (2 * 903 * 40, 2)


def test_psf_peak_one_at_centre_and_point_symmetric(casa_uv):
    npix = 64
    for weighting in ("natural", "briggs"):
        beam = itf.psf(casa_uv, 230e9, npix, 0.07, weighting=weighting)
        assert beam.dtype == np.float32 and beam.shape == (npix, npix)
        c = npix // 2
        assert beam[c, c] == 1.0
        assert beam.max() == 1.0
        # point symmetry about the centre (row/col 0 have no mirror in an even image)
        inner = beam[1:, 1:]
        assert np.allclose(inner, inner[::-1, ::-1], atol=1e-5)
        assert beam.min() < -0.02  # real sidelobes, not a smooth blob


def test_psf_equals_the_direct_fourier_sum(casa_uv):
    """Orientation and gridding: sum_i w_i cos 2 pi (u l + v m) with l towards east (-x)."""
    npix, cell = 64, 0.07
    beam = itf.psf(casa_uv, 230e9, npix, cell, weighting="natural")
    uv = itf.uv_wavelengths(casa_uv, 230e9)
    c = npix // 2
    offsets = [(0, 3), (3, 0), (2, 5), (-4, 6), (7, -2), (-10, -10), (15, 4), (9, 12), (9, -12)]
    direct = {}
    for dy, dx in offsets:
        l = -dx * cell * itf.ARCSEC_RAD
        m = dy * cell * itf.ARCSEC_RAD
        direct[dy, dx] = np.mean(np.cos(2 * np.pi * (uv[:, 0] * l + uv[:, 1] * m)))
        # nearest-cell gridding on the padded grid: exact to a few 1e-3 near the main lobe
        assert beam[c + dy, c + dx] == pytest.approx(direct[dy, dx], abs=0.005), (dy, dx)
    # this pair differs by more than the tolerance: a beam mirrored east-west would fail above
    assert abs(direct[9, 12] - direct[9, -12]) > 0.03


def test_briggs_limits(casa_uv):
    natural = itf.psf(casa_uv, 230e9, 64, 0.07, weighting="natural")
    robust_high = itf.psf(casa_uv, 230e9, 64, 0.07, weighting="briggs", robust=5.0)
    robust_low = itf.psf(casa_uv, 230e9, 64, 0.07, weighting="briggs", robust=-2.0)
    assert np.abs(robust_high - natural).max() < 1e-3
    assert itf.fit_beam(robust_low, 0.07)[0] < 0.8 * itf.fit_beam(natural, 0.07)[0]
    with pytest.raises(InputError):
        itf.psf(casa_uv, 230e9, 64, 0.07, weighting="uniformish")


def test_beam_matches_casa(casa_uv):
    """Same configuration, frequency and observation as the CASA-made cube: within 5 %."""
    beam = itf.psf(casa_uv, 230e9, 128, 0.07, weighting="briggs", robust=0.5)
    bmaj, bmin, bpa = itf.fit_beam(beam, 0.07)
    assert bmaj == pytest.approx(CASA_BMAJ_ARCSEC, rel=0.05)
    assert bmin == pytest.approx(CASA_BMIN_ARCSEC, rel=0.05)
    assert abs(bpa - CASA_BPA_DEG) < 3.0


def test_fit_beam_recovers_a_gaussian_with_sky_position_angle():
    """PA from north (+y) through east (-x): PA 30 deg leans the major axis up and to the left."""
    npix, cell = 64, 0.05
    bmaj, bmin, bpa = 0.6, 0.35, 30.0
    y, x = np.mgrid[:npix, :npix] - npix // 2
    pa = np.radians(bpa)
    along = -x * np.sin(pa) + y * np.cos(pa)  # along the major axis (east = -x)
    across = x * np.cos(pa) + y * np.sin(pa)
    s_maj, s_min = bmaj / cell / itf.FWHM_PER_SIGMA, bmin / cell / itf.FWHM_PER_SIGMA
    image = np.exp(-0.5 * ((along / s_maj) ** 2 + (across / s_min) ** 2))
    fitted = itf.fit_beam(image, cell)
    assert fitted == pytest.approx((bmaj, bmin, bpa), rel=1e-3)
    assert image[npix // 2 + 5, npix // 2 - 3] > image[npix // 2 + 5, npix // 2 + 3]


def test_many_channels_match_one_channel_at_a_time(casa_uv):
    half = casa_uv[: len(casa_uv) // 2]
    freqs = 230e9 + np.array([-640e6, 0.0, 630e6])
    sampling = itf.uv_sampling(half, freqs, 64, 0.1)
    beams = itf.psf_from_sampling(sampling, 64)
    for c, f in enumerate(freqs):
        assert np.abs(beams[c] - itf.psf(casa_uv, f, 64, 0.1)).max() < 1e-4
    # the beam shrinks as 1 / frequency
    low, high = (itf.fit_beam(b, 0.1)[0] for b in beams[[0, 2]])
    assert low / high == pytest.approx(freqs[2] / freqs[0], rel=2e-3)


def test_fourier_helpers_round_trip():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 16, 16)).astype(np.float32)
    # a smooth image is fully represented on a box short of the Nyquist row and column
    smooth = np.zeros((1, 16, 16), np.float32)
    smooth[0, 6:10, 5:11] = 1.0
    box = itf.half_plane_from_image(smooth, 32, 15)
    # only the box edge (Nyquist) is missing: the round trip keeps the flux and shape
    back = itf.image_from_half_plane(box, 32, 16)
    assert back.sum() == pytest.approx(smooth.sum(), rel=1e-4)
    assert np.abs(back - smooth).max() < 0.3
    assert itf.half_plane_from_image(images, 32, 15).shape == (2, 31, 16)
