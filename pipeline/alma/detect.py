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

import math
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage
import scipy.optimize
import scipy.signal

from pipeline.alma import classic
from pipeline.alma import measure as ms
from pipeline.alma import preprocess as pre
from pipeline.alma.catalog import make_catalog
from pipeline.alma.companions import dirty_beam_image, psf_peak
from pipeline.alma.cube import Cube
from pipeline.alma.decoras import detect_decoras
from pipeline.alma.focus import (
    centroid,
    corrected_level,
    cube_level,
    focused_image,
    focused_images,
    focused_snr,
    line_windows,
    measure,
    significance_note,
    significant,
)
from pipeline.alma.gaussian import FWHM_PER_SIGMA, gaussian_area
from pipeline.alma.networks import DECORAS_TASKS, MODELS_DIR, SourceFinder, load_networks, model_files
from pipeline.alma.sidelobes import MAX_SIDELOBE, mark_sidelobes
from pipeline.alma.source_maps import (
    BLOB_THRESHOLD,
    DEFAULT_MEMORY,
    SEARCH_WINDOWS,
    boxes_from_map,
    spectral_source_map,
    steps_per_map,
)
from pipeline.alma.uncertainties import add_shape_errors
from pipeline.errors import InputError
from pipeline.progress import Steps, check_cancel
from pipeline.provenance import PROVENANCE, file_sha256, provenance

PEAK_HEIGHT = 0.25  # emission peaks of the min-max GRU output: at least this high...
PEAK_PROMINENCE = 0.2  # ...and this prominent, to count as a separate line (a blend)
FOCUS_MIN_SNR = 5.0  # a candidate whose focused image peaks below this is dropped (4 let noise in
# on validation cubes: strict precision 0.89 against 1.0 at 5, with recall at SNR >= 5 unchanged)
DETECTORS = ("pipeline", "decoras", *classic.CLASSIC_DETECTORS)
GRU_BATCH = 256  # box spectra through the Deep GRU at once (2.3 s for 1,500 of 512 channels; 3.1 at 64)
BOX_THREADS = 2  # boxes focused and measured side by side
PREVIEW_SECONDS = 1.0  # candidates shown while the Blobs Finder searches, at most this often


# --- stage 2: when -----------------------------------------------------------------------------
def denoise_spectra(spectra: np.ndarray, deep_gru, cancel=None) -> np.ndarray:
    """Deep GRU on the z-scored spectra: the clean spectra, min-max scaled, (n, nchan) in [0, 1],
    ``GRU_BATCH`` at a time (the GRU's working memory grows with the batch: 1.2 GB for a few
    hundred boxes of 512 channels)."""
    import torch

    out = np.zeros(np.shape(spectra), np.float32)
    for i in range(0, len(spectra), GRU_BATCH):
        check_cancel(cancel, "detection")
        x = torch.from_numpy(np.stack([pre.standardise(s) for s in spectra[i:i + GRU_BATCH]]))
        with torch.no_grad():
            out[i:i + GRU_BATCH] = deep_gru(x).numpy()
    return out


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


# --- the whole pipeline ------------------------------------------------------------------------
def detect_pipeline(cube: Cube, finder: SourceFinder | None = None, progress=None,
                    cancel: threading.Event | None = None, min_snr: float = FOCUS_MIN_SNR, windows=SEARCH_WINDOWS,
                    threshold: float = BLOB_THRESHOLD, psf: Cube | None = None, memory: float = DEFAULT_MEMORY,
                    scheduler: str = "synchronous", preview=None, parts=None):
    """The deep pipeline on ``cube`` (``psf``: its PSF cube, opened, or None) within ``memory``
    bytes, the Blobs Finder in this process or on Dask (``scheduler``;
    :func:`~pipeline.alma.source_maps.spectral_source_map`); returns the catalogue (astropy Table).
    ``preview(boxes)`` is called (from this thread, at most every ``PREVIEW_SECONDS``) with the
    boxes (x0, y0, x1, y1, score) of the Blobs Finder's map so far, as its tiles finish, and with
    all of them when it is done: the candidates before the spectral check and the significance cut."""
    finder = finder or SourceFinder.load()
    side = finder.blobs_finder.image_size
    step = Steps(progress, cancel, 3 + steps_per_map(cube, side, windows, memory, scheduler), "detection")
    step("channel noise")
    ms.check_searchable(cube, data=True, cancel=cancel)
    found = spectral_source_map(cube, finder.blobs_finder, windows, step=lambda w: step(f"Blobs Finder, {w}"),
                                memory=memory, scheduler=scheduler, network_file=finder.files.get("blobs_finder"),
                                cancel=cancel, on_map=_previewer(preview, threshold), parts=parts)
    boxes = boxes_from_map(found, threshold)
    if preview is not None:
        preview(boxes)  # all of them, while the spectral check runs
    step("Deep GRU, focusing and ResNets")
    level = cube_level(cube, min_snr)
    rows = characterise(cube, boxes, finder, level, cancel, psf)
    step("catalogue")
    catalog = make_catalog(rows, cube, "pipeline")
    catalog.meta["significance"] = significance_note(cube, min_snr, level)
    return catalog


def _previewer(preview, threshold: float):
    """The ``on_map`` of :func:`spectral_source_map` that calls ``preview(boxes)`` at most every
    ``PREVIEW_SECONDS``, or None without a ``preview``."""
    if preview is None:
        return None
    last = -math.inf

    def on_map(found):
        nonlocal last
        if time.monotonic() - last >= PREVIEW_SECONDS:
            last = time.monotonic()
            preview(boxes_from_map(found, threshold))
    return on_map


def characterise(cube: Cube, boxes, finder: SourceFinder, min_snr: float = FOCUS_MIN_SNR, cancel=None,
                 psf: Cube | None = None) -> list[dict]:
    """Stages 2 and 3 on the Blobs Finder's boxes: catalogue rows (brightest first), one per
    emission range whose focused image reaches ``min_snr``. The shape ResNet is told the beam:
    with ``psf`` (the PSF cube) the dirty beam over each line's channels, without it the fitted
    Gaussian beam. The dirty beam's near sidelobes make a source about a beam across look
    narrower than the Gaussian beam would (CASA-made cubes, 10-40 minute tracks)."""
    denoised = denoise_spectra(ms.box_spectra(cube, boxes, cancel), finder.deep_gru, cancel)
    focusing = _Focusing(cube, finder, min_snr, psf, cancel)
    # boxes side by side: reads, convolutions and the ResNets let go of the GIL (a third faster on 2 cores)
    with ThreadPoolExecutor(BOX_THREADS) as pool:
        rows = [row for found in pool.map(focusing.box_rows, boxes, denoised) for row in found]
    rows.sort(key=lambda r: -r["snr"])
    return rows


class _Focusing:
    """What :func:`characterise` measures every box with: the cube, the networks, the cut, the beam."""

    def __init__(self, cube: Cube, finder: SourceFinder, min_snr: float, psf: Cube | None, cancel):
        self.cube, self.finder, self.min_snr, self.psf, self.cancel = cube, finder, min_snr, psf, cancel
        self.kms = cube.channel_width()["kms"] or ms.kms_per_channel_factor(cube)
        self.beam_major, self.beam_minor, theta = ms.beam_on_grid(cube)
        self.gaussian_beam = pre.beam_image_px(self.beam_major, self.beam_minor, theta)
        self.psf_centre = psf_peak(psf) if psf is not None else None  # read once, not for every line

    def box_rows(self, box, spectrum) -> list[dict]:
        """The catalogue rows of one box from its denoised spectrum: its significant lines, and
        the fainter sources blended with them."""
        check_cancel(self.cancel, "detection")
        self.cube.release_pages()  # what the last box read
        lines = emission_ranges(spectrum)
        rows = []
        for peak, first, last in lines:
            beam = self.gaussian_beam if self.psf is None else dirty_beam_image(
                self.psf, first, last, pre.FOCUS_SIZE, self.psf_centre)
            windows = line_windows(peak, first, last)
            images = focused_images(self.cube, box, windows)
            row = line_row(images, self.finder, beam, self.min_snr, self.kms)
            if row is not None:
                line = {"z": peak, "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3], "z0": first, "z1": last,
                        "score": box[4], "blended": len(lines) > 1}
                rows += self.with_blends({**row, **line}, box, images[0], windows, beam)
        return rows

    def with_blends(self, found: dict, box, focused, windows, beam) -> list[dict]:
        """``found`` and the sources blended with it in its box: peaks of its focused image and of
        its line's two wings (a neighbour whose line is offset from this one's stands out on its side
        of the peak; below, it may be only a shoulder of the source) that are significant themselves."""
        first, peak, last = found["z0"], found["z"], found["z1"]
        wings = [w for w in ((first, peak), (peak + 1, last)) if w[1] - w[0] >= 2]
        searched = [focused, *(focused_images(self.cube, box, wings) if wings else [])]
        candidates = [peak_xy for image, _, at in searched
                      for peak_xy in blend_peaks(image, at, box, (found["x"], found["y"]), self.beam_major,
                                                 self.beam_minor, self.min_snr, looks=len(searched))]
        rows = [found]
        for x, y in candidates:
            if any(math.hypot(x - r["x"], y - r["y"]) < self.beam_major for r in rows):
                continue
            ix, iy = int(round(x)), int(round(y))
            other = line_row(focused_images(self.cube, (ix - 2, iy - 2, ix + 3, iy + 3), windows), self.finder,
                              beam, self.min_snr, self.kms)
            if other is not None:
                # its own peak's position: a centroid leans towards the brighter neighbour
                found["blended"] = True
                rows.append({**other, **{k: v for k, v in found.items() if k in _LINE_KEYS}, "x": x, "y": y,
                             "blended": True})
        return rows


_LINE_KEYS = ("z", "x0", "y0", "x1", "y1", "z0", "z1", "score")  # what a blended neighbour shares with its line


def line_row(images, finder, beam, min_snr, kms) -> dict | None:
    """Position, significance and the ResNets' measurements of one line from its focused images
    (:func:`focused_images` over :func:`line_windows`), or None if it is not significant."""
    snrs = [focused_snr(image) for image, _, _ in images]
    if not significant(snrs, min_snr):
        return None
    best = int(np.argmax(snrs))  # the position where the line stands out most
    snr, (x, y) = snrs[best], centroid(images[best][0], images[best][2])
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
    beams = (box[2] - box[0]) * (box[3] - box[1]) / gaussian_area(beam_major_px, beam_minor_px)
    # the source's own peak here: a wing's cut may be centred on the neighbour instead
    sx, sy = (int(round(v - c + side // 2)) for v, c in zip(source, centre, strict=True))
    own = focused[max(sy - 1, 0):max(sy + 2, 0), max(sx - 1, 0):max(sx + 2, 0)]
    peak = max(focused_snr(focused), float(own.max()) if own.size else 0.0)
    level = max(corrected_level(min_snr, beams * looks), MAX_SIDELOBE * peak)
    peaks = (focused >= level) & (focused == scipy.ndimage.maximum_filter(focused, size=3))
    out = []
    for iy, ix in zip(*np.nonzero(peaks), strict=True):
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


@dataclass
class SourceView:
    """What a user inspects of one catalogued source: its box spectrum (cube unit, summed), the
    Deep GRU's denoised spectrum (min-max, when the networks are at hand), the emission ranges
    found in it, and the focused image over the source's own range (units of its rms)."""

    raw_spectrum: np.ndarray
    denoised_spectrum: np.ndarray | None
    ranges: list
    focused: np.ndarray


def inspect_source(cube: Cube, row, finder: SourceFinder | None = None) -> SourceView:
    """The :class:`SourceView` of catalogue ``row`` (anything indexable by column name)."""
    box = (int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))
    raw = ms.box_spectrum(cube, box)
    denoised = denoise_spectra(raw[None], finder.deep_gru)[0] if finder is not None else None
    ranges = emission_ranges(denoised) if denoised is not None else [(int(row["z"]), int(row["z0"]), int(row["z1"]))]
    focused, _, _ = focused_image(cube, box, int(row["z0"]), int(row["z1"]))
    return SourceView(raw, denoised, ranges, focused)


def detect(cube: Cube, detector: str = "pipeline", progress=None, cancel=None, pb: Cube | None = None,
           psf: Cube | None = None, keep_sidelobes: bool = False, models=None, memory: float = DEFAULT_MEMORY,
           scheduler: str = "synchronous", preview=None, parts=None, **options):
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
    companions, and the SHA-256 of every network file used. ``memory`` (bytes) bounds what the
    pipeline and DECORAS hold of the cube at once, and ``scheduler`` runs their networks' search
    in this process (``"synchronous"``) or on Dask (``"local"``, or a scheduler's address); the
    catalogue depends on neither. ``preview(boxes)``: the pipeline's candidates so far while its
    Blobs Finder searches (:func:`detect_pipeline`). ``parts``: a folder where the maps of the
    search are saved strip by strip as they are done, so that a rerun resumes
    (:func:`~pipeline.alma.source_maps.spectral_source_map`).
    """
    folder = Path(models) if models is not None else MODELS_DIR
    files = {}
    held = cube.nchan * cube.ny * cube.nx * cube.data.dtype.itemsize
    if not cube.lazy and held > memory:
        raise InputError(
            f"{cube.path.name} is compressed, so its {held / 1e9:.1f} GB of pixels would all be held in memory, "
            f"more than the {memory / 1e9:g} GB allowed. Decompress it first (gunzip -k {cube.path.name}) "
            "and search the .fits, which is read a part at a time.")
    if detector == "pipeline":
        finder = options.pop("finder", None) or SourceFinder.load(folder)
        files = finder.files
        catalog = detect_pipeline(cube, finder, progress=progress, cancel=cancel, psf=psf, memory=memory,
                                  scheduler=scheduler, preview=preview, parts=parts, **options)
    elif detector == "decoras":
        networks = options.pop("networks", None)
        if networks is None:
            files, networks = model_files(folder, DECORAS_TASKS), load_networks(folder, DECORAS_TASKS)
        catalog = detect_decoras(cube, networks, progress=progress, cancel=cancel, memory=memory,
                                 scheduler=scheduler, files=files, parts=parts, **options)
    elif detector in classic.CLASSIC_DETECTORS:
        step = Steps(progress, cancel, 1, "detection")
        step(detector)
        catalog = classic.CLASSIC_DETECTORS[detector](cube, **options)
    else:
        raise InputError(f"Unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}.")
    check_cancel(cancel, "detection")
    catalog = mark_sidelobes(add_shape_errors(catalog, cube), cube, psf, keep=keep_sidelobes)
    if pb is not None:
        from pipeline.alma.companions import correct_fluxes

        catalog = correct_fluxes(catalog, pb)
    catalog.meta[PROVENANCE] = provenance(
        detector=detector, cube=Path(cube.path).name, options={**options, "keep_sidelobes": keep_sidelobes},
        **{kind: Path(c.path).name for kind, c in (("pb", pb), ("psf", psf)) if c is not None},
        **({"models": {task: file_sha256(path) for task, path in files.items()}} if files else {}))
    return catalog


