"""One-shot search from a prototype, ULISSE's recursive search, and relevance feedback.

Every function takes a feature store (:class:`pipeline.oneshot.store.FeatureStore`: its
``catalog``, ``features`` (n, dim) and faiss ``index``, rows in the same order) and returns an
astropy Table with ``id, distance, iteration, parent`` followed by the catalogue's columns, one
row per galaxy found, nearest first within an iteration. ``distance`` is to the galaxy that
brought it (the prototype in a direct search), in the index's metric.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

import numpy as np
from astropy.table import Table

from pipeline.errors import InputError
from pipeline.oneshot.head import BLOCK
from pipeline.oneshot.stats import label_statistics
from pipeline.progress import check_cancel, report
from pipeline.provenance import PROVENANCE, provenance

if TYPE_CHECKING:
    from pipeline.oneshot.index import FeatureIndex

class Store(Protocol):
    """What a search needs of a feature store (:class:`~pipeline.oneshot.store.FeatureStore` is one):
    the galaxies' catalogue (an ``id`` column first), their features (n, dim), a faiss index over
    them in the search space (``search_space`` maps features there), the row of an id, and
    ``meta`` with the set's ``name`` and the ``model_label``."""

    catalog: Table
    features: np.ndarray
    index: FeatureIndex
    meta: dict

    def row_of(self, galaxy_id) -> int: ...

    def search_space(self, features) -> np.ndarray: ...


MAX_N = 10_000  # neighbours per query: beyond this a search is a catalogue dump, not a query
MAX_ITERATIONS = 20  # recursive iterations: the found set stops growing long before
MAX_FRONTIER = 50  # galaxies that query in the next recursive iteration (the nearest new ones)


def features_of(store: Store, prototype) -> np.ndarray:
    """The network's features of ``prototype``: an id in the store, or a vector (dim,) (e.g. the
    features of an uploaded image, :func:`pipeline.oneshot.store.image_features`)."""
    if isinstance(prototype, np.ndarray) and prototype.ndim == 1:
        return prototype.astype(np.float32)
    return np.asarray(store.features[store.row_of(prototype)], np.float32)


def query_vector(store: Store, prototype) -> np.ndarray:
    """The vector the index is searched with for ``prototype`` (an id or features, as for
    :func:`features_of`): its features in the store's search space (through the head, if any)."""
    return store.search_space(features_of(store, prototype))


def available_neighbours(store: Store, prototype) -> int:
    """How many galaxies a search from ``prototype`` can find: all of the store's but the
    prototype itself (an id; a vector is no galaxy of the store). Refuses an unknown id."""
    return len(store.catalog) - (0 if _own_row(store, prototype) is None else 1)


def one_shot(store: Store, prototype, n: int) -> Table:
    """The ``n`` nearest galaxies to ``prototype`` (an id, or a vector), the prototype itself
    left out. ``iteration`` is 1 and ``parent`` the prototype's id ("" for a vector)."""
    n = _check_n(n, len(store.catalog))
    own = _own_row(store, prototype)
    distances, rows = store.index.search(query_vector(store, prototype), n + 1)
    keep = [(d, r) for d, r in zip(distances[0], rows[0], strict=True) if r >= 0 and r != own][:n]
    parent = "" if own is None else str(store.catalog["id"][own])
    return _result(store, [r for _, r in keep], [d for d, _ in keep], [1] * len(keep), [parent] * len(keep),
                   mode="direct", prototype=_name(store, prototype), n=n)


def recursive(store: Store, prototype, n: int, iterations: int, progress=None,
              cancel: threading.Event | None = None, max_frontier: int = MAX_FRONTIER) -> Table:
    """ULISSE's recursive search: iteration 1 is the one-shot search; each later iteration
    queries with the galaxies found in the previous one, takes each one's ``n`` nearest, and
    keeps those not found before (nor the prototype): duplicates are dropped, not replaced. Every
    galaxy found is kept, but only the ``max_frontier`` found nearest to their query galaxy
    query in the next iteration: without a cap the queries grow as n^iterations (805 queries, 9-22 s,
    in a loose feature space) while the farthest finds are the likeliest to have drifted off.
    Each row's ``parent`` is the galaxy whose query found it first (provenance).
    ``progress(done, total, stage)`` after each iteration; ``cancel`` stops between iterations
    (:mod:`pipeline.progress`)."""
    n = _check_n(n, len(store.catalog))
    if not 1 <= int(iterations) <= MAX_ITERATIONS:
        raise InputError(f"iterations must be between 1 and {MAX_ITERATIONS}; got {iterations}.")
    if int(max_frontier) < 1:
        raise InputError(f"max_frontier (queries per iteration) must be at least 1; got {max_frontier}.")
    own = _own_row(store, prototype)
    seen = set() if own is None else {own}
    frontier_vectors = query_vector(store, prototype)[None]
    frontier_ids = ["" if own is None else str(store.catalog["id"][own])]
    rows, distances, levels, parents = [], [], [], []
    queries = 0
    for iteration in range(1, int(iterations) + 1):
        check_cancel(cancel, "search")
        queries += len(frontier_vectors)
        found_d, found_r = store.index.search(frontier_vectors, n + 1)
        new = []
        for parent, ds, rs in zip(frontier_ids, found_d, found_r, strict=True):
            picked = 0
            for d, r in zip(ds, rs, strict=True):
                if picked == n or r < 0:
                    break
                if str(store.catalog["id"][r]) == parent:
                    continue  # the query galaxy itself
                picked += 1
                if r not in seen:
                    seen.add(int(r))
                    new.append((float(d), int(r), parent))
        new.sort()
        rows += [r for _, r, _ in new]
        distances += [d for d, _, _ in new]
        levels += [iteration] * len(new)
        parents += [p for _, _, p in new]
        report(progress, iteration, int(iterations), f"recursive search: iteration {iteration} of {int(iterations)}")
        if not new:
            break
        frontier = [r for _, r, _ in new[:int(max_frontier)]]  # the nearest new ones
        frontier_vectors = store.search_space(store.features[frontier])
        frontier_ids = [str(store.catalog["id"][r]) for r in frontier]
    return _result(store, rows, distances, levels, parents, mode="recursive", prototype=_name(store, prototype),
                   n=n, iterations=int(iterations), max_frontier=int(max_frontier), queries=queries)


FEEDBACK_METHODS = ("linear", "rocchio")
DEFAULT_FEEDBACK = "linear"
FEEDBACK_C = 10.0  # inverse L2 penalty of the logistic regression, on unit vectors
BACKGROUND = 200  # unmarked galaxies drawn at random as weak negatives: a sought class is rare
BACKGROUND_WEIGHT = 0.05  # each, against 1 for a galaxy marked bad


def refine(store: Store, prototype, n: int, liked=(), disliked=(), method: str = DEFAULT_FEEDBACK,
           alpha: float = 1.0, beta: float = 0.75, gamma: float = 0.25, seed: int = 0) -> Table:
    """Relevance feedback: the ``n`` best galaxies for the prototype (an id or features) and the
    galaxies marked good (``liked``) and bad (``disliked``), ids; the marked ones and the
    prototype are not shown again, so each round shows what is new. They come in the feedback's
    order; ``distance`` is to the prototype, as in a direct search.

    ``method`` "linear" (default): a logistic regression on the search vectors (unit length; the
    prototype and the good ones against the bad ones and ``BACKGROUND`` other galaxies drawn at
    random with weight ``BACKGROUND_WEIGHT`` each, as a sought class is rare; class weights
    balanced by counts before the background's weight applies; C = ``FEEDBACK_C``); its weight
    vector is the query, so the ranking by the classifier's score is an inner-product search of
    the index (a cosine index; brute force for an l2 one). Without any bad one the background
    alone stands against the good ones. "rocchio" (Rocchio 1971): the query moves towards the
    good ones and away from the bad ones, ``alpha q + beta mean(liked) - gamma mean(disliked)`` on
    unit vectors. Measured on real sets (``benchmarks/oneshot_real.py``, the Hubble Deep Field's
    questions): the galaxies newly shown in rounds 1-3 hold 2.4-4.8 times the base rate with the
    linear classifier, 1.0-2.1 times with Rocchio."""
    if method not in FEEDBACK_METHODS:
        raise InputError(f"feedback method must be one of {', '.join(FEEDBACK_METHODS)}; got {method!r}.")
    n = _check_n(n, len(store.catalog))
    own = _own_row(store, prototype)
    good = [store.row_of(i) for i in liked]
    bad = [store.row_of(i) for i in disliked]
    drop = set(good) | set(bad) | ({own} if own is not None else set())
    start = query_vector(store, prototype)
    q = unit_rows(start[None])[0]
    settings = {"method": method}
    if method == "rocchio":
        if good:
            q = alpha * q + beta * unit_rows(store.search_space(store.features[sorted(good)])).mean(axis=0)
        if bad:
            q = q - gamma * unit_rows(store.search_space(store.features[sorted(bad)])).mean(axis=0)
        settings.update(alpha=alpha, beta=beta, gamma=gamma)
    else:
        q = _classifier_query(store, q, sorted(good), sorted(bad), drop, seed)
        settings.update(C=FEEDBACK_C, background=BACKGROUND, background_weight=BACKGROUND_WEIGHT, seed=seed)
    if store.index.info.metric == "cosine":
        distances, rows = store.index.search(q.astype(np.float32), n + len(drop))
        keep = [(d, r) for d, r in zip(distances[0], rows[0], strict=True) if r >= 0 and r not in drop][:n]
    else:  # l2 index: score every galaxy by the query direction
        scores = _unit_search_vectors(store) @ unit_rows(q[None])[0]
        scores[list(drop)] = -np.inf
        best = np.argsort(-scores, kind="stable")[:n]
        keep = [(1.0 - float(scores[r]), int(r)) for r in best if np.isfinite(scores[r])]
    parent = "" if own is None else str(store.catalog["id"][own])
    label = {"linear": "feedback (linear classifier)", "rocchio": "feedback (Rocchio)"}[method]
    rows = [r for _, r in keep]
    from pipeline.oneshot.index import distances  # faiss: only once a search runs

    # ranked by the feedback, but the distance is to the prototype, as the index gives it
    found = store.search_space(store.features[rows]) if rows else np.zeros((0, len(start)), np.float32)
    metric = store.index.info.metric
    scores = unit_rows(found) @ unit_rows(start[None])[0] if metric == "cosine" else ((found - start) ** 2).sum(1)
    to_prototype = distances(scores[None], np.zeros((1, len(rows))), metric)[0]
    return _result(store, rows, to_prototype, [1] * len(keep), [parent] * len(keep),
                   mode=label, prototype=_name(store, prototype), n=n,
                   feedback={"liked": sorted(map(str, liked)), "disliked": sorted(map(str, disliked)), **settings})


def _classifier_query(store: Store, prototype_vector: np.ndarray, good: list[int], bad: list[int], marked: set,
                      seed: int) -> np.ndarray:
    """The weight vector of the feedback's logistic regression (see :func:`refine`)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    others = np.setdiff1d(np.arange(len(store.catalog)), np.fromiter(marked, int, len(marked)))
    background = np.sort(rng.choice(others, min(BACKGROUND, len(others)), replace=False))
    positives = np.vstack([prototype_vector[None], unit_rows(store.search_space(store.features[good]))]) if good \
        else prototype_vector[None]
    negatives = [unit_rows(store.search_space(store.features[rows])) for rows in (bad, background) if len(rows)]
    if not negatives:  # a store of the prototype alone: nothing to stand against
        return prototype_vector
    x = np.vstack([positives, *negatives])
    y = np.r_[np.ones(len(positives)), np.zeros(len(x) - len(positives))]
    weight = np.r_[np.ones(len(positives) + len(bad)), np.full(len(background), BACKGROUND_WEIGHT)]
    model = LogisticRegression(C=FEEDBACK_C, class_weight="balanced", max_iter=2000)
    model.fit(x, y, sample_weight=weight)
    return model.coef_[0].astype(np.float32)


_UNIT_VECTORS: dict = {}  # id(store) -> (store, unit_search_vectors(store)): l2 feedback only


def _unit_search_vectors(store: Store) -> np.ndarray:
    """:func:`unit_search_vectors` of ``store``, computed once per store in this process."""
    known = _UNIT_VECTORS.get(id(store))
    if known is not None and known[0] is store:
        return known[1]
    out = unit_search_vectors(store)
    _UNIT_VECTORS.clear()  # one store at a time: the one being searched
    _UNIT_VECTORS[id(store)] = (store, out)
    return out


def unit_search_vectors(store: Store, cancel: threading.Event | None = None) -> np.ndarray:
    """Every galaxy's search vector at unit length, float32 (n, dim): the features through the
    store's head, ``head.BLOCK`` rows at a time; ``cancel`` is checked between blocks."""
    n = len(store.catalog)
    out = np.empty((n, store.features.shape[1]), np.float32)
    for start in range(0, n, BLOCK):
        check_cancel(cancel, "the search vectors")
        out[start:start + BLOCK] = unit_rows(store.search_space(store.features[start:start + BLOCK]))
    return out


def unit_rows(x) -> np.ndarray:
    """Rows of ``x`` (m, dim) scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def iteration_statistics(store: Store, result: Table, column: str, positive, prototype=None) -> list[dict]:
    """Label statistics of a recursive search after each iteration (everything found so far),
    each beside a direct one-shot query of the same total size from ``prototype`` (its key
    ``direct``, None without a prototype). Keys: those of :func:`label_statistics` plus
    ``iteration`` and ``total``."""
    out = []
    for iteration in sorted(set(int(i) for i in result["iteration"])):
        found = result[result["iteration"] <= iteration]
        rows = [store.row_of(i) for i in found["id"]]
        stats = label_statistics(store.catalog, rows, column, positive)
        direct = None
        if prototype is not None:
            same = one_shot(store, prototype, len(found))
            direct = label_statistics(store.catalog, [store.row_of(i) for i in same["id"]], column, positive)
        out.append({**stats, "iteration": iteration, "total": len(found), "direct": direct})
    return out


def _check_n(n, size: int) -> int:
    n = int(n)
    if not 1 <= n <= MAX_N:
        raise InputError(f"n (neighbours) must be between 1 and {MAX_N}; got {n}.")
    return min(n, size)


def _own_row(store: Store, prototype):
    if isinstance(prototype, np.ndarray) and prototype.ndim == 1:
        return None
    return store.row_of(prototype)


def _name(store: Store, prototype) -> str:
    """The prototype as a result's provenance names it: its id, or what an image query is."""
    own = _own_row(store, prototype)
    return "an image's features (no galaxy of the set)" if own is None else str(store.catalog["id"][own])


def _result(store: Store, rows, distances, levels, parents, **search) -> Table:
    """The result table; its ``meta["provenance"]`` records the set, the model and ``search``
    (mode, prototype, n, iterations, feedback)."""
    rows = np.asarray(rows, int)
    out = Table({"id": np.asarray(store.catalog["id"])[rows].astype(str) if len(rows) else np.array([], str),
                 "distance": np.asarray(distances, np.float32), "iteration": np.asarray(levels, int),
                 "parent": np.asarray(parents, str) if len(parents) else np.array([], str)})
    for name in store.catalog.colnames:
        if name != "id":
            out[name] = store.catalog[name][rows] if len(rows) else store.catalog[name][:0]
    out.meta[PROVENANCE] = provenance(set=store.meta["name"], model=store.meta["model_label"],
                                      index=store.index.describe(), **search)
    return out
