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
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from pipeline.alma.catalog import empty_catalog, make_catalog
from pipeline.alma.cube import Cube
from pipeline.alma.gaussian import FWHM_PER_SIGMA, gaussian_covariance
from pipeline.alma.measure import (
    brightest_first,
    catalog_row,
    deconvolve,
    integrated_image,
)
from pipeline.errors import InputError, short_reason


def detect_photutils(cube: Cube, *, nsigma: float = 3.0, min_snr: float = 5.0, npixels: int | None = None,
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
        rows.append(catalog_row(cube, im, source.x_centroid, source.y_centroid, (x0, y0, x1, y1),
                         (fwhm_a, fwhm_b, theta), float(source.segment_flux) * im.flux_per_sum,
                         snr, children.get(parents.get(label), 0) > 1, spectral_threshold))
    return make_catalog(brightest_first(rows), cube, "photutils")


def detect_pybdsf(cube: Cube, *, thresh_isl: float = 3.0, thresh_pix: float = 5.0,
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
        rows.append(catalog_row(cube, im, x, y, box, deconvolve(observed, beam_cov),
                         float(g.total_flux) * im.flux_per_sum * im.beam_area_px,
                         float(g.peak_flux) / im.rms, per_island[g.island_id] > 1,
                         spectral_threshold))
    return make_catalog(brightest_first(rows), cube, "pybdsf")


CLASSIC_DETECTORS = {"photutils": detect_photutils, "pybdsf": detect_pybdsf}


# --- shared steps -----------------------------------------------------------------------------

def _truncation_factor(peak_over_threshold: float) -> float:
    """Second moments of a Gaussian cut at ``threshold`` over the ones of the whole Gaussian:
    ``1 - L e^-L / (1 - e^-L)`` with ``L = ln(peak / threshold)`` (the same along every axis,
    since the cut follows an isophote). Segment moments are divided by it."""
    level = math.log(max(peak_over_threshold, 1.0 + 1e-6))
    return 1.0 - level * math.exp(-level) / (1.0 - math.exp(-level))


def _ellipse_box(x, y, covariance, nx, ny) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pixels whose centres lie within the bounding box of the ellipse of
    semi-axes one FWHM."""
    half_x = FWHM_PER_SIGMA * math.sqrt(covariance[0, 0])
    half_y = FWHM_PER_SIGMA * math.sqrt(covariance[1, 1])
    x0, x1 = max(0, math.ceil(x - half_x)), min(nx, math.floor(x + half_x) + 1)
    y0, y1 = max(0, math.ceil(y - half_y)), min(ny, math.floor(y + half_y) + 1)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


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
