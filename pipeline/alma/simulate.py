"""ALMA-like simulated cubes, after the training set of Delli Veneri et al. (2022).

A sky of 3-D Gaussian sources (an elliptical 2-D Gaussian on the sky times a Gaussian line in
frequency, optionally on a power-law continuum; :mod:`pipeline.alma.sky`) is observed with a real ALMA antenna
configuration: Earth-rotation uv tracks, per-channel Briggs (or natural) weighting and gridding,
dirty beam = PSF by FFT. The dirty cube is the sky convolved with each channel's PSF plus thermal
noise entered in the visibilities, so the noise is correlated like the noise of a real dirty
image. Cubes are written as CASA's ``exportfits`` writes them, with a truth catalogue in the
columns of the CASA-made sample.

Units and conventions:

- sky model: Jy/pixel; dirty cube: Jy/beam (a point source of S Jy gives a peak of S Jy/beam,
  since the PSF has peak 1);
- arrays are ``[channel, y, x]``; x runs towards west (-RA, FITS CDELT1 < 0), y towards north;
- sources are described as :mod:`pipeline.alma.sky` says (FWHM in pixels, ``pa``, ``z``,
  ``fwhm_z`` in channels);
- channel ``c`` is at ``centre_frequency_hz + (c - channels // 2) * channel_width_hz``.
"""

import csv
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from pipeline.alma import interferometer
from pipeline.alma.gaussian import gaussian_images
from pipeline.alma.sky import PAPER_SKY, SkyParameters, draw_sources, sky_model, source_spectra
from pipeline.atomic import atomic_write
from pipeline.errors import InputError
from pipeline.progress import report

TRUTH_COLUMNS = ("cube", "source", "x", "y", "fwhm_x", "fwhm_y", "pa", "z", "fwhm_z",
                 "peak_jy_per_pix", "snr_peak")
# ALMA, for the FITS header (OBSGEO, metres, as CASA writes it)
ALMA_GEOCENTRIC_M = (2225142.180269, -5440307.370349, -2481029.851874)
CHANNEL_CHUNK = 32  # channels transformed together: bounds memory, keeps FFTs batched
IN_MEMORY_BYTES = 1e9  # larger cubes are simulated and written a block of channels at a time


@dataclass(frozen=True)
class Observation:
    """How the sky is observed (defaults: the paper's ALMA setup).

    ``config``: antenna configuration name or .cfg path; ``observation_s`` on source centred on
    transit, in ``integration_s`` integrations; ``noise_jy_per_beam``: rms of the thermal noise
    in the dirty cube (per channel, at the central channel); ``weighting``/``robust`` as CASA's
    tclean.
    """

    config: str = "alma.cycle9.3"
    cell_arcsec: float = 0.1
    centre_frequency_hz: float = 230e9
    channel_width_hz: float = 10e6
    declination_deg: float = -30.0
    right_ascension_deg: float = 150.0
    observation_s: float = 2400.0
    integration_s: float = 10.0
    noise_jy_per_beam: float = 1e-3
    weighting: str = "briggs"
    robust: float = 0.5

    def frequency_hz(self, channels) -> np.ndarray:
        """Channel frequencies (Hz); channel ``channels // 2`` is at the centre frequency."""
        return (self.centre_frequency_hz
                + (np.arange(channels) - channels // 2) * self.channel_width_hz)

    def uv_m(self) -> np.ndarray:
        """The uv tracks (metres) of this observation, conjugates included."""
        half_h = self.observation_s / 2.0 / 3600.0
        return interferometer.uv_tracks(self.config, self.declination_deg, -half_h, half_h,
                                        self.integration_s)


@dataclass
class SimulatedCube:
    """One simulated observation.

    ``dirty_cube`` (channels, size, size) float32 Jy/beam; ``sky_model`` the same in Jy/pixel;
    ``truth`` the catalogue (``TRUTH_COLUMNS``); ``beams`` per-channel Gaussian fitted to the
    PSF (bmaj_arcsec, bmin_arcsec, bpa_deg); ``noise_jy_per_beam`` (channels,) the rms of the
    noise in the dirty cube.
    """

    dirty_cube: np.ndarray
    sky_model: np.ndarray
    truth: Table
    beams: Table
    frequency_hz: np.ndarray
    noise_jy_per_beam: np.ndarray
    observation: Observation = field(default_factory=Observation)


# --- observing it -----------------------------------------------------------------------------

def dirty_cube(images, spectra, sampling, noise_jy_per_beam, rng, sigma=None):
    """Observe a sky given as ``images`` (n, size, size) and ``spectra`` (n, channels) Jy/pixel
    (sky = spectra.T @ images; a plain cube is ``images=cube, spectra=np.eye(channels)``) with
    the gridded ``sampling`` of an ``interferometer.uv_sampling`` for ``size`` pixels.

    Each channel: dirty = sky convolved with that channel's PSF (linear, not circular: the grid
    is padded twice) + thermal noise. The noise is drawn per gridded uv cell, complex Gaussian
    with variance proportional to the sum of squared weights of the cell, as thermal noise on
    each visibility would give; its image is therefore correlated over the "noise beam" (the
    PSF made with squared weights: the PSF itself for natural weighting). The visibility noise
    is the same for every channel, set so the central channel has rms ``noise_jy_per_beam``
    (or ``sigma``, Jy per unit weight, when ``sampling`` is a block of the band's channels).
    Returns ``(dirty (channels, size, size) float32 Jy/beam, noise rms (channels,) Jy/beam)``.
    """
    size = images.shape[-1]
    n, k = sampling.npix_grid, sampling.half_width
    channels = len(sampling.frequency_hz)
    # rms of the noise image: 2 sigma^2 sum(w^2) / sum(w)^2 per unit visibility variance
    rms_per_sigma = np.sqrt(2.0 * sampling.weight2_sum) / sampling.weight_sum
    if sigma is None:
        sigma = visibility_sigma(sampling.channels(channels // 2), noise_jy_per_beam)
    source_ft = interferometer.half_plane_from_image(images, n, k)
    spectra = np.asarray(spectra, np.complex64)
    # irfft2 keeps the Hermitian part of the kx = 0 column, halving its noise power: undo
    column_gain = np.ones(k + 1, np.float32)
    column_gain[0] = np.sqrt(2.0)

    cube = np.empty((channels, size, size), np.float32)
    for start in range(0, channels, CHANNEL_CHUNK):
        chunk = slice(start, min(start + CHANNEL_CHUNK, channels))
        sky_ft = np.tensordot(spectra[:, chunk], source_ft, axes=(0, 0))
        half_plane = sky_ft * sampling.weight_grid[chunk]
        if sigma > 0:
            # independent real and imaginary parts, drawn as pairs and viewed as complex
            noise = rng.standard_normal(half_plane.shape + (2,), dtype=np.float32)
            noise = noise.view(np.complex64)[..., 0]
            noise *= np.float32(sigma) * np.sqrt(sampling.weight2_grid[chunk]) * column_gain
            half_plane += noise
        image = interferometer.image_from_half_plane(half_plane, n, size)
        image *= (n * n / sampling.weight_sum[chunk])[:, None, None]
        cube[chunk] = image
    return cube, sigma * rms_per_sigma


def visibility_sigma(sampling, noise_jy_per_beam) -> float:
    """The visibility noise per unit weight (Jy) that gives the (first) channel of ``sampling``
    a noise rms of ``noise_jy_per_beam`` in its image (2 sigma^2 sum(w^2) / sum(w)^2)."""
    return float(noise_jy_per_beam / (np.sqrt(2.0 * sampling.weight2_sum[0]) / sampling.weight_sum[0]))


def channel_beams(sampling, cell_arcsec, anchors=5, frequency_hz=None) -> Table:
    """Gaussian beam per channel: ``fit_beam`` on the PSF of ``anchors`` channels spread over the
    band, linearly interpolated in frequency between them (the beam scales as 1/frequency, so
    over a few per cent of bandwidth this matches a fit per channel to < 0.1 %). With
    ``frequency_hz`` (a band too large to grid at once), ``sampling`` holds the anchors only and
    the beams are those of ``frequency_hz``."""
    freqs = sampling.frequency_hz
    picks = np.unique(np.linspace(0, len(freqs) - 1, min(anchors, len(freqs))).round().astype(int))
    psf_npix = min(2 * (sampling.npix_grid // 4), 128)
    psfs = interferometer.psf_from_sampling(sampling.channels(picks), psf_npix)
    fitted = np.array([interferometer.fit_beam(p, cell_arcsec) for p in psfs])
    # keep position angles continuous across the +-90 deg wrap before interpolating
    fitted[:, 2] = fitted[0, 2] + (fitted[:, 2] - fitted[0, 2] + 90.0) % 180.0 - 90.0
    beams = Table()
    band = freqs if frequency_hz is None else np.asarray(frequency_hz, np.float64)
    beams["bmaj_arcsec"] = np.interp(band, freqs[picks], fitted[:, 0])
    beams["bmin_arcsec"] = np.interp(band, freqs[picks], fitted[:, 1])
    bpa = np.interp(band, freqs[picks], fitted[:, 2])
    beams["bpa_deg"] = (bpa + 90.0) % 180.0 - 90.0
    return beams


@dataclass
class InstrumentResponse:
    """What an observation does to any sky of a given cube shape: channel frequencies (Hz), the
    weighted uv sampling of every channel and the beam fitted per channel. The same for every
    cube of a set, so ``simulate_set`` computes it once."""

    observation: Observation
    size: int
    frequency_hz: np.ndarray
    sampling: interferometer.UVSampling
    beams: Table


def instrument_response(observation=Observation(), size=256, channels=128) -> InstrumentResponse:
    """uv tracks -> per-channel weighting and gridding -> beams, for ``size`` x ``size`` x
    ``channels`` cubes observed as ``observation`` says."""
    if size < 16 or channels < 1:
        raise InputError(f"Need size >= 16 and channels >= 1, got size={size}, "
                         f"channels={channels}.")
    obs = observation
    frequency_hz = obs.frequency_hz(channels)
    uv_m = obs.uv_m()
    uv_m = uv_m[: len(uv_m) // 2]  # the conjugates are implied; half the gridding work
    sampling = interferometer.uv_sampling(uv_m, frequency_hz, size, obs.cell_arcsec,
                                          obs.weighting, obs.robust)
    return InstrumentResponse(obs, size, frequency_hz, sampling,
                              channel_beams(sampling, obs.cell_arcsec))


def simulate_cube(seed, size=256, channels=128, observation=Observation(),
                  parameters: SkyParameters = PAPER_SKY, add_noise=True, name="",
                  response=None) -> SimulatedCube:
    """Simulate one dirty cube, its sky model and truth catalogue, deterministic in ``seed``
    (anything ``numpy.random.default_rng`` takes). ``name`` fills the catalogue's cube column.
    ``add_noise=False`` leaves the thermal noise out (sources keep the brightness they would
    have for ``observation.noise_jy_per_beam``). ``response``: a precomputed
    ``instrument_response`` for this observation, size and channels (saves most of the time
    when making many cubes)."""
    if not observation.noise_jy_per_beam > 0:
        raise InputError("noise_jy_per_beam must be > 0: it sets the brightness of the sources "
                         "(for a noiseless cube use add_noise=False).")
    if response is None:
        response = instrument_response(observation, size, channels)
    elif (response.size, len(response.frequency_hz), response.observation) != (
            size, channels, observation):
        raise InputError("The instrument response was made for another size, channel count "
                         "or observation.")
    rng = np.random.default_rng(seed)
    obs = observation
    frequency_hz, sampling, beams = response.frequency_hz, response.sampling, response.beams
    mid = channels // 2
    beam_mid = tuple(beams[mid][c] for c in ("bmaj_arcsec", "bmin_arcsec", "bpa_deg"))

    sources = draw_sources(rng, size, channels, beam_mid, obs.cell_arcsec, obs.noise_jy_per_beam,
                           parameters)
    images = gaussian_images(sources, size)
    spectra = source_spectra(sources, frequency_hz)
    noise = obs.noise_jy_per_beam if add_noise else 0.0
    dirty, noise_rms = dirty_cube(images, spectra, sampling, noise, rng)
    sky = sky_model(images, spectra)

    reference_rms = noise_rms if add_noise else np.full(channels, obs.noise_jy_per_beam)
    zi, yi, xi = source_peaks(sources, size, channels)
    truth = truth_table(sources, dirty[zi, yi, xi] / reference_rms[zi], frequency_hz, name)
    truth.meta["noise_jy_per_beam"] = float(np.median(reference_rms))
    return SimulatedCube(dirty, sky, truth, beams, frequency_hz, noise_rms, obs)


def source_peaks(sources, size: int, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, y, x) of each source's peak, whole pixels inside the cube."""
    return tuple(np.clip(np.rint(sources[c]).astype(int), 0, n - 1)
                 for c, n in (("z", channels), ("y", size), ("x", size)))


def truth_table(sources, snr_peak, frequency_hz, name: str) -> Table:
    """The truth catalogue (``TRUTH_COLUMNS``) of drawn ``sources`` whose dirty peaks have SNR
    ``snr_peak``, in the cube ``name``."""
    truth = Table()
    truth["cube"] = [name] * len(sources)
    for column in TRUTH_COLUMNS[1:-2]:
        truth[column] = sources[column]
    truth["peak_jy_per_pix"] = sources["peak_jy_per_pix"]
    if "continuum_jy_per_pix" in sources.colnames:  # 2 A (f(z) / f_mid)^alpha at the line centre
        mid = len(frequency_hz) // 2
        f_ratio = np.interp(sources["z"], np.arange(len(frequency_hz)), frequency_hz) / frequency_hz[mid]
        truth["peak_jy_per_pix"] = (2.0 * sources["continuum_jy_per_pix"]
                                    * f_ratio ** sources["spectral_index"])
    truth["snr_peak"] = snr_peak
    return truth


# --- writing ----------------------------------------------------------------------------------

def cube_header(shape, frequency_hz, observation=Observation(), bunit="Jy/beam",
                name="") -> fits.Header:
    """Primary header in the layout of CASA's exportfits for a (channels, ny, nx) cube:
    4-D RA---SIN, DEC--SIN, FREQ (Hz), STOKES; ``CASAMBM = T`` only for Jy/beam (beams in the
    BEAMS table, never as BMAJ keywords)."""
    obs = observation
    channels, ny, nx = shape
    cell_deg = obs.cell_arcsec / 3600.0
    h = fits.Header()
    h["BSCALE"] = (1.0, "PHYSICAL = PIXEL*BSCALE + BZERO")
    h["BZERO"] = 0.0
    h["BTYPE"] = "Intensity"
    h["OBJECT"] = name or "sim"
    h["BUNIT"] = (bunit, "Brightness (pixel) unit")
    h["EQUINOX"] = 2000.0
    h["RADESYS"] = "FK5"
    h["LONPOLE"] = 180.0
    h["LATPOLE"] = obs.declination_deg
    for i in range(1, 5):
        for j in range(1, 5):
            h[f"PC{j}_{i}"] = 1.0 if i == j else 0.0
    axes = [("RA---SIN", obs.right_ascension_deg, -cell_deg, nx // 2 + 1, "deg"),
            ("DEC--SIN", obs.declination_deg, cell_deg, ny // 2 + 1, "deg"),
            ("FREQ", float(frequency_hz[0]),
             float(frequency_hz[1] - frequency_hz[0]) if channels > 1 else obs.channel_width_hz,
             1.0, "Hz"),
            ("STOKES", 1.0, 1.0, 1.0, "")]
    for i, (ctype, crval, cdelt, crpix, cunit) in enumerate(axes, start=1):
        h[f"CTYPE{i}"] = ctype
        h[f"CRVAL{i}"] = crval
        h[f"CDELT{i}"] = cdelt
        h[f"CRPIX{i}"] = float(crpix)
        h[f"CUNIT{i}"] = cunit
    h["PV2_1"] = 0.0
    h["PV2_2"] = 0.0
    h["RESTFRQ"] = (obs.centre_frequency_hz, "Rest Frequency (Hz)")
    h["SPECSYS"] = ("LSRK", "Spectral reference frame")
    h["ALTRVAL"] = (interferometer.SPEED_OF_LIGHT_M_S
                    * (1.0 - frequency_hz[0] / obs.centre_frequency_hz),
                    "Alternate frequency reference value")
    h["ALTRPIX"] = (1.0, "Alternate frequency reference pixel")
    h["VELREF"] = (257, "1 LSR, 2 HEL, 3 OBS, +256 Radio")
    h["TELESCOP"] = "ALMA"
    h["OBSERVER"] = "pipeline.alma.simulate"
    h["TIMESYS"] = "UTC"
    h["OBSRA"] = obs.right_ascension_deg
    h["OBSDEC"] = obs.declination_deg
    for axis, value in zip("XYZ", ALMA_GEOCENTRIC_M, strict=True):
        h[f"OBSGEO-{axis}"] = value
    h["INSTRUME"] = "ALMA"
    h["DATE"] = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "Date FITS file was written")
    h["ORIGIN"] = "pipeline.alma.simulate"
    h["HISTORY"] = (f"simulated: config={obs.config} dec={obs.declination_deg} "
                    f"t={obs.observation_s}s int={obs.integration_s}s "
                    f"weighting={obs.weighting} robust={obs.robust}")
    if bunit == "Jy/beam":
        h["CASAMBM"] = (True, "CASA multiple BEAMS table present")
    return h


def beams_hdu(beams) -> fits.BinTableHDU:
    """The BEAMS binary table of CASA's exportfits: BMAJ, BMIN (arcsec), BPA (deg), CHAN, POL."""
    n = len(beams)
    hdu = fits.BinTableHDU.from_columns([
        fits.Column("BMAJ", "1E", unit="arcsec", array=np.asarray(beams["bmaj_arcsec"])),
        fits.Column("BMIN", "1E", unit="arcsec", array=np.asarray(beams["bmin_arcsec"])),
        fits.Column("BPA", "1E", unit="deg", array=np.asarray(beams["bpa_deg"])),
        fits.Column("CHAN", "1J", array=np.arange(n, dtype=np.int32)),
        fits.Column("POL", "1J", array=np.zeros(n, dtype=np.int32)),
    ], name="BEAMS")
    hdu.header["EXTVER"] = 1
    hdu.header["NCHAN"] = n
    hdu.header["NPOL"] = 1
    return hdu


def write_cube(path, cube, frequency_hz, observation=Observation(), beams=None, bunit="Jy/beam",
               name="") -> Path:
    """Write a (channels, ny, nx) cube as a CASA-style 4-D FITS file, atomically (a temporary
    file in the same folder, then ``os.replace``). ``beams`` (a Table from ``channel_beams``) is
    required for Jy/beam and becomes the BEAMS extension."""
    path = Path(path)
    header = cube_header(cube.shape, frequency_hz, observation, bunit, name or path.stem)
    hdus = [fits.PrimaryHDU(np.asarray(cube, np.float32)[None], header=header)]
    if bunit == "Jy/beam":
        if beams is None:
            raise InputError("A Jy/beam cube needs its beams (the BEAMS table).")
        hdus.append(beams_hdu(beams))
    with atomic_write(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path


def sky_model_path(cube_path) -> Path:
    """Where :func:`simulate_set` writes a cube's sky model: ``NAME_sky.fits`` beside ``NAME.fits``."""
    cube_path = Path(cube_path)
    return cube_path.with_name(cube_path.name.replace(".fits", "_sky.fits"))


def write_psf(path, response: InstrumentResponse) -> Path:
    """The dirty beam of every channel of ``response`` as tclean's PSF cube exported to FITS
    (the cubes' grid and channels, peak 1 at the centre pixel), written atomically."""
    psf = interferometer.psf_from_sampling(response.sampling, response.size)
    return write_cube(path, psf, response.frequency_hz, response.observation, bunit="")


def write_truth(path, rows) -> Path:
    """Write truth rows (a Table or list of Tables) as CSV with ``TRUTH_COLUMNS``, atomically."""
    path = Path(path)
    tables = rows if isinstance(rows, (list, tuple)) else [rows]
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(TRUTH_COLUMNS)
        for table in tables:
            for row in table:
                writer.writerow([row["cube"], int(row["source"])]
                                + [f"{float(row[c]):.6g}" for c in TRUTH_COLUMNS[2:]])
    return path


def _link_or_copy(source: Path, path: Path) -> None:
    try:
        os.link(source, path)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, path)


def check_output_folder(out_dir) -> Path:
    """Refuse an ``out_dir`` that is a file or already holds a simulated set (its ``truth.csv``):
    a new set there would replace that truth and leave the old cubes without one."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file, not a folder: give --out a folder for the cubes "
                         "and truth.csv.")
    if (out_dir / "truth.csv").exists():
        raise InputError(f"{out_dir} already holds a simulated set (truth.csv): choose an empty or "
                         "new folder; to add cubes, simulate them into another folder (another "
                         "--seed gives other cubes) and keep each set with its own truth.csv.")
    return out_dir


def simulate_set(out_dir, n, seed, size=256, channels=128, config="alma.cycle9.3", progress=None,
                 write_sky=True, observation=None, parameters: SkyParameters = PAPER_SKY,
                 write_psfs=False) -> list[Path]:
    """Write ``n`` simulated cubes ``sim_{seed}_{i:04d}.fits`` into ``out_dir`` (cube i seeded by
    ``(seed, i)``, so any cube can be remade alone), their sky models ``*_sky.fits`` (Jy/pixel)
    if ``write_sky``, their PSF cubes ``*.psf.fits`` if ``write_psfs`` (as tclean names them; one
    file, hard-linked when it can be, since every cube has the same), and one ``truth.csv``
    (``cube`` = file name), written last and atomically. ``progress(done, total, stage)``
    (:mod:`pipeline.progress`) is called after each cube. Returns the cube paths.

    A folder that already holds a set (a ``truth.csv``) is refused before anything is simulated
    (:func:`check_output_folder`): nothing there is overwritten. Cubes larger than
    ``IN_MEMORY_BYTES`` are made and written a block of channels at a time, without sky models
    (:func:`pipeline.alma.simulate_streamed.simulate_cube_file`): memory stays small whatever their size.
    """
    out_dir = check_output_folder(out_dir)
    if int(n) < 1:
        raise InputError(f"n must be at least 1 cube; got {n}.")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"seed must be a whole number >= 0; got {seed!r}.")
    obs = observation or Observation(config=config)
    streamed = size * size * channels * 4 > IN_MEMORY_BYTES
    if streamed and write_psfs:
        raise InputError(f"A PSF cube is written only for cubes of up to {IN_MEMORY_BYTES / 1e9:g} GB; "
                         f"these are {size * size * channels * 4 / 1e9:.1f} GB. Simulate without PSF cubes.")
    response = None if streamed else instrument_response(obs, size, channels)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, truths = [], []
    for i in range(n):
        name = f"sim_{seed}_{i:04d}.fits"
        if streamed:
            from pipeline.alma.simulate_streamed import simulate_cube_file

            truths.append(simulate_cube_file(out_dir / name, (seed, i), size, channels, obs, parameters, name=name))
            paths.append(out_dir / name)
            report(progress, i + 1, n, f"cube {i + 1} of {n}")
            continue
        sim = simulate_cube((seed, i), size, channels, obs, parameters, name=name,
                            response=response)
        paths.append(write_cube(out_dir / name, sim.dirty_cube, sim.frequency_hz, obs,
                                sim.beams, name=name))
        if write_sky:
            write_cube(sky_model_path(out_dir / name), sim.sky_model,
                       sim.frequency_hz, obs, bunit="Jy/pixel", name=name)
        if write_psfs:
            psf_path = out_dir / name.replace(".fits", ".psf.fits")
            if i == 0:
                first_psf = write_psf(psf_path, response)
            else:
                _link_or_copy(first_psf, psf_path)
        truths.append(sim.truth)
        report(progress, i + 1, n, f"cube {i + 1} of {n}")
    write_truth(out_dir / "truth.csv", truths)
    return paths
