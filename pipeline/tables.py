"""Tables on disk: CSV or VOTable chosen by the file name, written atomically, read by one reader.

A table's provenance (``table.meta["provenance"]``, see :mod:`pipeline.provenance`) travels
with it: as ``# key: value`` comment lines before a CSV's header, as INFO elements of a VOTable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from pipeline.atomic import atomic_write
from pipeline.errors import InputError, short_reason
from pipeline.provenance import PROVENANCE

VOTABLE_SUFFIXES = (".vot", ".xml", ".votable")


def table_format(path) -> str:
    """astropy's format name for ``path``: ``ascii.csv`` for .csv, ``votable`` for .vot/.xml/.votable."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "ascii.csv"
    if suffix in VOTABLE_SUFFIXES:
        return "votable"
    raise InputError(f"Cannot tell the table format of {Path(path).name}: name it .csv or "
                     ".vot / .xml / .votable (VOTable).")


def check_output(path) -> str:
    """Check ``path`` can take a table before any work: a known suffix (see :func:`table_format`)
    and not a folder. Returns the format."""
    fmt = table_format(path)
    if Path(path).is_dir():
        raise InputError(f"{path} is a folder: give a file name for the table (.csv or .vot).")
    return fmt


def write_table(table: Table, path) -> Path:
    """Write ``table`` to ``path`` in the format its suffix names; readers never see half a file."""
    path = Path(path)
    fmt = check_output(path)
    record = dict(table.meta.get(PROVENANCE) or {})
    with atomic_write(path) as tmp:
        if fmt == "votable":
            _write_votable(table, tmp, record)
        else:
            out = table.copy(copy_data=False)
            out.meta = {"comments": [f"{key}: {_one_line(value)}" for key, value in record.items()]}
            out.write(tmp, format=fmt, overwrite=True, comment="# ")
    return path


def read_table(path, what: str = "table", converters: dict | None = None) -> Table:
    """Read a CSV or VOTable (by its suffix) as an astropy Table, its provenance (if any) in
    ``meta["provenance"]``; ``what`` names the table in messages ("catalogue", "truth").
    ``converters``: astropy's per-column converters, for CSV only.

    Raises :class:`InputError` saying what is wrong when the file is missing, a folder, of an
    unknown kind, unreadable or empty.
    """
    path = Path(path)
    fmt = table_format(path)
    if path.is_dir():
        raise InputError(f"The {what} {path.name} is a folder, not a file: give the CSV or VOTable file.")
    if not path.is_file():
        raise InputError(f"The {what} file {path} does not exist: check the path.")
    kind = "CSV" if fmt == "ascii.csv" else "VOTable"
    if _blank(path):
        raise InputError(f"The {what} file {path.name} is empty: expected a {kind} file with a header "
                         f"(column names) and one row per entry.")
    try:
        if fmt == "ascii.csv":
            table = Table.read(path, format=fmt, comment=r"\s*#", converters=converters or {})
            record = _parse_comments(table.meta.pop("comments", []))
        else:
            table, record = _read_votable(path)
    except Exception as exc:  # noqa: BLE001 -- astropy raises many types on bad files
        raise InputError(f"{path.name} is not a readable {kind} {what} ({short_reason(exc)}): it must be "
                         f"a {kind} file with a header (column names) and one row per entry.") from None
    if not table.colnames:
        raise InputError(f"The {what} file {path.name} is empty: expected a header row and one row per entry.")
    if record:
        table.meta[PROVENANCE] = record
    return table


def require_columns(table, columns, what: str) -> None:
    """InputError naming the ``columns`` the ``what`` (an astropy Table) lacks."""
    if not hasattr(table, "colnames"):
        raise InputError(f"The {what} must be an astropy Table, got {type(table).__name__}.")
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise InputError(f"The {what} lacks the column(s) {', '.join(missing)} (it has "
                         f"{', '.join(table.colnames) or 'none'}): it needs "
                         f"{', '.join(columns)}.")


def float_column(table, name: str, what: str) -> np.ndarray:
    """Column ``name`` as float64, masked or empty values NaN; InputError if it is not numeric."""
    column = table[name]
    try:
        values = np.ma.asarray(column, dtype=float) if column.dtype.kind != "b" else np.ma.asarray(
            column).astype(float)
    except (TypeError, ValueError):
        raise InputError(f"The {what}'s column '{name}' is not numeric (e.g. {column[0]!r}): "
                         f"fix those values.") from None
    return np.ma.filled(values, np.nan)


def bool_column(column) -> np.ndarray:
    """A column of booleans, or of text "true"/"1"/"yes" (any case), as bool; masked values False."""
    if column.dtype.kind in "US":
        return np.array([str(v).strip().lower() in ("true", "1", "yes") for v in column])
    return np.ma.filled(np.ma.asarray(column).astype(bool), False)


def _write_votable(table: Table, path, record: dict) -> None:
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    votable = from_table(table)
    first = votable.get_first_table()
    for key, value in record.items():
        first.infos.append(Info(name=key, value=_one_line(value)))
    votable.to_xml(str(path))


def _read_votable(path) -> tuple[Table, dict]:
    from astropy.io.votable import parse

    first = parse(str(path)).get_first_table()
    table = first.to_table(use_names_over_ids=True)
    return table, {info.name: str(info.value) for info in first.infos if info.name}


def _blank(path: Path) -> bool:
    """True for a file of nothing but white space (read no further than the first 64 kB)."""
    with path.open("rb") as f:
        return not f.read(65536).strip()


def _parse_comments(lines) -> dict:
    record = {}
    for line in lines:
        key, sep, value = str(line).partition(":")
        if sep and key.strip() and " " not in key.strip():
            record[key.strip()] = value.strip()
    return record


def _one_line(value) -> str:
    return " ".join(str(value).split())
