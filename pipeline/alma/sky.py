"""The sky of the simulated cubes, after the training set of Delli Veneri et al. (2022): 3-D
Gaussian sources (an elliptical 2-D Gaussian on the sky times a Gaussian line in frequency,
optionally on a power-law continuum), drawn as the paper draws them (:func:`draw_sources`) and
turned into a sky model cube (:func:`sky_model`). :mod:`pipeline.alma.simulate` observes it.

Units and conventions: Jy/pixel; arrays ``[channel, y, x]``; source sizes are FWHM (the paper's
code used its 2-8 px size as sigma while its catalogue called it FWHM; here it is FWHM), in
pixels along the source's own axes; ``pa`` is the angle of the source's x axis, degrees
counter-clockwise from the +x pixel axis; ``z`` is the line centre in channels (0-based) and
``fwhm_z`` the line FWHM in channels.
"""

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from pipeline.alma.gaussian import gaussian_covariance

PAPER_SIZE_PX = 256  # the paper's values below are for a 256 x 256 x 128 cube at 0.1"/px
PAPER_CHANNELS = 128


@dataclass(frozen=True)
class SkyParameters:
    """Ranges of the source parameters, as in the paper for a 256 x 256 x 128 cube (pixels and
    channels). ``draw_sources`` scales positions (offset, box, separation) by size / 256 and
    line centres by channels / 128; sizes and line widths only shrink (for cubes smaller than
    that), down to 2 px and 1 channel.

    One central source within ``central_offset_px`` of the centre plus ``n_fainter`` (inclusive
    range) fainter ones placed uniformly within ``fainter_box_px`` of the centre (the paper:
    [100, 250) of 360, i.e. a 150-px box), at least ``min_separation_px`` from each other but not
    from the central one, so blends happen. FWHM uniform in ``fwhm_px`` per axis, ``pa_deg``
    uniform (0-90 deg covers every orientation since fwhm_x and fwhm_y are drawn separately),
    line centre uniform in ``line_centre_channels``, line FWHM uniform in ``line_fwhm_channels``.
    With ``scale_sizes`` False, sizes are ``fwhm_px`` whatever the image size.
    Brightness: the peak signal-to-noise expected in the dirty cube, log-uniform in
    ``snr_central`` / ``snr_fainter`` (turned into a peak in Jy/pixel with the Gaussian fitted
    to the beam; the catalogue records the measured value). With ``continuum``, the spectrum is
    the paper's ``A (f / f0)^alpha (1 + line)``, alpha uniform in ``spectral_index``.
    """

    central_offset_px: float = 1.0
    n_fainter: tuple = (2, 5)
    fainter_box_px: float = 75.0
    min_separation_px: float = 20.0
    fwhm_px: tuple = (2.0, 8.0)
    pa_deg: tuple = (0.0, 90.0)
    line_centre_channels: tuple = (10.0, 110.0)
    line_fwhm_channels: tuple = (3.0, 10.0)
    snr_central: tuple = (10.0, 50.0)
    snr_fainter: tuple = (2.0, 20.0)
    continuum: bool = False
    scale_sizes: bool = True
    spectral_index: tuple = (-2.0, 2.0)


PAPER_SKY = SkyParameters()  # the paper's ranges: every simulation's default

def source_spectra(sources, frequency_hz) -> np.ndarray:
    """Peak brightness of each source per channel, (n_sources, channels) Jy/pixel.

    Line only: ``peak * exp(-4 ln2 (c - z)^2 / fwhm_z^2)`` at channel c. With continuum columns
    (``continuum_jy_per_pix`` > 0, ``spectral_index``), the paper's
    ``A (f / f_mid)^alpha (1 + line)`` where the line has unit peak, so ``peak`` ~ 2 A.
    """
    channel = np.arange(len(frequency_hz))[None, :]
    line = np.exp(-4.0 * np.log(2.0) * ((channel - np.asarray(sources["z"])[:, None])
                                        / np.asarray(sources["fwhm_z"])[:, None]) ** 2)
    spectra = np.asarray(sources["line_jy_per_pix"])[:, None] * line
    if "continuum_jy_per_pix" in sources.colnames:
        f_ratio = frequency_hz[None, :] / frequency_hz[len(frequency_hz) // 2]
        continuum = (np.asarray(sources["continuum_jy_per_pix"])[:, None]
                     * f_ratio ** np.asarray(sources["spectral_index"])[:, None])
        spectra = spectra + continuum * (1.0 + line)
    return spectra


def sky_model(images, spectra) -> np.ndarray:
    """Sky cube (channels, size, size) float32 Jy/pixel = sum over sources of spectrum x image."""
    n, size = images.shape[0], images.shape[-1]
    cube = np.asarray(spectra, np.float32).T @ images.reshape(n, size * size)
    return cube.reshape(-1, size, size)


def _beam_gain(sources, beam, cell_arcsec) -> np.ndarray:
    """Dirty-image peak (Jy/beam) per unit sky peak (Jy/pixel) of each Gaussian source under a
    Gaussian beam: 2 pi / sqrt(det(S_source^-1 + S_beam^-1)), covariances in pixels."""
    bmaj, bmin, bpa = beam
    beam_cov = gaussian_covariance(bmaj / cell_arcsec, bmin / cell_arcsec, bpa + 90.0)  # major axis from +x (west)
    gains = []
    for s in sources:
        src_cov = gaussian_covariance(s["fwhm_x"], s["fwhm_y"], s["pa"])
        precision = np.linalg.inv(src_cov) + np.linalg.inv(beam_cov)
        gains.append(2.0 * np.pi / np.sqrt(np.linalg.det(precision)))
    return np.array(gains)


def draw_sources(rng, size, channels, beam, cell_arcsec, noise_jy_per_beam,
                 parameters=SkyParameters()) -> Table:
    """Draw one cube's sources (see ``SkyParameters``) with the numpy Generator ``rng``.

    ``beam`` (bmaj_arcsec, bmin_arcsec, bpa_deg) and ``noise_jy_per_beam`` turn the drawn
    signal-to-noise into a peak brightness. Returns a Table with source, x, y, fwhm_x, fwhm_y,
    pa, z, fwhm_z, line_jy_per_pix, peak_jy_per_pix (and continuum_jy_per_pix, spectral_index
    with continuum); row 0 is the central source.
    """
    p = parameters
    s_xy = size / PAPER_SIZE_PX
    s_z = channels / PAPER_CHANNELS
    centre = size // 2
    n_fainter = int(rng.integers(p.n_fainter[0], p.n_fainter[1] + 1))

    positions = [centre + rng.uniform(-p.central_offset_px, p.central_offset_px, 2) * s_xy]
    fainter, tries = [], 0
    while len(fainter) < n_fainter and tries < 1000:
        tries += 1
        xy = centre + rng.uniform(-p.fainter_box_px, p.fainter_box_px, 2) * s_xy
        if all(np.hypot(*(xy - q)) >= p.min_separation_px * s_xy for q in fainter):
            fainter.append(xy)
    positions = np.array(positions + fainter)
    n = len(positions)

    # sizes shrink with small cubes only, and never below 2 px (pixel-centre sampling of a
    # Gaussian keeps its flux from there up); line widths likewise, never below 1 channel
    fwhm = np.maximum(rng.uniform(p.fwhm_px[0], p.fwhm_px[1], (n, 2)) * (min(1.0, s_xy) if p.scale_sizes else 1.0), 2.0)
    table = Table()
    table["source"] = np.arange(n)
    table["x"], table["y"] = positions[:, 0], positions[:, 1]
    table["fwhm_x"], table["fwhm_y"] = fwhm[:, 0], fwhm[:, 1]
    table["pa"] = rng.uniform(p.pa_deg[0], p.pa_deg[1], n)
    table["z"] = rng.uniform(*p.line_centre_channels, n) * s_z
    table["fwhm_z"] = np.maximum(rng.uniform(*p.line_fwhm_channels, n) * min(1.0, s_z), 1.0)
    log_snr = np.concatenate([rng.uniform(*np.log(p.snr_central), 1),
                              rng.uniform(*np.log(p.snr_fainter), n - 1)])
    peak = np.exp(log_snr) * noise_jy_per_beam / _beam_gain(table, beam, cell_arcsec)
    table["peak_jy_per_pix"] = peak  # the analytic peak of the source's 3-D Gaussian
    table["line_jy_per_pix"] = peak
    if p.continuum:
        # A (f / f_mid)^alpha (1 + line): A = peak / 2 puts the peak at the line centre where
        # f ~ f_mid (to within the index times the fractional bandwidth)
        table["line_jy_per_pix"] = np.zeros(n)
        table["continuum_jy_per_pix"] = peak / 2.0
        table["spectral_index"] = rng.uniform(*p.spectral_index, n)
    return table
