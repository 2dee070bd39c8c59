"""The feature store: a galaxy set's features and faiss index, kept beside a copy of its catalogue.

``python -m pipeline index`` and the explorer build one per galaxy set and model::

    INDEX_DIR/catalog.csv    the set's catalogue (rows in feature order)
    INDEX_DIR/features.npy   (n, 1280) float32
    INDEX_DIR/index.faiss    the faiss index (+ index.json: metric, kind, measured recall)
    INDEX_DIR/top_*.npy      per feature, the images that activate it most (the feature atlas)
    INDEX_DIR/store.json     the model, input size and preprocessing, the images' folder, counts
    INDEX_DIR/parts/         features of each chunk of images, while a build is under way

Extraction is split into chunks of images run on Dask: a local cluster by default (one worker
process per core, one thread each), any running scheduler by its address to scale out (its
workers need this package installed and the images at the same path), or ``"synchronous"`` (in
this process, no cluster). Each finished chunk is written at once, so an interrupted build
resumes where it stopped when run again with the same set and model; ``store.json`` is written
last, so a folder with it is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from pipeline.atomic import atomic_write
from pipeline.cache import cache_dir
from pipeline.errors import Cancelled, InputError
from pipeline.oneshot import features as feat
from pipeline.oneshot.galaxies import PREPROCESSING_NOTE, GalaxySet, read_image, to_rgb
from pipeline.oneshot.index import DEFAULT_METRIC, FeatureIndex

CHUNK = 128  # images per Dask task: big enough to amortise a task, small enough to resume often
STORE_VERSION = 1
SCHEDULER_TIMEOUT = "10s"
_CACHE_LOCK = threading.Lock()  # to reach a remote Dask scheduler


@dataclass
class FeatureStore:
    """A built store (see the module docstring): ``catalog``, ``features`` (n, dim) in the same
    row order, the faiss ``index``, and ``meta`` (store.json)."""

    folder: Path
    catalog: Table
    features: np.ndarray
    index: FeatureIndex
    meta: dict

    @classmethod
    def open(cls, folder) -> "FeatureStore":
        folder = Path(folder)
        if not (folder / "store.json").is_file():
            raise InputError(f"{folder} holds no complete feature store: build it with "
                             "`python -m pipeline index IMAGES_DIR --catalog CATALOG.csv --out DIR`.")
        meta = json.loads((folder / "store.json").read_text())
        catalog = Table.read(folder / "catalog.csv", format="ascii.csv")
        catalog["id"] = [str(v) for v in catalog["id"]]
        features = np.load(folder / "features.npy", mmap_mode="r")
        if len(features) != len(catalog):
            raise InputError(f"{folder} is inconsistent ({len(features)} feature rows, {len(catalog)} "
                             "catalogue rows): build it again.")
        return cls(folder, catalog, features, FeatureIndex.load(folder), meta)

    def __post_init__(self):
        self._rows = {str(v): i for i, v in enumerate(self.catalog["id"])}

    def row_of(self, galaxy_id) -> int:
        try:
            return self._rows[str(galaxy_id)]
        except KeyError:
            raise InputError(f"No galaxy with id {galaxy_id!r} in this index; ids look like "
                             f"{str(self.catalog['id'][0])!r}.") from None

    @property
    def galaxies(self) -> GalaxySet:
        """The images behind the features (for thumbnails)."""
        return GalaxySet(self.catalog, Path(self.meta["images"]), self.meta["size_px"], self.meta["name"])

    def top_activations(self) -> tuple[np.ndarray, np.ndarray]:
        """Per feature, the rows of the images activating it most and their values (see
        :func:`pipeline.oneshot.atlas.top_activations`); stored at build time, made now for a
        store built before they were."""
        from pipeline.oneshot.atlas import top_activations

        if not (self.folder / "top_rows.npy").is_file():
            _save_top_activations(self.folder, *top_activations(self.features))
        return np.load(self.folder / "top_rows.npy"), np.load(self.folder / "top_values.npy")

    def describe(self) -> str:
        return (f"{self.meta['name']}: {len(self.catalog):,} galaxies; features of "
                f"{self.meta['model_label']} at {self.meta['input_px']} px; {self.index.describe()}")


def build_store(galaxies: GalaxySet, out, backbone: str = feat.DEFAULT_BACKBONE, weights=None,
                size: int = 224, metric: str = DEFAULT_METRIC, kind: str = "auto", engine: str = "onnx",
                scheduler: str = "local", chunk: int = CHUNK, progress=None,
                cancel: threading.Event | None = None) -> FeatureStore:
    """Extract the features of every image of ``galaxies`` with ``backbone`` at ``size`` px,
    index them and write the store to ``out`` (see the module docstring). ``progress(done,
    total)`` counts images; ``cancel`` stops between chunks (finished chunks are kept)."""
    out = Path(out)
    model = feat.load_backbone(backbone, weights)  # a wrong name or missing weights fail here
    parts = out / "parts"
    plan = {"version": STORE_VERSION, "backbone": backbone, "weights": str(weights or ""), "input_px": int(size),
            "chunk": int(chunk), "ids": hashlib.sha1("\n".join(galaxies.ids).encode()).hexdigest(),
            "files": hashlib.sha1("\n".join(galaxies.catalog["file"]).encode()).hexdigest()}
    if (parts / "plan.json").is_file() and json.loads((parts / "plan.json").read_text()) != plan:
        shutil.rmtree(parts)  # another set or model: start over
    parts.mkdir(parents=True, exist_ok=True)
    with atomic_write(parts / "plan.json") as tmp:
        tmp.write_text(json.dumps(plan))
    starts = range(0, len(galaxies), chunk)
    todo = [s for s in starts if not (parts / f"{s:09d}.npy").is_file()]
    done_images = len(galaxies) - sum(min(chunk, len(galaxies) - s) for s in todo)
    if progress is not None:
        progress(done_images, len(galaxies))
    files = [str(galaxies.folder / f) for f in galaxies.catalog["file"]]
    jobs = {s: (files[s:s + chunk], galaxies.size, backbone, str(weights) if weights else None, int(size), engine)
            for s in todo}
    for start, vectors in _run(jobs, scheduler, cancel):
        with atomic_write(parts / f"{start:09d}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, vectors)
        done_images += len(vectors)
        if progress is not None:
            progress(done_images, len(galaxies))
    features = np.concatenate([np.load(parts / f"{s:09d}.npy") for s in starts]).astype(np.float32)
    index = FeatureIndex.build(features, metric=metric, kind=kind)
    with atomic_write(out / "features.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, features)
    catalog = galaxies.catalog.copy()
    with atomic_write(out / "catalog.csv") as tmp:
        catalog.write(tmp, format="ascii.csv", overwrite=True)
    index.save(out)
    from pipeline.oneshot.atlas import top_activations

    _save_top_activations(out, *top_activations(features))
    meta = {"version": STORE_VERSION, "name": galaxies.name, "images": str(galaxies.folder.resolve()),
            "size_px": int(galaxies.size), "n": len(galaxies), "backbone": backbone,
            "model_label": model.label, "weights": str(weights or ""), "weights_file": model.weights,
            "weights_sha256": model.digest, "input_px": int(size),
            "preprocessing": f"{PREPROCESSING_NOTE} Then: {feat.PREPROCESSING}", "engine": engine,
            "notes": galaxies.notes, "built": time.strftime("%Y-%m-%d %H:%M:%S")}
    with atomic_write(out / "store.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    shutil.rmtree(parts, ignore_errors=True)
    return FeatureStore.open(out)


def cached_store(galaxies: GalaxySet, backbone: str = feat.DEFAULT_BACKBONE, size: int = 224,
                 scheduler: str = "local", progress=None, cancel=None) -> FeatureStore:
    """The store of ``galaxies`` for ``backbone`` at ``size`` px in the cache
    (``pipeline.cache``), built on first use (resuming an interrupted build)."""
    key = hashlib.sha1("\n".join([str(galaxies.folder.resolve()), *galaxies.ids, *galaxies.catalog["file"]]).encode())
    slug = "".join(c if c.isalnum() else "-" for c in galaxies.name.lower()).strip("-")[:40]
    folder = cache_dir("stores", f"{slug}-{key.hexdigest()[:12]}-{backbone}-{int(size)}px")
    with _CACHE_LOCK:  # two sessions opening the same set wait for one build
        if (folder / "store.json").is_file():
            return FeatureStore.open(folder)
        return build_store(galaxies, folder, backbone=backbone, size=size, scheduler=scheduler,
                           progress=progress, cancel=cancel)


def image_features(store: FeatureStore, image) -> np.ndarray:
    """Features (dim,) of one image (a file path, or an RGB uint8 array) made as the store's were:
    same model, input size and preprocessing; e.g. an uploaded prototype."""
    rgb = image if isinstance(image, np.ndarray) else to_rgb(read_image(image))
    rgb = to_rgb(rgb, store.meta["size_px"] or None)
    model = feat.load_backbone(store.meta["backbone"], store.meta["weights"] or None)
    return feat.extract(model, rgb[None], size=store.meta["input_px"], engine=store.meta["engine"])[0]


def chunk_features(files, size_px, backbone, weights, input_px, engine) -> np.ndarray:
    """Features (len(files), dim) of image files: the unit of work a Dask worker runs."""
    model = feat.load_backbone(backbone, weights)
    images = np.stack([to_rgb(read_image(f), size_px or None) for f in files])
    return feat.extract(model, images, size=input_px, engine=engine)


def _run(jobs: dict, scheduler: str, cancel):
    """Yield (start, features) for each job as it finishes, in this process or on Dask."""
    if not jobs:
        return
    if scheduler == "synchronous":
        for start, args in jobs.items():
            _check(cancel)
            yield start, chunk_features(*args)
        return
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler == "local":
        import os

        cluster = LocalCluster(n_workers=max(1, min(len(jobs), os.cpu_count() or 1)), threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client, cluster = Client(scheduler, timeout=SCHEDULER_TIMEOUT), None
        except OSError as exc:
            raise InputError(f"Cannot reach the Dask scheduler at {scheduler} ({exc}). Start it "
                             "(`dask scheduler`) or use --scheduler local.") from None
    try:
        futures = {client.submit(chunk_features, *args, pure=False): start for start, args in jobs.items()}
        for future in as_completed(futures):
            _check(cancel)
            yield futures[future], future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _save_top_activations(folder: Path, rows: np.ndarray, values: np.ndarray) -> None:
    for name, array in (("top_rows.npy", rows), ("top_values.npy", values)):
        with atomic_write(folder / name) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array)


def _check(cancel):
    if cancel is not None and cancel.is_set():
        raise Cancelled("feature extraction cancelled; finished chunks are kept for the next run")
