"""Completeness measured on the user's own cube: sources injected into it, with its own beam and
among its own noise, at known peak SNRs, then the same search; the share found per SNR is the
completeness (as SoFiA and source-finding challenges measure it).

The injected sources are point sources: the cube's (median) Gaussian beam in the sky, times a
Gaussian line of ``LINE_FWHM_CHANNELS``, at a peak of SNR times the channel's quiet rms
(:func:`noise.noise_of`). They go where the search found nothing (at least ``SPACING_BEAMS``
beams from each detection, each other and the edges), read lazily over the cube (nothing is
written). The dirty beam's sidelobes are not injected: the completeness of sources whose
sidelobes matter (bright ones on short tracks) comes out a little optimistic.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from pipeline.alma.cube import Cube
from pipeline.alma.cube_views import LINE_FWHM_CHANNELS, injected
from pipeline.alma.measure import beam_on_grid
from pipeline.alma.noise import noise_of

SNRS = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0)  # injected peak SNRs
SPACING_BEAMS = 4.0  # between injected sources, from detections and from the edges
MATCH_BEAMS = 1.0  # a detection this close (beam major axes) in the sky and whose range holds the line finds it


def injection_sites(cube: Cube, catalog: Table, n: int, rng) -> np.ndarray:
    """Up to ``n`` (x, y) pixel positions on a grid ``SPACING_BEAMS`` beams apart, away from the
    edges and from ``catalog``'s sources, in random order."""
    step = SPACING_BEAMS * beam_on_grid(cube)[0]
    xs, ys = np.arange(step, cube.nx - step, step), np.arange(step, cube.ny - step, step)
    sites = np.array([(x, y) for y in ys for x in xs]).reshape(-1, 2)
    if len(catalog) and len(sites):
        found = np.column_stack([np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)])
        far = np.min(np.hypot(*(sites[:, None, :] - found[None, :, :]).transpose(2, 0, 1)), axis=1) >= step
        sites = sites[far]
    return sites[rng.permutation(len(sites))[:n]]


def completeness(cube: Cube, catalog: Table, detector: str = "pipeline", snrs=SNRS, per_snr: int = 4,
                 seed: int = 0, **options) -> Table:
    """Inject ``per_snr`` sources at each peak SNR of ``snrs`` into ``cube`` where ``catalog`` (the
    cube's own search) found nothing, search again with ``detector`` and ``options``, and return a
    row per SNR: injected, found, completeness."""
    from pipeline.alma.detect import detect  # detect's module is the finders': loaded when a search runs

    rng = np.random.default_rng(seed)
    sites = injection_sites(cube, catalog, per_snr * len(snrs), rng)
    levels = np.tile(np.asarray(snrs, float), per_snr)[:len(sites)]  # every SNR once before any twice
    margin = 2 * LINE_FWHM_CHANNELS
    z = rng.uniform(margin, cube.nchan - 1 - margin, len(sites)) if cube.nchan > 2 * margin + 1 else \
        np.full(len(sites), (cube.nchan - 1) / 2)
    rms = noise_of(cube).quiet
    sources = Table({"x": sites[:, 0] if len(sites) else [], "y": sites[:, 1] if len(sites) else [], "z": z,
                     "snr": levels, "peak": levels * rms[np.clip(np.rint(z).astype(int), 0, cube.nchan - 1)]})
    found = detect(injected(cube, sources), detector, **options)
    reach = MATCH_BEAMS * beam_on_grid(cube)[0]
    hit = np.zeros(len(sources), bool)
    for i, s in enumerate(sources):
        near = np.hypot(np.asarray(found["x"]) - s["x"], np.asarray(found["y"]) - s["y"]) <= reach
        hit[i] = bool(np.any(near & (np.asarray(found["z0"]) <= s["z"]) & (s["z"] < np.asarray(found["z1"]))))
    table = Table(names=("snr", "injected", "found", "completeness"), dtype=(float, int, int, float))
    for level in snrs:
        picked = levels == level
        if picked.any():
            table.add_row((level, int(picked.sum()), int(hit[picked].sum()), float(hit[picked].mean())))
    return table


def format_table(table: Table) -> str:
    """The completeness table as the command line prints it."""
    lines = ["completeness (point sources injected into the cube with its beam, then the same search):",
             "  peak SNR  injected  found  completeness"]
    for row in table:
        lines.append(f"  {row['snr']:8g}  {row['injected']:8d}  {row['found']:5d}  {row['completeness']:12.2f}")
    return "\n".join(lines)
