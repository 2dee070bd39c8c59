"""The feature store: a galaxy set's features and faiss index, kept beside a copy of its catalogue.

``python -m pipeline index`` and the explorer build one per galaxy set and model::

    INDEX_DIR/catalog.csv    the set's catalogue (rows in feature order, ids as text)
    INDEX_DIR/features.npy   (n, dim) float32 (1280 for the EfficientNets): the network's features
                             of each galaxy's view (:mod:`pipeline.oneshot.views`)
    INDEX_DIR/head.npz       the invariance head, when the store has one (:mod:`pipeline.oneshot.head`)
    INDEX_DIR/index.faiss    the faiss index of the search vectors (the features through the head,
                             if any; + index.json: metric, kind, measured recall, build id; and for
                             a compressed index vectors.npy, its float16 vectors)
    INDEX_DIR/shards/        instead, when built with ``shards`` > 1: a compressed index split
                             into shards served by Dask workers (:mod:`pipeline.oneshot.shards`)
    INDEX_DIR/top_*.npy      per feature, the images that activate it most (the feature atlas)
    INDEX_DIR/store.json     the model, input size and preprocessing, the images' folder, counts,
                             the build id, the ids' digest and a fingerprint of each .npy/.faiss file

Extraction is split into chunks of images run in this process (``"synchronous"``: one after
another; ``"threads"``: a thread per core, each chunk's network on one thread) or on Dask:
``"local"`` (a local cluster, one worker process per core, one thread each, no dashboard) or any
running scheduler by its address to scale out (its workers need this package installed and the
images at the same path). The default, ``"auto"``, is ``"threads"`` on several cores (the fastest
on one machine: see :func:`pipeline.oneshot.extraction.pick_scheduler`). Each finished chunk is written at once into
``.INDEX_DIR.parts/`` beside the store, named by its images' ids, paths, sizes and modification
and change times: an interrupted build resumes where it stopped when run again with the same
model and settings, and a chunk whose images changed is extracted again. A store with an
invariance head (the default) then describes augmented views of a sample of ``head.SAMPLE``
galaxies, in chunks kept the same way, and fits the head on them.

A build writes the whole store into a new hidden folder beside it (``.INDEX_DIR.build-<id>``)
and swaps it in at the end (old store renamed away, new one in, old one deleted): readers see
the old store or the new one, never a mix, and a killed build leaves the old store whole. The
next build removes what a killed one left; opening removes stray temporary files. A lock on the
parts folder keeps two builds out of one store. Opening checks every file against store.json
(counts, ids, build id, fingerprints) and refuses a damaged or mixed store, naming the file and
the command that rebuilds it. A build never writes over its inputs: ``INDEX_DIR`` may not be or
hold the images folder, an image or the catalogue, nor be a folder of other files.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from pipeline.atomic import atomic_write, replace_folder
from pipeline.cache import cache_dir
from pipeline.errors import InputError
from pipeline.oneshot import extraction, views
from pipeline.oneshot.backbones import DEFAULT_BACKBONE
from pipeline.oneshot.extraction import (
    chunk_key,
    part_done,
    run_chunks,
)
from pipeline.oneshot.galaxies import (
    PREPROCESSING_NOTE,
    GalaxySet,
    read_catalog,
    read_image,
    to_rgb,
)
from pipeline.oneshot.head import SAMPLE, InvarianceHead, fit_head
from pipeline.oneshot.index import BUILD_COMMAND, DEFAULT_METRIC, FeatureIndex
from pipeline.oneshot.shards import ShardedIndex, build_shards
from pipeline.progress import report

try:
    import fcntl
except ImportError:  # Windows has no fcntl: builds there are not locked against each other
    fcntl = None

CHUNK = 128  # images per Dask task: big enough to amortise a task, small enough to resume often
STORE_VERSION = 3  # 2: build id, ids digest, fingerprints; parts beside the store. 3: views and head
STORE_FILES = ("catalog.csv", "features.npy", "index.faiss", "index.json", "vectors.npy", "top_rows.npy",
               "top_values.npy", "head.npz", "store.json", "shards")
FINGERPRINTED = ("features.npy", "index.faiss", "top_rows.npy", "top_values.npy")  # and head.npz if any
FINGERPRINT_BYTES = 1 << 20  # hashed at each end of a file: cheap even for a 5 GB features.npy
_CACHE_LOCK = threading.Lock()  # one build of a cached store at a time in this process (cached_store)


@dataclass
class FeatureStore:
    """A built store (see the module docstring): ``catalog``, ``features`` (n, dim) in the same
    row order, the faiss ``index`` of their search vectors, ``meta`` (store.json) and the
    invariance ``head`` (None without one)."""

    folder: Path
    catalog: Table
    features: np.ndarray
    index: FeatureIndex
    meta: dict
    head: InvarianceHead | None = None

    @classmethod
    def open(cls, folder, scheduler: str = "local") -> FeatureStore:
        """The store in ``folder``, every file checked against store.json; InputError naming the
        file that is missing, damaged or from another build. A sharded index is served by the
        workers of ``scheduler`` (a local cluster, or a running scheduler's address): :meth:`close`
        the store when done."""
        folder = Path(folder)
        if not (folder / "store.json").is_file():
            raise InputError(f"{folder} holds no complete feature store: build it with "
                             f"`{BUILD_COMMAND.format(folder=folder)}`.")
        meta = _read_meta(folder)
        for name in _fingerprinted(meta):
            if not (folder / name).is_file():
                raise _damaged(folder, name, "is missing")
            if _fingerprint(folder / name) != meta["files"].get(name):
                raise _damaged(folder, name, "does not match store.json (changed, cut short or from another build)")
        try:
            catalog = read_catalog(folder / "catalog.csv")
        except InputError as exc:
            raise _damaged(folder, "catalog.csv", f"is unreadable ({exc})") from None
        if len(catalog) != meta["n"] or _ids_digest(catalog["id"]) != meta["ids_sha1"]:
            raise _damaged(folder, "catalog.csv", f"holds {len(catalog)} galaxies, not the {meta['n']} whose ids "
                           "store.json records")
        features = _array(folder, "features.npy", (meta["n"], meta["dim"]), np.float32)
        for name, dtype in (("top_rows.npy", np.int32), ("top_values.npy", np.float32)):
            _array(folder, name, (meta["dim"], meta["top_k"]), dtype)
        index = ShardedIndex.open(folder / "shards", scheduler) if meta["shards"] > 1 else FeatureIndex.load(folder)
        if index.info.build != meta["build"] or (index.info.n, index.info.dim) != features.shape:
            raise _damaged(folder, "index.json", "belongs to another build than store.json")
        head = None
        if meta["invariance"] == "head":
            try:
                head = InvarianceHead.load(folder / "head.npz", meta["dim"])
            except InputError as exc:
                raise _damaged(folder, "head.npz", f"is {exc}") from None
        _clean_leftovers(folder)
        return cls(folder, catalog, features, index, meta, head)

    def close(self) -> None:
        """Stop serving a sharded index (nothing to do for the others)."""
        if isinstance(self.index, ShardedIndex):
            self.index.close()

    def __post_init__(self):
        self._rows = {str(v): i for i, v in enumerate(self.catalog["id"])}

    def search_space(self, features) -> np.ndarray:
        """Feature vectors (n, dim) or (dim,) as the index holds them: through the head, if any."""
        return self.head.apply(features) if self.head is not None else np.asarray(features, np.float32)

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
        :func:`pipeline.oneshot.atlas.top_activations`), made when the store was built."""
        return np.load(self.folder / "top_rows.npy"), np.load(self.folder / "top_values.npy")

    def network(self) -> str:
        """The network that made the features, as the UI and the command line name it (an 8-bit
        one says so)."""
        bits = " in 8-bit integers (not the float network's features)" if self.meta["engine"] == "onnx-int8" else ""
        return f"{self.meta['model_label']}{bits}"

    def describe(self) -> str:
        return (f"{self.meta['name']}: {len(self.catalog):,} galaxies; features of "
                f"{self.network()} at {self.meta['input_px']} px; {self.index.describe()}. "
                f"{views.describe(self.meta['crop'], self.meta['invariance'])}")

    def view(self, row: int) -> np.ndarray:
        """The view of galaxy ``row`` the network was shown (RGB uint8): its cutout cropped as the
        store's ``crop`` says (the feature atlas draws feature maps over it)."""
        return views.view(self.galaxies.rgb(int(row)), self.meta["crop"])


def build_store(galaxies: GalaxySet, out, backbone: str = DEFAULT_BACKBONE, weights=None,
                size: int = 224, metric: str = DEFAULT_METRIC, kind: str = "auto", engine: str = "onnx",
                scheduler: str = "auto", chunk: int = CHUNK, crop: str = views.DEFAULT_CROP,
                invariance: str = views.DEFAULT_INVARIANCE, shards: int = 1, progress=None,
                cancel: threading.Event | None = None) -> FeatureStore:
    """Extract the features of every image of ``galaxies`` with ``backbone`` at ``size`` px, of
    the views ``crop`` and ``invariance`` make (:mod:`pipeline.oneshot.views`; with the "head",
    fit it), index them (with ``shards`` > 1 in a compressed index split into that many shards,
    built and then served by the workers of ``scheduler``) and write the store to ``out``,
    replacing a store there as a whole (see the module docstring). ``progress(done, total,
    stage)`` (:mod:`pipeline.progress`) counts images; ``cancel`` stops between chunks (finished
    chunks are kept for the next run; a store already in ``out`` is left as it was)."""
    from pipeline.oneshot import features as feat  # torch: only where a network runs

    out = Path(out).expanduser().resolve()  # the swap moves the real folder, never a link to it
    views.check_options(crop, invariance)
    if shards < 1 or shards > 1 and kind not in ("auto", "compressed"):
        raise InputError(f"Shards are parts of a compressed index: give at least 1 shard and kind compressed (or "
                         f"auto); got {shards} shard(s) of kind {kind!r}.")
    if invariance == "head" and len(galaxies) < 2:
        raise InputError(f"The set holds {len(galaxies)} galaxy: an invariance head is learnt from several. Use "
                         "--invariance dihedral (or none) for it.")
    _check_out(galaxies, out)
    model = feat.load_backbone(backbone, weights)  # a wrong name or missing weights fail here
    if engine == "onnx-int8":
        feat.onnx_session(model, size, int8=True)  # made here once (or refused), before any worker reads it
    n = len(galaxies)
    files = [str(galaxies.path(row)) for row in range(n)]
    with _build_lock(out) as parts:
        plan = {"version": STORE_VERSION, "backbone": backbone, "weights_sha256": model.digest,
                "input_px": int(size), "size_px": int(galaxies.size), "engine": engine, "chunk": int(chunk),
                "crop": crop, "dihedral": invariance == "dihedral", "views_version": views.VIEWS_VERSION}
        if _read_json(parts / "plan.json") != plan:  # another model or settings: start over
            for old in parts.iterdir():
                if old.is_dir():
                    shutil.rmtree(old)
                else:
                    old.unlink()
            with atomic_write(parts / "plan.json") as tmp:
                tmp.write_text(json.dumps(plan))
        settings = (galaxies.size, backbone, str(weights) if weights else None, int(size), engine, crop)
        features = _extract_in_parts(parts, "", galaxies.ids, files, chunk,
                                     lambda start, chunk_files: (chunk_files, *settings, invariance),
                                     extraction.chunk_features, scheduler, progress, cancel,
                                     "describing the galaxies with the ImageNet network").astype(np.float32)
        head = None
        if invariance == "head":
            head = fit_head(_augmented_sample(galaxies, files, parts, settings, scheduler, chunk, progress, cancel))
        meta = {"version": STORE_VERSION, "name": galaxies.name, "images": str(galaxies.folder.resolve()),
                "size_px": int(galaxies.size), "n": n, "backbone": backbone,
                "model_label": model.label, "weights": str(weights or ""), "weights_file": model.weights,
                "weights_sha256": model.digest, "input_px": int(size),
                "preprocessing": f"{PREPROCESSING_NOTE} {views.describe(crop, invariance)} Then: {feat.PREPROCESSING}",
                "engine": engine, "crop": crop, "invariance": invariance, "views_version": views.VIEWS_VERSION,
                "notes": galaxies.notes, "built": time.strftime("%Y-%m-%d %H:%M:%S"), "shards": int(shards)}
        _write_store(out, galaxies.catalog, features, meta, head, metric, kind, scheduler)
        shutil.rmtree(parts, ignore_errors=True)
    return FeatureStore.open(out, scheduler=_shard_scheduler(scheduler))


def cached_store(galaxies: GalaxySet, backbone: str = DEFAULT_BACKBONE, size: int = 224,
                 scheduler: str = "local", progress=None, cancel=None) -> FeatureStore:
    """The store of ``galaxies`` for ``backbone`` at ``size`` px in the cache
    (``pipeline.cache``), built on first use (resuming an interrupted build)."""
    key = hashlib.sha1("\n".join([str(galaxies.folder.resolve()), *galaxies.ids, *galaxies.catalog["file"]]).encode())
    slug = "".join(c if c.isalnum() else "-" for c in galaxies.name.lower()).strip("-")[:40]
    folder = cache_dir("stores", f"{slug}-{key.hexdigest()[:12]}-{backbone}-{int(size)}px")
    with _CACHE_LOCK:  # two sessions opening the same set wait for one build
        if (folder / "store.json").is_file():
            try:
                return FeatureStore.open(folder)
            except InputError:
                pass  # damaged, or made by another version: built again below
        return build_store(galaxies, folder, backbone=backbone, size=size, scheduler=scheduler,
                           progress=progress, cancel=cancel)


def image_features(store: FeatureStore, image) -> np.ndarray:
    """Features (dim,) of one image (a file path, or an RGB uint8 array) made as the store's were:
    same model, input size, preprocessing and views; e.g. an uploaded prototype (a search takes
    it through the store's head: :meth:`FeatureStore.search_space`)."""
    from pipeline.oneshot import features as feat

    rgb = image if isinstance(image, np.ndarray) else to_rgb(read_image(image))
    rgb = to_rgb(rgb, store.meta["size_px"] or None)
    model = feat.load_backbone(store.meta["backbone"], store.meta["weights"] or None)
    return views.view_features(model, [rgb], store.meta["crop"], store.meta["invariance"], store.meta["input_px"],
                               store.meta["engine"])[0]


def _augmented_sample(galaxies: GalaxySet, files: list[str], parts: Path, settings: tuple, scheduler: str,
                      chunk: int, progress, cancel) -> np.ndarray:
    """Features (m, 8, dim) of eight augmented views of each of ``head.SAMPLE`` galaxies drawn
    at random (seed 0; all of a smaller set): extracted in chunks like the features, kept in
    ``parts`` (named ``head-...``) so that an interrupted build resumes. ``settings``: the
    arguments of :func:`~pipeline.oneshot.extraction.chunk_augmented` after the files."""
    sample = np.sort(np.random.default_rng(0).permutation(len(files))[:SAMPLE])
    return _extract_in_parts(parts, "head-", [galaxies.ids[r] for r in sample], [files[r] for r in sample],
                             max(1, chunk // 8), lambda start, chunk_files: (chunk_files, *settings, start),
                             extraction.chunk_augmented, scheduler, progress, cancel,
                             "learning the invariance head from rotated and flipped views")


def _extract_in_parts(parts: Path, prefix: str, ids: list[str], files: list[str], step: int, job, function,
                      scheduler: str, progress, cancel, stage: str) -> np.ndarray:
    """``function``'s output for ``files`` in chunks of ``step``, concatenated: each chunk's
    arguments are ``job(start, its files)``; each finished chunk is saved at once in ``parts``
    (named ``prefix``, its start and :func:`chunk_key`) and a chunk saved whole before is not
    run again. ``progress`` counts files under ``stage``."""
    n = len(files)
    starts = range(0, n, step)
    names = {s: f"{prefix}{s:09d}-{chunk_key(ids, files, s, step)}.npy" for s in starts}
    todo = [s for s in starts if not part_done(parts / names[s], min(step, n - s))]
    done = n - sum(min(step, n - s) for s in todo)
    report(progress, done, n, stage)
    jobs = {s: job(s, files[s:s + step]) for s in todo}
    for start, vectors in run_chunks(jobs, scheduler, cancel, function=function):
        with atomic_write(parts / names[start]) as tmp, open(tmp, "wb") as f:
            np.save(f, vectors)
        done += len(vectors)
        report(progress, done, n, stage)
    return np.concatenate([np.load(parts / names[s]) for s in starts])


@functools.lru_cache(maxsize=2)
def _head_in(path: str, dim: int) -> InvarianceHead:
    return InvarianceHead.load(path, dim)


def _through_head(path: str, dim: int, block: np.ndarray) -> np.ndarray:
    """``block`` through the invariance head saved at ``path`` (read once per process)."""
    return _head_in(path, dim).apply(block)


def _shard_scheduler(scheduler: str) -> str:
    """Where a build's shards are built and served: workers are needed, so a local cluster unless
    a scheduler's address was given."""
    return "local" if scheduler in ("auto", "synchronous", "threads", "local") else scheduler


def _fingerprinted(meta: dict) -> tuple[str, ...]:
    """The files of a store whose fingerprints store.json keeps."""
    if meta["shards"] > 1:
        names = tuple(name for name in FINGERPRINTED if name != "index.faiss") + ("shards/shards.json",)
    else:
        names = FINGERPRINTED + (("vectors.npy",) if meta["index_kind"] == "compressed" else ())
    return names + (("head.npz",) if meta["invariance"] == "head" else ())


def _write_store(out: Path, catalog: Table, features: np.ndarray, meta: dict, head: InvarianceHead | None,
                 metric: str, kind: str, scheduler: str) -> None:
    """Write every file of a store into a new build folder beside ``out``, then swap it in; the
    index (of ``metric`` and ``kind``, sharded when ``meta["shards"]`` > 1) is built there."""
    from pipeline.oneshot.atlas import top_activations

    build = uuid.uuid4().hex[:16]
    staging = out.parent / f".{out.name}.build-{build}"
    staging.mkdir()
    try:
        np.save(staging / "features.npy", features)
        if head is not None:
            head.save(staging / "head.npz")
        catalog.write(staging / "catalog.csv", format="ascii.csv")
        transform = head.apply if head is not None else None
        if meta["shards"] > 1:  # the workers read the head from its file: no copy of it in every task
            through_head = functools.partial(_through_head, str(staging / "head.npz"), int(features.shape[1]))
            build_shards(staging / "features.npy", staging / "shards", meta["shards"], metric,
                         _shard_scheduler(scheduler), transform=through_head if head is not None else None,
                         build=build)
            kind = "compressed"
        else:
            index = FeatureIndex.build(np.load(staging / "features.npy", mmap_mode="r"), metric=metric, kind=kind,
                                       folder=staging, transform=transform)
            index.info.build, kind = build, index.info.kind
            index.save(staging)
        rows, values = top_activations(features)
        np.save(staging / "top_rows.npy", rows)
        np.save(staging / "top_values.npy", values)
        meta = {**meta, "build": build, "dim": int(features.shape[1]), "top_k": int(rows.shape[1]),
                "ids_sha1": _ids_digest(catalog["id"]), "index_kind": kind}
        meta["files"] = {name: _fingerprint(staging / name) for name in _fingerprinted(meta)}
        (staging / "store.json").write_text(json.dumps(meta, indent=2))  # last: the build is complete
        try:
            replace_folder(staging, out)
        except OSError as exc:
            raise InputError(f"Cannot move the new store into {out} ({exc.strerror}); the old one, if any, is "
                             "unchanged. Give --out a folder you may replace (not a mount point).") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_out(galaxies: GalaxySet, out: Path) -> None:
    """Refuse an ``out`` whose replacement would destroy an input or a folder that is not a store."""
    images = galaxies.folder.resolve()
    advice = (f"A build replaces its --out folder as a whole: give a new folder outside the inputs, e.g. "
              f"{images.parent / (images.name + '-index')}.")
    inputs = {"the images folder": images}
    if galaxies.source is not None:
        inputs["the catalogue"] = Path(galaxies.source).resolve()
    for what, path in inputs.items():
        if path == out or out in path.parents:
            raise InputError(f"--out {out} {'is' if path == out else 'holds'} {what} ({path}). {advice}")
    if images in out.parents:
        inside = next((f for f in galaxies.catalog["file"]
                       if os.path.commonpath([out, os.path.realpath(images / f)]) == str(out)), None)
        if inside is not None:
            raise InputError(f"--out {out} holds images of the set (e.g. {inside}). {advice}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder. {advice}")
    if out.is_dir() and any(out.iterdir()):
        others = [p.name for p in out.iterdir() if not _store_entry(p.name)]
        if others or not ((out / "store.json").is_file() or (out / "parts" / "plan.json").is_file()):
            raise InputError(f"--out {out} is not a feature store (it holds {', '.join(others[:3]) or 'no store.json'})"
                             " and a build would delete what it holds. Give a new or empty folder, or move those "
                             "files out.")


def _store_entry(name: str) -> bool:
    """A file a store (of this version or the first) may hold."""
    return name in STORE_FILES or name == "parts" or (name.startswith(".") and name.endswith(".tmp"))


@contextmanager
def _build_lock(out: Path):
    """Yield the parts folder beside ``out`` (``.NAME.parts``), locked for this build, after
    removing what killed builds left; refuse when another build holds it."""
    parts = out.parent / f".{out.name}.parts"
    for _ in range(3):  # the folder may vanish under us when a build finishes just then
        try:
            parts.mkdir(parents=True, exist_ok=True)
            fd = os.open(parts, os.O_RDONLY)
        except OSError as exc:
            raise InputError(f"Cannot write beside {out} ({exc.strerror}): give --out in a folder you may "
                             "write to.") from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise InputError(f"Another build into {out} is under way: wait for it to end (or stop it) "
                                     "and run again.") from None
            if parts.is_dir() and os.path.samestat(os.fstat(fd), os.stat(parts)):
                _clean_leftovers(out, builds=True)
                yield parts
                return
        finally:
            os.close(fd)
    raise InputError(f"Another build into {out} keeps finishing under this one: run again.")


def _clean_leftovers(folder: Path, builds: bool = False) -> None:
    """Remove what killed builds left: temporary files of cut-short writes in the store, an old
    store renamed away and, with ``builds`` (only under the build lock), unfinished build folders.
    Read-only folders are left as they are."""
    name = glob.escape(folder.name)
    patterns = [f".{name}.old-*"] + ([f".{name}.build-*"] if builds else [])
    leftovers = [p for pattern in patterns for p in folder.parent.glob(pattern)]
    if folder.is_dir():
        leftovers += [p for file in STORE_FILES for p in folder.glob(f".{file}.*.tmp")]
    parts = folder.parent / f".{folder.name}.parts"
    if builds and parts.is_dir():
        leftovers += list(parts.glob(".*.tmp"))
    for path in leftovers:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            pass


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _read_meta(folder: Path) -> dict:
    meta = _read_json(folder / "store.json")
    if not isinstance(meta, dict):
        raise _damaged(folder, "store.json", "is not readable JSON")
    if meta.get("version") != STORE_VERSION or meta.get("views_version") != views.VIEWS_VERSION:
        raise InputError(f"{folder / 'store.json'}: this store was made by another version of the pipeline (store "
                         f"version {meta.get('version')!r}, views version {meta.get('views_version')!r}; this one "
                         f"reads {STORE_VERSION} and {views.VIEWS_VERSION}). Build it again with "
                         f"`{BUILD_COMMAND.format(folder=folder)}`.")
    meta.setdefault("shards", 1)  # written since shards came: the stores before have one uncompressed index
    meta.setdefault("index_kind", "exact")
    needed = {"build": str, "n": int, "dim": int, "top_k": int, "ids_sha1": str, "files": dict, "images": str,
              "size_px": int, "name": str, "backbone": str, "weights": str, "input_px": int, "engine": str,
              "model_label": str, "crop": str, "invariance": str, "shards": int, "index_kind": str}
    wrong = [key for key, kind in needed.items() if not isinstance(meta.get(key), kind)]
    if not wrong and (meta["crop"] not in views.CROPS or meta["invariance"] not in views.INVARIANCES):
        wrong = ["crop", "invariance"]
    if wrong:
        raise _damaged(folder, "store.json", f"lacks or garbles {', '.join(wrong)}")
    return meta


def _array(folder: Path, name: str, shape: tuple, dtype) -> np.ndarray:
    """``folder/name`` memory-mapped, checked to be ``shape`` of ``dtype``."""
    try:
        array = np.load(folder / name, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        raise _damaged(folder, name, f"is unreadable ({exc})") from None
    if array.shape != tuple(shape) or array.dtype != dtype:
        raise _damaged(folder, name, f"holds {array.dtype} {array.shape}, not the {np.dtype(dtype)} {tuple(shape)} "
                       "store.json describes")
    return array


def _damaged(folder: Path, name: str, what: str) -> InputError:
    return InputError(f"{folder / name} {what}: this feature store is damaged or mixed from different builds. "
                      f"Build it again with `{BUILD_COMMAND.format(folder=folder)}`.")


def _fingerprint(path: Path) -> str:
    """Size and a SHA-1 of the first and last ``FINGERPRINT_BYTES`` of a file."""
    size = path.stat().st_size
    digest = hashlib.sha1(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(f.read())
    return f"{size}:{digest.hexdigest()}"


def _ids_digest(ids) -> str:
    return hashlib.sha1("\0".join(str(i) for i in ids).encode()).hexdigest()
