"""One-shot search at survey scale: a compressed index of 10^7 vectors, an index sharded over Dask.

Two tables, each printed and written to ``benchmarks/results/<name>.json``:

``oneshot_scale``
    For n vectors of 1280-d (``--sizes``, default 10^7): the ``compressed`` index as
    ``FeatureIndex.build`` makes it (IVF-PQ codes in memory, float16 vectors memory-mapped for
    re-ranking; cosine metric). Build time and the build's peak resident memory (this process,
    synthesis included: its anonymous memory, sampled; and with the mapped files' pages it has
    read, which the system may drop); the index's memory when a fresh process loads it (``ram_mb``: its
    anonymous memory, which the codes are; ``mapped_mb``: the vectors' pages the system keeps
    cached, which it may drop); what it chose (cells, cells searched, re-ranking factor);
    p50/p95 of single-query time for k = 100 over 200 queries, first with the vectors' file
    dropped from the page cache (``cold``, when the system allows it) and then again (``warm``);
    and recall@100 against brute force over all n vectors.

``oneshot_shards``
    The index split into ``--shards`` shards (default 4) on as many local Dask worker processes
    (``pipeline.oneshot.shards``), over ``--shard-n`` vectors (default 4 x 10^6): build time,
    p50/p95 of single queries through the cluster, recall@100 against brute force, and whether
    its answers (rows and distances of the k = 100 nearest) are those of one index over the
    same vectors with the same training.

The vectors are synthesised around the real features of the simulated survey as in
``benchmarks/oneshot.py`` (its ``synthesise`` and ``calibrate_noise``: the survey's own
neighbour distances), a chunk at a time, and written as float16 to ``--work`` (25.6 GB for 10^7,
kept for the next run when its parameters match); the queries are 200 more synthesised with
another seed (new galaxies of the same survey). Recall is against brute force over the stored
vectors, computed while they are written.

Usage: python benchmarks/oneshot_scale.py [--sizes 10000000] [--shard-n 4000000] [--shards 4]
       [--tables scale,shards] [--work benchmarks/work/scale] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline, not an installed one
sys.path.insert(0, str(Path(__file__).parent))
from _report import report
from oneshot import calibrate_noise, synthesise

K = 100
QUERIES = 200
CHUNK = 65_536
SYNTH_VERSION = 1


def real_vectors() -> np.ndarray:
    """The search vectors of the embedded simulated survey's store (built on first use)."""
    from pipeline.oneshot.galaxies import GalaxySet
    from pipeline.oneshot.galaxy_sets import SIMULATED_SET_NAME, default_sets
    from pipeline.oneshot.store import cached_store

    store = cached_store(GalaxySet.open(default_sets()[SIMULATED_SET_NAME]), scheduler="synchronous")
    return np.ascontiguousarray(store.search_space(store.features), np.float32)


def vectors_file(work: Path, real: np.ndarray, n: int) -> tuple[Path, np.ndarray, np.ndarray, dict]:
    """The float16 vectors (n, dim) in ``work`` (made unless a matching file is there), the
    queries, their exact neighbours' rows (QUERIES, K) and the synthesis's description."""
    import faiss

    from pipeline.oneshot.index import best

    path, sidecar = work / f"vectors-{n}.npy", work / f"vectors-{n}.json"
    noise, real_profile, synthetic_profile = calibrate_noise(real)
    m, dim = real.shape
    queries = synthesise(real, m + QUERIES, noise, seed=7)[m:]
    described = {"version": SYNTH_VERSION, "n": n, "noise_s": noise, "real_k1_k10_k50": real_profile,
                 "synthetic_k1_k10_k50": synthetic_profile, "real_sha": float(real.sum(dtype=np.float64))}
    if sidecar.is_file() and json.loads(sidecar.read_text()).get("described") == described and path.is_file():
        stored = json.loads(sidecar.read_text())
        return path, queries, np.array(stored["truth"]), described
    t0 = time.perf_counter()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
    scores = rows = None
    for i, start in enumerate(range(0, n, CHUNK)):
        stop = min(n, start + CHUNK)
        block = synthesise(real, m + stop - start, noise, seed=1000 + i)[m:] if start else \
            synthesise(real, stop, noise, seed=1000)
        out[start:stop] = block
        s, r = faiss.knn(queries, np.asarray(out[start:stop], np.float32), K, metric=faiss.METRIC_INNER_PRODUCT)
        if scores is not None:
            s, r = np.concatenate([scores, s], 1), np.concatenate([rows, r + start], 1)
        scores, rows = best(s, r, K, "cosine")
        if i % 20 == 0:
            print(f"  synthesised {stop:,} of {n:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    out.flush()
    del out
    sidecar.write_text(json.dumps({"described": described, "truth": rows.tolist()}))
    return path, queries, rows, described


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakAnon:
    """The peak of this process's anonymous resident memory (MB) while the block runs, sampled
    every 0.2 s: what a build really holds. ru_maxrss would add the pages of memory-mapped files
    it has read, which the system may drop at any time."""

    def __enter__(self):
        import threading

        self.peak, self._stop = _status_mb("RssAnon"), threading.Event()

        def sample():
            while not self._stop.wait(0.2):
                self.peak = max(self.peak, _status_mb("RssAnon"))

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_mb("RssAnon"))


def _drop_cache(path: Path) -> bool:
    """Drop ``path``'s pages from the page cache (posix_fadvise); True when the system allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return True
    except (OSError, AttributeError):
        return False


def _timed(search, queries) -> tuple[np.ndarray, np.ndarray]:
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, rows = search(q[None], K)
        times.append(time.perf_counter() - t0)
        found.append(rows[0])
    return 1e3 * np.array(times), np.array(found)


def _recall(found, truth) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) / K for a, b in zip(found, truth, strict=True)]))


def query_worker(folder: str, queries_file: str) -> dict:
    """In a fresh process: load the index, time the queries cold then warm, report memory."""
    from pipeline.oneshot.index import FeatureIndex

    queries = np.load(queries_file)
    before = _status_mb("RssAnon")
    index = FeatureIndex.load(folder)
    ram = _status_mb("RssAnon") - before
    dropped = _drop_cache(Path(folder) / "vectors.npy")
    cold, found = _timed(index.search, queries)
    warm, _ = _timed(index.search, queries)
    return {"ram_mb": ram, "mapped_mb": _status_mb("RssFile"), "cache_dropped": dropped,
            "cold_p50_ms": float(np.percentile(cold, 50)), "cold_p95_ms": float(np.percentile(cold, 95)),
            "warm_p50_ms": float(np.percentile(warm, 50)), "warm_p95_ms": float(np.percentile(warm, 95)),
            "found": found.tolist()}


def scale_table(work: Path, real: np.ndarray, sizes, reuse: bool = False) -> list[dict]:
    from pipeline.oneshot.index import FeatureIndex, IndexInfo

    rows = []
    for n in sizes:
        path, queries, truth, described = vectors_file(work, real, n)
        folder = work / f"index-{n}"
        folder.mkdir(exist_ok=True)
        if reuse and (folder / "build.json").is_file():  # built before: query it again
            built = json.loads((folder / "build.json").read_text())
        else:
            t0 = time.perf_counter()
            with PeakAnon() as peak:
                index = FeatureIndex.build(np.load(path, mmap_mode="r"), kind="compressed", folder=folder)
            built = {"build_s": time.perf_counter() - t0, "build_peak_anon_mb": peak.peak,
                     "peak_rss_with_mapped_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            index.save(folder)
            del index
            (folder / "build.json").write_text(json.dumps(built))
        info = IndexInfo(**json.loads((folder / "index.json").read_text()))  # not the 1.6 GB of codes again
        np.save(work / "queries.npy", queries)
        out = subprocess.run([sys.executable, __file__, "--query-worker", str(folder), str(work / "queries.npy")],
                             capture_output=True, text=True, check=True)
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"n": n, "nlist": info.nlist, "nprobe": info.nprobe, "rerank": info.rerank,
                     "code_bytes": info.code_bytes, "rotated": info.rotated, **built,
                     "ram_mb": measured["ram_mb"], "mapped_mb": measured["mapped_mb"],
                     "vectors_gb": (folder / "vectors.npy").stat().st_size / 1e9,
                     "cache_dropped": measured["cache_dropped"],
                     "cold_p50_ms": measured["cold_p50_ms"], "cold_p95_ms": measured["cold_p95_ms"],
                     "warm_p50_ms": measured["warm_p50_ms"], "warm_p95_ms": measured["warm_p95_ms"],
                     f"recall@{K}": _recall(measured["found"], truth), "tuned_recall": info.recall,
                     "noise_s": described["noise_s"]})
        print(rows[-1], flush=True)
    return rows


def shards_table(work: Path, real: np.ndarray, n: int, shards: int) -> list[dict]:
    import faiss

    from pipeline.oneshot.index import FeatureIndex, IndexInfo
    from pipeline.oneshot.shards import ShardedIndex, build_shards

    path, queries, truth, described = vectors_file(work, real, n)
    folder = work / f"shards-{n}"
    t0 = time.perf_counter()
    build_shards(path, folder, shards, scheduler="local")
    build_s = time.perf_counter() - t0
    with ShardedIndex.open(folder, "local") as sharded:
        info = sharded.info
        _timed(sharded.search, queries[:10])  # the actors' first calls
        ms, found = _timed(sharded.search, queries)
        distances = np.array([sharded.search(q[None], K)[0][0] for q in queries])
    one_folder = work / f"one-{n}"
    one_folder.mkdir(exist_ok=True)
    trained = FeatureIndex(faiss.read_index(str(folder / "trained.faiss")), IndexInfo(**{**vars(info), "n": 0}))
    t0 = time.perf_counter()
    one = trained.filled(np.load(path, mmap_mode="r"), 0, n, one_folder)
    one_s = time.perf_counter() - t0
    one.info.nprobe, one.info.rerank = info.nprobe, info.rerank
    one_ms, one_found = _timed(one.search, queries)
    one_distances = np.array([one.search(q[None], K)[0][0] for q in queries])
    return [{"n": n, "shards": shards, "nlist": info.nlist, "nprobe": info.nprobe, "rerank": info.rerank,
             "build_s": build_s, "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
             f"recall@{K}": _recall(found, truth), "tuned_recall": info.recall,
             "same_rows": float(np.mean(found == one_found)),
             "max_distance_difference": float(np.abs(distances - one_distances).max()),
             "one_index_fill_s": one_s, "one_index_p50_ms": float(np.percentile(one_ms, 50)),
             "one_index_p95_ms": float(np.percentile(one_ms, 95)), f"one_index_recall@{K}": _recall(one_found, truth),
             "noise_s": described["noise_s"]}]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000000", help="compressed index sizes (vectors)")
    parser.add_argument("--shard-n", type=int, default=4_000_000, help="vectors of the sharded index")
    parser.add_argument("--shards", type=int, default=4, help="shards, one local Dask worker each")
    parser.add_argument("--tables", default="scale,shards", help="which tables (default both)")
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "work" / "scale",
                        help="where the vectors and indexes go (about 2.6 GB per 10^6 vectors, twice)")
    parser.add_argument("--reuse", action="store_true",
                        help="query an index this script built before in --work (its build figures kept) instead of "
                        "building it again")
    parser.add_argument("--query-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.query_worker:
        print(json.dumps(query_worker(*args.query_worker)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    real = real_vectors()
    tables = set(args.tables.split(","))
    if "scale" in tables:
        rows = scale_table(args.work, real, [int(s) for s in args.sizes.split(",")], args.reuse)
        report("oneshot_scale", rows, targets={
            "n = 10^7": "p95 < 10 ms, recall@100 >= 0.95, index in RAM < 2 GB, build peak < 8 GB",
            "load_1min": os.getloadavg()[0]})
    if "shards" in tables:
        rows = shards_table(args.work, real, args.shard_n, args.shards)
        report("oneshot_shards", rows, targets={
            f"{args.shards} local workers, {args.shard_n:,} vectors": "the same answers as one index",
            "load_1min": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
