"""A compressed index split into shards held by Dask workers: a query fans out to every shard
and the best k are merged.

For sets larger than one machine serves, each worker holds one shard's codes in memory and maps
its vectors (:mod:`pipeline.oneshot.index`, kind ``compressed``). A sharded index is a folder::

    FOLDER/shards.json   the whole index's description (``IndexInfo``: n of all shards, the
                         tuned cells searched and re-ranking factor, measured recall) and each
                         shard's folder and rows
    FOLDER/shard-000/    a compressed index (index.faiss, index.json, vectors.npy) of its rows
    FOLDER/trained.faiss the trained, empty index every shard is a copy of

Every shard is a copy of one trained index (the same IVF cells and codebooks, trained once on a
sample of the whole set) holding its own rows. A search fans out twice: each shard returns its
``pool`` best candidates by their codes; of all of them, the ``pool`` best - those one index of
every row would re-rank - are scored on their vectors by the shards that hold them, and the
best k kept. The answer is that of one compressed index of all the rows with the same training
(the benchmark checks it): where the cells searched hold fewer candidates than asked, every
shard searches more cells, as one index does.

The shards are built and served by the workers of ``scheduler`` ("local": a local cluster of
one worker per shard; or a running scheduler's address, ``tcp://host:8786``). Workers read the
features and the shards at the paths given: on a real cluster, a file system they all mount.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write
from pipeline.errors import InputError
from pipeline.oneshot.index import (
    DEFAULT_METRIC,
    RECALL_K,
    RECALL_QUERIES,
    FeatureIndex,
    IndexInfo,
    best,
    checked,
    describe,
    distances,
    exact,
    filling,
    pool,
    prepared_rows,
    train_compressed,
    tune,
)
from pipeline.progress import report
from pipeline.scheduling import dask_client, run_tasks

SHARDS_FILE = "shards.json"


def build_shards(features_file, folder, shards: int, metric: str = DEFAULT_METRIC, scheduler: str = "local",
                 seed: int = 0, transform=None, build: str = "", progress=None) -> None:
    """Split the rows of ``features_file`` (an .npy of (n, dim), through ``transform``) into
    ``shards`` compressed indexes in ``folder``, built by the workers of ``scheduler``; tune the
    whole and write shards.json last (a folder without it is not an index). ``build``: the id of
    the feature store it belongs to."""
    import faiss

    features_file, folder = Path(features_file).resolve(), Path(folder).resolve()
    features = np.load(features_file, mmap_mode="r")
    n = len(features)
    if not 1 <= shards <= n:
        raise InputError(f"The number of shards must be between 1 and the {n:,} vectors; got {shards}.")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SHARDS_FILE).unlink(missing_ok=True)
    trained = train_compressed(features, metric, seed, transform)
    info = asdict(trained.info)
    with atomic_write(folder / "trained.faiss") as tmp:  # the workers read it: no copy in each task
        faiss.write_index(trained.index, str(tmp))
    bounds = np.linspace(0, n, shards + 1).astype(int)
    parts = [{"folder": f"shard-{i:03d}", "start": int(a), "stop": int(b)}
             for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
    jobs = {i: (str(features_file), p["start"], p["stop"], str(folder / "trained.faiss"), info,
                str(folder / p["folder"]), transform)
            for i, p in enumerate(parts)}
    report(progress, 0, shards, "building the shards")
    for done, _ in enumerate(run_tasks(_fill_shard, jobs, scheduler, what="building the shards"), 1):
        report(progress, done, shards, "building the shards")
    whole = IndexInfo(**{**info, "n": n, "build": build})
    with ShardedIndex(folder, whole, parts, scheduler) as index:
        rng = np.random.default_rng(seed + 1)
        queries = prepared_rows(features, np.sort(rng.choice(n, size=min(RECALL_QUERIES, n), replace=False)),
                                metric, transform)
        tune(index, queries, index.exact(queries, min(RECALL_K, n))[1])
    with atomic_write(folder / SHARDS_FILE) as tmp:
        tmp.write_text(json.dumps({"info": asdict(whole), "shards": parts}, indent=2))


def _fill_shard(features_file: str, start: int, stop: int, trained_file: str, info: dict, folder: str,
                transform) -> int:
    """On a worker: the trained index in ``trained_file`` filled with rows ``start:stop``, saved in
    ``folder``."""
    import faiss

    Path(folder).mkdir(parents=True, exist_ok=True)
    trained = FeatureIndex(faiss.read_index(trained_file), IndexInfo(**info))
    shard = trained.filled(np.load(features_file, mmap_mode="r"), start, stop, folder, transform)
    shard.save(folder)
    return stop - start


class ShardServer:
    """A Dask actor holding one shard (rows ``start:`` of the whole index)."""

    def __init__(self, folder: str, start: int):
        import faiss

        faiss.omp_set_num_threads(1)  # one thread per worker
        self.index, self.start = FeatureIndex.load(folder), start

    def in_cells(self, q: np.ndarray, count: int, nprobe: int):
        scores, rows = self.index.in_cells(q, count, nprobe)
        return scores, np.where(rows >= 0, rows + self.start, -1)

    def rescore(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        local = rows - self.start
        return self.index.rescore(q, np.where((rows >= 0) & (local < self.index.info.n), local, -1))

    def exact(self, q: np.ndarray, k: int):
        scores, rows = exact(q, self.index.vectors, min(k, self.index.info.n), self.index.info.metric)
        return scores, rows + self.start


class ShardedIndex:
    """A sharded index served by Dask workers: :meth:`open` it (a context manager; ``close``
    stops a local cluster). ``search`` and ``info`` are those of :class:`FeatureIndex`; the
    workers are reached (a local cluster started) at the first search."""

    def __init__(self, folder: Path, info: IndexInfo, parts: list[dict], scheduler: str):
        self.folder, self.info, self.parts, self.scheduler = Path(folder), info, parts, scheduler
        self._stack = ExitStack()
        self._actors = None

    def _serve(self) -> list:
        """The shards' actors, started on the workers at the first search: one per shard, spread
        over the workers."""
        if self._actors is None:
            try:
                client = self._stack.enter_context(dask_client(self.scheduler, len(self.parts)))
                workers = sorted(client.scheduler_info()["workers"])
                futures = [client.submit(ShardServer, str(self.folder / p["folder"]), p["start"], actor=True,
                                         workers=[workers[i % len(workers)]], pure=False)
                           for i, p in enumerate(self.parts)]
                self._actors = [f.result() for f in futures]
            except BaseException:
                self._stack.close()
                raise
        return self._actors

    @classmethod
    def open(cls, folder, scheduler: str = "local") -> ShardedIndex:
        """The sharded index in ``folder`` on the workers of ``scheduler``; InputError when the
        folder holds none or its shards.json is damaged."""
        folder = Path(folder)
        try:
            doc = json.loads((folder / SHARDS_FILE).read_text())
            info, parts = IndexInfo(**doc["info"]), doc["shards"]
            if sum(p["stop"] - p["start"] for p in parts) != info.n:
                raise ValueError("the shards' rows do not add up to n")
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{folder / SHARDS_FILE} is missing or damaged ({type(exc).__name__}: {exc}): build the "
                             "sharded index again.") from None
        return cls(folder, info, parts, scheduler)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`FeatureIndex.search`: (distances, rows), each (m, k), nearest first."""
        q, k = checked(self.info, queries, k)
        count, metric = pool(self.info, k), self.info.metric
        _, rows = filling(self._in_cells, q, count, self.info.nprobe, self.info.nlist)  # those one index re-ranks
        rescored = np.stack(self._each("rescore", q, rows))  # each shard scores its own rows
        scores = rescored.max(0) if metric == "cosine" else rescored.min(0)
        scores, rows = best(scores, rows, k, metric)
        return distances(scores, rows, metric), rows.astype(np.int64)

    def _in_cells(self, q: np.ndarray, count: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``count`` best by the codes in the ``nprobe`` nearest cells, over every shard (rows of
        -1 when those cells hold fewer): what one index's :meth:`FeatureIndex.in_cells` gives."""
        found = self._each("in_cells", q, count, nprobe)
        scores, rows = np.concatenate([s for s, _ in found], 1), np.concatenate([r for _, r in found], 1)
        scores[rows < 0] = -np.inf if self.info.metric == "cosine" else np.inf
        return best(scores, rows, count, self.info.metric)

    def exact(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force scores and rows (m, k) of prepared queries over every shard's vectors."""
        found = self._each("exact", q, k)
        return best(np.concatenate([s for s, _ in found], 1), np.concatenate([r for _, r in found], 1), k,
                    self.info.metric)

    def describe(self) -> str:
        return f"{describe(self.info)}; in {len(self.parts)} shards on Dask workers"

    def _each(self, method: str, *args) -> list:
        futures = [getattr(actor, method)(*args) for actor in self._serve()]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._stack.close()
        self._actors = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
