"""The ALMA-like simulator (pipeline.alma.simulate): sky, dirty cube, noise, files."""

import csv

import numpy as np
import pytest
import scipy.fft
from astropy.io import fits
from astropy.table import Table

from pipeline.alma import interferometer as itf
from pipeline.alma import simulate as sim

CASA_TRUTH_COLUMNS = ["cube", "source", "x", "y", "fwhm_x", "fwhm_y", "pa", "z", "fwhm_z",
                      "peak_jy_per_pix", "snr_peak"]
# a short observation keeps the tests fast: 903 baselines x 20 integrations
QUICK = sim.Observation(observation_s=1200.0, integration_s=60.0)


@pytest.fixture(scope="module")
def sampling_64():
    """Gridded sampling of QUICK for 64-px images over 4 channels, natural weighting."""
    uv = QUICK.uv_m()
    return itf.uv_sampling(uv[: len(uv) // 2], QUICK.frequency_hz(4), 64, QUICK.cell_arcsec,
                           weighting="natural")


@pytest.fixture(scope="module")
def small_cube():
    return sim.simulate_cube(7, size=64, channels=16, observation=QUICK)


def test_gaussian_source_keeps_its_analytic_flux():
    sources = Table({"x": [31.3], "y": [30.6], "fwhm_x": [3.0], "fwhm_y": [5.5], "pa": [30.0]})
    image = sim.gaussian_images(sources, 64)[0]
    assert image.max() <= 1.0
    analytic = np.pi / (4 * np.log(2)) * 3.0 * 5.5
    assert image.sum(dtype=np.float64) == pytest.approx(analytic, rel=1e-5)
    # FWHM along the source's own x axis (pa counter-clockwise from +x): half a FWHM from the
    # centre along that axis the source is at half its peak, and along y it is higher
    pa = np.radians(30.0)
    row = Table({"x": [32.0 - 1.5 * np.cos(pa)], "y": [32.0 - 1.5 * np.sin(pa)],
                 "fwhm_x": [3.0], "fwhm_y": [5.5], "pa": [30.0]})
    assert sim.gaussian_images(row, 64)[0][32, 32] == pytest.approx(0.5, rel=1e-5)
    row = Table({"x": [32.0 + 1.5 * np.sin(pa)], "y": [32.0 - 1.5 * np.cos(pa)],
                 "fwhm_x": [3.0], "fwhm_y": [5.5], "pa": [30.0]})
    assert sim.gaussian_images(row, 64)[0][32, 32] > 0.75


def test_point_source_gives_its_flux_in_jy_per_beam(sampling_64):
    """Sky in Jy/pixel, dirty image in Jy/beam: 1 Jy at the centre peaks at 1 Jy/beam."""
    image = np.zeros((1, 64, 64), np.float32)
    image[0, 32, 32] = 1.0
    dirty, _ = sim.dirty_cube(image, np.ones((1, 4)), sampling_64, 0.0, np.random.default_rng(0))
    assert np.allclose(dirty[:, 32, 32], 1.0, atol=1e-4)
    assert np.allclose(dirty, itf.psf_from_sampling(sampling_64, 64), atol=1e-4)


def test_convolution_is_linear_not_circular(sampling_64):
    """A source near one edge: the far side shows the PSF at large offsets, not wrapped ones."""
    image = np.zeros((1, 64, 64), np.float32)
    image[0, 5, 3] = 2.0
    dirty, _ = sim.dirty_cube(image, np.ones((1, 4)), sampling_64, 0.0, np.random.default_rng(0))
    full_psf = itf.psf_from_sampling(sampling_64, 128)  # offsets -64..63, centre at 64
    expected = 2.0 * full_psf[:, 64 - 5: 128 - 5, 64 - 3: 128 - 3]
    assert np.allclose(dirty, expected, atol=1e-4)


def test_noise_level_and_correlation_length():
    """Thermal noise enters per visibility, so the noise image autocorrelation is the PSF made
    with squared weights: for natural weighting the PSF itself (not sqrt(2) x the beam, which
    white noise convolved with the PSF would give)."""
    uv = QUICK.uv_m()
    half = uv[: len(uv) // 2]
    npix, channels = 128, 6
    for weighting in ("natural", "briggs"):
        sampling = itf.uv_sampling(half, QUICK.frequency_hz(channels), npix, 0.1,
                                   weighting=weighting)
        noise, rms = sim.dirty_cube(np.zeros((1, npix, npix), np.float32),
                                    np.zeros((1, channels)), sampling, 2e-3,
                                    np.random.default_rng(1))
        assert rms[channels // 2] == pytest.approx(2e-3)
        assert noise.std() == pytest.approx(2e-3, rel=0.05)
        spectrum = scipy.fft.rfft2(noise - noise.mean(axis=(1, 2), keepdims=True))
        acf = np.fft.fftshift(scipy.fft.irfft2((np.abs(spectrum) ** 2).mean(0), s=(npix,) * 2))
        acf_major = itf.fit_beam(acf / acf.max(), 0.1)[0]
        mid = sampling.channels(channels // 2)
        beam_major = itf.fit_beam(itf.psf_from_sampling(mid, npix)[0], 0.1)[0]
        noise_beam = itf.image_from_half_plane(mid.weight2_grid, mid.npix_grid, npix)[0]
        noise_beam_major = itf.fit_beam(noise_beam / noise_beam.max(), 0.1)[0]
        assert acf_major == pytest.approx(noise_beam_major, rel=0.1), weighting
        if weighting == "natural":
            assert acf_major == pytest.approx(beam_major, rel=0.1)
        else:  # Briggs down-weights the dense short spacings less in w^2: finer noise grain
            assert acf_major < beam_major


def test_dirty_cube_shapes_units_and_truth(small_cube):
    cube = small_cube
    assert cube.dirty_cube.shape == cube.sky_model.shape == (16, 64, 64)
    assert cube.dirty_cube.dtype == cube.sky_model.dtype == np.float32
    assert cube.frequency_hz[8] == 230e9
    assert np.diff(cube.frequency_hz) == pytest.approx(10e6)
    assert list(cube.truth.colnames) == CASA_TRUTH_COLUMNS
    assert 3 <= len(cube.truth) <= 6
    assert np.all(cube.sky_model >= 0)
    # truth snr is the dirty cube at the source over the noise rms
    row = cube.truth[0]
    z, y, x = (int(round(row[c])) for c in ("z", "y", "x"))
    assert row["snr_peak"] == pytest.approx(cube.dirty_cube[z, y, x] / cube.noise_jy_per_beam[z])
    assert row["snr_peak"] > 5  # the central source is bright
    # flux conservation: the sky model's flux per channel is the sum of the sources' analytic
    # integrals, peak * pi / (4 ln 2) * fwhm_x * fwhm_y * line(channel)
    t = cube.truth
    channel = np.arange(16)[:, None]
    line = np.exp(-4 * np.log(2) * ((channel - t["z"][None]) / t["fwhm_z"][None]) ** 2)
    area = np.pi / (4 * np.log(2)) * t["fwhm_x"] * t["fwhm_y"]
    expected = (line * (t["peak_jy_per_pix"] * area)[None]).sum(axis=1)
    assert cube.sky_model.sum(axis=(1, 2), dtype=np.float64) == pytest.approx(expected, rel=1e-4)
    assert len(cube.beams) == 16
    assert np.all(np.diff(cube.beams["bmaj_arcsec"]) < 0)  # shrinks with frequency


def test_channel_beams_match_a_fit_per_channel():
    """Beams are fitted at a few channels and interpolated: over the paper's 1.28 GHz band that
    matches a fit at every channel."""
    uv = QUICK.uv_m()
    sampling = itf.uv_sampling(uv[: len(uv) // 2], QUICK.frequency_hz(128), 64, 0.1)
    beams = sim.channel_beams(sampling, 0.1)
    psfs = itf.psf_from_sampling(sampling.channels([5, 50, 90, 127]), 64)
    for channel, beam in zip([5, 50, 90, 127], psfs, strict=True):
        bmaj, bmin, bpa = itf.fit_beam(beam, 0.1)
        assert beams["bmaj_arcsec"][channel] == pytest.approx(bmaj, rel=1e-3)
        assert beams["bmin_arcsec"][channel] == pytest.approx(bmin, rel=1e-3)
        assert beams["bpa_deg"][channel] == pytest.approx(bpa, abs=0.2)
    # and the beam does change over the band (as 1 / frequency)
    ratio = beams["bmaj_arcsec"][0] / beams["bmaj_arcsec"][127]
    assert ratio == pytest.approx(sampling.frequency_hz[127] / sampling.frequency_hz[0], rel=2e-3)


def test_source_parameters_follow_the_paper():
    rng = np.random.default_rng(3)
    beam = (0.7, 0.6, 85.0)
    for _ in range(30):
        s = sim.draw_sources(rng, 256, 128, beam, 0.1, 1e-3)
        assert 3 <= len(s) <= 6
        assert np.hypot(s["x"][0] - 128, s["y"][0] - 128) <= np.sqrt(2)
        fainter = np.stack([s["x"][1:], s["y"][1:]], axis=1)
        d = np.hypot(*(fainter[:, None] - fainter[None]).transpose(2, 0, 1))
        assert np.all(d[np.triu_indices(len(fainter), 1)] >= 20)
        assert np.all(np.abs(fainter - 128) <= 75)
        assert np.all((s["fwhm_x"] >= 2) & (s["fwhm_x"] <= 8) & (s["fwhm_y"] >= 2))
        assert np.all((s["pa"] >= 0) & (s["pa"] <= 90))
        assert np.all((s["z"] >= 10) & (s["z"] <= 110))
        assert np.all((s["fwhm_z"] >= 3) & (s["fwhm_z"] <= 10))
        assert np.all(s["peak_jy_per_pix"][1:] > 0)


def test_sizes_shrink_in_small_images_unless_told_not_to():
    rng = np.random.default_rng(4)
    beam = (0.7, 0.6, 85.0)
    shrunk = sim.draw_sources(rng, 128, 64, beam, 0.1, 1e-3, sim.SkyParameters(fwhm_px=(6.0, 8.0)))
    kept = sim.draw_sources(rng, 128, 64, beam, 0.1, 1e-3, sim.SkyParameters(fwhm_px=(6.0, 8.0), scale_sizes=False))
    assert np.all((shrunk["fwhm_x"] >= 3) & (shrunk["fwhm_x"] <= 4))
    assert np.all((kept["fwhm_x"] >= 6) & (kept["fwhm_x"] <= 8) & (kept["fwhm_y"] >= 6))


def test_continuum_option():
    params = sim.SkyParameters(continuum=True)
    cube = sim.simulate_cube(2, size=64, channels=16, observation=QUICK, parameters=params,
                             add_noise=False)
    row = cube.truth[0]
    y, x = int(round(row["y"])), int(round(row["x"]))
    spectrum = cube.sky_model[:, y, x]
    assert np.all(spectrum > 0)  # continuum in every channel
    assert spectrum.max() == pytest.approx(row["peak_jy_per_pix"], rel=0.2)


def test_deterministic_per_seed():
    a = sim.simulate_cube(11, size=32, channels=4, observation=QUICK)
    b = sim.simulate_cube(11, size=32, channels=4, observation=QUICK)
    c = sim.simulate_cube(12, size=32, channels=4, observation=QUICK)
    assert np.array_equal(a.dirty_cube, b.dirty_cube)
    assert np.array_equal(a.sky_model, b.sky_model)
    assert np.array_equal(np.asarray(a.truth["x"]), np.asarray(b.truth["x"]))
    assert not np.array_equal(a.dirty_cube, c.dirty_cube)
    assert not np.array_equal(a.sky_model, c.sky_model)


def test_simulate_set_writes_casa_layout(tmp_path):
    calls = []
    paths = sim.simulate_set(tmp_path, 2, seed=5, size=32, channels=4,
                             progress=lambda done, total, stage: calls.append((done, total)),
                             observation=QUICK)
    assert [p.name for p in paths] == ["sim_5_0000.fits", "sim_5_0001.fits"]
    assert calls == [(1, 2), (2, 2)]
    assert not list(tmp_path.glob("*.tmp"))

    with fits.open(paths[0]) as hdul:
        header = hdul[0].header
        assert header["NAXIS"] == 4
        assert [header[f"NAXIS{i}"] for i in range(1, 5)] == [32, 32, 4, 1]
        assert [header[f"CTYPE{i}"].strip() for i in range(1, 5)] == [
            "RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
        assert header["CDELT1"] < 0 < header["CDELT2"]
        assert header["CRPIX1"] == 17 and header["CRPIX2"] == 17
        assert header["CUNIT3"] == "Hz" and header["CRVAL3"] == pytest.approx(229.98e9)
        assert header["BUNIT"] == "Jy/beam"
        assert header["RESTFRQ"] == 230e9 and header["SPECSYS"] == "LSRK"
        assert header["TELESCOP"] == "ALMA" and header["CASAMBM"] is True
        assert "BMAJ" not in header
        assert hdul[0].data.shape == (1, 4, 32, 32) and hdul[0].data.dtype.kind == "f"
        beams = hdul["BEAMS"]
        assert beams.columns.names == ["BMAJ", "BMIN", "BPA", "CHAN", "POL"]
        assert beams.columns["BMAJ"].unit == "arcsec" and beams.columns["BPA"].unit == "deg"
        assert beams.header["NCHAN"] == 4 and beams.header["NPOL"] == 1
        assert list(beams.data["CHAN"]) == [0, 1, 2, 3]
        assert np.all((beams.data["BMAJ"] > 0.5) & (beams.data["BMAJ"] < 1.2))

    with fits.open(tmp_path / "sim_5_0000_sky.fits") as hdul:
        assert hdul[0].header["BUNIT"] == "Jy/pixel"
        assert len(hdul) == 1

    with open(tmp_path / "truth.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CASA_TRUTH_COLUMNS
    assert {r[0] for r in rows[1:]} == {"sim_5_0000.fits", "sim_5_0001.fits"}

    # cube i depends on (seed, i) only, whether the instrument response is shared or not
    again = sim.simulate_cube((5, 1), size=32, channels=4, observation=QUICK)
    assert np.array_equal(fits.getdata(paths[1])[0], again.dirty_cube)


def test_simulate_set_writes_psf_cubes_that_open_as_the_cubes_companions(tmp_path):
    from pipeline.alma.companions import companion_candidates, open_companion
    from pipeline.alma.cube import open_cube

    paths = sim.simulate_set(tmp_path, 2, seed=5, size=32, channels=4, observation=QUICK, write_sky=False,
                             write_psfs=True)
    for path in paths:
        psf_path = companion_candidates(path, "psf")[0]
        assert psf_path.name == path.name.replace(".fits", ".psf.fits") and psf_path.is_file()
        with open_cube(path) as cube, open_companion(psf_path, cube, "psf") as psf:  # checked against the cube
            assert psf.shape == cube.shape
            assert np.asarray(psf.data[:, 16, 16]) == pytest.approx(1.0)
    response = sim.instrument_response(QUICK, 32, 4)
    expected = itf.psf_from_sampling(response.sampling, 32)
    assert np.allclose(fits.getdata(tmp_path / "sim_5_0001.psf.fits")[0], expected)


def test_unknown_configuration_fails_early(tmp_path):
    from pipeline.errors import InputError
    with pytest.raises(InputError):
        sim.simulate_set(tmp_path, 1, seed=0, config="alma.nowhere")


def test_a_folder_holding_a_set_is_refused_before_simulating(tmp_path, monkeypatch):
    sim.simulate_set(tmp_path, 1, seed=5, size=32, channels=4, observation=QUICK, write_sky=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def forbidden(*args, **kwargs):
        raise AssertionError("simulated before checking the output folder")

    monkeypatch.setattr(sim, "instrument_response", forbidden)
    from pipeline.errors import InputError
    for seed in (5, 6):  # the same cubes again or new ones: truth.csv would lose the old cubes
        with pytest.raises(InputError, match="already holds a simulated set.*truth.csv"):
            sim.simulate_set(tmp_path, 2, seed=seed, size=32, channels=4, observation=QUICK)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    (tmp_path / "file").write_text("keep")
    with pytest.raises(InputError, match="not a folder"):
        sim.simulate_set(tmp_path / "file", 1, seed=0, size=32, channels=4, observation=QUICK)
    assert (tmp_path / "file").read_text() == "keep"


def test_a_cube_written_block_by_block_is_the_cube_made_in_memory(tmp_path):
    """Two blocks of channels (CHANNEL_CHUNK = 32), each gridded as it is needed: the same data, beams
    and truth as simulate_cube with the same seed; the noise-only cube is noise of the set rms."""
    from pipeline.alma.cube import open_cube
    from pipeline.alma.simulate_streamed import simulate_cube_file

    obs = sim.Observation(cell_arcsec=0.15, observation_s=1200, integration_s=60)
    truth = simulate_cube_file(tmp_path / "s.fits", 5, size=64, channels=40, observation=obs, name="s.fits")
    made = sim.simulate_cube(5, 64, 40, obs, name="s.fits")
    with open_cube(tmp_path / "s.fits") as cube:
        assert np.array_equal(np.asarray(cube.data).reshape(made.dirty_cube.shape), made.dirty_cube)
        assert cube.beam.major_arcsec == pytest.approx(float(made.beams["bmaj_arcsec"][20]), rel=1e-5)
    assert list(truth.colnames) == list(made.truth.colnames) and len(truth) == len(made.truth) >= 1
    assert np.allclose(truth["snr_peak"], made.truth["snr_peak"]) and list(truth["cube"]) == list(made.truth["cube"])
    empty = simulate_cube_file(tmp_path / "n.fits", 6, size=64, channels=40, observation=obs, sources=False)
    with open_cube(tmp_path / "n.fits") as cube:
        assert len(empty) == 0 and np.std(cube.data) == pytest.approx(obs.noise_jy_per_beam, rel=0.2)


def test_a_large_set_is_streamed_without_sky_models_and_a_cancel_leaves_nothing(tmp_path, monkeypatch):
    import threading

    from pipeline.alma import simulate as sim_module
    from pipeline.alma.simulate_streamed import simulate_cube_file
    from pipeline.errors import Cancelled

    monkeypatch.setattr(sim_module, "IN_MEMORY_BYTES", 1e5)  # 64 x 64 x 40 floats are 655 kB
    paths = sim_module.simulate_set(tmp_path / "set", n=1, seed=3, size=64, channels=40)
    assert [p.name for p in sorted((tmp_path / "set").iterdir())] == ["sim_3_0000.fits", "truth.csv"]
    assert paths == [tmp_path / "set" / "sim_3_0000.fits"]
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        simulate_cube_file(tmp_path / "c.fits", 1, size=64, channels=40,
                           progress=lambda done, total, stage: cancel.set(), cancel=cancel)
    assert list(tmp_path.glob("*c.fits*")) == []  # neither the cube nor its temporary file
