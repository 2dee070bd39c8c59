"""Aperture synthesis in one call, for a lesson or a notebook: how an interferometer sees a sky.

An antenna configuration, the source's declination, an hour-angle range and a frequency give the
uv coverage (Earth rotation turning each baseline into a track), the dirty beam with its fitted
main lobe and its largest sidelobe, and the dirty image of a sky: a few points, a uniform disc, a
galaxy-like source or any image, of a given angular extent. Everything goes through
:mod:`pipeline.alma.interferometer`, the chain the cube simulator uses, with the same weighting
(Briggs, robust 0.5, as CASA's tclean by default).

The sky keeps its size in arcseconds whatever the array, so a student sees the same source
resolved by an extended configuration and blurred by a compact one, and a disc much larger than
the shortest baseline's fringe "resolved out" (an interferometer does not measure the total flux).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from pipeline.alma import interferometer
from pipeline.errors import InputError

SKIES = ("points", "disc", "galaxy", "image")
IMAGE_NPIX = 256  # the sky and its dirty image
PSF_NPIX = 256  # the dirty beam, on its own finer grid
PSF_CELLS_PER_FRINGE = 5  # the dirty beam's pixel: lambda / longest baseline over this
FIELD_PER_EXTENT = 2.0  # the image spans this many times the sky's extent
INTEGRATION_S = 60.0
#: the points sky: (x, y) offsets in units of the extent's half and fluxes (Jy), brightest first
POINTS = ((0.0, 0.0, 1.0), (0.55, 0.3, 0.5), (-0.4, 0.6, 0.3), (-0.6, -0.45, 0.2), (0.3, -0.7, 0.1))


@dataclass
class Synthesis:
    """What :func:`observe` gives. ``antennas_m`` (n, 2) east and north; ``uv_klambda`` (m, 2),
    conjugates included; ``psf`` (PSF_NPIX, PSF_NPIX), peak 1 at the centre, pixels of
    ``psf_cell_arcsec``; ``beam`` (bmaj, bmin arcsec, bpa deg), the Gaussian fitted to its main
    lobe; ``sidelobe`` the largest sidelobe's level (fraction of the peak) at ``sidelobe_px``
    (row, col) of ``psf``; ``sky`` (Jy/pixel, 1 Jy in all; one of SKIES, ``sky_kind``) and
    ``dirty`` (Jy/beam), IMAGE_NPIX square with pixels of ``cell_arcsec``. Images are indexed
    [row, col] = [y, x], north up, east to the left (x towards west), as on the sky."""

    config: str
    declination_deg: float
    hour_angles_h: tuple[float, float]
    frequency_hz: float
    antennas_m: np.ndarray
    uv_klambda: np.ndarray
    psf: np.ndarray
    psf_cell_arcsec: float
    beam: tuple[float, float, float]
    sidelobe: float
    sidelobe_px: tuple[int, int]
    sky: np.ndarray
    dirty: np.ndarray
    cell_arcsec: float
    sky_kind: str = "points"

    @property
    def sidelobe_offset_arcsec(self) -> float:
        """How far from the centre the largest sidelobe lies."""
        row, col = self.sidelobe_px
        return float(math.hypot(row - PSF_NPIX // 2, col - PSF_NPIX // 2) * self.psf_cell_arcsec)

    @property
    def longest_baseline_klambda(self) -> float:
        return float(np.max(np.hypot(*self.uv_klambda.T)))

    @property
    def shortest_baseline_klambda(self) -> float:
        return float(np.min(np.hypot(*self.uv_klambda.T)))

    def summary(self) -> str:
        """The measured numbers, one line each."""
        bmaj, bmin, bpa = self.beam
        # 0.6 lambda / B_min, in arcsec (B_min in wavelengths)
        largest_scale = 0.6 / (self.shortest_baseline_klambda * 1e3) / interferometer.ARCSEC_RAD
        return "\n".join([
            f"{self.config}: {len(self.antennas_m)} antennas, {len(self.uv_klambda) // 2} visibilities "
            f"({INTEGRATION_S:.0f} s integrations, with their conjugates: {len(self.uv_klambda)} uv points)",
            f"baselines {self.shortest_baseline_klambda:.1f} to {self.longest_baseline_klambda:.0f} "
            f"kilo-wavelengths at {self.frequency_hz / 1e9:.0f} GHz",
            f"beam (main lobe, Gaussian fit) {bmaj:.3g}\" x {bmin:.3g}\", position angle {bpa:.0f} deg",
            f"largest sidelobe {100 * self.sidelobe:.1f}% of the peak, {self.sidelobe_offset_arcsec:.3g}\" "
            "from the centre",
            f"largest scale seen (about 0.6 lambda / shortest baseline) {largest_scale:.3g}\"",
            f"image pixel {self.cell_arcsec:.3g}\"" + (
                " (coarser than the beam: the image is limited by its pixels, make the sky smaller)"
                if self.cell_arcsec > bmin / 2 else ""),
        ])


def observe(config: str = "alma.cycle9.3", declination_deg: float = -30.0, hour_angle_start_h: float = -1.0,
            hour_angle_stop_h: float = 1.0, frequency_hz: float = 230e9, sky: str = "points",
            extent_arcsec: float = 4.0, image=None) -> Synthesis:
    """How ``config`` sees ``sky`` (one of SKIES; "image" takes ``image``, a 2-D array or RGB,
    stretched over the extent) of ``extent_arcsec`` across, at ``declination_deg``, from hour angle
    ``hour_angle_start_h`` to ``hour_angle_stop_h`` at ``frequency_hz``. InputError for what
    cannot be observed (a source never above ALMA's elevation limit, a bad sky or extent)."""
    if sky not in SKIES:
        raise InputError(f"sky must be one of {', '.join(SKIES)}, not {sky!r}.")
    if not 0 < extent_arcsec <= 3600:
        raise InputError(f"The sky's extent must be between 0 and 3600 arcsec, not {extent_arcsec}.")
    if not 30e9 <= frequency_hz <= 1000e9:
        raise InputError(f"ALMA observes from 35 to 950 GHz; {frequency_hz / 1e9:.0f} GHz is outside.")
    layout = interferometer.load_configuration(config)
    uv_m = interferometer.uv_tracks(layout, declination_deg, hour_angle_start_h, hour_angle_stop_h, INTEGRATION_S)
    uv = uv_m[: len(uv_m) // 2]  # the conjugates are implied in the gridding
    wavelength_m = interferometer.SPEED_OF_LIGHT_M_S / frequency_hz
    fringe_arcsec = wavelength_m / np.max(np.hypot(*uv.T)) / interferometer.ARCSEC_RAD
    psf_cell = fringe_arcsec / PSF_CELLS_PER_FRINGE
    psf = interferometer.psf(uv, frequency_hz, PSF_NPIX, psf_cell)
    beam = interferometer.fit_beam(psf, psf_cell)
    level, where = interferometer.largest_sidelobe(psf)
    cell = FIELD_PER_EXTENT * extent_arcsec / IMAGE_NPIX
    sky_image = sky_image_of(sky, IMAGE_NPIX, extent_arcsec / cell, image)
    sampling = interferometer.uv_sampling(uv, frequency_hz, IMAGE_NPIX, cell)
    dirty = interferometer.dirty_image(sampling, sky_image[None])[0]
    return Synthesis(layout.name, float(declination_deg), (float(hour_angle_start_h), float(hour_angle_stop_h)),
                     float(frequency_hz), layout.xyz_m[:, :2].copy(),
                     interferometer.uv_wavelengths(uv_m, frequency_hz) / 1e3, psf, float(psf_cell),
                     tuple(float(b) for b in beam), level, where, sky_image, dirty.astype(np.float32), float(cell),
                     sky)


def sky_image_of(sky: str, npix: int, extent_px: float, image=None) -> np.ndarray:
    """A sky of 1 Jy in all (Jy/pixel, (npix, npix) float32) ``extent_px`` across, centred:
    "points" (POINTS), "disc" (uniform), "galaxy" (an inclined exponential disc with a bulge and
    two star-forming knots), "image" (``image``'s brightness stretched over the extent)."""
    half = extent_px / 2
    y, x = np.mgrid[:npix, :npix] - npix // 2
    if sky == "points":
        out = np.zeros((npix, npix))
        for dx, dy, flux in POINTS:
            out[int(round(npix // 2 + dy * half)), int(round(npix // 2 + dx * half))] += flux
    elif sky == "disc":
        out = (np.hypot(x, y) <= half).astype(float)
    elif sky == "galaxy":
        pa, cos_i = np.radians(30.0), 0.5  # 60 deg inclined
        along, across = x * np.cos(pa) + y * np.sin(pa), (-x * np.sin(pa) + y * np.cos(pa)) / cos_i
        r = np.hypot(along, across)
        out = np.exp(-r / (half / 4)) + 2.0 * np.exp(-0.5 * (r / (half / 20)) ** 2)
        for fx, fy in ((0.35, 0.1), (-0.25, -0.2)):
            out += 0.6 * np.exp(-0.5 * ((x - fx * half) ** 2 + (y - fy * half) ** 2) / (half / 25) ** 2)
        out[r > half] = 0.0
    elif sky == "image":
        out = _stretched(image, npix, extent_px)
    else:
        raise InputError(f"sky must be one of {', '.join(SKIES)}, not {sky!r}.")
    total = out.sum()
    if not np.isfinite(total) or total <= 0:
        raise InputError("This sky has no emission in the field: choose a larger extent or another image.")
    return (out / total).astype(np.float32)


def _stretched(image, npix: int, extent_px: float) -> np.ndarray:
    """``image`` (2-D, or RGB summed) non-negative, resampled to ``extent_px`` and centred in npix."""
    if image is None:
        raise InputError("The 'image' sky needs an image: upload one.")
    data = np.asarray(image, dtype=np.float64)
    if data.ndim == 3:
        data = data.sum(axis=-1)
    if data.ndim != 2 or min(data.shape) < 2:
        raise InputError(f"A sky image must be 2-D (or RGB), not of shape {np.shape(image)}.")
    data = np.nan_to_num(data - np.nanmin(data), nan=0.0)
    side = max(2, min(npix, int(round(extent_px))))
    scaled = scipy.ndimage.zoom(data, (side / data.shape[0], side / data.shape[1]), order=1)[:side, :side]
    out = np.zeros((npix, npix))
    start = (npix - scaled.shape[0]) // 2, (npix - scaled.shape[1]) // 2
    out[start[0]:start[0] + scaled.shape[0], start[1]:start[1] + scaled.shape[1]] = np.clip(scaled, 0, None)
    return out
