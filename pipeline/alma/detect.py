"""From a cube to a catalogue: the stages of Delli Veneri et al. (2022), one function each.

    integrated image --Blobs Finder--> source map --threshold, dilate, label--> boxes
    --box spectra--> Deep GRU --> denoised spectra --peaks--> emission ranges (blends)
    --focus--> focused images (significance cut) --ResNets--> sizes, angle, flux --> catalogue

:func:`detect` runs them (or a classic finder, same interface) and returns a catalogue in the
schema of :mod:`pipeline.alma.catalog`. Images larger than the Blobs Finder's 256 px are tiled
with overlap (the source maps merged by their maximum); smaller ones are padded. Long runs report
progress and stop at the next stage when ``cancel`` is set.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.ndimage
import scipy.optimize
import scipy.signal
from astropy.stats import mad_std

from pipeline.alma import classic
from pipeline.alma import measure as ms
from pipeline.alma import preprocess as pre
from pipeline.alma.catalog import make_catalog
from pipeline.alma.companions import dirty_beam_image, psf_peak
from pipeline.alma.gaussian import FWHM_PER_SIGMA
from pipeline.alma.noise import noise_of
from pipeline.alma.sidelobes import MAX_SIDELOBE, mark_sidelobes
from pipeline.alma.tasks import target_to_shape, target_to_value
from pipeline.alma.uncertainties import add_shape_errors
from pipeline.errors import Cancelled, InputError
from pipeline.provenance import PROVENANCE, file_sha256, provenance

MODELS_DIR = Path(__file__).resolve().parents[2] / "assets" / "models"
PIPELINE_TASKS = ("blobs_finder", "deep_gru", "resnet_shape", "resnet_flux")
BLOB_THRESHOLD = 0.15  # the paper's threshold on the Blobs Finder output
TILE_OVERLAP = 0.25  # of the tile side (64 px at 256)
PEAK_HEIGHT = 0.25  # emission peaks of the min-max GRU output: at least this high...
PEAK_PROMINENCE = 0.2  # ...and this prominent, to count as a separate line (a blend)
FOCUS_MIN_SNR = 5.0  # a candidate whose focused image peaks below this is dropped (4 let noise in
# on validation cubes: strict precision 0.89 against 1.0 at 5, with recall at SNR >= 5 unchanged)
#: spectral search: besides the whole band, the Blobs Finder looks at windows of these widths
#: (channels, each overlapping the next by half) and the maps are merged by their maximum. The
#: paper integrates the whole band only, where a narrow line drowns in the other channels'
#: noise (a 3-channel line at peak SNR 5 in 128 channels integrates to SNR ~1.4); a window near
#: the line's width keeps most of its signal and little noise. ``windows=()`` is the paper's search.
SEARCH_WINDOWS = (32, 8)
DECORAS_TASKS = ("decoras_bce", "decoras_msle")
#: the BCE network, trained on a sparse mask, is underconfident: on validation cubes its map
#: peaks at 0.4-0.45 on sources of integrated SNR >= 5 and its 99th percentile is below 0.1
#: (validation cubes, strict rule, SNR >= 5: 0.1 let false positives in, 0.2 lost recall)
DECORAS_BCE_THRESHOLD = 0.15
#: the MSLE network predicts the integrated image in units of its noise: 3 sigma (lower levels
#: merge neighbouring blobs, whose centres then miss the BCE blobs' by more than 3 px)
DECORAS_MSLE_THRESHOLD = 3.0
DECORAS_MATCH_PX = 3.0  # the ALMA paper keeps blobs that both DECORAS networks find within 3 px
DETECTORS = ("pipeline", "decoras", *classic.CLASSIC_DETECTORS)
RECENTRE_PX = 4  # focused cuts move to the source's centroid when it lies this close to the box's centre


@dataclass
class SourceFinder:
    """The trained networks of the pipeline, loaded once (from ``assets/models`` by default)."""

    blobs_finder: object  # torch modules; torch is imported only when networks are loaded or run
    deep_gru: object
    resnets: dict
    files: dict = field(default_factory=dict)  # task -> its model.pt, for the catalogue's provenance

    @classmethod
    def load(cls, folder=None) -> "SourceFinder":
        """The networks in ``folder`` (None: the shipped ``assets/models``), loaded once per file."""
        folder = MODELS_DIR if folder is None else folder
        loaded = load_networks(folder, PIPELINE_TASKS)
        return cls(loaded["blobs_finder"], loaded["deep_gru"],
                   {t.removeprefix("resnet_"): loaded[t] for t in PIPELINE_TASKS if t.startswith("resnet_")},
                   model_files(folder, PIPELINE_TASKS))


def model_files(folder, tasks) -> dict[str, Path]:
    """{task: ``folder/<task>/model.pt``}; InputError naming the training command if one is missing."""
    folder = Path(folder)
    files = {}
    for task in tasks:
        path = folder / task / "model.pt"
        if not path.is_file():
            raise InputError(f"The {task} network is missing ({path}). Train it with "
                             f"`python -m pipeline train {task} --out {folder / task} --steps N`.")
        files[task] = path
    return files


def load_networks(folder, tasks) -> dict:
    """{task: model} from ``folder/<task>/model.pt``, each file loaded once per process (again
    only when it changes) and shared by every cube and session; the networks only run, never learn."""
    loaded = {}
    for task, path in model_files(folder, tasks).items():
        stat = path.resolve().stat()
        loaded[task] = _load_network(path.resolve(), stat.st_size, stat.st_mtime_ns)
    return loaded


@functools.lru_cache(maxsize=16)
def _load_network(path: Path, size: int, mtime_ns: int):
    from pipeline.alma import models

    return models.load_checkpoint(path)[0]


# --- stage 1: where ----------------------------------------------------------------------------
def source_map(image: np.ndarray, blobs_finder, side: int | None = None) -> np.ndarray:
    """Blobs Finder (or DECORAS) output (ny, nx) in [0, 1] for an integrated image of any size
    (or a stack of them, (n, ny, nx) -> (n, ny, nx), run as one batch).

    Each 256 x 256 tile (overlapping by ``TILE_OVERLAP`` of its side, the last ones flush with the edges;
    padded with the image median when the image is smaller) is min-max scaled as in training;
    overlapping outputs are merged by their maximum.
    """
    import torch

    side = side or blobs_finder.image_size
    stack = np.asarray(image, np.float32)
    single = stack.ndim == 2
    stack = stack[None] if single else stack
    n, ny, nx = stack.shape
    pad_y, pad_x = max(0, side - ny), max(0, side - nx)
    filled = []
    for im in stack:
        fill = float(np.nanmedian(im)) if np.isfinite(im).any() else 0.0
        filled.append(np.pad(np.nan_to_num(im, nan=fill), ((0, pad_y), (0, pad_x)), constant_values=fill))
    stack = np.stack(filled)
    H, W = stack.shape[1:]
    stride = side - int(side * TILE_OVERLAP)
    starts = lambda length: sorted({*range(0, length - side, stride), length - side})  # noqa: E731
    tiles = [(y, x) for y in starts(H) for x in starts(W)]
    batch = np.stack([pre.minmax(im[y:y + side, x:x + side]) for im in stack for y, x in tiles])[:, None]
    with torch.no_grad():
        out = blobs_finder(torch.from_numpy(batch)).numpy()[:, 0].reshape(n, len(tiles), side, side)
    merged = np.zeros((n, H, W), np.float32)
    for k, (y, x) in enumerate(tiles):
        np.maximum(merged[:, y:y + side, x:x + side], out[:, k], out=merged[:, y:y + side, x:x + side])
    merged = merged[:, :ny, :nx]
    return merged[0] if single else merged


def search_windows(nchan: int, widths=SEARCH_WINDOWS) -> list[tuple[int, int]]:
    """Channel ranges (first, last) inclusive to integrate: the whole band, then for each width
    narrower than the band, windows of that width stepping by half of it (the last flush with
    the band's end)."""
    ranges = [(0, nchan - 1)]
    for width in sorted({int(w) for w in widths}, reverse=True):
        if not 2 <= width < nchan:
            continue
        step = max(1, width // 2)
        starts = sorted({*range(0, nchan - width, step), nchan - width})
        ranges.extend((z, z + width - 1) for z in starts)
    return ranges


def spectral_source_map(cube, network, windows=SEARCH_WINDOWS, side=None, step=None, batch: int = 8) -> np.ndarray:
    """:func:`source_map` of the integrated image over each of :func:`search_windows`, merged by
    the maximum; ``batch`` window images go through the network at once. ``step(stage)`` is
    called before each window (progress and cancel)."""
    ranges = search_windows(cube.nchan, windows)
    merged = np.zeros((cube.ny, cube.nx), np.float32)
    images = []
    for i, (first, last) in enumerate(ranges, start=1):
        if step is not None:
            step(f"{'whole band' if i == 1 else f'channels {first}-{last}'} ({i}/{len(ranges)})")
        image, _ = cube.moment0(first, last)
        if np.isfinite(image).any():
            images.append(image)
        if images and (len(images) == batch or i == len(ranges)):
            np.maximum(merged, source_map(np.stack(images), network, side).max(axis=0), out=merged)
            images = []
    return merged


def boxes_from_map(source_map: np.ndarray, threshold: float = BLOB_THRESHOLD) -> list[tuple[int, int, int, int, float]]:
    """The paper's boxes: threshold, 3x3 binary dilation, connected regions. Returns
    (x0, y0, x1, y1, score) per region (inclusive-exclusive), score = the map's maximum in it."""
    mask = scipy.ndimage.binary_dilation(source_map > threshold, structure=np.ones((3, 3), bool))
    labels, n = scipy.ndimage.label(mask)
    boxes = []
    for i, found in enumerate(scipy.ndimage.find_objects(labels), start=1):
        ys, xs = found
        score = float(source_map[ys, xs][labels[ys, xs] == i].max())
        boxes.append((xs.start, ys.start, xs.stop, ys.stop, score))
    return boxes


# --- stage 2: when -----------------------------------------------------------------------------
def box_spectra(cube, boxes) -> np.ndarray:
    """Spectrum summed inside each box, (n_boxes, nchan), NaN pixels ignored."""
    return np.stack([ms.box_spectrum(cube, box) for box in boxes]) if boxes else np.zeros((0, cube.nchan))


def denoise_spectra(spectra: np.ndarray, deep_gru) -> np.ndarray:
    """Deep GRU on the z-scored spectra: the clean spectra, min-max scaled, (n, nchan) in [0, 1]."""
    import torch

    if len(spectra) == 0:
        return np.zeros_like(spectra, np.float32)
    x = torch.from_numpy(np.stack([pre.standardise(s) for s in spectra]))
    with torch.no_grad():
        return deep_gru(x).numpy()


def emission_ranges(denoised: np.ndarray) -> list[tuple[int, int, int]]:
    """(peak, first, last + 1) channels of each line in a denoised spectrum.

    Peaks of the min-max scaled spectrum (scipy find_peaks with ``PEAK_HEIGHT`` and
    ``PEAK_PROMINENCE``); a Gaussian fitted around each gives its FWHM and the range is
    peak +- FWHM, as in the paper. At least the highest peak is returned.
    """
    s = pre.minmax(denoised)
    n = len(s)
    peaks, _ = scipy.signal.find_peaks(np.concatenate([[0.0], s, [0.0]]), height=PEAK_HEIGHT,
                                       prominence=PEAK_PROMINENCE)
    peaks = list(peaks - 1) or [int(np.argmax(s))]
    ranges = []
    channels = np.arange(n)
    for p in peaks:
        half = s[p] / 2
        lo, hi = p, p
        while lo > 0 and s[lo - 1] > half:
            lo -= 1
        while hi < n - 1 and s[hi + 1] > half:
            hi += 1
        fwhm0 = max(1.0, hi - lo + 1.0)
        window = slice(max(0, p - int(2 * fwhm0)), min(n, p + int(2 * fwhm0) + 1))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", scipy.optimize.OptimizeWarning)  # flat spectra: fallback below
                (amp, mu, sigma), _ = scipy.optimize.curve_fit(
                    lambda c, a, m, w: a * np.exp(-0.5 * ((c - m) / w) ** 2), channels[window], s[window],
                    p0=(s[p], p, fwhm0 / FWHM_PER_SIGMA), maxfev=2000)
            fwhm = float(np.clip(abs(sigma) * FWHM_PER_SIGMA, 1.0, n))
            centre = float(mu) if abs(mu - p) < fwhm else float(p)
        except (RuntimeError, ValueError):
            fwhm, centre = fwhm0, float(p)
        first = int(np.clip(math.floor(centre - fwhm), 0, n - 1))
        last = int(np.clip(math.ceil(centre + fwhm) + 1, first + 1, n))
        ranges.append((int(p), first, last))
    return ranges


# --- stage 3: focus and measure -----------------------------------------------------------------
def focused_image(cube, box, first: int, last: int, recentre: bool = True):
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


def focused_images(cube, box, windows, recentre: bool = True) -> list:
    """:func:`focused_image` over each (first, last) of ``windows``, the cube read once."""
    x0, y0, x1, y1 = box[:4]
    cx0, cy0 = int(round((x0 + x1 - 1) / 2)), int(round((y0 + y1 - 1) / 2))
    side = pre.FOCUS_SIZE
    reach = side // 2 + (RECENTRE_PX + 1 if recentre else 0)
    xs = slice(max(0, cx0 - reach), min(cube.nx, cx0 + reach))
    ys = slice(max(0, cy0 - reach), min(cube.ny, cy0 + reach))
    start, stop = min(a for a, _ in windows), max(b for _, b in windows)
    block = np.nan_to_num(np.asarray(cube.data[start:stop, ys, xs], np.float64))
    sums = np.concatenate([np.zeros((1, *block.shape[1:])), np.cumsum(block, axis=0)])
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


def corrected_level(min_snr: float, looks: float) -> float:
    """The SNR whose (Gaussian) false-alarm probability is 1/``looks`` of ``min_snr``'s: the cut
    for each of that many looks at the noise (Bonferroni; 5.26 sigma for 4 looks at 5)."""
    from scipy.stats import norm

    return float(norm.isf(norm.sf(min_snr) / max(1.0, looks)))


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
    :func:`examples.beam_image_px`, or the dirty beam, :func:`companions.dirty_beam_image`):
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


# --- the whole pipeline ------------------------------------------------------------------------
def detect_pipeline(cube, finder: SourceFinder | None = None, progress=None, cancel: threading.Event | None = None,
                    min_snr: float = FOCUS_MIN_SNR, windows=SEARCH_WINDOWS, threshold: float = BLOB_THRESHOLD,
                    psf=None):
    """The deep pipeline on ``cube`` (``psf``: its PSF cube, opened, or None); returns the
    catalogue (astropy Table)."""
    finder = finder or SourceFinder.load()
    step = _stepper(progress, cancel, total=3 + len(search_windows(cube.nchan, windows)))
    step("integrated image")
    ms.integrated_image(cube)  # checks the cube can be searched (channels, beam, size, data)
    found = spectral_source_map(cube, finder.blobs_finder, windows, step=lambda w: step(f"Blobs Finder, {w}"))
    boxes = boxes_from_map(found, threshold)
    step("Deep GRU, focusing and ResNets")
    rows = characterise(cube, boxes, finder, min_snr, cancel, psf)
    step("catalogue")
    return make_catalog(rows, cube, "pipeline")


def characterise(cube, boxes, finder: SourceFinder, min_snr: float = FOCUS_MIN_SNR, cancel=None,
                 psf=None) -> list[dict]:
    """Stages 2 and 3 on the Blobs Finder's boxes: catalogue rows (brightest first), one per
    emission range whose focused image reaches ``min_snr``. The shape ResNet is told the beam:
    with ``psf`` (the PSF cube) the dirty beam over each line's channels, without it the fitted
    Gaussian beam. The dirty beam's near sidelobes make a source about a beam across look
    narrower than the Gaussian beam would (CASA-made cubes, 10-40 minute tracks)."""
    denoised = denoise_spectra(box_spectra(cube, boxes), finder.deep_gru)
    kms = cube.channel_width()["kms"] or ms.kms_per_channel_factor(cube)
    beam_major, beam_minor, beam_theta = ms.beam_on_grid(cube)
    gaussian_beam = pre.beam_image_px(beam_major, beam_minor, beam_theta)
    psf_centre = psf_peak(psf) if psf is not None else None  # read once, not for every line
    rows = []
    for box, spectrum in zip(boxes, denoised):
        if cancel is not None and cancel.is_set():
            raise Cancelled("detection cancelled")
        lines = emission_ranges(spectrum)
        for peak, first, last in lines:
            beam = gaussian_beam if psf is None else dirty_beam_image(psf, first, last, pre.FOCUS_SIZE, psf_centre)
            windows = line_windows(peak, first, last)
            # the line's two wings, for blends: a neighbour whose line is offset from this one's
            # stands out on its side of the peak (below, it may be only a shoulder of the source)
            wings = [w for w in ((first, peak), (peak + 1, last)) if w[1] - w[0] >= 2]
            images = focused_images(cube, box, windows + wings)
            images, wing_images = images[:len(windows)], images[len(windows):]
            row = _line_row(images, finder, beam, min_snr, kms)
            if row is None:
                continue
            line = {"z": peak, "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3], "z0": first, "z1": last,
                    "score": box[4], "blended": len(lines) > 1}
            found = [{**row, **line}]
            searched = [images[0], *wing_images]
            candidates = [peak_xy for image, _, at in searched
                          for peak_xy in blend_peaks(image, at, box, (row["x"], row["y"]), beam_major,
                                                     beam_minor, min_snr, looks=len(searched))]
            for x, y in candidates:
                if any(math.hypot(x - r["x"], y - r["y"]) < beam_major for r in found):
                    continue
                ix, iy = int(round(x)), int(round(y))
                other = _line_row(focused_images(cube, (ix - 2, iy - 2, ix + 3, iy + 3), windows), finder, beam,
                                  min_snr, kms)
                if other is not None:
                    # its own peak's position: a centroid leans towards the brighter neighbour
                    found[0]["blended"] = True
                    found.append({**other, **line, "x": x, "y": y, "blended": True})
            rows += found
    rows.sort(key=lambda r: -r["snr"])
    return rows


def _line_row(images, finder, beam, min_snr, kms) -> dict | None:
    """Position, significance and the ResNets' measurements of one line from its focused images
    (:func:`focused_images` over :func:`line_windows`), or None if it is not significant."""
    looks = [(focused_snr(image), centroid(image, at)) for image, _, at in images]
    if not significant([snr for snr, _ in looks], min_snr):
        return None
    snr, (x, y) = max(looks)
    focused, rms, _ = images[0]  # the emission range, as the ResNets were trained
    params = measure(focused, finder.resnets, beam)
    # the flux ResNet was trained on (sky flux in Jy x channels) / (focused-image rms in
    # Jy/beam x channels): times the measured rms and the channel width, Jy km/s
    return {"x": x, "y": y, "fwhm_x": params["fwhm_major"], "fwhm_y": params["fwhm_minor"], "pa": params["pa"],
            "flux": params["flux"] * rms * kms, "snr": snr}


def blend_peaks(focused: np.ndarray, centre, box, source, beam_major_px: float, beam_minor_px: float,
                min_snr: float = FOCUS_MIN_SNR, looks: int = 1):
    """Other sources in one box and line: local maxima of the focused image inside the box, at
    least a beam (``beam_major_px``) from ``source`` (x, y), that reach ``MAX_SIDELOBE`` of the
    source's peak in this image (fainter, they could be its sidelobe) and ``min_snr`` corrected for the
    box's beams times ``looks``, the images searched (:func:`corrected_level`, each a look at the
    noise: 5.26 sigma for 4 at 5). Cube (x, y) to a fraction of a pixel, brightest first. The
    Blobs Finder gives sources closer than its dilated footprints one box, and the Deep GRU one
    line when their lines overlap: on CASA-made cubes a source of SNR 5.5 eight pixels from one of
    14 was lost so (over the whole line it is a shoulder of its neighbour; over the line's upper
    wing, where its own line peaks, a peak of its own)."""
    side = focused.shape[0]
    beams = (box[2] - box[0]) * (box[3] - box[1]) / (1.1331 * beam_minor_px * beam_major_px)
    # the source's own peak here: a wing's cut may be centred on the neighbour instead
    sx, sy = (int(round(v - c + side // 2)) for v, c in zip(source, centre))
    own = focused[max(sy - 1, 0):max(sy + 2, 0), max(sx - 1, 0):max(sx + 2, 0)]
    peak = max(focused_snr(focused), float(own.max()) if own.size else 0.0)
    level = max(corrected_level(min_snr, beams * looks), MAX_SIDELOBE * peak)
    peaks = (focused >= level) & (focused == scipy.ndimage.maximum_filter(focused, size=3))
    out = []
    for iy, ix in zip(*np.nonzero(peaks)):
        if not (0 < ix < side - 1 and 0 < iy < side - 1):
            continue
        # the peak to a fraction of a pixel: the centroid of its 3 x 3 pixels above their minimum
        w = focused[iy - 1:iy + 2, ix - 1:ix + 2]
        w = w - w.min()
        dy, dx = (float((w * g).sum() / w.sum()) for g in np.mgrid[-1:2, -1:2]) if w.sum() > 0 else (0.0, 0.0)
        x, y = centre[0] + ix + dx - side // 2, centre[1] + iy + dy - side // 2
        if box[0] <= x < box[2] and box[1] <= y < box[3] and math.hypot(x - source[0], y - source[1]) >= beam_major_px:
            out.append((float(focused[iy, ix]), x, y))
    return [(x, y) for _, x, y in sorted(out, reverse=True)]


def detect_decoras(cube, networks: dict | None = None, progress=None, cancel=None, min_snr: float = 5.0,
                   windows=SEARCH_WINDOWS, bce_threshold: float = DECORAS_BCE_THRESHOLD,
                   msle_threshold: float = DECORAS_MSLE_THRESHOLD):
    """DECORAS as the ALMA paper re-implemented it: the BCE (detection) and MSLE (brightness)
    networks on the integrated image, blobs of each map (above ``bce_threshold`` and
    ``msle_threshold``), kept where both find one within 3 px. Each kept blob is measured like a
    classic finder's segment, but on the image over its own line: the line from the box
    spectrum, then intensity centroid, second moments deconvolved from the beam and flux.
    It searches the same spectral windows as the pipeline (``windows=()``: the whole band only,
    as in the paper), so the two compare as networks, not as searches."""
    networks = networks or load_networks(MODELS_DIR, DECORAS_TASKS)
    n_windows = len(search_windows(cube.nchan, windows))
    step = _stepper(progress, cancel, total=2 + 2 * n_windows)
    step("integrated image")
    ms.integrated_image(cube)  # checks the cube can be searched (channels, beam, size, data)
    bce = spectral_source_map(cube, networks["decoras_bce"], windows, side=256,
                              step=lambda w: step(f"DECORAS BCE, {w}"))
    msle = spectral_source_map(cube, networks["decoras_msle"], windows, side=256,
                               step=lambda w: step(f"DECORAS MSLE, {w}")) > msle_threshold
    labels, _ = scipy.ndimage.label(bce > bce_threshold)
    msle_labels, m = scipy.ndimage.label(msle)
    msle_centres = np.array(scipy.ndimage.center_of_mass(msle, msle_labels, range(1, m + 1))).reshape(-1, 2)
    step("measuring")
    rows = []
    yy, xx = np.mgrid[0:cube.ny, 0:cube.nx]
    for i, (ys, xs) in enumerate(scipy.ndimage.find_objects(labels), start=1):
        blob = labels == i
        y, x = scipy.ndimage.center_of_mass(bce * blob)
        if not len(msle_centres) or np.min(np.hypot(msle_centres[:, 0] - y, msle_centres[:, 1] - x)) > DECORAS_MATCH_PX:
            continue
        box = (xs.start, ys.start, xs.stop, ys.stop)
        _, z0, z1 = ms.emission_range(ms.box_spectrum(cube, box), 0, cube.nchan - 1)
        z0, z1 = min(z0, cube.nchan - 2), max(z1, min(z0, cube.nchan - 2) + 2)  # at least 2 channels
        line = ms.integrated_image(cube, z0, z1 - 1)
        w = np.clip(np.nan_to_num(line.image - line.background), 0, None) * blob
        if w.sum() <= 0:
            continue
        # the blob is the network's footprint, cut where it fades: its moments shrink the source
        # (sizes deconvolved to zero); fit the line image around it instead
        half = int(math.ceil(2 * max(line.beam_fwhm_px[0], 0.5 * max(xs.stop - xs.start, ys.stop - ys.start))))
        cov = ms.fit_covariance(line.image - line.background, x, y, line.beam_covariance, half)
        row = ms.catalog_row(cube, line, x, y, box, ms.deconvolve(cov, line.beam_covariance),
                             float(w.sum()) * line.flux_per_sum, 0.0, False, 2.0)
        # significance and position from the focused image over the line, as the pipeline's focusing
        focused, _, centre = focused_image(cube, (row["x0"], row["y0"], row["x1"], row["y1"]), row["z0"], row["z1"])
        row["snr"] = row["score"] = focused_snr(focused)
        if row["snr"] < min_snr:
            continue
        row["x"], row["y"] = centroid(focused, centre)
        rows.append(row)
    rows.sort(key=lambda r: -r["snr"])
    return make_catalog(rows, cube, "decoras")


@dataclass
class SourceView:
    """What a user inspects of one catalogued source: its box spectrum (cube unit, summed), the
    Deep GRU's denoised spectrum (min-max, when the networks are at hand), the emission ranges
    found in it, and the focused image over the source's own range (units of its rms)."""

    raw_spectrum: np.ndarray
    denoised_spectrum: np.ndarray | None
    ranges: list
    focused: np.ndarray


def inspect_source(cube, row, finder: SourceFinder | None = None) -> SourceView:
    """The :class:`SourceView` of catalogue ``row`` (anything indexable by column name)."""
    box = (int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))
    raw = box_spectra(cube, [box])[0]
    denoised = denoise_spectra(raw[None], finder.deep_gru)[0] if finder is not None else None
    ranges = emission_ranges(denoised) if denoised is not None else [(int(row["z"]), int(row["z0"]), int(row["z1"]))]
    focused, _, _ = focused_image(cube, box, int(row["z0"]), int(row["z1"]))
    return SourceView(raw, denoised, ranges, focused)


def detect(cube, detector: str = "pipeline", progress=None, cancel=None, pb=None, psf=None,
           keep_sidelobes: bool = False, models=None, **options):
    """Detect sources in an open cube with ``detector`` (``DETECTORS``); a catalogue Table.

    ``models``: the folder of trained networks (``<task>/model.pt``; default ``assets/models``),
    for the pipeline and DECORAS; each network is loaded once per process (:func:`load_networks`).
    ``pb``, ``psf``: the cube's primary-beam and PSF cubes, opened and checked by
    :func:`pipeline.alma.companions.open_companion`, or None. With ``pb`` the fluxes are divided
    by the primary-beam response at each source (:func:`~pipeline.alma.companions.correct_fluxes`);
    without it the catalogue says they are uncorrected. Every finder's catalogue then goes through
    the sidelobe check (:func:`~pipeline.alma.sidelobes.mark_sidelobes`), which uses ``psf``, the
    real dirty beam, when given (as does the pipeline's shape ResNet); probable sidelobes are
    dropped unless ``keep_sidelobes``. Sizes and angles get their errors from the noise and the
    beam, and a ``resolved`` flag (:func:`~pipeline.alma.uncertainties.add_shape_errors`).
    The catalogue's ``meta["provenance"]`` records the detector, its options, the cube and its
    companions, and the SHA-256 of every network file used.
    """
    folder = Path(models) if models is not None else MODELS_DIR
    files = {}
    if detector == "pipeline":
        finder = options.pop("finder", None) or SourceFinder.load(folder)
        files = finder.files
        catalog = detect_pipeline(cube, finder, progress=progress, cancel=cancel, psf=psf, **options)
    elif detector == "decoras":
        networks = options.pop("networks", None)
        if networks is None:
            files, networks = model_files(folder, DECORAS_TASKS), load_networks(folder, DECORAS_TASKS)
        catalog = detect_decoras(cube, networks, progress=progress, cancel=cancel, **options)
    elif detector in classic.CLASSIC_DETECTORS:
        step = _stepper(progress, cancel, total=1)
        step(detector)
        catalog = classic.CLASSIC_DETECTORS[detector](cube, **options)
    else:
        raise InputError(f"Unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}.")
    if cancel is not None and cancel.is_set():
        raise Cancelled("detection cancelled")
    catalog = mark_sidelobes(add_shape_errors(catalog, cube), cube, psf, keep=keep_sidelobes)
    if pb is not None:
        from pipeline.alma.companions import correct_fluxes

        catalog = correct_fluxes(catalog, pb)
    catalog.meta[PROVENANCE] = provenance(
        detector=detector, cube=Path(cube.path).name, options={**options, "keep_sidelobes": keep_sidelobes},
        **{kind: Path(c.path).name for kind, c in (("pb", pb), ("psf", psf)) if c is not None},
        **({"models": {task: file_sha256(path) for task, path in files.items()}} if files else {}))
    return catalog


def _stepper(progress, cancel, total):
    done = [0]

    def step(stage):
        if cancel is not None and cancel.is_set():
            raise Cancelled("detection cancelled")
        if progress is not None:
            progress(stage, done[0], total)
        done[0] += 1

    return step
