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


def test_shadowed_antennas_lose_their_baselines():
    """Two dishes 13 m apart north-south and one far east. A source low in the north: the
    southern dish of the pair is behind the northern one and hidden, so both its baselines go;
    overhead nothing is hidden."""
    xyz = np.array([[0.0, 0.0, 0.0], [0.0, -13.0, 0.0], [300.0, 0.0, 0.0]])
    config = itf.AntennaConfiguration("pair", xyz, np.full(3, 12.0))
    lat = itf.ALMA_LATITUDE_DEG
    low_north = itf.uv_tracks(config, lat + 60.0, -0.01, 0.01, 72.0)  # elevation 30 deg
    kept = low_north[: len(low_north) // 2]
    # baselines (0, 1), (0, 2), (1, 2): only (0, 2) stays, the one without the southern dish
    expected = itf.uv_tracks(config, lat + 60.0, -0.01, 0.01, 72.0, shadowing=False)[[1]]
    assert np.allclose(kept, expected)
    overhead = itf.uv_tracks(config, lat, -0.01, 0.01, 72.0)
    assert len(overhead) == 2 * 3


def test_elevation_limit():
    """Integrations with the source below 10 deg are dropped; a source that never rises
    above it is an error."""
    config = itf.AntennaConfiguration("two", np.array([[0, 0, 0], [100.0, 0, 0]]), np.full(2, 12.0))
    lat = itf.ALMA_LATITUDE_DEG
    dec = lat + 75.0  # transits at 15 deg elevation, below 10 deg beyond ~1.5 h
    full = itf.uv_tracks(config, dec, -4.0, 4.0, 600.0, elevation_limit_deg=-90.0)
    limited = itf.uv_tracks(config, dec, -4.0, 4.0, 600.0)
    ha = itf.hour_angles_h(-4.0, 4.0, 600.0)
    lat_r, dec_r = np.radians(lat), np.radians(dec)
    elevation = np.degrees(np.arcsin(np.sin(lat_r) * np.sin(dec_r)
                                     + np.cos(lat_r) * np.cos(dec_r) * np.cos(np.radians(15 * ha))))
    assert 0 < (elevation >= 10).sum() < len(ha)
    assert np.allclose(limited[: len(limited) // 2], full[: len(ha)][elevation >= 10])
    with pytest.raises(InputError, match="elevation"):
        itf.uv_tracks(config, lat + 85.0, -1.0, 1.0, 600.0)


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
        l_rad = -dx * cell * itf.ARCSEC_RAD
        m_rad = dy * cell * itf.ARCSEC_RAD
        direct[dy, dx] = np.mean(np.cos(2 * np.pi * (uv[:, 0] * l_rad + uv[:, 1] * m_rad)))
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
    """Same configuration, frequency and observation as the CASA-made cube: axes within 1 %,
    position angle within 0.5 deg (Briggs density cells half a cell off turned it by 2 deg)."""
    beam = itf.psf(casa_uv, 230e9, 128, 0.07, weighting="briggs", robust=0.5)
    bmaj, bmin, bpa = itf.fit_beam(beam, 0.07)
    assert bmaj == pytest.approx(CASA_BMAJ_ARCSEC, rel=0.01)
    assert bmin == pytest.approx(CASA_BMIN_ARCSEC, rel=0.01)
    assert abs(bpa - CASA_BPA_DEG) < 0.5


def direct_psf(uv_m, frequency_hz, npix, cell, weights=None):
    """The dirty beam as the exact Fourier sum of the samples ``uv_m`` (conjugates included),
    sum_i w_i cos 2 pi (u l + v m) / sum_i w_i, on an npix image (x towards west)."""
    uv = itf.uv_wavelengths(uv_m, frequency_hz)
    weights = np.ones(len(uv)) if weights is None else weights
    offsets = (np.arange(npix) - npix // 2) * cell * itf.ARCSEC_RAD
    along_x = np.exp(-2j * np.pi * np.outer(uv[:, 0], offsets))  # l = -x
    along_y = np.exp(2j * np.pi * np.outer(uv[:, 1], offsets))
    return np.real((along_y * weights[:, None]).T @ along_x) / weights.sum()


def casa_briggs_weights(uv_m, frequency_hz, npix, cell, robust=0.5):
    """tclean's Briggs weights (npixels=0) for samples ``uv_m`` (conjugates included): the
    density is counted in uv cells of 1 / (npix cell) centred on the grid points."""
    uv = itf.uv_wavelengths(uv_m, frequency_hz)
    cells = np.rint(uv * npix * cell * itf.ARCSEC_RAD).astype(int)
    _, which, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    f2 = (5 * 10 ** -robust) ** 2 / (np.sum(counts.astype(float) ** 2) / len(uv))
    return 1.0 / (1.0 + f2 * counts[which.ravel()])


def test_briggs_weights_are_casas(casa_uv):
    """Near the main lobe, where gridding is exact, the Briggs PSF is the Fourier sum with
    tclean's weights. (With density cells from floor, half a cell off, it missed by 0.02.)"""
    npix, cell = 64, 0.07
    weights = casa_briggs_weights(casa_uv, 230e9, npix, cell)
    direct = direct_psf(casa_uv, 230e9, npix, cell, weights)
    beam = itf.psf(casa_uv, 230e9, npix, cell, weighting="briggs")
    inner = slice(npix // 2 - 10, npix // 2 + 11)
    assert np.abs(beam - direct)[inner, inner].max() < 0.004


def test_far_sidelobes_match_the_direct_fourier_sum(casa_uv):
    """Out to the image edge the gridded PSF is the exact one: sidelobes neither tapered nor
    scrambled. (Nearest-cell gridding: 6 % low at the edge, errors of 0.006-0.009 there, a
    third of the sidelobes' own rms.)"""
    npix, cell = 64, 0.14
    direct = direct_psf(casa_uv, 230e9, npix, cell)
    beam = itf.psf(casa_uv, 230e9, npix, cell, weighting="natural")
    y, x = np.mgrid[:npix, :npix] - npix // 2
    far = np.hypot(x, y) > 12  # beyond 3 beams (the beam is ~3.5 px here)
    error = beam[far] - direct[far]
    assert np.sqrt(np.mean(error ** 2)) < 0.0035
    level = np.sum(beam[far] * direct[far]) / np.sum(direct[far] ** 2)
    assert level == pytest.approx(1.0, abs=0.03)
    assert np.abs(beam[far]).max() == pytest.approx(np.abs(direct[far]).max(), rel=0.05)


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
