"""Measurements every finder shares, one place for each: the integrated image and its noise, the
beam on the pixel grid (size, angle, area), the box spectrum and the line's emission range, a
Gaussian fitted and deconvolved from the beam, and the catalogue row they make.

Conventions: pixels are 0-based; angles on the grid are degrees counter-clockwise from +x; boxes
are ``(x0, y0, x1, y1)`` with the ends exclusive; channel ranges as documented per function.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import astropy.constants as const
import astropy.units as u
import numpy as np
from astropy.stats import mad_std

from pipeline.alma.cube import Cube
from pipeline.alma.gaussian import FWHM_PER_SIGMA, gaussian_area, gaussian_covariance
from pipeline.alma.noise import noise_of
from pipeline.errors import InputError
from pipeline.progress import check_cancel

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
        return gaussian_area(*self.beam_fwhm_px)

    @property
    def beam_covariance(self) -> np.ndarray:
        return gaussian_covariance(*self.beam_fwhm_px, self.beam_theta_deg)


def check_searchable(cube: Cube, data: bool = False, cancel=None) -> None:
    """Raise :class:`InputError` for a cube no finder can search: a single channel, no beam, fewer
    than :data:`MIN_BEAMS_ACROSS` beams across; with ``data``, also one whose every channel is
    constant, told by the channels' rms (:func:`noise.noise_of`, measured once
    per opened cube and used by the focusing after; ``cancel`` stops that read), not by a read of
    the whole cube of its own."""
    name = cube.path.name
    if cube.nchan < 2:
        raise InputError(
            f"{name} has a single channel: the finders integrate a line over frequency and "
            "take each source's channel from its spectrum. Give a cube with at least 2 channels.")
    major_px, _, _ = beam_on_grid(cube)
    if min(cube.nx, cube.ny) < MIN_BEAMS_ACROSS * major_px:
        raise InputError(
            f"{name} is {cube.nx} x {cube.ny} pixels, less than {MIN_BEAMS_ACROSS} beams across "
            f"(beam FWHM {major_px:.1f} px): too small to tell sources from noise. "
            "Search a larger cutout.")
    if not data:
        return
    rms = noise_of(cube).measure(cancel).channel
    rms = rms[np.isfinite(rms)]  # (a cube with no data at all is refused when it is opened)
    if rms.size and not rms.max() > 0:
        raise InputError(f"{name} is constant in every channel: there is no signal or noise to search.")


def integrated_image(cube: Cube, first_channel: int = 0, last_channel: int | None = None) -> IntegratedImage:
    """Integrate ``cube`` over ``first_channel..last_channel`` (inclusive) and measure its noise.

    Raises :class:`InputError` for a cube a classic finder cannot search (:func:`check_searchable`)
    and for an all-NaN or constant image.
    """
    name = cube.path.name
    check_searchable(cube)
    major_px, minor_px, theta = beam_on_grid(cube)
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
    image *= kms_per_channel_factor(cube)
    values = image[finite]
    background = float(np.median(values))
    rms = float(mad_std(values))
    if not rms > 0:
        rms = float(np.std(values))  # MAD is 0 when over half the pixels are equal
    if not rms > 0:
        raise InputError(f"The integrated image of {name} over channels {first}..{last} is constant: "
                         "there is no signal or noise to search.")
    return IntegratedImage(image, background, rms, first, last, (major_px, minor_px), theta,
                           flux_per_sum(cube, major_px, minor_px))


def beam_on_grid(cube: Cube) -> tuple[float, float, float]:
    """The cube's (median) beam on its pixel grid: major and minor FWHM in pixels and the major
    axis's angle, degrees counter-clockwise from +x. InputError when the cube has no usable beam."""
    beam = cube.require_beam()  # says why: no beam at all, or BMAJ = 0 / negative / not a number
    scale = math.sqrt(math.prod(cube.pixel_scale_arcsec))
    return beam.major_arcsec / scale, beam.minor_arcsec / scale, beam_angle_deg(cube, beam.pa_deg)


def fit_covariance(image, x: float, y: float, guess, half_size: int) -> np.ndarray:
    """Observed 2x2 covariance (pixels^2) of the source near (``x``, ``y``) in ``image``
    (background subtracted): an elliptical Gaussian fitted by least squares to the
    ``(2 half_size + 1)^2`` cutout around it, as CASA's imfit measures a source. ``guess`` (a
    covariance, e.g. the beam's) starts the fit and is returned when the fit fails or leaves the
    cutout. Unlike second moments of a thresholded segment, a fit is not shrunk by the threshold."""
    from astropy.modeling import fitting, models

    ny, nx = image.shape
    cx, cy = int(round(x)), int(round(y))
    x0, x1 = max(0, cx - half_size), min(nx, cx + half_size + 1)
    y0, y1 = max(0, cy - half_size), min(ny, cy + half_size + 1)
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


def box_spectrum(cube: Cube, box) -> np.ndarray:
    """The spectrum (nchan,) summed over ``box`` = (x0, y0, x1, y1) (ends exclusive), NaN as 0,
    in float64."""
    return box_spectra(cube, [box])[0]


def box_spectra(cube: Cube, boxes, cancel=None) -> np.ndarray:
    """:func:`box_spectrum` of every box, (n_boxes, nchan), in one pass over the cube's channels
    (:meth:`Cube.blocks`, over the rows the boxes span): a large cube's hundreds of boxes cost
    one read of it, not one each; ``cancel`` is checked before each read."""
    boxes = [tuple(int(v) for v in box[:4]) for box in boxes]
    spectra = np.zeros((len(boxes), cube.nchan))
    if not boxes:
        return spectra
    top, bottom = min(b[1] for b in boxes), max(b[3] for b in boxes)
    for k, block in cube.blocks(y=slice(top, bottom)):
        check_cancel(cancel, "detection")
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            spectra[i, k:k + len(block)] = np.nansum(block[:, y0 - top:y1 - top, x0:x1], axis=(1, 2), dtype=np.float64)
    return spectra


def catalog_row(cube: Cube, im: IntegratedImage, x, y, box, intrinsic, flux, snr, blended, spectral_threshold) -> dict:
    """One catalogue row: the 2-D detection at (``x``, ``y``) in ``box`` (x0, y0, x1, y1) with its
    ``intrinsic`` (fwhm_a, fwhm_b, theta_deg), plus z, z0, z1 from its box-summed spectrum."""
    x0, y0, x1, y1 = box
    z, z0, z1 = emission_range(box_spectrum(cube, box), im.first, im.last, spectral_threshold)
    fwhm_a, fwhm_b, theta = intrinsic
    return {"x": float(x), "y": float(y), "z": float(z), "x0": x0, "y0": y0, "x1": x1, "y1": y1,
            "z0": z0, "z1": z1, "fwhm_x": fwhm_a, "fwhm_y": fwhm_b, "pa": theta,
            "flux": flux, "snr": snr, "score": snr, "blended": bool(blended)}


def brightest_first(rows: list[dict]) -> list[dict]:
    """Rows by decreasing snr, so that id 1 is the strongest detection."""
    return sorted(rows, key=lambda row: -row["snr"])


def beam_angle_deg(cube: Cube, pa_deg: float) -> float:
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


def kms_per_channel_factor(cube: Cube) -> float:
    """Factor that turns ``Cube.moment0``'s image into Jy/beam km/s: 1 when the cube knows its
    velocity axis, else the observed-frame channel width c * dnu / nu at the band centre."""
    if cube.channel_width()["kms"]:
        return 1.0
    freq = cube.frequency_hz
    if freq is None or len(freq) < 2:
        return 1.0
    return float(np.median(np.abs(np.diff(freq))) / np.median(freq) * const.c.to_value(u.km / u.s))


def flux_per_sum(cube: Cube, beam_major_px: float, beam_minor_px: float) -> float:
    """Jy km/s per unit sum of integrated-image pixels: 1 / beam area (px) for Jy/beam, 1 for
    Jy/pixel (scaled for mJy and the like), NaN for other units."""
    try:
        unit = u.Unit(cube.unit.replace("JY", "Jy").replace("BEAM", "beam").replace("PIXEL", "pixel"))
    except ValueError:
        return float("nan")
    beam_area = gaussian_area(beam_major_px, beam_minor_px)
    for per, area in ((u.Jy / u.beam, beam_area), (u.Jy / u.pix, 1.0)):
        if unit.is_equivalent(per):
            return float(unit.to(per)) / area
    return float("nan")
