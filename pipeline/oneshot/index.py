"""faiss indexes over image features: build, query, save, load.

Metric: cosine by default. The length of a pooled CNN feature vector grows with the image's
overall brightness and contrast, which a one-shot search should not care about; cosine compares
which features fire and how strongly relative to each other (vectors are L2-normalised and
searched by inner product; the distance reported is 1 - cosine similarity, in [0, 2]). ``l2``
(Euclidean distance between raw vectors) is the switch.

Kind (``auto`` picks by size):

- ``exact`` (up to ``EXACT_LIMIT`` vectors): a flat index, every vector compared; a query costs a
  few milliseconds.
- ``approximate`` (up to ``COMPRESSED_FROM``): an inverted file (IVF, faiss ``IndexIVFFlat``) of
  about sqrt(n) cells holding the vectors themselves, in memory (10^6 x 1280 float32 is 5 GB).
- ``compressed`` (above): the same cells holding product-quantised codes (faiss ``IndexIVFPQ``,
  one byte per ``PQ_DIMS`` features: 160 bytes for 1280, 1.7 GB for 10^7 vectors with their ids),
  the only part in memory. A learned rotation (faiss ``OPQMatrix``) first spreads the features'
  variance evenly over the code's parts, so that the codes rank well enough for a few hundred
  candidates, not thousands, to hold the true neighbours. The vectors themselves are kept as float16
  in ``vectors.npy`` beside the index and memory-mapped: a query takes the ``rerank`` x max(k,
  ``RECALL_K``) nearest codes and ranks those candidates by their distance on these vectors, so the
  order and distances returned are exact for the candidates. The build streams the vectors in
  chunks, so the features may be a memory-mapped array larger than memory.

The IVF kinds are tuned on sample queries (vectors of the set) against the exact search: the
number of cells searched per query (``nprobe``), and for ``compressed`` the re-ranking factor,
are the smallest (factor first) for which recall@k reaches ``RECALL_TARGET`` with 95% confidence
(its lower bound, not only its mean: other queries then reach it too); the measured recall is kept
with the index.

Memory of a build: at most the caller's features, one normalised copy (none when the rows are
already unit length or had to be converted to float32 anyway) and the index itself; for
``compressed``, a chunk of ``BUILD_CHUNK`` rows, the training sample and the codes.
"""

from __future__ import annotations

import json
import math
import mmap
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write
from pipeline.errors import InputError

METRICS = ("cosine", "l2")
DEFAULT_METRIC = "cosine"
KINDS = ("auto", "exact", "approximate", "compressed")
EXACT_LIMIT = 100_000
COMPRESSED_FROM = 1_000_000  # above this, ``auto`` compresses (an IVF-flat index of 10^6 x 1280 is 5 GB)
PQ_DIMS = 8  # features per byte of a compressed code
RERANK_FACTORS = (2, 5, 10, 20, 50)  # candidates re-ranked, in units of max(k, RECALL_K): tried in turn
TRAIN_SAMPLE = 65_536  # vectors an IVF index is trained on (at least 40 per cell)
BUILD_CHUNK = 65_536  # rows a compressed build reads, prepares and adds at a time
RECALL_TARGET = 0.95
RECALL_K = 100
RECALL_QUERIES = 200
#: How a user rebuilds an index or a whole feature store (``{folder}``: where it goes).
BUILD_COMMAND = "python -m pipeline index IMAGES_DIR --catalog CATALOG.csv --out {folder}"


@dataclass
class IndexInfo:
    """What an index is: ``metric``, ``kind``, vectors ``n`` of ``dim``, IVF ``nlist`` and ``nprobe``,
    for ``compressed`` the re-ranking factor ``rerank`` and the bytes of a code (``code_bytes``) and
    whether a learned rotation precedes the codes (``rotated``), the ``recall`` at ``recall_k``
    measured against the exact search (1.0 when exact), and the ``build`` of the feature store it
    belongs to ("" outside a store)."""

    metric: str
    kind: str
    n: int
    dim: int
    nlist: int = 0
    nprobe: int = 0
    rerank: int = 0
    code_bytes: int = 0
    rotated: bool = False
    recall: float = 1.0
    recall_k: int = RECALL_K
    build: str = ""


class FeatureIndex:
    """A faiss index over ``n`` feature vectors; rows are the vectors' order at build time.
    ``vectors``: the memory-mapped float16 vectors of a ``compressed`` index (None otherwise)."""

    def __init__(self, index, info: IndexInfo, vectors: np.ndarray | None = None):
        self.index, self.info, self.vectors = index, info, vectors

    @classmethod
    def build(cls, features: np.ndarray, metric: str = DEFAULT_METRIC, kind: str = "auto",
              seed: int = 0, folder=None, transform=None) -> FeatureIndex:
        """Index ``features`` (n, dim), or ``transform(features)`` when a function of a block of
        rows is given (e.g. an invariance head's map), applied a chunk at a time for a compressed
        index; see the module docstring for ``metric`` and ``kind``. A compressed index writes
        its vectors into ``folder`` (required for it) at once; :meth:`save` there adds the rest."""
        import faiss

        if metric not in METRICS:
            raise InputError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}.")
        if kind not in KINDS:
            raise InputError(f"index kind must be one of {', '.join(KINDS)}; got {kind!r}.")
        n = len(features)
        if kind == "auto":
            kind = "exact" if n <= EXACT_LIMIT else "approximate" if n <= COMPRESSED_FROM else "compressed"
        if kind == "compressed" and n:
            return cls._build_compressed(features, metric, seed, folder, transform)
        x = _prepared(transform(features) if transform else features, metric)
        n, dim = x.shape
        if kind == "exact":
            index = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
            index.add(x)
            return cls(index, IndexInfo(metric, kind, n, dim))
        nlist = _cells(n)
        index = faiss.IndexIVFFlat(_quantizer(metric, dim), dim, nlist, _faiss_metric(metric))
        rng = np.random.default_rng(seed)
        index.cp.seed = seed
        index.train(x[np.sort(rng.choice(n, size=min(n, max(TRAIN_SAMPLE, 40 * nlist)), replace=False))])
        index.add(x)
        built = cls(index, IndexInfo(metric, kind, n, dim, nlist=nlist, nprobe=1))
        queries = x[rng.choice(n, size=min(RECALL_QUERIES, n), replace=False)]
        k = min(RECALL_K, n)
        tune(built, queries, faiss.knn(queries, x, k, metric=_faiss_metric(metric))[1])  # no second copy of x
        return built

    @classmethod
    def _build_compressed(cls, features, metric: str, seed: int, folder, transform) -> FeatureIndex:
        if folder is None:
            raise InputError("A compressed index keeps its vectors on disk: give the folder it goes in.")
        built = train_compressed(features, metric, seed, transform).filled(features, 0, len(features), folder,
                                                                           transform)
        rng = np.random.default_rng(seed + 1)
        n, k = built.info.n, min(RECALL_K, built.info.n)
        queries = np.asarray(built.vectors[np.sort(rng.choice(n, size=min(RECALL_QUERIES, n), replace=False))],
                             np.float32)
        tune(built, queries, exact(queries, built.vectors, k, metric)[1])
        return built

    def filled(self, features, start: int, stop: int, folder, transform=None) -> FeatureIndex:
        """A copy of this trained, empty compressed index holding rows ``start:stop`` of
        ``features`` (through ``transform``), their float16 vectors written to
        ``folder/vectors.npy``, read ``BUILD_CHUNK`` rows at a time; not tuned."""
        import faiss

        index, n = faiss.clone_index(self.index), stop - start
        path = Path(folder) / "vectors.npy"
        with atomic_write(path) as tmp:
            vectors = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, self.info.dim))
            for first in range(start, stop, BUILD_CHUNK):
                x = prepared_rows(features, slice(first, min(stop, first + BUILD_CHUNK)), self.info.metric, transform)
                vectors[first - start:first - start + len(x)] = x
                index.add(x)
            vectors.flush()
            del vectors
        return FeatureIndex(index, IndexInfo(**{**asdict(self.info), "n": n}), _mapped(path))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors of each query (m, dim): (distances, rows), each (m, k), nearest
        first; rows of -1 (distance inf) when the index holds fewer than k."""
        q, k = checked(self.info, queries, k)
        if self.vectors is None:
            scores, rows = self.candidates(q, k)
        else:
            _, rows = self.candidates(q, pool(self.info, k))
            scores, rows = best(self.rescore(q, rows), rows, k, self.info.metric)
        return distances(scores, rows, self.info.metric), rows.astype(np.int64)

    def candidates(self, q: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss's scores and rows of the ``count`` nearest of each prepared query (by the codes
        for a compressed index), :func:`filling` the list from more cells when it must."""
        if self.info.kind == "exact":
            return self.index.search(q, count)
        return filling(self.in_cells, q, count, self.info.nprobe, self.info.nlist)

    def in_cells(self, q: np.ndarray, count: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss's scores and rows of the ``count`` nearest of each prepared query among the
        vectors of its ``nprobe`` nearest IVF cells (rows of -1 when they hold fewer)."""
        import faiss

        params = faiss.SearchParametersIVF(nprobe=nprobe)
        if isinstance(self.index, faiss.IndexPreTransform):  # rotated codes: the parameters pass through
            params = faiss.SearchParametersPreTransform(index_params=params)
        return self.index.search(q, count, params=params)

    def rescore(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact scores (inner products for cosine, squared distances for l2) of each prepared
        query's ``rows`` (m, c) on a compressed index's vectors, read in row order (which a memory
        map serves fastest); rows of -1 score worst."""
        out = np.full(rows.shape, -np.inf if self.info.metric == "cosine" else np.inf, np.float32)
        for i, r in enumerate(rows):
            valid = np.flatnonzero(r >= 0)
            order = valid[np.argsort(r[valid])]
            out[i, order] = _scores(q[i:i + 1], _widened(self.vectors[r[order]]), self.info.metric)[0]
        return out

    def save(self, folder) -> None:
        """``index.faiss`` and ``index.json`` in ``folder`` (and ``vectors.npy`` when compressed
        and built elsewhere), each written atomically."""
        import faiss

        folder = Path(folder)
        if self.vectors is not None and Path(self.vectors.filename).resolve() != (folder / "vectors.npy").resolve():
            with atomic_write(folder / "vectors.npy") as tmp:
                shutil.copyfile(self.vectors.filename, tmp)
        with atomic_write(folder / "index.faiss") as tmp:
            faiss.write_index(self.index, str(tmp))
        with atomic_write(folder / "index.json") as tmp:
            tmp.write_text(json.dumps(asdict(self.info), indent=2))

    @classmethod
    def load(cls, folder) -> FeatureIndex:
        """The index saved in ``folder``; InputError naming the file when one is missing or damaged."""
        import faiss

        folder = Path(folder)
        rebuild = f"build it again with `{BUILD_COMMAND.format(folder=folder)}`."
        if not (folder / "index.faiss").is_file():
            raise InputError(f"No index in {folder} (index.faiss is missing): {rebuild}")
        try:
            info = IndexInfo(**json.loads((folder / "index.json").read_text()))
            if info.metric not in METRICS or info.kind not in KINDS[1:] or min(info.n, info.dim) < 1:
                raise ValueError("unknown metric or kind, or no vectors")
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise InputError(f"{folder / 'index.json'} is missing or damaged ({type(exc).__name__}: {exc}): "
                             f"{rebuild}") from None
        try:
            index = faiss.read_index(str(folder / "index.faiss"))
        except RuntimeError as exc:  # faiss reports a short or garbled file this way
            raise InputError(f"{folder / 'index.faiss'} is damaged ({str(exc).splitlines()[0][-120:]}): "
                             f"{rebuild}") from None
        if (index.ntotal, index.d) != (info.n, info.dim):
            raise InputError(f"{folder / 'index.faiss'} holds {index.ntotal} vectors of {index.d} features but "
                             f"index.json says {info.n} of {info.dim}: the two are from different builds; {rebuild}")
        vectors = None
        if info.kind == "compressed":
            try:
                vectors = _mapped(folder / "vectors.npy")
                if vectors.shape != (info.n, info.dim) or vectors.dtype != np.float16:
                    raise ValueError(f"{vectors.dtype} {vectors.shape}, not float16 ({info.n}, {info.dim})")
            except (OSError, ValueError) as exc:
                raise InputError(f"{folder / 'vectors.npy'} is missing or damaged ({exc}): {rebuild}") from None
        return cls(index, info, vectors)

    def describe(self) -> str:
        """One line for the UI and the CLI."""
        return describe(self.info)


def train_compressed(features, metric: str = DEFAULT_METRIC, seed: int = 0, transform=None) -> FeatureIndex:
    """An empty compressed index (``IndexIVFPQ``) of ``_cells(len(features))`` cells and
    ``_code_bytes(dim)``-byte codes behind a learned rotation (``OPQMatrix``; for a set under 256
    vectors, fewer bits and no rotation), trained on ``TRAIN_SAMPLE`` rows of ``features`` (at least
    40 per cell) drawn with ``seed``: :meth:`FeatureIndex.filled` adds rows to copies of it."""
    import faiss

    n = len(features)
    if not n:
        raise InputError("Features must be a non-empty (n, dim) array; got no rows.")
    nlist = _cells(n)
    rng = np.random.default_rng(seed)
    sample = prepared_rows(features, np.sort(rng.choice(n, size=min(n, max(TRAIN_SAMPLE, 40 * nlist)), replace=False)),
                           metric, transform)
    dim = sample.shape[1]
    parts = _code_bytes(dim)
    bits = 8 if len(sample) >= 256 else max(1, int(math.log2(len(sample))))  # a tiny set: fewer codes per part
    ivf = faiss.IndexIVFPQ(_quantizer(metric, dim), dim, nlist, parts, bits, _faiss_metric(metric))
    ivf.cp.seed = ivf.pq.cp.seed = seed
    index = faiss.IndexPreTransform(faiss.OPQMatrix(dim, parts), ivf) if bits == 8 else ivf
    index.train(sample)
    return FeatureIndex(index, IndexInfo(metric, "compressed", 0, dim, nlist=nlist, nprobe=1, rerank=RERANK_FACTORS[0],
                                         code_bytes=ivf.code_size, rotated=bits == 8))


def prepared_rows(features, rows, metric: str, transform=None) -> np.ndarray:
    """Rows ``rows`` (a slice or sorted indices) of ``features`` (an array or a memory map), as
    float32 through ``transform``, prepared for ``metric`` (:func:`_prepared`)."""
    block = np.asarray(features[rows], np.float32)
    return _prepared(transform(block) if transform else block, metric)


def describe(info: IndexInfo) -> str:
    """One line for the UI and the CLI about an index described by ``info``."""
    text = f"{info.kind} {info.metric} index of {info.n:,} vectors ({info.dim}-d)"
    if info.kind != "exact":
        text += f", IVF {info.nlist} cells, {info.nprobe} searched"
    if info.kind == "compressed":
        rotated = "rotated " if info.rotated else ""
        text += (f", {info.code_bytes}-byte {rotated}codes, the best {info.rerank} x k re-ranked on float16 vectors "
                 "on disk")
    if info.kind != "exact":
        text += f", measured recall@{info.recall_k} {info.recall:.3f}"
    return text


def checked(info: IndexInfo, queries: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """``queries`` as an index described by ``info`` compares them (float32, unit rows for
    cosine) and ``k`` at most its n; InputError for the wrong number of features or k < 1."""
    q = _prepared(np.atleast_2d(queries), info.metric)
    if q.shape[1] != info.dim:
        raise InputError(f"Query vectors have {q.shape[1]} features; this index holds {info.dim}. "
                         "Use features from the same model as the index.")
    k = int(k)
    if k < 1:
        raise InputError(f"The number of neighbours must be at least 1; got {k}.")
    return q, min(k, info.n)


def pool(info: IndexInfo, k: int) -> int:
    """How many candidates a compressed search of ``k`` neighbours re-ranks."""
    return min(info.n, info.rerank * max(k, RECALL_K))


def tune(index, queries: np.ndarray, truth: np.ndarray) -> None:
    """Set ``index.info.nprobe`` (and for a compressed index the re-ranking factor ``rerank``,
    tried smallest first) to the smallest whose recall@k of ``queries`` against their exact
    neighbours ``truth`` (m, k) reaches ``RECALL_TARGET`` with 95% confidence (mean - 1.96
    standard errors): doubled until it does (or recall stops growing: the next factor is then
    tried), then bisected. Keep the mean recall. ``index``: a :class:`FeatureIndex` or anything
    with its ``info`` and ``search`` (a sharded index)."""
    info, k = index.info, truth.shape[1]

    def recall(nprobe):
        info.nprobe = nprobe
        _, found = index.search(queries, k)
        each = np.array([len(np.intersect1d(a, b)) / k for a, b in zip(found, truth, strict=True)])
        return float(each.mean()), float(each.mean() - 1.96 * each.std() / np.sqrt(len(each)))

    for factor in RERANK_FACTORS if info.kind == "compressed" else (0,):
        info.rerank = factor
        measured = {}
        failed, nprobe = 0, 1
        while True:
            measured[nprobe] = recall(nprobe)
            if measured[nprobe][1] >= RECALL_TARGET or nprobe >= info.nlist or (
                    failed and measured[nprobe][0] <= measured[failed][0] + 0.002):  # no longer growing
                break
            failed, nprobe = nprobe, min(2 * nprobe, info.nlist)
        while nprobe - failed > 1 and measured[nprobe][1] >= RECALL_TARGET:  # smallest that passes
            middle = (failed + nprobe) // 2
            measured[middle] = recall(middle)
            failed, nprobe = (failed, middle) if measured[middle][1] >= RECALL_TARGET else (middle, nprobe)
        if measured[nprobe][1] >= RECALL_TARGET:
            break
    info.nprobe, info.recall, info.recall_k = nprobe, measured[nprobe][0], k


def filling(in_cells, q: np.ndarray, count: int, nprobe: int, nlist: int) -> tuple[np.ndarray, np.ndarray]:
    """``in_cells(q, count, nprobe)``'s scores and rows; a query whose cells held fewer than
    ``count`` (small cells) is asked again with twice the cells until it has them all."""
    scores, rows = in_cells(q, count, nprobe)
    while nprobe < nlist and (short := rows[:, -1] < 0).any():
        nprobe = min(2 * nprobe, nlist)
        scores[short], rows[short] = in_cells(q[short], count, nprobe)
    return scores, rows


def distances(scores: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """Distances (float32) from faiss's ``scores``: 1 - cosine (in [0, 2]: rounding can take a
    cosine past 1), or the Euclidean distance; inf where ``rows`` is -1 (no vector)."""
    out = np.clip(1.0 - scores, 0, 2) if metric == "cosine" else np.sqrt(np.clip(scores, 0, None))
    out[rows < 0] = np.inf
    return out.astype(np.float32)


def _mapped(path: Path) -> np.ndarray:
    """The .npy at ``path`` memory-mapped for random reads: the system reads only the pages a
    re-ranking touches, not the 128 kB around each that it reads ahead by default."""
    vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    if hasattr(mmap, "MADV_RANDOM") and getattr(vectors, "_mmap", None) is not None:
        vectors._mmap.madvise(mmap.MADV_RANDOM)
    return vectors


def _widened(vectors: np.ndarray) -> np.ndarray:
    """Rows (float16 here) as float32, cast by torch: its vectorised cast is about 10x numpy's here
    (0.5 against 4 ms for 2,000 x 1280 rows, a compressed query's candidates before the rotation)."""
    import torch

    with warnings.catch_warnings():  # a memory map's rows are read-only: torch warns, though it only reads them
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(vectors)).float().numpy()


def _cells(n: int) -> int:
    """IVF cells for ``n`` vectors: about sqrt(n), with at least the 39 per cell faiss wants."""
    return max(1, min(n // 39, int(round(math.sqrt(n)))))


def _code_bytes(dim: int) -> int:
    """Bytes of a compressed code: one per ``PQ_DIMS`` features (the largest divisor of ``dim``
    not above dim / PQ_DIMS, since faiss splits the vector evenly)."""
    return max(m for m in range(1, max(1, dim // PQ_DIMS) + 1) if dim % m == 0)


def _faiss_metric(metric: str):
    import faiss

    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def _quantizer(metric: str, dim: int):
    import faiss

    return faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)


def _scores(q: np.ndarray, v: np.ndarray, metric: str) -> np.ndarray:
    """faiss's scores of rows ``v`` for queries ``q``: inner products (cosine) or squared distances."""
    if metric == "cosine":
        return q @ v.T
    return np.einsum("ij,ij->i", q, q)[:, None] - 2 * q @ v.T + np.einsum("ij,ij->i", v, v)[None]


def best(scores: np.ndarray, rows: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row of ``scores`` (larger first for cosine, smaller for l2) and
    their ``rows``, sorted."""
    key = -scores if metric == "cosine" else scores
    if key.shape[1] > k:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
        scores, rows, key = (np.take_along_axis(a, part, 1) for a in (scores, rows, key))
    order = np.argsort(key, axis=1, kind="stable")
    return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)


def exact(queries: np.ndarray, vectors: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores and rows (m, k) of each prepared query's ``k`` nearest ``vectors`` by brute force,
    read ``BUILD_CHUNK`` rows at a time (the vectors may be a memory map larger than memory)."""
    import faiss

    scores = rows = None
    for start in range(0, len(vectors), BUILD_CHUNK):
        block = _widened(vectors[start:start + BUILD_CHUNK])
        s, r = faiss.knn(queries, block, min(k, len(block)), metric=_faiss_metric(metric))
        r = r + start
        if scores is not None:
            s, r = np.concatenate([scores, s], 1), np.concatenate([rows, r], 1)
        scores, rows = best(s, r, k, metric)
    return scores, rows


def _prepared(features, metric: str) -> np.ndarray:
    """float32, C-contiguous, finite; L2-normalised rows for cosine. The caller's array is never
    changed; it is copied only when it has to be (another dtype or layout, or rows to normalise)."""
    given = np.asarray(features)
    x = np.ascontiguousarray(given, np.float32)
    if x.ndim != 2 or not len(x):
        raise InputError(f"Features must be a non-empty (n, dim) array; got shape {x.shape}.")
    squares = np.einsum("ij,ij->i", x, x)  # row norms without a temporary the size of x
    if not np.isfinite(squares).all() and not np.isfinite(x).all():
        raise InputError("Features contain NaN or infinite values: extract them again.")
    if metric == "cosine":
        norms = np.sqrt(squares)[:, None]
        norms[norms == 0] = 1.0
        if not np.may_share_memory(x, given):
            x /= norms  # already our own copy
        elif np.abs(norms - 1.0).max() > 1e-5:
            x = x / norms
    return x
