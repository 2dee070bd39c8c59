"""Writing a galaxy set into a folder, all or nothing: a folder that holds something else is
refused, the set is built in a hidden folder beside it and renamed into place at the end, so a
stopped or failed build leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.atomic import replace_folder
from pipeline.errors import InputError

STALE_BUILD_S = 86400.0


def check_target(folder: Path) -> None:
    """Refuse ``folder`` unless it is new, empty or an older galaxy set (a ``catalog.csv``)."""
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir())
                                                  and not (folder / "catalog.csv").is_file())):
        raise InputError(f"{folder} exists and is not a galaxy set (no catalog.csv): give a new or "
                         "empty folder for the set, or an older set to replace.")


@contextlib.contextmanager
def building(folder: Path):
    """A new hidden folder beside ``folder`` to build a set in, renamed into place as ``folder``
    (replacing an older set) when the block ends, removed if it fails. Builds abandoned more than
    a day ago are removed."""
    build = _new_build_folder(folder)
    try:
        yield build
        replace_folder(build, folder)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)


def _new_build_folder(folder: Path) -> Path:
    """A new hidden folder beside ``folder``, with the usual permissions (mkdtemp's are private)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.partial-*"):  # left by a killed process
        if time.time() - stale.stat().st_mtime > STALE_BUILD_S:
            shutil.rmtree(stale, ignore_errors=True)
    build = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(build, 0o777 & ~umask)
    return build


def whole_number(value, name: str, low: int, high: int, meaning: str) -> int:
    """``value`` as an int from ``low`` to ``high``; InputError naming ``name`` and its ``meaning``
    otherwise."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number != value or not low <= number <= high:
        raise InputError(f"{name} = {value!r}: give {meaning}, a whole number from {low} to {high}.")
    return number
