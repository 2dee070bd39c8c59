"""The vetted catalogue: the candidates with the team's verdicts, as a table (CSV, VOTable) and as
regions coloured by verdict (DS9, CRTF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from pipeline.alma.catalog import COLUMN_NAMES, catalog_regions, region_format
from pipeline.alma.cube import Cube
from pipeline.atomic import atomic_write
from pipeline.provenance import PROVENANCE, provenance
from pipeline.tables import write_table
from pipeline.vetting.store import summarise

#: the columns a vetted catalogue adds to the catalogue's, with their descriptions
VETTED_COLUMNS = (
    ("source", "the candidate's key in the vetting store"),
    ("detectors", "the detectors that found it, comma-separated"),
    ("verdict", "what the reviewers say: real, spurious or unsure when all agree; disputed when they "
                "differ; empty when no one has vetted it"),
    ("n_real", "reviewers whose verdict is real (yes)"),
    ("n_spurious", "reviewers whose verdict is spurious (no)"),
    ("n_unsure", "reviewers whose verdict is unsure"),
    ("reviewer", "the reviewers with a verdict, comma-separated"),
    ("verdicts", "each reviewer's verdict, as 'reviewer=verdict', separated by '; ' (what an import reads back)"),
    ("note", "the reviewers' notes, as 'reviewer: note', separated by ' | '"),
    ("vetted", "time of the latest verdict (UTC)"),
)
NOTE_SEPARATOR = " | "
#: a region's colour by the verdict on it (DS9 and CASA both know these names)
VERDICT_COLOURS = {"real": "green", "yes": "green", "spurious": "red", "no": "red", "unsure": "yellow",
                   "disputed": "magenta", "": "cyan"}


def vetted_catalog(table: Table, verdicts: dict[str, dict]) -> Table:
    """``table`` (candidates with a ``source`` column) with the team's verdicts in force
    (``verdicts``: {source: {reviewer: {verdict, note, time}}}) in the columns of
    :data:`VETTED_COLUMNS`; the catalogue's own columns come first, as :func:`write_catalog` writes them."""
    out = table.copy()
    summaries, entries = [], []
    for source in np.asarray(out["source"]).astype(str):
        mine = verdicts.get(source, {})
        summaries.append(summarise(mine))
        entries.append(mine)
    votes = [s["votes"] for s in summaries]
    out["verdict"] = np.array([s["verdict"] for s in summaries], str)
    out["n_real"] = np.array([v.get("real", 0) + v.get("yes", 0) for v in votes], int)
    out["n_spurious"] = np.array([v.get("spurious", 0) + v.get("no", 0) for v in votes], int)
    out["n_unsure"] = np.array([v.get("unsure", 0) for v in votes], int)
    out["reviewer"] = np.array([",".join(s["reviewers"]) for s in summaries], str)
    out["verdicts"] = np.array(["; ".join(f"{who}={e[who]['verdict']}" for who in sorted(e)) for e in entries],
                               str)
    out["note"] = np.array([join_notes({who: e[who]["note"] for who in e}) for e in entries], str)
    out["vetted"] = np.array([max((e[who]["time"] for who in e), default="") for e in entries], str)
    for name, description in VETTED_COLUMNS:
        out[name].description = description
    order = [c for c in COLUMN_NAMES if c in out.colnames] + [c for c, _ in VETTED_COLUMNS]
    order += [c for c in out.colnames if c not in order]
    out = out[order]
    out.meta[PROVENANCE] = provenance(what="vetted catalogue", reviewers=sorted({r for e in entries for r in e}))
    return out


def join_notes(notes: dict[str, str]) -> str:
    """The note column of a vetted catalogue: ``reviewer: note`` for each reviewer with a note,
    separated by `` | ``; read back by :func:`split_notes`."""
    return NOTE_SEPARATOR.join(f"{who}: {notes[who]}" for who in sorted(notes) if notes[who])


def split_notes(text: str, reviewers) -> dict[str, str]:
    """Each reviewer's note in a note column: the part after ``reviewer:`` when the column is
    :func:`join_notes`'s, else the whole text for every reviewer (a note written by hand)."""
    text = str(text or "").strip()
    parts = {}
    for part in text.split(NOTE_SEPARATOR):
        who, _, note = part.partition(": ")
        if who.strip() in reviewers and note:
            parts[who.strip()] = note.strip()
    if not parts:
        return {who: text for who in reviewers}
    return {who: parts.get(who, "") for who in reviewers}


def write_vetted(table: Table, path) -> Path:
    """Write a :func:`vetted_catalog` atomically, CSV or VOTable by the suffix."""
    return write_table(table, path)


def write_vetted_regions(table: Table, cube: Cube, path, format: str | None = None) -> Path:
    """Regions of a :func:`vetted_catalog` (ellipses, as :func:`~pipeline.alma.catalog.catalog_regions`
    draws them), coloured by verdict (:data:`VERDICT_COLOURS`), each labelled with its id and verdict."""
    path = Path(path)
    fmt = region_format(path, format)
    regions = catalog_regions(table, cube)
    for region, row in zip(regions, table, strict=True):
        verdict = str(row["verdict"])
        region.visual["color"] = VERDICT_COLOURS.get(verdict, "cyan")
        text = f"{int(row['id'])} {verdict or 'unvetted'}"
        region.meta.update({"text": text, "label": text})
    with atomic_write(path) as tmp:
        regions.write(str(tmp), format=fmt, overwrite=True)
    return path
