"""The companion cubes of an interferometric image: its primary beam and its PSF, as tclean makes them.

Beside ``NAME.image``, tclean writes ``NAME.pb``, the primary-beam response (1 at the pointing
centre, falling with distance from it; the image is the sky times this response), and
``NAME.psf``, the dirty beam of every channel. Exported to FITS they share the image's pixel grid
and channels. Here:

- :func:`companion_candidates`: the file names they go by beside a cube (``NAME.fits`` ->
  ``NAME.pb.fits``; ``NAME.image.fits`` -> ``NAME.pb.fits``; also gzip-compressed);
- :func:`open_companion`: open one for a science cube and check it belongs to it (same pixel grid
  and sky, same channels or a single plane for all, values a primary beam or a PSF can take);
- :func:`correct_fluxes`: a catalogue's fluxes divided by the primary-beam response at each source;
- :func:`psf_peak` and :func:`dirty_beam_image`: where the dirty beam peaks, and its central part
  over a line's channels (what the shape ResNet is told of the beam).

Every refusal is an :class:`~pipeline.errors.InputError` that says what does not fit and what to
give instead. Companion cubes stay memory-mapped, as the science cube does: the checks read a few
planes, the correction one pixel per source.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import scipy.ndimage

from pipeline.alma.catalog import set_flux_scale
from pipeline.alma.cube import Cube, open_cube
from pipeline.alma.preprocess import crop_slices
from pipeline.errors import InputError

#: what each kind of companion is called in messages
KINDS = {"pb": "primary-beam cube", "psf": "PSF cube"}
#: a primary-beam response below this makes a corrected flux NaN: tclean's default ``pblimit``,
#: below which it masks the image (the response is uncertain there and divides the noise up by 5+)
PB_LIMIT = 0.2
#: the companion's pixels may sit this far (pixels) from the cube's and still be the same grid
GRID_TOLERANCE_PX = 0.05
#: planes read to check a companion's values (evenly spaced; all of them when there are fewer)
PROBE_PLANES = 16
#: the largest primary-beam value taken for 1 (rounding in the file)
_PB_MAX = 1.0 + 1e-3
#: a PSF's main lobe is this close to the cube's beam (a factor either way); a primary beam's is
#: at least this many times wider (it spans tens to thousands of beams)
_LOBE_FACTOR = 2.0
#: a PSF peaks at the centre of its grid, within this many pixels, at 1 (tclean normalises it), within this
_PSF_CENTRE_PX = 2.0
_PSF_PEAK_TOLERANCE = 0.1
_FITS_SUFFIXES = (".fits.gz", ".fits", ".fit", ".fts")


def companion_candidates(cube_path, kind: str) -> list[Path]:
    """The files beside ``cube_path`` that would hold its ``kind`` ("pb" or "psf") cube, most
    likely first, whether or not they exist: tclean's names as exportfits leaves them,
    ``NAME.fits`` or ``NAME.image.fits`` -> ``NAME.pb.fits`` (and ``.fits.gz``). None for the
    primary beam of a corrected image (``NAME.pbcor.fits``, ``NAME.image.pbcor.fits``): its
    fluxes are corrected already, and correcting them again would be wrong."""
    _check_kind(kind)
    path = Path(cube_path)
    name = path.name
    suffix = next((s for s in _FITS_SUFFIXES if name.lower().endswith(s)), None)
    if suffix is None:
        return []
    base = name[: -len(suffix)]
    if base.lower().endswith(".pbcor"):
        if kind == "pb":
            return []
        base = base[: -len(".pbcor")]
    if base.lower().endswith(".image"):
        base = base[: -len(".image")]
    names = [f"{base}.{kind}{ext}" for ext in (".fits", ".fits.gz")]
    return [path.with_name(n) for n in names if n != name]


def open_companion(path, cube: Cube, kind: str):
    """Open the ``kind`` ("pb" or "psf") cube at ``path`` for the science ``cube`` (an open
    :class:`~pipeline.alma.cube.Cube`) and check it fits; returns it open (memory-mapped; close it
    when done).

    Checks: the same nx x ny grid on the same sky (every corner and the centre within
    ``GRID_TOLERANCE_PX`` pixels), the cube's channel count at the same frequencies or a single
    plane (which then applies to every channel); and in ``PROBE_PLANES`` planes spread over the
    channels (not the whole file, which may be large): no infinite values; a primary beam has values
    in (0, 1] where the area is mapped (0, negative or NaN outside it) and a main lobe much wider
    than the beam; a PSF peaks at 1 at the centre of its grid, with a main lobe the size of the
    cube's beam. The lobe checks (skipped when the cube has no beam) tell the two apart when one
    is given for the other.
    """
    what = _check_kind(kind)
    path = Path(path)
    if path.exists() and _same_file(path, cube.path):
        raise InputError(f"{path.name} is the cube itself, not its {what}: {_give(kind)}.")
    try:
        companion = open_cube(path)
    except InputError as exc:
        raise InputError(f"{what[0].upper()}{what[1:]}: {exc}") from None
    try:
        _check_grid(companion, cube, kind)
        _check_channels(companion, cube, kind)
        (_check_primary_beam if kind == "pb" else _check_psf)(companion, cube)
    except BaseException:
        companion.close()
        raise
    return companion


def correct_fluxes(catalog, pb: Cube, pb_limit: float = PB_LIMIT):
    """The catalogue with each flux divided by the primary-beam response at its source.

    ``catalog``: a catalogue (:mod:`pipeline.alma.catalog`) found on the cube that ``pb`` (from
    :func:`open_companion`) belongs to. Returns a copy with ``pb``, the response at the source's
    nearest pixel (x, y) and channel z (the only plane of a single-plane ``pb``), and ``flux``
    divided by it. The centre rather than a mean over the box: the primary beam varies over tens
    of beams, so across a source it is all but linear and its value at the centre is the
    flux-weighted mean to second order, while a box mean would mix in pixels outside the mapped
    area at the edges. Where the response is below ``pb_limit`` (tclean's ``pblimit``, 0.2) the
    flux is NaN rather than blown up by a response nobody trusts; 0, negative or NaN responses
    (outside the mapped area) are given as 0. ``snr`` is unchanged (signal and noise are divided
    alike). The table's meta and the flux column's description then say the fluxes are corrected
    (:func:`pipeline.alma.catalog.set_flux_scale`).
    """
    if catalog.meta.get("pb_corrected"):
        raise InputError("The catalogue's fluxes are corrected for the primary beam already: correcting them "
                         "again would divide them twice. Correct the catalogue as the finder made it.")
    if not 0 < pb_limit <= 1:
        raise InputError(f"The primary-beam limit must be in (0, 1]; got {pb_limit}.")
    out = catalog.copy()
    if len(out):
        xi = np.clip(np.rint(np.asarray(out["x"], float)), 0, pb.nx - 1).astype(int)
        yi = np.clip(np.rint(np.asarray(out["y"], float)), 0, pb.ny - 1).astype(int)
        zi = np.clip(np.rint(np.asarray(out["z"], float)), 0, pb.nchan - 1).astype(int)
        response = np.array([float(pb.data[z, y, x]) for x, y, z in zip(xi, yi, zi, strict=True)])  # one pixel each
        mapped = np.isfinite(response) & (response > 0)
        response = np.where(mapped, np.minimum(response, 1.0), 0.0)  # 1.0000001 is 1
        usable = response >= pb_limit
        flux = np.asarray(out["flux"], float)
        out["flux"] = np.where(usable, flux / np.where(usable, response, 1.0), np.nan)
        out["pb"] = response
    return set_flux_scale(out, corrected=True, pb_limit=pb_limit)


# --- the dirty beam ---------------------------------------------------------------------------

def psf_peak(psf: Cube) -> tuple[int, int]:
    """(x, y) of the dirty beam's peak: the brightest pixel of the PSF cube's middle plane."""
    plane = np.nan_to_num(np.asarray(psf.data[psf.nchan // 2], np.float64), nan=-np.inf)
    py, px = np.unravel_index(int(np.argmax(plane)), plane.shape)
    return int(px), int(py)


def dirty_beam_image(psf: Cube, first: int, last: int, side: int, peak=None) -> np.ndarray:
    """The dirty beam of channels ``first..last - 1`` (their PSF planes summed; a single-plane
    PSF serves every channel), ``side`` x ``side`` about its peak (at ``(side // 2,) * 2``, zero
    beyond the grid), scaled to peak 1. float32. ``peak``: :func:`psf_peak` of ``psf``, when
    the caller has it (it reads a whole plane)."""
    inside, into = crop_slices((psf.ny, psf.nx), *(peak or psf_peak(psf)), side)
    planes = slice(first, last) if psf.nchan > 1 else slice(0, 1)
    image = np.zeros((side, side), np.float64)
    image[into] = np.nan_to_num(np.asarray(psf.data[(planes, *inside)], np.float64)).sum(axis=0)
    centre = image[side // 2, side // 2]
    return (image / centre if centre > 0 else image).astype(np.float32)


# --- checks -----------------------------------------------------------------------------------

def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InputError(f"A companion cube is 'pb' (primary beam) or 'psf', not {kind!r}.")
    return KINDS[kind]


def _give(kind: str, start: bool = False) -> str:
    """What to do instead, to end a message (``start``: as a sentence of its own)."""
    return f"{'Give' if start else 'give'} the .{kind} cube tclean made with this image, exported to FITS"


def _check_grid(companion, cube, kind: str) -> None:
    what, name = KINDS[kind], companion.path.name
    if (companion.nx, companion.ny) != (cube.nx, cube.ny):
        raise InputError(f"The {what} {name} is {companion.nx} x {companion.ny} pixels but the cube is "
                         f"{cube.nx} x {cube.ny}: {_give(kind)}.")
    xs = np.array([0.0, cube.nx - 1, 0.0, cube.nx - 1, (cube.nx - 1) / 2])
    ys = np.array([0.0, 0.0, cube.ny - 1, cube.ny - 1, (cube.ny - 1) / 2])
    try:
        px, py = companion.celestial_wcs.world_to_pixel(cube.celestial_wcs.pixel_to_world(xs, ys))
        offset = float(np.max(np.hypot(np.asarray(px) - xs, np.asarray(py) - ys)))
    except Exception:  # noqa: BLE001 -- astropy raises many types when frames or projections do not convert
        offset = math.nan
    if not offset <= GRID_TOLERANCE_PX:
        where = f"up to {offset:.2f} pixels away" if math.isfinite(offset) else "not on the cube's sky"
        raise InputError(f"The {what} {name} has the cube's size but its pixels lie {where} from the cube's "
                         f"(another centre, pixel size or projection): {_give(kind)}.")


def _check_channels(companion, cube, kind: str) -> None:
    what, name = KINDS[kind], companion.path.name
    if companion.nchan == 1:
        return  # one plane for every channel (e.g. a continuum primary beam)
    if companion.nchan != cube.nchan:
        raise InputError(f"The {what} {name} has {companion.nchan} channels but the cube has {cube.nchan}: "
                         f"{_give(kind)} (or a single plane, which applies to every channel).")
    mine, theirs = cube.frequency_hz, companion.frequency_hz
    if mine is None or theirs is None or cube.nchan < 2:
        return
    width = float(np.median(np.abs(np.diff(mine))))
    if float(np.max(np.abs(theirs - mine))) > 0.5 * width:
        raise InputError(f"The {what} {name} has the cube's {cube.nchan} channels but at other frequencies "
                         f"({theirs[0] / 1e9:.6f}-{theirs[-1] / 1e9:.6f} GHz against the cube's "
                         f"{mine[0] / 1e9:.6f}-{mine[-1] / 1e9:.6f} GHz): {_give(kind)}.")


def _probed_planes(companion, kind: str):
    """(channel, plane) of up to ``PROBE_PLANES`` planes, read one at a time; infinite values refused."""
    for k in np.unique(np.linspace(0, companion.nchan - 1, min(companion.nchan, PROBE_PLANES)).astype(int)):
        plane = companion.channel(int(k))
        if np.isinf(plane).any():
            raise InputError(f"The {KINDS[kind]} {companion.path.name} holds infinite values (channel {k}): "
                             f"the file is damaged or not a .{kind} cube; {_give(kind)}.")
        yield int(k), plane


def _check_primary_beam(pb, cube) -> None:
    name, peak, seen = pb.path.name, 0.0, False
    for k, plane in _probed_planes(pb, "pb"):
        top = float(np.nanmax(plane)) if np.isfinite(plane).any() else 0.0
        if top > _PB_MAX:
            raise InputError(f"The primary-beam cube {name} has values up to {top:.4g} (channel {k}), but a "
                             "primary-beam response is at most 1: is it an image rather than its .pb cube? "
                             f"{_give('pb', start=True)}.")
        peak = max(peak, top)
        if top > 0 and not seen:
            seen = True
            lobe, beam = _main_lobe_px(plane), _beam_px(cube, k)
            if beam and lobe < _LOBE_FACTOR * beam:
                raise InputError(
                    f"The primary-beam cube {name} falls to half its peak within {lobe:.3g} pixels, about the size "
                    f"of the beam ({beam:.3g} px), where a primary beam spans many beams: is it the PSF or an "
                    f"image? {_give('pb', start=True)}.")
    if not peak > 0:
        raise InputError(f"The primary-beam cube {name} has no positive value (a primary beam is 1 at the "
                         f"pointing centre): {_give('pb')}.")


def _check_psf(psf, cube) -> None:
    name = psf.path.name
    for k, plane in _probed_planes(psf, "psf"):
        values = np.nan_to_num(plane, nan=0.0)
        if not values.max() > 0:
            continue  # a channel with no data (flagged): tclean leaves it empty
        iy, ix = np.unravel_index(np.argmax(values), values.shape)
        if abs(values[iy, ix] - 1.0) > _PSF_PEAK_TOLERANCE:
            raise InputError(f"The PSF cube {name} peaks at {values[iy, ix]:.4g} in channel {k}, where a PSF peaks at "
                             f"1: is it an image rather than its .psf cube? {_give('psf', start=True)}.")
        if math.hypot(ix - (psf.nx - 1) / 2, iy - (psf.ny - 1) / 2) > _PSF_CENTRE_PX:
            raise InputError(f"The PSF cube {name} peaks at pixel ({ix}, {iy}) in channel {k}, not at the centre "
                             "of its grid as a PSF does: is it an image rather than its .psf cube? "
                             f"{_give('psf', start=True)}.")
        lobe, beam = _main_lobe_px(plane), _beam_px(cube, k)
        if beam and not beam / _LOBE_FACTOR <= lobe <= beam * _LOBE_FACTOR:
            why = "far wider than a PSF's: is it the primary beam?" if lobe > beam else "far narrower:"
            raise InputError(f"The PSF cube {name}'s main lobe is {lobe:.3g} pixels across in channel {k} but the "
                             f"cube's beam is {beam:.3g} pixels, {why} {_give('psf', start=True)}.")


def _main_lobe_px(plane: np.ndarray) -> float:
    """The equivalent FWHM in pixels of the region above half the plane's peak that holds the
    peak: sqrt(4 area / pi), the geometric mean of the FWHMs for a Gaussian."""
    values = np.nan_to_num(np.asarray(plane, np.float64), nan=0.0)
    iy, ix = np.unravel_index(np.argmax(values), values.shape)
    labels, _ = scipy.ndimage.label(values >= 0.5 * values[iy, ix])
    return math.sqrt(4.0 * np.count_nonzero(labels == labels[iy, ix]) / math.pi)


def _beam_px(cube, channel: int) -> float | None:
    """The geometric-mean FWHM in pixels of the cube's beam in ``channel`` (None without a beam)."""
    beams = cube.beams
    if not beams:
        return None
    beam = beams[min(channel, len(beams) - 1)]
    return math.sqrt(beam.major_arcsec * beam.minor_arcsec / math.prod(cube.pixel_scale_arcsec))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False
