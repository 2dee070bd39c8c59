"""Candidates like this one: the one-shot search applied to a cube's candidates, so a reviewer who
has recognised one sidelobe or artefact can find, look at and mark every candidate like it.

Each candidate is embedded (:func:`embed_candidates`) in three equally weighted parts, each
L2-normalised:

- *image*: the pipeline's focused image (:func:`pipeline.alma.focus.focused_image`: the cube
  integrated over the candidate's own channels, centred on it, in units of the noise), its
  central ``2 x IMAGE_PX`` pixels block-averaged to ``IMAGE_PX`` and compressed with asinh, so that
  shape counts more than brightness;
- *spectrum*: the box spectrum in ``SPECTRUM_CHANNELS`` channels around the peak, over its peak;
- *context*: what makes a sidelobe a sidelobe, after the physics of a dirty beam: how alike its
  spectrum is to the brightest candidate's in the same channels (a sidelobe is a copy of its
  source's line), how far that one lies in beams, how much fainter this one is, and the
  sidelobe check's probability.

Candidates are searched by cosine similarity in a :class:`~pipeline.oneshot.index.FeatureIndex`
(faiss), exactly for up to 10^5 candidates; embeddings of several cubes can share one index.
"""

from __future__ import annotations

import numpy as np
from astropy.nddata import block_reduce
from astropy.table import Table

from pipeline.alma.cube import Cube
from pipeline.alma.focus import focused_image
from pipeline.alma.measure import beam_on_grid, box_spectra
from pipeline.oneshot.index import FeatureIndex
from pipeline.progress import check_cancel, report

IMAGE_PX = 16
SPECTRUM_CHANNELS = 32
ASINH_SCALE = 3.0  # focused-image values (in noise units) where asinh turns from linear to logarithmic
FAR_BEAMS = 20.0  # distances in beams are scaled by this (and capped at 1)


def embed_candidates(cube: Cube, candidates: Table, progress=None, cancel=None) -> np.ndarray:
    """The (n, d) float32 embedding of each row of ``candidates`` (a catalogue of ``cube``); see
    the module docstring. ``progress(done, total, stage)`` and ``cancel`` as every long function."""
    n = len(candidates)
    boxes = [tuple(int(row[c]) for c in ("x0", "y0", "x1", "y1")) for row in candidates]
    spectra = box_spectra(cube, boxes, cancel) if n else np.zeros((0, cube.nchan))
    context = _context(cube, candidates, spectra)
    out = np.zeros((n, IMAGE_PX**2 + SPECTRUM_CHANNELS + context.shape[1]), np.float32)
    for i, row in enumerate(candidates):
        if i % 64 == 0:
            check_cancel(cancel, "finding similar candidates")
            report(progress, i, n, "embedding candidates")
        image, _, _ = focused_image(cube, boxes[i], int(row["z0"]), max(int(row["z1"]), int(row["z0"]) + 1))
        out[i] = np.concatenate([_unit(_image_part(image)), _unit(_spectrum_part(spectra[i], row["z"])),
                                 _unit(context[i])])
    report(progress, n, n, "embedding candidates")
    return out


class SimilarCandidates:
    """A faiss index over candidates' embeddings, by their source keys."""

    def __init__(self, embeddings: np.ndarray, sources):
        self.sources = [str(s) for s in sources]
        self._row = {s: i for i, s in enumerate(self.sources)}
        self.embeddings = np.asarray(embeddings, np.float32)
        self.index = FeatureIndex.build(self.embeddings, metric="cosine")

    def embedding(self, source: str) -> np.ndarray:
        return self.embeddings[self._row[source]]

    def like(self, source: str, k: int = 12) -> list[tuple[str, float]]:
        """The ``k`` candidates most like ``source`` (itself left out), nearest first, with their
        cosine similarity (1: the same)."""
        distances, rows = self.index.search(self.embeddings[self._row[source]], k + 1)
        return [(self.sources[r], float(1.0 - d)) for d, r in zip(distances[0], rows[0], strict=True)
                if r >= 0 and self.sources[r] != source][:k]


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _image_part(image: np.ndarray) -> np.ndarray:
    """The focused image's centre, block-averaged to IMAGE_PX x IMAGE_PX, asinh-compressed."""
    side = 2 * IMAGE_PX
    cy, cx = image.shape[0] // 2, image.shape[1] // 2
    centre = image[cy - side // 2:cy + side // 2, cx - side // 2:cx + side // 2]
    small = block_reduce(np.nan_to_num(centre), 2, func=np.mean)
    return np.arcsinh(small / ASINH_SCALE).ravel().astype(np.float32)


def _spectrum_part(spectrum: np.ndarray, z) -> np.ndarray:
    """SPECTRUM_CHANNELS channels of the spectrum centred on the peak ``z`` (0 beyond the band), over
    the peak's value."""
    spectrum = np.nan_to_num(np.asarray(spectrum, float))
    start = int(round(float(z))) - SPECTRUM_CHANNELS // 2
    window = np.zeros(SPECTRUM_CHANNELS)
    lo, hi = max(0, start), min(len(spectrum), start + SPECTRUM_CHANNELS)
    window[lo - start:hi - start] = spectrum[lo:hi]
    peak = np.max(np.abs(window)) or 1.0
    return (window / peak).astype(np.float32)


def _context(cube: Cube, candidates: Table, spectra: np.ndarray) -> np.ndarray:
    """Per candidate: (correlation of its spectrum with the brightest other candidate's in the
    same channels, that one's distance in beams / FAR_BEAMS capped at 1, log10 of its SNR over
    this one's capped at 2 then halved, the sidelobe probability (0 when not checked)); a candidate
    with no brighter one in its channels has (0, 1, 0, p)."""
    n = len(candidates)
    out = np.zeros((n, 4), np.float32)
    if not n:
        return out
    try:
        beam_px = beam_on_grid(cube)[0]
    except ValueError:
        beam_px = 2.0
    x, y = np.asarray(candidates["x"], float), np.asarray(candidates["y"], float)
    z0, z1 = np.asarray(candidates["z0"], int), np.asarray(candidates["z1"], int)
    snr = np.nan_to_num(np.asarray(candidates["snr"], float), nan=0.0)
    p = np.nan_to_num(np.asarray(candidates["sidelobe_p"], float), nan=0.0) if "sidelobe_p" in candidates.colnames \
        else np.zeros(n)
    centred = spectra - spectra.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    norms[norms == 0] = 1.0
    for i in range(n):
        overlap = (z0 < max(z1[i], z0[i] + 1)) & (np.maximum(z1, z0 + 1) > z0[i]) & (snr > snr[i])
        if not overlap.any():
            out[i] = (0.0, 1.0, 0.0, p[i])
            continue
        j = int(np.flatnonzero(overlap)[np.argmax(snr[overlap])])
        correlation = float(centred[i] @ centred[j] / (norms[i] * norms[j]))
        distance = min(1.0, np.hypot(x[i] - x[j], y[i] - y[j]) / beam_px / FAR_BEAMS)
        ratio = min(2.0, np.log10(max(snr[j], 1e-3) / max(snr[i], 1e-3))) / 2
        out[i] = (correlation, distance, ratio, p[i])
    return out
