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
from pipeline.oneshot.stats import label_statistics
from pipeline.progress import check_cancel, report
from pipeline.provenance import PROVENANCE, provenance

if TYPE_CHECKING:
    from pipeline.oneshot.index import FeatureIndex

class Store(Protocol):
    """What a search needs of a feature store (:class:`~pipeline.oneshot.store.FeatureStore` is one):
    the galaxies' catalogue (an ``id`` column first), their features (n, dim), a faiss index over
    them, the row of an id, and ``meta`` with the set's ``name`` and the ``model_label``."""

    catalog: Table
    features: np.ndarray
    index: FeatureIndex
    meta: dict

    def row_of(self, galaxy_id) -> int: ...


MAX_N = 10_000  # neighbours per query: beyond this a search is a catalogue dump, not a query
MAX_ITERATIONS = 20  # recursive iterations: the found set stops growing long before


def query_vector(store: Store, prototype) -> np.ndarray:
    """The feature vector of ``prototype``: an id in the store, or a vector (dim,) (e.g. the
    features of an uploaded image)."""
    if isinstance(prototype, np.ndarray) and prototype.ndim == 1:
        return prototype.astype(np.float32)
    return np.asarray(store.features[store.row_of(prototype)], np.float32)


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
              cancel: threading.Event | None = None) -> Table:
    """ULISSE's recursive search: iteration 1 is the one-shot search; each later iteration
    queries with every galaxy found in the previous one, takes its ``n`` nearest, and keeps
    those not found before (nor the prototype): duplicates are dropped, not replaced. Each row's
    ``parent`` is the galaxy whose query found it first (provenance). ``progress(done, total, stage)``
    after each iteration; ``cancel`` stops between iterations (:mod:`pipeline.progress`)."""
    n = _check_n(n, len(store.catalog))
    if not 1 <= int(iterations) <= MAX_ITERATIONS:
        raise InputError(f"iterations must be between 1 and {MAX_ITERATIONS}; got {iterations}.")
    own = _own_row(store, prototype)
    seen = set() if own is None else {own}
    frontier_vectors = query_vector(store, prototype)[None]
    frontier_ids = ["" if own is None else str(store.catalog["id"][own])]
    rows, distances, levels, parents = [], [], [], []
    for iteration in range(1, int(iterations) + 1):
        check_cancel(cancel, "search")
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
        frontier_vectors = np.asarray(store.features[[r for _, r, _ in new]], np.float32)
        frontier_ids = [str(store.catalog["id"][r]) for _, r, _ in new]
    return _result(store, rows, distances, levels, parents, mode="recursive", prototype=_name(store, prototype),
                   n=n, iterations=int(iterations))


def refine(store: Store, prototype, n: int, liked=(), disliked=(), alpha: float = 1.0, beta: float = 0.75,
           gamma: float = 0.25) -> Table:
    """Relevance feedback over the frozen features (Rocchio 1971): the query moves towards the
    galaxies marked as good and away from the bad ones, ``alpha q + beta mean(liked) - gamma
    mean(disliked)`` on unit vectors; then a one-shot search with it. Disliked galaxies never
    come back. ``liked``, ``disliked``: ids."""
    def unit(v):
        return v / max(float(np.linalg.norm(v)), 1e-12)

    q = alpha * unit(query_vector(store, prototype))
    if len(liked):
        q = q + beta * np.mean([unit(query_vector(store, i)) for i in liked], axis=0)
    if len(disliked):
        q = q - gamma * np.mean([unit(query_vector(store, i)) for i in disliked], axis=0)
    own = _own_row(store, prototype)
    drop = {store.row_of(i) for i in disliked} | ({own} if own is not None else set())
    n = _check_n(n, len(store.catalog))
    distances, rows = store.index.search(q.astype(np.float32), n + len(drop))
    keep = [(d, r) for d, r in zip(distances[0], rows[0], strict=True) if r >= 0 and r not in drop][:n]
    parent = "" if own is None else str(store.catalog["id"][own])
    return _result(store, [r for _, r in keep], [d for d, _ in keep], [1] * len(keep), [parent] * len(keep),
                   mode="feedback (Rocchio)", prototype=_name(store, prototype), n=n,
                   feedback={"liked": sorted(map(str, liked)), "disliked": sorted(map(str, disliked)),
                             "alpha": alpha, "beta": beta, "gamma": gamma})


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
