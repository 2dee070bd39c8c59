"""Tables on disk: CSV or VOTable chosen by the file name, written atomically."""

from __future__ import annotations

from pathlib import Path

from astropy.table import Table

from pipeline.atomic import atomic_write
from pipeline.errors import InputError

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
    with atomic_write(path) as tmp:
        table.write(tmp, format=fmt, overwrite=True)
    return path
