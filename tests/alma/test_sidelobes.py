"""The sidelobe check: a bright source's far sidelobe is called a sidelobe, a real source is not."""

import numpy as np
import pytest
from astropy.table import Table

from pipeline.alma import interferometer
from pipeline.alma.cube import open_cube
from pipeline.alma.noise import channel_rms, integrated_rms, noise_of, robust_rms
from pipeline.alma.sidelobes import check_sidelobes
from pipeline.alma.simulate import Observation, dirty_cube, gaussian_images, instrument_response, write_cube

SIZE, CHANNELS = 128, 16


@pytest.fixture(scope="module")
def short_track(tmp_path_factory):
    """A 10-minute track (strong far sidelobes): a bright source at the centre (line at channel 7),
    a real faint one elsewhere (line at channel 10), the dirty cube, its PSF cube, and where the
    PSF's strongest far sidelobe falls and where the real source sits."""
    obs = Observation(cell_arcsec=0.12, observation_s=600, integration_s=60)
    response = instrument_response(obs, SIZE, CHANNELS)
    psf = interferometer.psf_from_sampling(response.sampling, SIZE)
    beam_px = response.beams["bmaj_arcsec"][CHANNELS // 2] / obs.cell_arcsec
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] - SIZE // 2
    far = np.where(np.hypot(xx, yy) > 3 * beam_px, psf[CHANNELS // 2], -1.0)
    far[:12], far[-12:], far[:, :12], far[:, -12:] = -1.0, -1.0, -1.0, -1.0  # keep away from edges
    sy, sx = np.unravel_index(np.argmax(far), far.shape)
    # the real source: where the beam is nearly 0, at least 3 beams from the centre and the sidelobe
    quiet = (np.abs(psf[CHANNELS // 2]) < 0.01) & (np.hypot(xx, yy) > 3 * beam_px) & (
        np.hypot(xx + SIZE // 2 - sx, yy + SIZE // 2 - sy) > 3 * beam_px) & (far > -1.0)
    ry, rx = np.argwhere(quiet)[len(np.argwhere(quiet)) // 2]
    sources = [{"x": SIZE // 2, "y": SIZE // 2, "fwhm_x": 2.0, "fwhm_y": 2.0, "pa": 0.0},
               {"x": rx, "y": ry, "fwhm_x": 2.0, "fwhm_y": 2.0, "pa": 0.0}]
    images = gaussian_images(sources, SIZE)
    channels = np.arange(CHANNELS)
    spectra = np.stack([0.12 * np.exp(-0.5 * ((channels - 7) / 1.3) ** 2),
                        0.006 * np.exp(-0.5 * ((channels - 10) / 1.3) ** 2)])
    dirty, _ = dirty_cube(images, spectra, response.sampling, 1e-3, np.random.default_rng(3))
    folder = tmp_path_factory.mktemp("sidelobes")
    cube_path = write_cube(folder / "c.fits", dirty, response.frequency_hz, obs, response.beams)
    psf_path = write_cube(folder / "c.psf.fits", psf, response.frequency_hz, obs, response.beams)
    return cube_path, psf_path, (int(sx), int(sy)), (int(rx), int(ry))


def _catalog(sidelobe_xy, real_xy):
    return Table({"id": [1, 2, 3], "x": [SIZE // 2, sidelobe_xy[0], real_xy[0]],
                  "y": [SIZE // 2, sidelobe_xy[1], real_xy[1]], "z0": [4, 4, 7], "z1": [11, 11, 14],
                  "fwhm_x": [0.5, 0.5, 0.5], "fwhm_y": [0.3, 0.3, 0.3], "snr": [200.0, 9.0, 8.0]})


@pytest.mark.parametrize("with_psf", [True, False])
def test_a_far_sidelobe_is_called_one_and_a_real_source_is_not(short_track, with_psf):
    cube_path, psf_path, sidelobe_xy, real_xy = short_track
    with open_cube(cube_path) as cube, open_cube(psf_path) as psf:
        check = check_sidelobes(_catalog(sidelobe_xy, real_xy), cube, psf if with_psf else None)
    assert check.sidelobe.tolist() == [False, True, False]
    assert check.probability[1] > 0.05 and check.parent[1] == 1 and check.probability[2] < 1e-3
    if with_psf:  # the level used is the beam's there
        assert 0.05 < check.ratio[1] < 0.2
    else:
        assert check.ratio[1] <= 0.2


def test_a_sidelobe_is_nobodys_parent_and_one_row_has_no_parent(short_track):
    cube_path, psf_path, sidelobe_xy, real_xy = short_track
    catalog = _catalog(sidelobe_xy, real_xy)
    with open_cube(cube_path) as cube:
        assert check_sidelobes(catalog[:1], cube).probability.tolist() == [0.0]
        # without the bright source, nothing explains the sidelobe: it stands (as any finder would have it)
        alone = check_sidelobes(catalog[1:], cube)
    assert not alone.sidelobe.any()


def test_noise_is_measured_on_the_cube_and_not_assumed_to_add_in_quadrature(tmp_path):
    rng = np.random.default_rng(0)
    white = rng.standard_normal((8, 64, 64))
    # neighbouring channels share their noise (as after Hanning smoothing): summed, it grows
    # faster than sqrt(n)
    correlated = white + np.roll(white, 1, axis=0)
    correlated[:, 30:34, 30:34] += 50.0  # a bright source the rms must ignore
    obs = Observation(cell_arcsec=0.1)
    response = instrument_response(Observation(cell_arcsec=0.1, observation_s=600, integration_s=120), 64, 8)
    path = write_cube(tmp_path / "n.fits", correlated.astype(np.float32), response.frequency_hz, obs, response.beams)
    with open_cube(path) as cube:
        per_channel = channel_rms(cube)
        summed = integrated_rms(cube, 0, 8)
        assert noise_of(cube) is noise_of(cube)  # measured once per opened cube
        with open_cube(path) as again:
            assert noise_of(again) is not noise_of(cube)
    assert per_channel == pytest.approx(np.sqrt(2.0), rel=0.05)
    # 8 channels of pairwise-shared noise: var = 8 * 2 + 2 * 7 = 30 (white would give 16)
    assert summed == pytest.approx(np.sqrt(30.0), rel=0.08)
    assert robust_rms([np.nan, np.nan]) != robust_rms([np.nan, np.nan])  # NaN: nothing to measure


def test_every_finder_drops_sidelobes_by_default_and_flags_them_on_request(short_track, monkeypatch):
    from pipeline.alma import classic
    from pipeline.alma.catalog import make_catalog
    from pipeline.alma.detect import detect

    cube_path, psf_path, sidelobe_xy, real_xy = short_track
    rows = _catalog(sidelobe_xy, real_xy)
    for name, value in (("z", [7, 7, 10]), ("x0", rows["x"] - 2), ("y0", rows["y"] - 2), ("x1", rows["x"] + 3),
                        ("y1", rows["y"] + 3), ("pa", [0.0] * 3), ("flux", [1.0] * 3)):
        rows[name] = value
    # a finder that falls for the sidelobe, as every finder does (a classic finder's slot in detect)
    monkeypatch.setitem(classic.CLASSIC_DETECTORS, "photutils", lambda cube: make_catalog(rows, cube, "photutils"))
    with open_cube(cube_path) as cube:
        kept = detect(cube, "photutils", keep_sidelobes=True)
        dropped = detect(cube, "photutils")
    assert kept["sidelobe"].tolist() == [False, True, False] and kept["sidelobe_of"][1] == 1
    assert kept["sidelobe_p"][1] > 0.05
    assert dropped["id"].tolist() == [1, 2] and not dropped["sidelobe"].any()
    assert np.allclose(dropped["x"], [SIZE // 2, real_xy[0]])
    assert "1 probable sidelobe(s) dropped" in dropped.meta["sidelobe_check"]
    assert "kept" in kept.meta["sidelobe_check"]
