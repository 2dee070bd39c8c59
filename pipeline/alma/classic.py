"""Classic source finders on the frequency-integrated image, behind one interface.

Each ``detect_<name>(cube, **options) -> Table`` returns the catalogue of
:mod:`pipeline.alma.catalog` (``detector`` = name). They share every step but the 2-D detection:

1. the integrated image: :meth:`Cube.moment0` over all channels or ``first_channel..last_channel``
   (inclusive, as ``moment0``), in Jy/beam km/s; its background is the median and its noise the
   robust rms (MAD x 1.4826) of the finite pixels;
2. 2-D detection (photutils segmentation + deblending, or PyBDSF Gaussians), which gives the
   centroid (x, y), the box (x0..x1, y0..y1), the size and angle as observed (convolved with the
   beam), the peak and the flux;
3. the box-summed spectrum: ``z`` is the channel of its maximum within the integrated range;
   ``z0..z1`` is the contiguous run of channels around ``z`` where the baseline-subtracted
   spectrum stays above ``max(spectral_threshold x its robust rms over channels, peak / 16)``
   (for a Gaussian line, peak / 16 is reached at peak +- FWHM, the paper's emission range);
4. ``snr`` = peak of the integrated image over the background, divided by its robust rms;
   ``score`` = ``snr``; ``flux`` = integrated flux in Jy km/s (the source's sum in the
   integrated image divided by the beam area in pixels, for a Jy/beam cube; the plain sum for
   Jy/pixel; NaN for other units); ``fwhm_x, fwhm_y, pa`` = the observed Gaussian (covariance)
   minus the median beam's, i.e. intrinsic sizes (0 along an axis the beam does not resolve).

Rows come brightest first (id 1 has the highest snr).

Velocity: the channel width in km/s comes from the cube (``Cube.channel_width``); for a frequency
cube without a rest frequency the observed-frame width ``c * dnu / nu`` at the band centre is used.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.stats import mad_std
from astropy.table import Table

from pipeline.alma.catalog import empty_catalog, make_catalog
from pipeline.alma.interferometer import FWHM_PER_SIGMA, SPEED_OF_LIGHT_M_S
from pipeline.errors import InputError, short_reason

#: a cube must span this many beams (major-axis FWHM) in x and in y to be searched
MIN_BEAMS_ACROSS = 3
#: the emission range ends where the line falls below peak / 16 (peak +- FWHM for a Gaussian)
PEAK_FRACTION = 1.0 / 16.0


@dataclass
class IntegratedImage:
    """The frequency-integrated image a classic finder works on.

    ``image`` (ny, nx) float64 in Jy/beam km/s (the cube's intensity unit times km/s), NaN where
    the cube is blank; ``background`` and ``rms`` its median and robust rms; ``first..last`` the
    channels integrated (inclusive); ``beam_fwhm_px`` (major, minor) and ``beam_theta_deg`` the
    median beam on the pixel grid (major axis counter-clockwise from +x); ``flux_per_sum`` turns
    a sum of image pixels into Jy km/s (NaN when the cube's unit is neither Jy/beam nor Jy/pixel).
    """

    image: np.ndarray
    background: float
    rms: float
    first: int
    last: int
    beam_fwhm_px: tuple[float, float]
    beam_theta_deg: float
    flux_per_sum: float

    @property
    def beam_area_px(self) -> float:
        return math.pi / (4 * math.log(2)) * self.beam_fwhm_px[0] * self.beam_fwhm_px[1]

    @property
    def beam_covariance(self) -> np.ndarray:
        return gaussian_covariance(*self.beam_fwhm_px, self.beam_theta_deg)


def integrated_image(cube, first_channel: int = 0, last_channel: int | None = None) -> IntegratedImage:
    """Integrate ``cube`` over ``first_channel..last_channel`` (inclusive) and measure its noise.

    Raises :class:`InputError` for a cube a classic finder cannot search: a single channel, no
    beam, fewer than :data:`MIN_BEAMS_ACROSS` beams across, an all-NaN or constant image.
    """
    name = cube.path.name
    if cube.nchan < 2:
        raise InputError(
            f"{name} has a single channel: the classic finders integrate a line over frequency and "
            "take each source's channel from its spectrum. Give a cube with at least 2 channels.")
    major_px, minor_px, theta = beam_on_grid(cube)
    if min(cube.nx, cube.ny) < MIN_BEAMS_ACROSS * major_px:
        raise InputError(
            f"{name} is {cube.nx} x {cube.ny} pixels, less than {MIN_BEAMS_ACROSS} beams across "
            f"(beam FWHM {major_px:.1f} px): too small to tell sources from noise. "
            "Search a larger cutout.")
    last = cube.nchan - 1 if last_channel is None else int(last_channel)
    first = int(first_channel)
    if first > last:
        first, last = last, first
    if last - first < 1:
        raise InputError(f"Channel range {first}..{last} holds a single channel; the classic finders "
                         "need at least 2 to find a line. Widen the range.")
    image, _ = cube.moment0(first, last)
    image = image.astype(np.float64)
    finite = np.isfinite(image)
    if not finite.any():
        raise InputError(f"The integrated image of {name} over channels {first}..{last} is blank "
                         "(all NaN). Choose channels that hold data.")
    image *= _kms_per_channel_fix(cube)
    values = image[finite]
    background = float(np.median(values))
    rms = float(mad_std(values))
    if not rms > 0:
        rms = float(np.std(values))  # MAD is 0 when over half the pixels are equal
    if not rms > 0:
        raise InputError(f"The integrated image of {name} over channels {first}..{last} is constant: "
                         "there is no signal or noise to search.")
    return IntegratedImage(image, background, rms, first, last, (major_px, minor_px), theta,
                           _flux_per_sum(cube, major_px * minor_px))


def beam_on_grid(cube) -> tuple[float, float, float]:
    """The cube's (median) beam on its pixel grid: major and minor FWHM in pixels and the major
    axis's angle, degrees counter-clockwise from +x. InputError when the cube has no usable beam."""
    beam = cube.require_beam()  # says why: no beam at all, or BMAJ = 0 / negative / not a number
    scale = math.sqrt(math.prod(cube.pixel_scale_arcsec))
    return beam.major_arcsec / scale, beam.minor_arcsec / scale, _beam_theta_deg(cube, beam.pa_deg)


def gaussian_covariance(fwhm_a: float, fwhm_b: float, theta_deg: float) -> np.ndarray:
    """2x2 covariance (pixels^2, [[xx, xy], [xy, yy]]) of a Gaussian with FWHMs ``fwhm_a`` along
    the axis at ``theta_deg`` (counter-clockwise from +x) and ``fwhm_b`` across it."""
    t = math.radians(theta_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return rot @ np.diag([(fwhm_a / FWHM_PER_SIGMA) ** 2, (fwhm_b / FWHM_PER_SIGMA) ** 2]) @ rot.T


def fit_covariance(image, x: float, y: float, guess, half_size: int) -> np.ndarray:
    """Observed 2x2 covariance (pixels^2) of the source near (``x``, ``y``) in ``image``
    (background subtracted): an elliptical Gaussian fitted by least squares to the
    ``(2 half_size + 1)^2`` cutout around it, as CASA's imfit measures a source. ``guess`` (a
    covariance, e.g. the beam's) starts the fit and is returned when the fit fails or leaves the
    cutout. Unlike second moments of a thresholded segment, a fit is not shrunk by the threshold."""
    from astropy.modeling import fitting, models

    ny, nx = image.shape
    cx, cy = int(round(x)), int(round(y))
    x0, x1, y0, y1 = max(0, cx - half_size), min(nx, cx + half_size + 1), max(0, cy - half_size), min(ny, cy + half_size + 1)
    cutout = np.nan_to_num(np.asarray(image[y0:y1, x0:x1], float))
    if cutout.size < 9 or not np.any(cutout > 0):
        return np.asarray(guess, float)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    values, vectors = np.linalg.eigh(np.asarray(guess, float))
    theta = math.atan2(vectors[1, 1], vectors[0, 1])
    start = models.Gaussian2D(float(cutout.max()), x, y, math.sqrt(max(values[1], 0.25)),
                              math.sqrt(max(values[0], 0.25)), theta)
    start.x_stddev.bounds = start.y_stddev.bounds = (0.3, float(half_size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fitter's convergence notes; a bad fit is checked below
        fit = fitting.LevMarLSQFitter()(start, xx, yy, cutout)
    sx, sy = abs(float(fit.x_stddev.value)), abs(float(fit.y_stddev.value))
    inside = abs(fit.x_mean.value - x) <= half_size and abs(fit.y_mean.value - y) <= half_size
    if not (inside and fit.amplitude.value > 0 and np.isfinite([sx, sy]).all() and max(sx, sy) < half_size):
        return np.asarray(guess, float)
    return gaussian_covariance(FWHM_PER_SIGMA * sx, FWHM_PER_SIGMA * sy, math.degrees(float(fit.theta.value)))


def deconvolve(observed_covariance, beam_covariance) -> tuple[float, float, float]:
    """Intrinsic (fwhm_major, fwhm_minor, theta_deg) in pixels of a Gaussian observed with
    ``observed_covariance`` through a beam of ``beam_covariance`` (both 2x2, pixels^2): the
    covariances subtract. An axis narrower than the beam gets FWHM 0; theta is the major axis,
    counter-clockwise from +x, in [0, 180)."""
    intrinsic = np.asarray(observed_covariance, float) - np.asarray(beam_covariance, float)
    values, vectors = np.linalg.eigh(intrinsic)  # ascending
    values = np.clip(values, 0.0, None)
    major = vectors[:, 1]
    theta = math.degrees(math.atan2(major[1], major[0])) % 180.0
    return (FWHM_PER_SIGMA * math.sqrt(values[1]), FWHM_PER_SIGMA * math.sqrt(values[0]), theta)


def emission_range(spectrum, first: int, last: int, spectral_threshold: float = 2.0):
    """(z, z0, z1) of the line in a box-summed ``spectrum``: the peak channel within
    ``first..last`` (inclusive) and the contiguous channels around it (z1 exclusive) above
    ``max(spectral_threshold x robust rms, peak / 16)`` after subtracting the median."""
    spectrum = np.nan_to_num(np.asarray(spectrum, float))
    line = spectrum - np.median(spectrum)
    noise = float(mad_std(line))
    z = first + int(np.argmax(line[first:last + 1]))
    level = max(spectral_threshold * noise, PEAK_FRACTION * line[z])
    z0, z1 = z, z + 1
    while z0 > 0 and line[z0 - 1] > level:
        z0 -= 1
    while z1 < len(line) and line[z1] > level:
        z1 += 1
    return z, z0, z1


def detect_photutils(cube, *, nsigma: float = 3.0, min_snr: float = 5.0, npixels: int | None = None,
                     deblend: bool = True, nlevels: int = 32, contrast: float = 0.001,
                     first_channel: int = 0, last_channel: int | None = None,
                     spectral_threshold: float = 2.0) -> Table:
    """photutils segmentation of the integrated image (see the module docstring for the rest).

    Segments: connected regions of at least ``npixels`` pixels (default half a beam area, at
    least 3) above ``nsigma`` x rms over the background, split by ``deblend_sources``
    (``nlevels``, ``contrast``) when ``deblend``; a segment is kept when its peak reaches
    ``min_snr``. Centroid, box, covariance (sizes and angle) and flux come from the segment
    (``SourceCatalog``); the covariance is corrected for the cut at the threshold as for a
    Gaussian (:func:`_truncation_factor`; a segment's moments alone make every faint source
    look smaller than the beam). ``blended`` marks segments split from a common parent.
    """
    from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources

    im = integrated_image(cube, first_channel, last_channel)
    blank = ~np.isfinite(im.image)
    data = np.where(blank, 0.0, im.image - im.background)
    npixels = int(npixels) if npixels else max(3, round(0.5 * im.beam_area_px))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # photutils warns when nothing is found
        segm = detect_sources(data, nsigma * im.rms, npixels, mask=blank)
        if segm is None:
            return empty_catalog()
        if deblend:
            segm = deblend_sources(data, segm, npixels, n_levels=nlevels, contrast=contrast,
                                   progress_bar=False)
        sources = SourceCatalog(data, segm, mask=blank)
    parents = segm.deblended_label_to_parent if deblend else {}
    children = {}
    for parent in parents.values():
        children[parent] = children.get(parent, 0) + 1

    rows = []
    beam_cov = im.beam_covariance
    for source in sources:
        snr = float(source.max_value) / im.rms
        if not snr >= min_snr:
            continue
        x0, x1 = int(source.bbox_xmin), int(source.bbox_xmax) + 1
        y0, y1 = int(source.bbox_ymin), int(source.bbox_ymax) + 1
        observed = np.asarray(source.covariance.value) / _truncation_factor(snr / nsigma)
        fwhm_a, fwhm_b, theta = deconvolve(observed, beam_cov)
        label = int(source.label)
        rows.append(_row(cube, im, source.x_centroid, source.y_centroid, (x0, x1, y0, y1),
                         (fwhm_a, fwhm_b, theta), float(source.segment_flux) * im.flux_per_sum,
                         snr, children.get(parents.get(label), 0) > 1, spectral_threshold))
    return make_catalog(_brightest_first(rows), cube, "photutils")


def detect_pybdsf(cube, *, thresh_isl: float = 3.0, thresh_pix: float = 5.0,
                  first_channel: int = 0, last_channel: int | None = None,
                  spectral_threshold: float = 2.0, **bdsf_options) -> Table:
    """PyBDSF (``bdsf.process_image``) Gaussians on the integrated image.

    The image (background subtracted) goes to PyBDSF as a temporary 2-D FITS file with the
    median beam in its header; islands are made at ``thresh_isl`` and need a peak at
    ``thresh_pix`` times the same robust rms the other finders use (a constant rms map).
    ``bdsf_options`` go to ``process_image`` as they are. Each Gaussian gives the centroid, size
    and angle (deconvolved here, as for every finder), peak and total flux; its box is the
    bounding box of the fitted (convolved) ellipse with semi-axes of one FWHM, i.e. down to
    peak / 16; ``blended`` marks Gaussians that share an island.
    Raises :class:`InputError` when PyBDSF is not installed.
    """
    bdsf = _import_bdsf()
    im = integrated_image(cube, first_channel, last_channel)
    beam = cube.beam
    freq = cube.frequency_hz
    header = cube.celestial_wcs.to_header()
    header["BUNIT"] = "JY/BEAM"
    header["BMAJ"], header["BMIN"], header["BPA"] = (beam.major_arcsec / 3600.0,
                                                     beam.minor_arcsec / 3600.0, beam.pa_deg)
    options = {
        "beam": (beam.major_arcsec / 3600.0, beam.minor_arcsec / 3600.0, beam.pa_deg),
        # PyBDSF wants a frequency; it only uses it for spectral indices, not done here
        "frequency": float(np.median(freq)) if freq is not None else 230e9,
        "thresh": "hard", "thresh_isl": thresh_isl, "thresh_pix": thresh_pix,
        "rms_map": False, "rms_value": im.rms, "mean_map": "zero", "quiet": True, "ncores": 1,
    }
    options.update(bdsf_options)
    with tempfile.TemporaryDirectory(prefix="pybdsf-") as tmp:
        path = Path(tmp) / "integrated.fits"
        fits.PrimaryHDU((im.image - im.background).astype(np.float32), header).writeto(path)
        try:
            with _quiet():
                result = bdsf.process_image(str(path), **options)
        except Exception as exc:  # noqa: BLE001 -- PyBDSF raises many types on images it cannot fit
            raise InputError(f"PyBDSF failed on the integrated image of {cube.path.name} "
                             f"({short_reason(exc)}).") from None
        finally:
            _close_bdsf_log()
    gaussians = list(getattr(result, "gaussians", None) or [])
    per_island = {}
    for g in gaussians:
        per_island[g.island_id] = per_island.get(g.island_id, 0) + 1

    rows = []
    beam_cov = im.beam_covariance
    for g in gaussians:
        x, y = (float(v) for v in g.centre_pix)
        fwhm_a, fwhm_b, pa_from_y = (float(v) for v in g.size_pix)
        theta = pa_from_y + 90.0  # PyBDSF's pixel angle is counter-clockwise from +y
        observed = gaussian_covariance(fwhm_a, fwhm_b, theta)
        box = _ellipse_box(x, y, observed, cube.nx, cube.ny)
        # PyBDSF's total flux is already per beam area: only the unit scale (mJy -> Jy) is left
        rows.append(_row(cube, im, x, y, box, deconvolve(observed, beam_cov),
                         float(g.total_flux) * im.flux_per_sum * im.beam_area_px,
                         float(g.peak_flux) / im.rms, per_island[g.island_id] > 1,
                         spectral_threshold))
    return make_catalog(_brightest_first(rows), cube, "pybdsf")


CLASSIC_DETECTORS = {"photutils": detect_photutils, "pybdsf": detect_pybdsf}


# --- shared steps -----------------------------------------------------------------------------

def _row(cube, im: IntegratedImage, x, y, box, intrinsic, flux, snr, blended, spectral_threshold) -> dict:
    """One catalogue row: the 2-D detection plus z, z0, z1 from its box-summed spectrum."""
    x0, x1, y0, y1 = box
    block = np.asarray(cube.data[:, y0:y1, x0:x1], dtype=np.float64)
    spectrum = np.nansum(block, axis=(1, 2))
    z, z0, z1 = emission_range(spectrum, im.first, im.last, spectral_threshold)
    fwhm_a, fwhm_b, theta = intrinsic
    return {"x": float(x), "y": float(y), "z": float(z), "x0": x0, "y0": y0, "x1": x1, "y1": y1,
            "z0": z0, "z1": z1, "fwhm_x": fwhm_a, "fwhm_y": fwhm_b, "pa": theta,
            "flux": flux, "snr": snr, "score": snr, "blended": bool(blended)}


def _brightest_first(rows: list[dict]) -> list[dict]:
    """Rows by decreasing snr, so that id 1 is the strongest detection."""
    return sorted(rows, key=lambda row: -row["snr"])


def _truncation_factor(peak_over_threshold: float) -> float:
    """Second moments of a Gaussian cut at ``threshold`` over the ones of the whole Gaussian:
    ``1 - L e^-L / (1 - e^-L)`` with ``L = ln(peak / threshold)`` (the same along every axis,
    since the cut follows an isophote). Segment moments are divided by it."""
    level = math.log(max(peak_over_threshold, 1.0 + 1e-6))
    return 1.0 - level * math.exp(-level) / (1.0 - math.exp(-level))


def _ellipse_box(x, y, covariance, nx, ny) -> tuple[int, int, int, int]:
    """Pixels whose centres lie within the bounding box of the ellipse of semi-axes one FWHM."""
    half_x = FWHM_PER_SIGMA * math.sqrt(covariance[0, 0])
    half_y = FWHM_PER_SIGMA * math.sqrt(covariance[1, 1])
    x0, x1 = max(0, math.ceil(x - half_x)), min(nx, math.floor(x + half_x) + 1)
    y0, y1 = max(0, math.ceil(y - half_y)), min(ny, math.floor(y + half_y) + 1)
    return x0, max(x1, x0 + 1), y0, max(y1, y0 + 1)


def _beam_theta_deg(cube, pa_deg: float) -> float:
    """The beam's major axis on the pixel grid (counter-clockwise from +x) from its position angle
    east of north, using the WCS's north direction and handedness at the image centre."""
    wcs = cube.celestial_wcs
    cx, cy = (cube.nx - 1) / 2.0, (cube.ny - 1) / 2.0
    centre = wcs.pixel_to_world(cx, cy)
    step = 0.5 * cube.pixel_scale_arcsec[1] * u.arcsec
    north = wcs.world_to_pixel(centre.directional_offset_by(0 * u.deg, step))
    east = wcs.world_to_pixel(centre.directional_offset_by(90 * u.deg, step))
    north_angle = math.degrees(math.atan2(float(north[1]) - cy, float(north[0]) - cx))
    east_angle = math.degrees(math.atan2(float(east[1]) - cy, float(east[0]) - cx))
    handedness = 1.0 if (east_angle - north_angle) % 360.0 < 180.0 else -1.0
    return (north_angle + handedness * pa_deg) % 180.0


def _kms_per_channel_fix(cube) -> float:
    """Factor that turns ``Cube.moment0``'s image into Jy/beam km/s: 1 when the cube knows its
    velocity axis, else the observed-frame channel width c * dnu / nu at the band centre."""
    if cube.channel_width()["kms"]:
        return 1.0
    freq = cube.frequency_hz
    if freq is None or len(freq) < 2:
        return 1.0
    return float(np.median(np.abs(np.diff(freq))) / np.median(freq) * SPEED_OF_LIGHT_M_S / 1e3)


def _flux_per_sum(cube, beam_fwhm_product_px: float) -> float:
    """Jy km/s per unit sum of integrated-image pixels: 1 / beam area (px) for Jy/beam, 1 for
    Jy/pixel (scaled for mJy and the like), NaN for other units."""
    try:
        unit = u.Unit(cube.unit.replace("JY", "Jy").replace("BEAM", "beam").replace("PIXEL", "pixel"))
    except ValueError:
        return float("nan")
    beam_area = math.pi / (4 * math.log(2)) * beam_fwhm_product_px
    for per, area in ((u.Jy / u.beam, beam_area), (u.Jy / u.pix, 1.0)):
        if unit.is_equivalent(per):
            return float(unit.to(per)) / area
    return float("nan")


def _import_bdsf():
    try:
        with _quiet():  # PyBDSF prints a warning at import when matplotlib is missing
            import bdsf
    except ImportError:
        raise InputError("PyBDSF is not installed, so detector 'pybdsf' is unavailable. "
                         "Install it with `pip install bdsf`, or use detector 'photutils'.") from None
    return bdsf


def _close_bdsf_log() -> None:
    """PyBDSF leaves its logger writing to a file in the (now deleted) temporary folder and to
    the captured stderr: close those handlers."""
    logger = logging.getLogger("PyBDSF")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield
