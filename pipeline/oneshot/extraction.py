"""Extracting a galaxy set's features in chunks: in this process (in turn, or a thread per core) or on
Dask (a local cluster or a running scheduler), each chunk named by what its features depend on so an
interrupted build resumes (see :mod:`pipeline.oneshot.store`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from pipeline.oneshot import views
from pipeline.oneshot.galaxies import read_image, to_rgb
from pipeline.scheduling import run_tasks


def chunk_features(files, size_px, backbone, weights, input_px, engine, crop, invariance) -> np.ndarray:
    """Features (len(files), dim) of image files, of the views ``crop`` and ``invariance`` make
    (:func:`pipeline.oneshot.views.view_features`): the unit of work a Dask worker runs."""
    from pipeline.oneshot import features as feat

    model = feat.load_backbone(backbone, weights)
    images = [to_rgb(read_image(f), size_px or None) for f in files]
    return views.view_features(model, images, crop, invariance, input_px, engine)


def chunk_augmented(files, size_px, backbone, weights, input_px, engine, crop, seed) -> np.ndarray:
    """Features (len(files), 8, dim) of eight augmented views of each image
    (:func:`pipeline.oneshot.views.augmented_views`, random draws from ``seed``): what trains the
    invariance head."""
    from pipeline.oneshot import features as feat

    model = feat.load_backbone(backbone, weights)
    rng = np.random.default_rng(seed)
    shown = [v for f in files for v in views.augmented_views(to_rgb(read_image(f), size_px or None), crop, rng)]
    return feat.extract(model, shown, size=input_px, engine=engine).reshape(len(files), 8, -1)


def pick_scheduler(scheduler: str, n_images: int) -> str:
    """The scheduler that extracts ``n_images``: ``scheduler`` itself unless it is ``"auto"``,
    which is ``"threads"`` (a thread per core in this process: the decoder and the network's
    runtime work outside the GIL) on several cores, else ``"synchronous"``. On one machine a
    local cluster was slower at every size measured (``benchmarks/cli.py``: 5,000 JPEG cutouts
    in 77 s with threads, 91 s in turn, 104 s on a local cluster, whose workers each start
    Python, torch and the network)."""
    if scheduler != "auto":
        return scheduler
    return "threads" if n_images > 1 and (os.cpu_count() or 1) > 1 else "synchronous"


def run_chunks(jobs: dict, scheduler: str, cancel, function=None):
    """Yield (start, features) for each job of ``function`` (:func:`chunk_features` or
    :func:`chunk_augmented`) as it finishes, in this process or on Dask
    (:func:`pipeline.scheduling.run_tasks`); :func:`chunk_features` by default."""
    scheduler = pick_scheduler(scheduler, sum(len(files) for files, *_ in jobs.values()))
    yield from run_tasks(function or chunk_features, jobs, scheduler, cancel, "feature extraction",
                         then="finished chunks are kept for the next run")


def chunk_key(ids: list[str], files: list[str], start: int, chunk: int) -> str:
    """What a chunk's features depend on besides the plan: its images' ids, paths, sizes and
    modification and change times (a replaced file, even with its old time kept, changes it)."""
    digest = hashlib.sha1()
    for row in range(start, min(start + chunk, len(files))):
        try:
            st = os.stat(files[row])
        except OSError as exc:
            raise InputError(f"Cannot read the image {files[row]} ({exc.strerror}): was it moved since the "
                             "catalogue was read? Run again.") from None
        digest.update(f"{ids[row]}\0{files[row]}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
    return digest.hexdigest()[:20]


def part_done(path: Path, rows: int) -> bool:
    """Whether a chunk's features were saved whole."""
    try:
        return path.is_file() and np.load(path, mmap_mode="r").shape[0] == rows
    except (OSError, ValueError, EOFError):
        return False
