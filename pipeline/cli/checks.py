"""Checks of command-line values shared by the commands: each raises InputError saying what is
wrong and what to do, before any work starts."""

from __future__ import annotations

import math
import os
from pathlib import Path

from pipeline.errors import InputError


def at_least(value, least: int, option: str) -> None:
    if value is not None and value < least:
        raise InputError(f"{option} must be at least {least}; got {value}.")


def positive_number(value, option: str, what: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(f"{option} must be a positive {what}; got {value}.")


def never_over_inputs(option: str, output, inputs=(), folders=()) -> None:
    """Refuse an output that is one of the command's input files, or that lies in an input folder
    (``folders``: (folder, what it is) pairs): a command never writes over what it reads."""
    out = Path(output)
    for source in inputs:
        if source is not None and _same_file(out, Path(source)):
            raise InputError(f"{option} {out} is the input {source}: give the output another name "
                             "(an input is never overwritten).")
    for folder, what in folders:
        inside = Path(folder).resolve()
        if out.resolve() == inside or inside in out.resolve().parents:
            raise InputError(f"{option} {out} is inside the {what} {folder}: write it elsewhere (the "
                             f"{what} is an input and is never written to).")


def output_folder(option: str, out) -> None:
    if Path(out).exists() and not Path(out).is_dir():
        raise InputError(f"{option} {out} is a file, not a folder: give a folder to write into.")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links, or the same file under other names
    except OSError:
        return False
