"""Source finding over many cubes: a file, a folder or a glob of cubes searched into one catalogue
with a ``cube`` column (the file's name). Each cube's primary-beam and PSF cubes are attached when
they lie beside it under tclean's names. Each cube's catalogue is saved atomically beside the
output (``<output>.parts/``) as it finishes, under a name that changes with the cube file, its
companions, the detector and its options, so a rerun after an interruption skips the cubes done;
the folder goes once the combined catalogue is written. The maps of a cube's search are saved there
too, strip by strip, so an interrupted cube resumes where it was."""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
from pathlib import Path

from astropy.table import Table, vstack

from pipeline.alma.catalog import read_catalog, write_catalog
from pipeline.alma.companions import KINDS, companion_candidates, open_companion
from pipeline.alma.cube import open_cube
from pipeline.alma.source_maps import DEFAULT_MEMORY
from pipeline.errors import InputError
from pipeline.progress import check_cancel, report
from pipeline.provenance import PROVENANCE, provenance

CUBE_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")
#: files beside a cube that are not cubes to search: tclean's other products, the simulator's sky models
NOT_SEARCHED = (".pb", ".psf", ".residual", ".model", ".mask", ".sumwt", ".weight", ".pbcor.pb", "_sky")


def find_cubes(where) -> list[Path]:
    """The cubes ``where`` names: one file, every FITS file of a folder, or those matching a glob
    pattern (``cubes/*.fits``), sorted, without tclean's companions (``.pb``, ``.psf``, ...) and
    the simulator's sky models. InputError when there are none."""
    text = str(where)
    path = Path(text).expanduser()
    if path.is_dir():
        found = sorted(path.iterdir())
    elif any(c in text for c in "*?["):
        found = sorted(Path(p) for p in glob.glob(str(path)))
    else:
        return [path]  # one file: open_cube says what is wrong with it
    cubes = []
    for p in found:
        suffix = next((s for s in CUBE_SUFFIXES if p.name.lower().endswith(s)), None)
        if p.is_file() and suffix and not p.name[: -len(suffix)].lower().endswith(NOT_SEARCHED):
            cubes.append(p)
    if not cubes:
        raise InputError(f"No FITS cubes in {text}. Give a .fits file, a folder of them, or a quoted "
                         "pattern such as 'cubes/*.fits'.")
    return cubes


def parts_folder(output) -> Path:
    """Where each cube's catalogue waits for the combined one: ``<output>.parts`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".parts")


def detect_cubes(paths, output, detector: str = "pipeline", progress=None, cancel=None,
                 memory: float = DEFAULT_MEMORY, scheduler: str = "synchronous", models=None,
                 keep_sidelobes: bool = False) -> Table:
    """Search every cube of ``paths`` (:func:`~pipeline.alma.detect.detect`, with its companions
    found beside it) and return one catalogue with a ``cube`` column, ids numbered through. Cubes
    whose catalogue is already in :func:`parts_folder` (``output``'s) are not searched again.
    ``progress(done, total, stage)`` counts cubes; ``cancel`` stops between and within cubes
    (finished cubes are kept for the next run)."""
    from pipeline.alma.detect import detect

    paths = [Path(p) for p in paths]
    names = [p.name for p in paths]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"Two cubes are named {twice[0]}: the catalogue's cube column could not tell them "
                         "apart. Search them separately.")
    parts = parts_folder(output)
    options = {"detector": detector, "keep_sidelobes": keep_sidelobes, "models": str(models or "")}
    tables = []
    for i, path in enumerate(paths):
        report(progress, i, len(paths), f"cube {i + 1} of {len(paths)}: {path.name}")
        companions = {kind: found for kind in KINDS
                      if (found := next((c for c in companion_candidates(path, kind) if c.is_file()), None))}
        part = parts / f"{path.name}-{_key(path, companions, options)}.csv"
        if not part.is_file():
            check_cancel(cancel, "detection", then="finished cubes are kept for the next run")
            with open_cube(path) as cube:
                opened = {kind: open_companion(p, cube, kind) for kind, p in companions.items()}
                try:
                    catalog = detect(cube, detector, cancel=cancel, keep_sidelobes=keep_sidelobes, models=models,
                                     memory=memory, scheduler=scheduler, parts=parts, **opened)
                finally:
                    for companion in opened.values():
                        companion.close()
            write_catalog(catalog, part)  # atomic: a part is whole or absent
        table = read_catalog(part)
        table["cube"] = [path.name] * len(table)
        tables.append(table)
    report(progress, len(paths), len(paths), "catalogue")
    combined = vstack(tables, metadata_conflicts="silent") if tables else Table()
    combined["id"] = range(1, len(combined) + 1)
    first = tables[0].meta.get(PROVENANCE, {}) if tables else {}
    combined.meta = {PROVENANCE: provenance(
        detector=detector, cubes=len(paths), options=json.loads(first.get("options", "{}")),
        **({"models": json.loads(first["models"])} if "models" in first else {}))}
    return combined


def clear_parts(output) -> None:
    """Remove the saved parts once the combined catalogue is written."""
    shutil.rmtree(parts_folder(output), ignore_errors=True)


def _key(path: Path, companions: dict, options: dict) -> str:
    """What a cube's catalogue depends on besides the code: its file and its companions' (name,
    size, times), the detector and its options."""
    digest = hashlib.sha1(json.dumps(options, sort_keys=True).encode())
    for p in (path, *companions.values()):
        st = Path(p).stat()
        digest.update(f"{Path(p).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
    return digest.hexdigest()[:16]
