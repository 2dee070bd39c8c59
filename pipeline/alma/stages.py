"""The deep pipeline's intermediate products for one cube, stage by stage: what
:func:`pipeline.alma.detect.detect_pipeline` computes on its way to the catalogue, kept for a user
(or a lesson) to look at.

    integrated image -> Blobs Finder map -> boxes -> box spectra -> Deep GRU spectra and emission
    ranges -> focused images and their significance -> the ResNets' parameters

Each stage is the pipeline's own function; nothing here decides differently from it, so the lines
found significant are the pipeline's catalogue before its blend search and sidelobe check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.alma import measure as ms
from pipeline.alma import preprocess as pre
from pipeline.alma.cube import Cube
from pipeline.alma.detect import FOCUS_MIN_SNR, denoise_spectra, emission_ranges, line_row
from pipeline.alma.focus import cube_level, focused_images, focused_snr, line_windows
from pipeline.alma.networks import SourceFinder
from pipeline.alma.source_maps import BLOB_THRESHOLD, boxes_from_map, spectral_source_map
from pipeline.progress import Steps


@dataclass
class Line:
    """One emission range of a box: channels ``first..last - 1`` about ``peak``; its focused image
    (units of its rms); the focused SNR over the range and over the narrower windows; and, when it
    is significant, the catalogue row the ResNets make of it (x, y, fwhm_x, fwhm_y, pa, flux, snr)."""

    peak: int
    first: int
    last: int
    focused: np.ndarray
    snrs: list
    row: dict | None

    @property
    def significant(self) -> bool:
        return self.row is not None


@dataclass
class Box:
    """One box of the Blobs Finder's map, (x0, y0, x1, y1) with its ``score`` (the map's maximum in
    it); its summed spectrum (cube units), the Deep GRU's denoised spectrum (min-max, [0, 1]) and
    its lines."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float
    spectrum: np.ndarray
    denoised: np.ndarray
    lines: list = field(default_factory=list)

    def holds(self, x: float, y: float) -> bool:
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1


@dataclass
class Stages:
    """Every stage for one cube: the integrated image (moment 0, its unit), the Blobs Finder's map
    and the threshold its boxes were cut at, the boxes, and the focused-SNR level a line must reach."""

    integrated: np.ndarray
    integrated_unit: str
    source_map: np.ndarray
    threshold: float
    boxes: list
    level: float


def stages(cube: Cube, finder: SourceFinder | None = None, min_snr: float = FOCUS_MIN_SNR,
           threshold: float = BLOB_THRESHOLD, source_map: np.ndarray | None = None, progress=None,
           cancel=None) -> Stages:
    """The pipeline's stages on ``cube`` (an open cube small enough to search in memory), with the
    Gaussian beam for the shape ResNet (as :func:`pipeline.alma.detect.detect` without a PSF cube).
    ``source_map``: the Blobs Finder's map of this cube from an earlier call (the longest stage),
    to cut boxes at another ``threshold`` or hold lines to another ``min_snr``."""
    finder = finder or SourceFinder.load()
    step = Steps(progress, cancel, 4, "pipeline stages")
    step("integrated image")
    integrated, unit = cube.moment0()
    step("Blobs Finder")
    if source_map is None:
        source_map = spectral_source_map(cube, finder.blobs_finder, cancel=cancel)
    found = boxes_from_map(source_map, threshold)
    step("Deep GRU")
    spectra = ms.box_spectra(cube, found, cancel)
    denoised = denoise_spectra(spectra, finder.deep_gru, cancel)
    step("focusing and ResNets")
    level = cube_level(cube, min_snr)
    kms = cube.channel_width()["kms"] or ms.kms_per_channel_factor(cube)
    beam = pre.beam_image_px(*ms.beam_on_grid(cube))
    boxes = []
    for box, spectrum, clean in zip(found, spectra, denoised, strict=True):
        lines = []
        for peak, first, last in emission_ranges(clean):
            images = focused_images(cube, box, line_windows(peak, first, last))
            lines.append(Line(peak, first, last, images[0][0], [focused_snr(image) for image, _, _ in images],
                              line_row(images, finder, beam, level, kms)))
        boxes.append(Box(*box, spectrum=np.asarray(spectrum), denoised=np.asarray(clean), lines=lines))
    return Stages(np.asarray(integrated), unit, source_map, threshold, boxes, level)
