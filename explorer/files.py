"""Where the explorer may read files from: the bundled assets and the folders the operator allows.

A browser user can type a path, so paths are confined to these folders: the bundled
``assets/cubes`` and every folder in the environment variable ``EXPLORER_DATA_DIRS``
(separated by ``:``), e.g. ``EXPLORER_DATA_DIRS=/data/alma panel serve app.py``. Feature stores
come from the folders in ``EXPLORER_INDEX_DIRS``; the images a store shows must lie inside its
index folder or a data folder. A link inside a folder that points outside it is not followed:
the same rule for the cube list, typed paths and a store's images.

Visitors see these folders by name (``alma/cube.fits``), never by their place on the server.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.alma.companions import KINDS, companion_candidates
from pipeline.errors import InputError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BUNDLED_CUBES = ASSETS / "cubes"
FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")


def _folders_in(variable: str) -> list[Path]:
    paths = [Path(p).expanduser().resolve() for p in os.environ.get(variable, "").split(os.pathsep) if p]
    return [p for p in paths if p.is_dir()]


def data_folders() -> list[Path]:
    """The bundled cube folder, then the folders named in ``EXPLORER_DATA_DIRS`` (resolved)."""
    return [BUNDLED_CUBES, *_folders_in("EXPLORER_DATA_DIRS")]


def index_folders() -> list[Path]:
    """The folders named in ``EXPLORER_INDEX_DIRS`` (resolved)."""
    return _folders_in("EXPLORER_INDEX_DIRS")


def visible_roots() -> dict[Path, str]:
    """{folder: the name visitors know it by}: bundled cubes by their file name alone, the
    operator's data and index folders by their own name."""
    roots = {folder: folder.name for folder in [*index_folders(), *data_folders()]}
    roots[BUNDLED_CUBES] = ""
    return roots


def inside(path: Path, folders) -> bool:
    """Whether ``path``, links resolved, lies inside one of ``folders``."""
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(Path(f).resolve()) for f in folders)


def list_cubes() -> dict[str, Path]:
    """FITS files directly inside the data folders, as {label: path}, bundled ones first.
    A link that leads outside the data folders is left out, as it would be refused when typed."""
    found = {}
    folders = data_folders()
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name.lower().endswith(FITS_SUFFIXES) and inside(path, folders):
                label = path.name if folder == BUNDLED_CUBES else f"{folder.name}/{path.name}"
                found.setdefault(label, path.resolve())
    return found


def find_companions(cube_path) -> dict[str, Path]:
    """The primary-beam ("pb") and PSF ("psf") cubes beside ``cube_path`` under tclean's names
    (:func:`pipeline.alma.companions.companion_candidates`), for those that exist inside the data
    folders (a link leading out of them is not followed, as everywhere else)."""
    folders = data_folders()
    found = {}
    for kind in KINDS:
        for path in companion_candidates(cube_path, kind):
            if path.is_file() and inside(path, folders):
                found[kind] = path.resolve()
                break
    return found


def shown_path(path) -> str:
    """``path`` as a visitor may see it: relative to the data or index folder that holds it (the
    most specific one, named as in the cube list), else its file name alone."""
    path = Path(path)
    best = None
    for root, label in visible_roots().items():
        if path.is_relative_to(root) and (best is None or len(root.parts) > len(best[0].parts)):
            best = (root, label)
    if best is None:
        return path.name
    relative = path.relative_to(best[0]).as_posix()
    return "/".join(p for p in (best[1], "" if relative == "." else relative) if p) or path.name


def resolve_user_path(text: str) -> Path:
    """The file a user typed, if it lies inside an allowed data folder; InputError otherwise.

    Relative paths are taken relative to each data folder in turn, or as the cube list names the
    files (the folder's name first: ``alma/cube.fits`` for ``cube.fits`` in a data folder ``alma``).
    """
    text = text.strip()
    if not text:
        raise InputError("Type the path of a FITS cube first.")
    folders = data_folders()
    names = ", ".join(f"{f.name}/" for f in folders[1:]) or "none besides the bundled cubes"
    raw = Path(text).expanduser()
    candidates = [raw] if raw.is_absolute() else [f / raw for f in folders] + [
        f / raw.relative_to(f.name) for f in folders[1:] if raw.parts[:1] == (f.name,) and len(raw.parts) > 1]
    existing = [p for p in candidates if p.is_file()]
    allowed = [p.resolve() for p in existing if inside(p, folders)]
    if allowed:
        return allowed[0]
    if existing or not any(inside(p, folders) for p in candidates):
        raise InputError(f"{raw.name} is outside the data folders this server may read (the bundled "
                         f"cubes; data folders: {names}). Give a path inside one of them, e.g. "
                         f"{folders[-1].name}/cube.fits, or ask the operator to add its folder to EXPLORER_DATA_DIRS.")
    raise InputError(f"{text}: no such file in the data folders (the bundled cubes; data folders: {names}).")


def check_store_images(images: Path, store_folder: Path) -> None:
    """Refuse a feature store whose images lie outside its own index folder and every data folder
    (a planted ``store.json`` could otherwise make the server read any image on its disk)."""
    roots = [r for r in index_folders() if inside(store_folder, [r])] + data_folders()
    if not inside(images, roots):
        raise InputError(f"The feature store {store_folder.name} keeps its images outside the folders this server "
                         "may read: the operator should move them into its index folder or a data folder "
                         "(EXPLORER_DATA_DIRS) and build the store again.")
