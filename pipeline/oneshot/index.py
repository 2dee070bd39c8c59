"""faiss indexes over image features: build, query, save, load.

Metric: cosine by default. The length of a pooled CNN feature vector grows with the image's
overall brightness and contrast, which a one-shot search should not care about; cosine compares
which features fire and how strongly relative to each other (vectors are L2-normalised and
searched by inner product; the distance reported is 1 - cosine similarity, in [0, 2]). ``l2``
(Euclidean distance between raw vectors) is the switch.

Kind: ``exact`` (a flat index, every vector compared) up to ``EXACT_LIMIT`` vectors, where one
query costs a few milliseconds; above it ``approximate``: an inverted file (IVF, faiss
``IndexIVFFlat``) with about sqrt(n) cells, whose number of cells searched per query (``nprobe``)
is the smallest for which recall@k against the exact search on sample queries reaches
``RECALL_TARGET`` with 95% confidence (its lower bound, not only its mean: other queries then
reach it too); the measured recall is kept with the index.

Memory: at most the caller's features, one normalised copy (none when the rows are already unit
length or had to be converted to float32 anyway) and the index itself; 10^6 x 1280 float32 is 5 GB.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write
from pipeline.errors import InputError

METRICS = ("cosine", "l2")
DEFAULT_METRIC = "cosine"
KINDS = ("auto", "exact", "approximate")
EXACT_LIMIT = 100_000
RECALL_TARGET = 0.95
RECALL_K = 100
RECALL_QUERIES = 200
#: How a user rebuilds an index or a whole feature store (``{folder}``: where it goes).
BUILD_COMMAND = "python -m pipeline index IMAGES_DIR --catalog CATALOG.csv --out {folder}"


@dataclass
class IndexInfo:
    """What an index is: ``metric``, ``kind``, vectors ``n`` of ``dim``, IVF ``nlist`` and
    ``nprobe``, the ``recall`` at ``recall_k`` measured against the exact search (1.0 when exact),
    and the ``build`` of the feature store it belongs to ("" outside a store)."""

    metric: str
    kind: str
    n: int
    dim: int
    nlist: int = 0
    nprobe: int = 0
    recall: float = 1.0
    recall_k: int = RECALL_K
    build: str = ""


class FeatureIndex:
    """A faiss index over ``n`` feature vectors; rows are the vectors' order at build time."""

    def __init__(self, index, info: IndexInfo):
        self.index, self.info = index, info

    @classmethod
    def build(cls, features: np.ndarray, metric: str = DEFAULT_METRIC, kind: str = "auto",
              seed: int = 0) -> FeatureIndex:
        """Index ``features`` (n, dim); see the module docstring for ``metric`` and ``kind``."""
        import faiss

        if metric not in METRICS:
            raise InputError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}.")
        if kind not in KINDS:
            raise InputError(f"index kind must be one of {', '.join(KINDS)}; got {kind!r}.")
        x = _prepared(features, metric)
        n, dim = x.shape
        if kind == "auto":
            kind = "exact" if n <= EXACT_LIMIT else "approximate"
        faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        if kind == "exact":
            index = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
            index.add(x)
            return cls(index, IndexInfo(metric, kind, n, dim))
        nlist = max(1, min(n // 39, int(round(math.sqrt(n)))))  # faiss wants >= 39 points per cell
        quantizer = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
        rng = np.random.default_rng(seed)
        train = x[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        index.cp.seed = seed
        index.train(train)
        index.add(x)
        built = cls(index, IndexInfo(metric, kind, n, dim, nlist=nlist, nprobe=1))
        built.tune(x, rng)
        return built

    def tune(self, x: np.ndarray, rng) -> None:
        """Set ``nprobe`` to the smallest whose recall@k on sample queries (vectors of the set,
        themselves excluded from neither search) reaches ``RECALL_TARGET`` with 95% confidence
        (mean - 1.96 standard errors): doubled until it does, then bisected. Keep the mean recall."""
        import faiss

        k = min(RECALL_K, self.info.n)
        queries = x[rng.choice(self.info.n, size=min(RECALL_QUERIES, self.info.n), replace=False)]
        metric = faiss.METRIC_INNER_PRODUCT if self.info.metric == "cosine" else faiss.METRIC_L2
        _, truth = faiss.knn(queries, x, k, metric=metric)  # brute force without a second copy of x

        def recall(nprobe):
            self.index.nprobe = nprobe
            _, found = self.index.search(queries, k)
            each = np.array([len(np.intersect1d(a, b)) / k for a, b in zip(found, truth, strict=True)])
            return float(each.mean()), float(each.mean() - 1.96 * each.std() / np.sqrt(len(each)))

        measured = {}
        failed, nprobe = 0, 1
        while True:
            measured[nprobe] = recall(nprobe)
            if measured[nprobe][1] >= RECALL_TARGET or nprobe >= self.info.nlist:
                break
            failed, nprobe = nprobe, min(2 * nprobe, self.info.nlist)
        while nprobe - failed > 1 and measured[nprobe][1] >= RECALL_TARGET:  # smallest that passes
            middle = (failed + nprobe) // 2
            measured[middle] = recall(middle)
            failed, nprobe = (failed, middle) if measured[middle][1] >= RECALL_TARGET else (middle, nprobe)
        self.index.nprobe = nprobe
        self.info.nprobe, self.info.recall, self.info.recall_k = nprobe, measured[nprobe][0], k

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors of each query (m, dim): (distances, rows), each (m, k), nearest
        first; rows of -1 (distance inf) when the index holds fewer than k."""
        q = _prepared(np.atleast_2d(queries), self.info.metric)
        if q.shape[1] != self.info.dim:
            raise InputError(f"Query vectors have {q.shape[1]} features; this index holds {self.info.dim}. "
                             "Use features from the same model as the index.")
        k = int(k)
        if k < 1:
            raise InputError(f"The number of neighbours must be at least 1; got {k}.")
        scores, rows = self.index.search(q, min(k, self.info.n))
        if self.info.metric == "cosine":
            distances = 1.0 - scores
        else:
            distances = np.sqrt(np.clip(scores, 0, None))
        distances[rows < 0] = np.inf
        return distances.astype(np.float32), rows.astype(np.int64)

    def save(self, folder) -> None:
        """``index.faiss`` and ``index.json`` in ``folder``, each written atomically."""
        import faiss

        folder = Path(folder)
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
        if info.kind == "approximate":
            index.nprobe = info.nprobe
        return cls(index, info)

    def describe(self) -> str:
        """One line for the UI and the CLI."""
        text = f"{self.info.kind} {self.info.metric} index of {self.info.n:,} vectors ({self.info.dim}-d)"
        if self.info.kind == "approximate":
            text += (f", IVF {self.info.nlist} cells, {self.info.nprobe} searched, measured "
                     f"recall@{self.info.recall_k} {self.info.recall:.3f}")
        return text


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
