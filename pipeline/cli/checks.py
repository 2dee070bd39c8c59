"""What the commands share: checks of command-line values, each raising InputError saying what is
wrong and what to do before any work starts; and the progress bar of long work."""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import InputError


def at_least(value, least: int, option: str) -> None:
    if value is not None and value < least:
        raise InputError(f"{option} must be at least {least}; got {value}.")


def positive_number(value, option: str, what: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(f"{option} must be a positive {what}; got {value}.")


_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12}
MIN_MEMORY = 0.5e9  # the libraries and networks alone take about this much


def memory_size(text: str, option: str = "--memory") -> float:
    """Bytes from a size such as ``2GB``, ``500MB`` or ``3e9``; InputError for anything else or
    for less than ``MIN_MEMORY``."""
    value = str(text).strip().upper().replace(" ", "")
    number = value.rstrip("KMGTB")
    try:
        size = float(number) * _UNITS[value[len(number):]]
    except (ValueError, KeyError):
        raise InputError(f"{option} must be a size such as 2GB or 500MB; got {text!r}.") from None
    if not (math.isfinite(size) and size >= MIN_MEMORY):
        raise InputError(f"{option} must be at least {MIN_MEMORY / 1e9:g}GB (the networks and libraries alone "
                         f"take about that; a number alone is bytes); got {text!r}.")
    return size


def scheduler_name(value: str, option: str = "--scheduler", extra=()) -> None:
    """A scheduler :func:`pipeline.scheduling.run_tasks` knows: synchronous, local (or one of
    ``extra``), or a running scheduler's address such as ``tcp://host:8786``."""
    if value not in ("synchronous", "local", *extra) and ":" not in str(value):
        known = ", ".join(repr(v) for v in ("synchronous", "local", *extra))
        raise InputError(f"{option} must be {known} or a Dask scheduler's address such as tcp://host:8786; "
                         f"got {value!r}.")


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


@contextmanager
def progress_bar(quiet: bool, unit: str):
    """A tqdm bar on stderr, as a ``progress(done, total, stage)`` callback."""
    from tqdm import tqdm

    with tqdm(total=None, unit=unit, disable=quiet) as bar:
        def progress(done, total, stage):
            bar.total = total
            bar.set_description(stage)
            bar.update(done - bar.n)

        yield progress
        if bar.total is not None:
            bar.update(bar.total - bar.n)
