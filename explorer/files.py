"""Where the explorer may read cubes from: the bundled assets and the folders the operator allows.

A browser user can type a path, so paths are confined to these folders: the bundled
``assets/cubes`` and every folder in the environment variable ``EXPLORER_DATA_DIRS``
(separated by ``:``), e.g. ``EXPLORER_DATA_DIRS=/data/alma panel serve app.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import InputError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BUNDLED_CUBES = ASSETS / "cubes"
FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")


def data_folders() -> list[Path]:
    """The bundled cube folder, then the folders named in ``EXPLORER_DATA_DIRS``."""
    extra = [Path(p).expanduser().resolve() for p in os.environ.get("EXPLORER_DATA_DIRS", "").split(os.pathsep) if p]
    return [BUNDLED_CUBES, *[p for p in extra if p.is_dir()]]


def list_cubes() -> dict[str, Path]:
    """FITS files directly inside the data folders, as {label: path}, bundled ones first."""
    found = {}
    for folder in data_folders():
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name.lower().endswith(FITS_SUFFIXES):
                label = path.name if folder == BUNDLED_CUBES else f"{folder.name}/{path.name}"
                found.setdefault(label, path)
    return found


def resolve_user_path(text: str) -> Path:
    """The file a user typed, if it lies inside an allowed data folder; InputError otherwise.

    Relative paths are taken relative to each data folder in turn.
    """
    text = text.strip()
    if not text:
        raise InputError("Type the path of a FITS cube first.")
    folders = data_folders()
    raw = Path(text).expanduser()
    candidates = [raw.resolve()] if raw.is_absolute() else [(f / raw).resolve() for f in folders]
    inside = [p for p in candidates if any(p.is_relative_to(f) for f in folders)]
    if not inside:
        allowed = ", ".join(str(f) for f in folders)
        raise InputError(f"{text} is outside the data folders this server may read ({allowed}). "
                         "Copy the cube into one of them, or start the app with "
                         "EXPLORER_DATA_DIRS set to its folder.")
    for path in inside:
        if path.is_file():
            return path
    raise InputError(f"{text}: no such file in the data folders ({', '.join(str(f) for f in folders)}).")
