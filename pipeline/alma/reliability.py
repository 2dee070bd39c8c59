"""Reliability measured on the user's own cube, as SoFiA measures it (Serra et al. 2012): the same
search on the negated cube (:func:`~pipeline.alma.cube_views.negated`) finds noise peaks as often as the search of the
cube does, and no sources, so the number of its detections at least as significant as a candidate
estimates how many of the candidates at that level are noise.

One caveat of the method: a bright source's negative sidelobes turn positive in the negated cube,
where their parent, now negative, is not found to explain them; near bright sources it counts a
few false alarms too many (errs on the side of caution).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from pipeline.alma.cube import Cube
from pipeline.alma.cube_views import negated

#: lower edges of the SNR bins of the reliability table (the last bin is open)
SNR_EDGES = (5.0, 6.0, 7.0, 8.0, 10.0, 15.0)


def negative_detections(cube: Cube, detector: str = "pipeline", **options) -> Table:
    """The catalogue :func:`~pipeline.alma.detect.detect` finds in the negated cube (the same
    detector and options): noise peaks only."""
    from pipeline.alma.detect import detect

    return detect(negated(cube), detector, **options)


def with_reliability(catalog: Table, negatives: Table, edges=SNR_EDGES) -> tuple[Table, Table]:
    """``catalog`` with ``p_false`` filled in, and the reliability table.

    ``p_false`` of a candidate of SNR s: negative detections of SNR >= s over candidates of SNR >= s
    (at most 1). The table has a row per SNR bin ``[low, high)``: candidates, negative detections
    and reliability = 1 - negatives / candidates (at least 0; None without candidates)."""
    out = catalog.copy()
    snr, negative = np.asarray(out["snr"], float), np.asarray(negatives["snr"], float)
    above = np.array([(snr >= s).sum() for s in snr])
    noise = np.array([(negative >= s).sum() for s in snr])
    out["p_false"] = np.minimum(1.0, noise / np.maximum(above, 1))
    table = Table(names=("snr_low", "snr_high", "candidates", "negatives", "reliability"),
                  dtype=(float, float, int, int, object))
    bounds = list(edges) + [np.inf]
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        n_pos = int(((snr >= low) & (snr < high)).sum())
        n_neg = int(((negative >= low) & (negative < high)).sum())
        table.add_row((low, high, n_pos, n_neg, max(0.0, 1 - n_neg / n_pos) if n_pos else None))
    return out, table


def format_table(table: Table) -> str:
    """The reliability table as the command line prints it."""
    lines = ["reliability (the same search on the negated cube):", "  SNR        candidates  negatives  reliability"]
    for row in table:
        band = f"{row['snr_low']:g}+" if not np.isfinite(row["snr_high"]) else f"{row['snr_low']:g}-{row['snr_high']:g}"
        value = "-" if row["reliability"] is None else f"{row['reliability']:.2f}"
        lines.append(f"  {band:9s}  {row['candidates']:10d}  {row['negatives']:9d}  {value:>11s}")
    return "\n".join(lines)
