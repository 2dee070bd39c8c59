"""Stage 3 of the pipeline: focusing. A candidate's line integrated over its own channels in a
64 x 64 cut centred on it, in units of its noise; its significance over the windows searched; the
ResNets' sizes, angle and flux; the centroid."""

from __future__ import annotations

import functools

import numpy as np
import scipy.ndimage
from astropy.stats import mad_std

from pipeline.alma import preprocess as pre
from pipeline.alma.cube import Cube, running_sums
from pipeline.alma.noise import noise_of
from pipeline.alma.tasks import target_to_shape, target_to_value

RECENTRE_PX = 4  # focused cuts move to the source's centroid when it lies this close to the box's centre
#: the search the 5-sigma cut was chosen on (beams x channels): the paper's 256 x 256 x 128 cubes at
#: 0.1"/px and a beam of about 0.57" x 0.68" (44 px), 1,490 beams; there a noise-only cube gave one
#: false positive at 5 sigma, and a 1024 x 1024 x 512 one nine (5.2-5.6 sigma)
REFERENCE_TRIALS = 1490 * 128


def focused_image(cube: Cube, box, first: int, last: int, recentre: bool = True):
    """The cube integrated over channels first..last-1 only, in a 64 x 64 cut centred on the
    source: on the box's centre, then (``recentre``) on the source's centroid (:func:`centroid`)
    within ``RECENTRE_PX`` of it, as the ResNets were trained (cuts centred on the true position
    to within half a pixel; a Blobs Finder box is off by a pixel or two).

    Returns (image in units of its noise rms, rms (cube unit x channels), (x, y) of the cut's
    centre pixel, integers). The rms is measured on the whole image integrated over the same
    channels (:func:`noise.noise_of`, measured once per opened cube), so that the focused SNR is
    in the same units on any cube. NaN count as empty.
    """
    return focused_images(cube, box, [(first, last)], recentre)[0]


def focused_images(cube: Cube, box, windows, recentre: bool = True) -> list:
    """:func:`focused_image` over each (first, last) of ``windows``, the cube read once."""
    x0, y0, x1, y1 = box[:4]
    cx0, cy0 = int(round((x0 + x1 - 1) / 2)), int(round((y0 + y1 - 1) / 2))
    side = pre.FOCUS_SIZE
    reach = side // 2 + (RECENTRE_PX + 1 if recentre else 0)
    xs = slice(max(0, cx0 - reach), min(cube.nx, cx0 + reach))
    ys = slice(max(0, cy0 - reach), min(cube.ny, cy0 + reach))
    start, stop = min(a for a, _ in windows), max(b for _, b in windows)
    sums = running_sums(np.nan_to_num(np.concatenate([b for _, b in cube.blocks(start, stop, ys, xs)])), np.float64)
    out = []
    for first, last in windows:
        image = (sums[last - start] - sums[first - start]).astype(np.float32)
        rms = noise_of(cube)(first, last)
        if not rms > 0:
            rms = float(mad_std(image)) or float(np.std(image)) or 1.0
        cx, cy = cx0, cy0
        cut = pre.crop(image, cx - xs.start, cy - ys.start, side) / rms
        if recentre:
            x, y = (int(round(v)) for v in centroid(cut, (cx, cy)))
            if (x, y) != (cx, cy) and max(abs(x - cx), abs(y - cy)) <= RECENTRE_PX:
                cx, cy = x, y
                cut = pre.crop(image, cx - xs.start, cy - ys.start, side) / rms
        out.append((cut, rms, (cx, cy)))
    return out


def line_windows(peak: int, first: int, last: int) -> list[tuple[int, int]]:
    """Channel windows a line's significance is measured over: its emission range and the
    windows of half-width 1, 2, 4, ... channels about its peak inside it. The Deep GRU's range
    (+- its FWHM) is wide for a narrow line, whose signal then drowns in the range's noise: on
    CASA-made cubes a 2-channel line at peak SNR 6 focused to SNR 4.7 over the 11 channels the
    range gave it, and to 6 over its own 3. The significance is tested on every window
    (:func:`significant`); the ResNets measure on the emission range, as they were trained."""
    windows = [(first, last)]
    half = 1
    while 2 * half + 1 < last - first:
        windows.append((max(first, peak - half), min(last, peak + half + 1)))
        half *= 2
    return windows


@functools.lru_cache(maxsize=1024)
def corrected_level(min_snr: float, looks: float) -> float:
    """The SNR whose (Gaussian) false-alarm probability is 1/``looks`` of ``min_snr``'s: the cut
    for each of that many looks at the noise (Bonferroni; 5.26 sigma for 4 looks at 5).
    Remembered: scipy.stats takes 0.1 ms a call, and every line of every box asks."""
    from scipy.stats import norm

    return float(norm.isf(norm.sf(min_snr) / max(1.0, looks)))


def search_trials(cube: Cube) -> float:
    """How many independent places a search of ``cube`` looks at: the beams in its image times its
    channels."""
    from pipeline.alma.gaussian import gaussian_area
    from pipeline.alma.measure import beam_on_grid

    major, minor, _ = beam_on_grid(cube)
    return cube.nx * cube.ny / gaussian_area(major, minor) * cube.nchan


def cube_level(cube: Cube, min_snr: float) -> float:
    """The focused SNR a candidate must reach in ``cube``: ``min_snr`` for a search no larger than
    the one it was chosen on (``REFERENCE_TRIALS``), else raised (:func:`corrected_level`) by how
    many times larger the search is, so that a cube 16 times larger does not bring 16 times more
    noise peaks above it (5.51 sigma for 16 at 5): the same expected false positives per cube at
    any size."""
    larger = search_trials(cube) / REFERENCE_TRIALS
    return corrected_level(min_snr, larger) if np.isfinite(min_snr) and larger > 1 else min_snr


def significance_note(cube: Cube, min_snr: float, level: float) -> str:
    """What a catalogue's meta says of the cut it was made with (``significance``)."""
    if not level > min_snr:
        return f"focused SNR >= {min_snr:g}"
    return (f"focused SNR >= {level:.2f}: {min_snr:g} for a search of up to {REFERENCE_TRIALS:,} beams x channels, "
            f"raised for this cube's {search_trials(cube):,.0f}")


def significant(snrs, min_snr: float) -> bool:
    """Whether a line passes, from the focused SNR over its emission range (``snrs[0]``, held to
    ``min_snr`` as in the paper) and over the narrower :func:`line_windows` (``snrs[1:]``): k more
    looks at the noise, so each is held to :func:`corrected_level` (5.26 sigma for 4 windows at
    5), and the extra windows add no false detections. (On held-out simulations, untouched
    windows let three noise peaks of 5.0-5.2 sigma in.)"""
    narrow = snrs[1:]
    return snrs[0] >= min_snr or (bool(narrow) and max(narrow) >= corrected_level(min_snr, len(narrow)))


def focused_snr(focused: np.ndarray) -> float:
    """Significance of a focused image: its peak within 4 px of the centre, in noise rms."""
    c = pre.FOCUS_SIZE // 2
    return float(focused[c - 4:c + 5, c - 4:c + 5].max())


def measure(focused: np.ndarray, resnets, beam: np.ndarray) -> dict:
    """The ResNets on one focused image and the beam image (the fitted beam,
    :func:`preprocess.beam_image_px`, or the dirty beam, :func:`companions.dirty_beam_image`):
    fwhm_major, fwhm_minor (intrinsic, px), pa (the major axis, deg counter-clockwise from +x,
    in [0, 180); the catalogue calls a round source's angle undefined), flux (x rms, cube unit x
    channels x px)."""
    import torch

    shape_input = torch.from_numpy(np.stack([pre.minmax(focused), np.asarray(beam, np.float32)])[None])
    flux_input = torch.from_numpy(np.asarray(focused, np.float32)[None, None])
    with torch.no_grad():
        major, minor, pa, _ = target_to_shape(resnets["shape"](shape_input).numpy())
        flux = float(target_to_value("flux", resnets["flux"](flux_input).numpy()[0, 0]))
    return {"fwhm_major": float(major[0]), "fwhm_minor": float(minor[0]), "pa": float(pa[0]), "flux": flux}


def centroid(focused: np.ndarray, centre, level: float = 3.0):
    """Intensity-weighted centroid (x, y in the cube) of the focused pixels above ``level`` rms
    and above half the peak, connected to the highest local maximum within 4 px of the cut's
    centre (not a brighter neighbour's wing) and within ``RECENTRE_PX`` of it; the centre itself
    if none. Half the peak and the distance keep the centroid on the source's own core when a
    neighbour blends with it (on held-out cubes a blend's 3-sigma region put it 4 px off, or on
    a brighter neighbour 11 px away)."""
    side = focused.shape[0]
    c = side // 2
    near = focused[c - 4:c + 5, c - 4:c + 5]
    around = focused[c - 5:c + 6, c - 5:c + 6]  # the 3 x 3 neighbourhoods of ``near``'s pixels
    peaks = np.where(near == scipy.ndimage.maximum_filter(around, size=3)[1:-1, 1:-1], near, -np.inf)
    py, px = np.unravel_index(np.argmax(peaks if np.isfinite(peaks).any() else near), near.shape)
    py, px = py + c - 4, px + c - 4
    labels, _ = scipy.ndimage.label(focused > max(level, focused[py, px] / 2))
    if not labels[py, px]:
        return centre
    region = labels == labels[py, px]
    core = np.zeros_like(region)
    core[max(0, py - RECENTRE_PX):py + RECENTRE_PX + 1, max(0, px - RECENTRE_PX):px + RECENTRE_PX + 1] = True
    region &= core
    w = focused * region
    yy, xx = np.mgrid[0:side, 0:side]
    return (centre[0] + float((w * xx).sum() / w.sum()) - c, centre[1] + float((w * yy).sum() / w.sum()) - c)
