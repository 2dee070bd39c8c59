"""A map of a feature store: every galaxy placed in two dimensions so that galaxies near each other
in the search space stay near each other on the map (issue 15, item 5: the layout; the explorer
draws it).

The search vectors (through the store's invariance head, at unit length: what the cosine index
compares) are reduced to ``PCA_COMPONENTS`` by a principal component analysis, then laid out by
t-SNE (van der Maaten & Hinton 2008; scikit-learn's Barnes-Hut, PCA initialisation, seed 0). Up
to ``TSNE_LIMIT`` galaxies all take part; above it a random sample of that many is laid out and
every other galaxy is placed at the mean position of its ``PLACE_NEIGHBOURS`` nearest sampled
galaxies (cosine, in the PCA space, by faiss): t-SNE's cost grows faster than the set, while the
placement is one k-nearest-neighbour query per galaxy.

A layout is computed once per store build and kept in the cache (``cache_dir("maps")``, named
by the build's id, written atomically): the store's folder stays as its build wrote it.
"""

from __future__ import annotations

import numpy as np

from pipeline.atomic import atomic_write
from pipeline.cache import cache_dir
from pipeline.oneshot.head import BLOCK
from pipeline.progress import check_cancel, report

MAP_VERSION = 1  # bump when the layout's recipe changes: cached maps are made again
PCA_COMPONENTS = 50
TSNE_LIMIT = 20_000
PLACE_NEIGHBOURS = 5
PERPLEXITY = 30.0


def layout(store, progress=None, cancel=None) -> np.ndarray:
    """The map of ``store`` (a :class:`~pipeline.oneshot.store.FeatureStore`): float32 (n, 2),
    rows in the store's order; from the cache when this build's map was made before.
    ``progress(done, total, stage)`` and ``cancel`` as in :mod:`pipeline.progress`."""
    path = cache_dir("maps") / f"{store.meta['build']}-v{MAP_VERSION}.npy"
    n = len(store.catalog)
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (n, 2) and cached.dtype == np.float32 and np.isfinite(cached).all():
                return cached
        except (OSError, ValueError, EOFError):
            pass  # damaged: made again below
    from pipeline.oneshot.search import unit_search_vectors

    report(progress, 0, 3, "mapping the feature space: the search vectors")
    positions = compute_layout(unit_search_vectors(store, cancel), progress=progress, cancel=cancel)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.save(f, positions)
    return positions


def map_table(store, positions: np.ndarray, rows=None):
    """The catalogue of ``store`` (its ``rows``, default all) with the map's ``map_x`` and
    ``map_y`` after the id, and the map's provenance: what ``python -m pipeline map`` and the
    explorer's export of a selection write."""
    from pipeline.provenance import PROVENANCE, provenance

    rows = np.arange(len(store.catalog)) if rows is None else np.asarray(rows, int)
    table = store.catalog[rows]
    table.add_column(positions[rows, 0], name="map_x", index=1)
    table.add_column(positions[rows, 1], name="map_y", index=2)
    table.meta[PROVENANCE] = provenance(set=store.meta["name"], model=store.meta["model_label"],
                                        map=f"PCA to {PCA_COMPONENTS} dimensions, then t-SNE (perplexity "
                                        f"{PERPLEXITY:g}, seed 0) of the search vectors")
    return table


def compute_layout(vectors: np.ndarray, seed: int = 0, progress=None, cancel=None) -> np.ndarray:
    """2-D positions (n, 2) float32 of ``vectors`` (n, dim), as the module docstring says."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(vectors, np.float32)
    n = len(x)
    if n < 4:  # too few for t-SNE: a line is a faithful map of three points or fewer
        return np.column_stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)])
    components = min(PCA_COMPONENTS, n - 1, x.shape[1])
    reduced = PCA(components, svd_solver="randomized", random_state=seed).fit_transform(x).astype(np.float32)
    check_cancel(cancel, "the map")
    report(progress, 1, 3, f"mapping the feature space: t-SNE of {min(n, TSNE_LIMIT):,} galaxies")
    sample = np.sort(np.random.default_rng(seed).permutation(n)[:TSNE_LIMIT]) if n > TSNE_LIMIT else np.arange(n)
    tsne = TSNE(2, perplexity=min(PERPLEXITY, (len(sample) - 1) / 3), init="pca", random_state=seed)
    placed = tsne.fit_transform(reduced[sample]).astype(np.float32)
    positions = np.empty((n, 2), np.float32)
    positions[sample] = placed
    rest = np.setdiff1d(np.arange(n), sample)
    if len(rest):
        import faiss

        check_cancel(cancel, "the map")
        report(progress, 2, 3, f"mapping the feature space: placing {len(rest):,} more by their neighbours")
        from pipeline.oneshot.search import unit_rows

        known = unit_rows(reduced[sample])
        index = faiss.IndexFlatIP(known.shape[1])
        index.add(known)
        for start in range(0, len(rest), BLOCK):
            rows = rest[start:start + BLOCK]
            _, nearest = index.search(unit_rows(reduced[rows]), PLACE_NEIGHBOURS)
            positions[rows] = placed[nearest].mean(axis=1)
    report(progress, 3, 3, "mapping the feature space: done")
    return positions
