"""What a reviewer needs to judge one candidate at a glance (:class:`Card`): the channel map at the
line peak and the moment-0 over the line around it, with the box and the beam; the box spectrum
and the Deep GRU's, with the emission range; the neighbours in the same channels and the brighter
sources there (whose sidelobes it may be); the detectors' scores."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from pipeline.alma.cube import Cube
from pipeline.alma.detect import inspect_source
from pipeline.alma.measure import beam_on_grid, kms_per_channel_factor

CUTOUT_BEAMS = 6.0  # the cutout spans the box and this many beams across, at least
MIN_CUTOUT_PX = 24
NEIGHBOUR_BEAMS = 10.0  # neighbours: other candidates this close (in beams), with overlapping channels
BRIGHTER_SHOWN = 5  # the brightest candidates in the same channels that are listed


@dataclass
class Card:
    """One candidate's card. Images are cutouts (ny, nx) whose pixel (0, 0) is the cube's
    ``origin`` (x, y); ``box`` is (x0, y0, x1, y1) in the cube's pixels (ends exclusive); ``beam``
    (major FWHM px, minor FWHM px, angle deg counter-clockwise from +x) or None."""

    row: dict
    origin: tuple[int, int]
    channel_map: np.ndarray  # at the line peak z, in the cube's unit
    moment0: np.ndarray  # summed over z0 .. z1 - 1, in ``moment0_unit``
    moment0_unit: str
    box: tuple[int, int, int, int]
    beam: tuple[float, float, float] | None
    spectrum: np.ndarray  # the box's, summed, cube unit
    gru_spectrum: np.ndarray | None  # the Deep GRU's (0..1), when the networks are at hand
    ranges: list  # (peak, first, end) channels of the emission the Deep GRU (else the catalogue) finds
    neighbours: Table  # id, source, x, y, z, x0, y0, x1, y1, snr, distance (beams), brighter (bool)
    brighter: Table  # the brightest candidates in the same channels anywhere, with distance (beams)


def candidate_card(cube: Cube, candidates: Table, index: int, finder=None) -> Card:
    """The :class:`Card` of row ``index`` of ``candidates`` (a catalogue with a ``source``
    column); ``finder``: the pipeline's networks (:class:`~pipeline.alma.networks.SourceFinder`),
    for the Deep GRU spectrum."""
    row = candidates[index]
    z0, z1 = int(row["z0"]), max(int(row["z1"]), int(row["z0"]) + 1)
    z = int(np.clip(round(float(row["z"])), 0, cube.nchan - 1))
    box = tuple(int(row[c]) for c in ("x0", "y0", "x1", "y1"))
    try:
        beam = beam_on_grid(cube)
    except ValueError:  # no usable beam: the card goes without it
        beam = None
    beam_px = beam[0] if beam else 2.0
    half = max(MIN_CUTOUT_PX / 2, CUTOUT_BEAMS * beam_px / 2, (box[2] - box[0]) * 0.75, (box[3] - box[1]) * 0.75)
    cx, cy = float(row["x"]), float(row["y"])
    xa, xb = max(0, int(cx - half)), min(cube.nx, int(math.ceil(cx + half)) + 1)
    ya, yb = max(0, int(cy - half)), min(cube.ny, int(math.ceil(cy + half)) + 1)
    block = np.asarray(cube.data[z0:z1, ya:yb, xa:xb], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a channel blank at the cutout is NaN, on purpose
        moment0 = np.nansum(block, axis=0) * kms_per_channel_factor(cube)
    width_known = bool(cube.channel_width()["kms"]) or cube.frequency_hz is not None
    view = inspect_source(cube, row, finder)
    distances, same_channels = _distances(candidates, index, beam_px)
    others = np.flatnonzero(same_channels)
    others = others[others != index]
    near = others[distances[others] <= NEIGHBOUR_BEAMS]
    snr = np.nan_to_num(np.asarray(candidates["snr"], float), nan=-np.inf)
    brighter = others[snr[others] > snr[index]]
    brighter = brighter[np.argsort(-snr[brighter])][:BRIGHTER_SHOWN]
    return Card(row={c: row[c] for c in candidates.colnames}, origin=(xa, ya),
                channel_map=np.asarray(cube.data[z, ya:yb, xa:xb], dtype=np.float32), moment0=moment0,
                moment0_unit=f"{cube.unit} km/s" if width_known else f"{cube.unit} channel", box=box, beam=beam,
                spectrum=view.raw_spectrum, gru_spectrum=view.denoised_spectrum, ranges=view.ranges,
                neighbours=_listed(candidates, near, distances, snr[index]),
                brighter=_listed(candidates, brighter, distances, snr[index]))


def _distances(candidates: Table, index: int, beam_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's distance from row ``index`` in beams, and whether its channels (z0..z1)
    overlap that row's."""
    x, y = np.asarray(candidates["x"], float), np.asarray(candidates["y"], float)
    z0, z1 = np.asarray(candidates["z0"], int), np.asarray(candidates["z1"], int)
    distance = np.hypot(x - x[index], y - y[index]) / max(beam_px, 1e-9)
    overlap = (z0 < max(z1[index], z0[index] + 1)) & (np.maximum(z1, z0 + 1) > z0[index])
    return distance, overlap


def _listed(candidates: Table, rows: np.ndarray, distances: np.ndarray, snr: float) -> Table:
    rows = rows[np.argsort(distances[rows], kind="stable")] if len(rows) else rows
    out = Table()
    for name in ("id", "source", "x", "y", "z", "x0", "y0", "x1", "y1", "snr"):
        out[name] = np.asarray(candidates[name])[rows]
    out["distance"] = distances[rows]
    out["distance"].description = "distance in beams (major-axis FWHM)"
    out["brighter"] = np.nan_to_num(np.asarray(candidates["snr"], float)[rows], nan=-np.inf) > snr
    return out
