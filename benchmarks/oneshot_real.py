"""One-shot search on real labelled galaxies: what to show the network, and feedback that converges.

Two real sets, both read or made on this machine, neither shipped with the project:

``zoobot``
    320 DECaLS colour cutouts (424 x 424 px JPEG) from ../shared/data/galaxies/zoobot_rings
    (GPL-3.0, for development only; ``--zoobot`` to point elsewhere), label ``ring`` (160 rings,
    160 others). A rare class is what a one-shot search is for, so it is measured at a ring rate
    of 10%: all 160 non-rings with 18 rings drawn at random, ``DRAWS`` times. (Classes under
    ``COMMON_RATE``, as both of the HDF's, are searched as they are.)
``hdf``
    The 368 sources of the Hubble Deep Field that the explorer embeds (real HST galaxies, 64 px
    cutouts, made by :mod:`pipeline.oneshot.hubble_deep_field`). It has no labels, so two are
    measured here with photutils on the full image, the same segmentation that found the
    sources: ``elongated`` (ellipticity 1 - b/a > 0.5: 35 galaxies, 9.5%) and ``red`` (the reddest
    12% in B - R, from each segment's flux in the B and R channels: 45 galaxies). Measured
    from pixels, not by eye, but real galaxies with their real noise, blending and neighbours.

``oneshot_real_views``
    For each (crop, invariance) of :mod:`pipeline.oneshot.views` (a feature store built for each
    with ``build_store``: EfficientNet-Lite0, 224 px, onnx, exact cosine index): precision@10 of
    each minority-class prototype (the share of its 10 nearest galaxies, itself left out, in its
    class) over chance (the class's share of the other galaxies), averaged over prototypes (and
    draws); ``se``: standard error over prototypes; ``auroc_all_labels``: how well the class can
    be told at all (:func:`separability`); ``build_s``: the store's build time.
``oneshot_real_feedback``
    Relevance feedback with the labels answering for a user, on the default views and on the
    whole frames without invariance: round 0 shows the prototype's 10 nearest galaxies; in each
    of 3 rounds every galaxy shown so far is marked good or bad by its label, the search is
    re-ranked (``search.refine``: ``linear`` or ``rocchio``; ``none``: the prototype's next 10
    nearest) and the next 10 unseen galaxies are shown. Precision of the 10 newly shown over
    chance, per round, averaged over prototypes (and draws), and their mean over rounds 1-3;
    ``left i``: the same precision over the class's share among the galaxies not yet shown, which
    the earlier rounds drain on these small sets (on a survey it stays the base rate). Method
    ``ceiling`` shows every class member not yet shown first: the most any feedback could find.
    A zoobot draw holds 17 rings besides the prototype: found all at once they fill 10, 7, 0 and 0
    places, so its round 3 cannot show a ring.
``oneshot_real_recursive``
    ULISSE's recursive search (n = 3, 5 iterations, as ULISSE; and n = 10, 3 iterations) against
    the direct query of the same total size, from the same prototypes: precision over chance of
    each, galaxies found, queries made, seconds.
``oneshot_real_engines``
    The default views' store built with ``--engine onnx`` and ``onnx-int8`` (the network in 8 bits,
    :mod:`pipeline.oneshot.quantised`): ``top10_overlap``, the share of every galaxy's 10 nearest
    (cosine, in the search space) that the two stores have in common, averaged over galaxies; and
    precision@10 over chance of each, per question. Target for int8 as a default: overlap >= 0.95.

Usage: python benchmarks/oneshot_real.py [--quick] [--zoobot FOLDER] [--tables views,feedback,recursive,engines]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline, not an installed one
sys.path.insert(0, str(Path(__file__).parent))
from _report import report

ROOT = Path(__file__).resolve().parents[1]
ZOOBOT = ROOT.parent / "shared" / "data" / "galaxies" / "zoobot_rings"
K = 10
RARE_RATE = 0.10
COMMON_RATE = 0.20  # a class at least this common is drawn down to RARE_RATE
DRAWS = 20
ROUNDS = 3
VARIANTS = [("frame", "none"), ("frame", "dihedral"), ("frame", "head"),
            ("galaxy", "none"), ("galaxy", "dihedral"), ("galaxy", "head")]
ELONGATED = 0.5  # ellipticity
RED_SHARE = 0.12


def hdf_labels(catalog) -> dict[str, np.ndarray]:
    """``elongated`` and ``red`` of the embedded Hubble Deep Field set's galaxies (see the module
    docstring), matched to the catalogue's centroids."""
    from photutils.segmentation import SourceCatalog
    from scipy.spatial import cKDTree
    from skimage.data import hubble_deep_field

    from pipeline.oneshot.hubble_deep_field import segment

    rgb = hubble_deep_field().astype(np.float32)
    sources, segments, _ = segment(rgb.sum(axis=2))
    bands = []
    for channel in (0, 2):  # R, B
        sky = np.median(rgb[..., channel])
        bands.append(np.asarray(SourceCatalog(rgb[..., channel] - sky, segments).segment_flux, float))
    distance, match = cKDTree(sources.centroid).query(np.c_[catalog["x"], catalog["y"]])
    assert distance.max() < 0.5, "the set's sources are not those of this segmentation"
    ellipticity = np.asarray(sources.ellipticity, float)[match]
    colour = -2.5 * np.log10(np.clip(bands[0][match], 1, None) / np.clip(bands[1][match], 1, None))
    return {"elongated": ellipticity > ELONGATED, "red": colour > np.quantile(colour, 1 - RED_SHARE)}


class Subset:
    """Rows of a feature store, searched on their own (what :mod:`pipeline.oneshot.search` needs)."""

    def __init__(self, store, rows):
        from pipeline.oneshot.index import FeatureIndex

        self.catalog = store.catalog[rows]
        self.features = np.asarray(store.features)[rows]
        self.search_space = store.search_space
        self.index = FeatureIndex.build(self.search_space(self.features), kind="exact")
        self.meta = store.meta
        self._rows = {str(g): i for i, g in enumerate(self.catalog["id"])}

    def row_of(self, galaxy_id) -> int:
        return self._rows[str(galaxy_id)]


def subsets(labels: np.ndarray, draws: int, seed: int = 0) -> list[np.ndarray]:
    """The rows searched: all of them when the class is rare already (under ``COMMON_RATE``),
    else ``draws`` random sets of every other galaxy and enough of the class for a ``RARE_RATE``
    share."""
    positive, other = np.flatnonzero(labels), np.flatnonzero(~labels)
    if labels.mean() < COMMON_RATE:
        return [np.arange(len(labels))]
    wanted = int(round(RARE_RATE * len(other) / (1 - RARE_RATE)))
    rng = np.random.default_rng(seed)
    return [np.sort(np.r_[rng.choice(positive, wanted, replace=False), other]) for _ in range(draws)]


def precision_at_k(store, labels, draws) -> tuple[float, float]:
    """Mean (and standard error over prototypes) of precision@K over chance, minority prototypes."""
    from pipeline.oneshot import search

    ratios = {}
    for rows in subsets(labels, draws):
        sub, good = Subset(store, rows), labels[rows]
        chance = (good.sum() - 1) / (len(rows) - 1)
        for gid in sub.catalog["id"][good]:
            found = search.one_shot(sub, gid, K)
            ratios.setdefault(gid, []).append(np.mean(good[[sub.row_of(i) for i in found["id"]]]) / chance)
    every = np.concatenate(list(ratios.values()))  # each (prototype, draw): as the feedback's round 0
    per_prototype = np.array([np.mean(v) for v in ratios.values()])
    return float(every.mean()), float(per_prototype.std(ddof=1) / np.sqrt(len(per_prototype)))


def separability(store, labels) -> float:
    """How far the features can tell the class at all: the 5-fold cross-validated AUROC of a
    logistic regression given every label (C as the feedback's), on the search vectors."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from pipeline.oneshot.search import FEEDBACK_C, unit_rows

    x = unit_rows(store.search_space(store.features))
    model = LogisticRegression(C=FEEDBACK_C, class_weight="balanced", max_iter=2000)
    return float(cross_val_score(model, x, labels, cv=5, scoring="roc_auc").mean())


def feedback_rounds(store, labels, draws, method: str) -> dict[str, float]:
    """Precision of the galaxies newly shown in round 0 and each feedback round: over chance
    (``round i``), and, from round 1, over the class's share among the galaxies not shown yet
    (``left i``: what a round chooses from, which the rounds before it drain on a small set;
    searches with no member left are left out of it).
    ``method`` "ceiling": every class member not shown yet first (the best any feedback could
    show)."""
    from pipeline.oneshot import search

    over_chance, over_left = [], []
    for rows in subsets(labels, draws):
        sub, good = Subset(store, rows), labels[rows]
        chance = (good.sum() - 1) / (len(rows) - 1)
        for gid in sub.catalog["id"][good]:
            liked, disliked, precisions, left = [], [], [], []
            ranked = list(search.one_shot(sub, gid, len(rows) - 1)["id"])
            shown = ranked[:K]
            for round_ in range(ROUNDS + 1):
                hits = good[[sub.row_of(i) for i in shown]]
                if round_:
                    unseen = len(rows) - 1 - len(liked) - len(disliked)
                    rate = (good.sum() - 1 - len(liked)) / unseen
                    left.append(np.mean(hits) / rate if rate else np.nan)
                precisions.append(np.mean(hits) / chance)
                for i in shown:
                    (liked if good[sub.row_of(i)] else disliked).append(i)
                if round_ == ROUNDS:
                    break
                if method == "none":
                    shown = ranked[K * (round_ + 1): K * (round_ + 2)]
                elif method == "ceiling":
                    unseen = [i for i in ranked if i not in set(liked) | set(disliked)]
                    shown = sorted(unseen, key=lambda i: not good[sub.row_of(i)])[:K]  # stable: nearest first
                else:
                    shown = list(search.refine(sub, gid, K, liked=liked, disliked=disliked, method=method)["id"])
            over_chance.append(precisions)
            over_left.append(left)
    rounds = {f"round {i}": float(v) for i, v in enumerate(np.mean(over_chance, axis=0))}
    rounds["rounds 1-3"] = float(np.mean(np.asarray(over_chance)[:, 1:]))
    with warnings.catch_warnings():  # the ceiling's last rounds on a drained set: nothing left, no rate
        warnings.simplefilter("ignore", RuntimeWarning)
        rounds.update({f"left {i + 1}": float(v) for i, v in enumerate(np.nanmean(over_left, axis=0))})
    return rounds


def recursive_against_direct(store, labels, draws, n: int, iterations: int) -> dict:
    """ULISSE's recursive search (``n`` per query, ``iterations``, frontier capped) against the
    direct query of the same total size: precision over chance of each, the galaxies found, the
    queries made and the time, averaged over minority prototypes (and draws)."""
    from pipeline.oneshot import search

    out = {"recursive": [], "direct": [], "found": [], "queries": [], "seconds": []}
    for rows in subsets(labels, draws):
        sub, good = Subset(store, rows), labels[rows]
        chance = (good.sum() - 1) / (len(rows) - 1)
        for gid in sub.catalog["id"][good]:
            t0 = time.perf_counter()
            deep = search.recursive(sub, gid, n, iterations)
            out["seconds"].append(time.perf_counter() - t0)
            direct = search.one_shot(sub, gid, len(deep))
            for key, found in (("recursive", deep), ("direct", direct)):
                out[key].append(np.mean(good[[sub.row_of(i) for i in found["id"]]]) / chance)
            out["found"].append(len(deep))
            out["queries"].append(int(deep.meta["provenance"]["queries"]))
    return {key: round(float(np.mean(v)), 3 if key == "seconds" else 2) for key, v in out.items()}


def nearest(store, k: int = K) -> np.ndarray:
    """Rows (n, k) of every galaxy's k nearest by cosine in the store's search space, itself left out."""
    x = store.search_space(store.features)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1)[:, :k]


def engine_rows(name, galaxies, questions, folder: Path, draws: int) -> list[dict]:
    """``oneshot_real_engines``: the float and the 8-bit network on one set (default views)."""
    from pipeline.oneshot.store import build_store

    stores = {engine: build_store(galaxies, folder / f"{name}-{engine}", engine=engine, scheduler="synchronous")
              for engine in ("onnx", "onnx-int8")}
    a, b = (nearest(store) for store in stores.values())
    overlap = float(np.mean([len(np.intersect1d(p, q)) / K for p, q in zip(a, b, strict=True)]))
    rows = []
    for question, labels in questions.items():
        p10 = {engine: precision_at_k(store, labels, draws)[0] for engine, store in stores.items()}
        rows.append({"set": name, "question": question, "n": len(galaxies), "top10_overlap": round(overlap, 3),
                     "p10_over_chance_fp32": round(p10["onnx"], 2), "p10_over_chance_int8": round(p10["onnx-int8"], 2)})
        print(rows[-1], flush=True)
    return rows


def real_sets(zoobot: Path, quick: bool):
    """[(set name, GalaxySet, {question: labels})]."""
    from pipeline.oneshot.galaxies import GalaxySet
    from pipeline.oneshot.galaxy_sets import HDF_SET_NAME, default_sets

    sets = []
    if (zoobot / "catalog.csv").is_file():
        galaxies = GalaxySet.open(zoobot / "catalog.csv", name="zoobot rings (DECaLS)")
        sets.append(("zoobot", galaxies, {"ring": np.asarray(galaxies.catalog["ring"]) == 1}))
    else:
        print(f"no zoobot rings at {zoobot}: that set is left out")
    hdf = GalaxySet.open(default_sets()[HDF_SET_NAME], name=HDF_SET_NAME)
    sets.append(("hdf", hdf, hdf_labels(hdf.catalog)))
    if quick:  # a quarter of each set, every class kept
        quarter = []
        for name, galaxies, questions in sets:
            keep = np.sort(np.random.default_rng(0).permutation(len(galaxies))[: len(galaxies) // 4])
            small = GalaxySet(galaxies.catalog[keep], galaxies.folder, galaxies.size, galaxies.name)
            quarter.append((name, small, {q: v[keep] for q, v in questions.items()}))
        sets = quarter
    return sets


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of each set, 3 draws, 2 variants")
    parser.add_argument("--zoobot", type=Path, default=ZOOBOT, help="folder of the zoobot rings set")
    parser.add_argument("--tables", default="views,feedback,recursive",
                        help="which tables (default all; feedback and recursive alone build only the two stores "
                        "they use)")
    args = parser.parse_args(argv)
    tables = set(args.tables.split(","))

    import torch

    from pipeline.oneshot.store import build_store

    torch.set_num_threads(2)
    draws = 3 if args.quick else DRAWS
    compared = [("frame", "none"), ("galaxy", "head")]  # feedback and recursive: the default against plain
    variants = compared if args.quick or "views" not in tables else VARIANTS
    started = time.perf_counter()
    view_rows, feedback_rows, recursive_rows, engines = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, galaxies, questions in real_sets(args.zoobot, args.quick):
            if "engines" in tables:
                engines += engine_rows(name, galaxies, questions, Path(tmp), draws)
            if not tables & {"views", "feedback", "recursive"}:
                continue
            for crop, invariance in variants:
                t0 = time.perf_counter()
                store = build_store(galaxies, Path(tmp) / f"{name}-{crop}-{invariance}", crop=crop,
                                    invariance=invariance, scheduler="synchronous")
                build_s = time.perf_counter() - t0
                for question, labels in questions.items() if "views" in tables else ():
                    mean, se = precision_at_k(store, labels, draws)
                    view_rows.append({"set": name, "question": question, "n": len(galaxies),
                                      "in_class": int(labels.sum()), "crop": crop, "invariance": invariance,
                                      "p10_over_chance": round(mean, 2), "se": round(se, 2),
                                      "auroc_all_labels": round(separability(store, labels), 3),
                                      "build_s": round(build_s, 1), "images_per_s": round(len(galaxies) / build_s, 1)})
                    print(view_rows[-1], flush=True)
                if (crop, invariance) not in compared:
                    continue
                for question, labels in questions.items() if "recursive" in tables else ():
                    for n, iterations in ((3, 5), (10, 3)):
                        recursive_rows.append({"set": name, "question": question, "views": f"{crop}/{invariance}",
                                               "n": n, "iterations": iterations,
                                               **recursive_against_direct(store, labels, draws, n, iterations)})
                        print(recursive_rows[-1], flush=True)
                for question, labels in questions.items() if "feedback" in tables else ():
                    for method in ("ceiling", "none", "rocchio", "linear"):
                        rounds = feedback_rounds(store, labels, draws, method)
                        feedback_rows.append({"set": name, "question": question, "views": f"{crop}/{invariance}",
                                              "method": method, **{key: round(v, 2) for key, v in rounds.items()}})
                        print(feedback_rows[-1], flush=True)
    if view_rows:
        report("oneshot_real_views", view_rows, targets={
            "precision@10 / chance, minority prototypes": ">= 1.8 by default (the galaxy crop with the head)",
            "zoobot": f"ring at a {RARE_RATE:.0%} rate ({draws} draws of the rings)",
            "hdf": f"elongated: ellipticity > {ELONGATED}; red: reddest {RED_SHARE:.0%} in B - R (photutils)"})
    if feedback_rows:
        report("oneshot_real_feedback", feedback_rows, targets={
            "precision of the 10 newly shown / chance after 3 rounds": ">= 3.5",
            "ceiling": "every class member not shown yet shown first: what any feedback could reach on the set",
            "left i": "precision over the class's share among the galaxies not shown yet (a large set's chance)",
            "zoobot": "17 other rings per draw (were all found at once: 10, 7, 0, 0 per round)"})
    if recursive_rows:
        report("oneshot_real_recursive", recursive_rows, targets={
            "recursive vs direct at equal size": "ULISSE: 42.7% vs 25.8% AGN (n = 3, 5 iterations, 89 galaxies)",
            "frontier": "the 50 nearest new finds query in the next iteration (search.MAX_FRONTIER)"})
    if engines:
        report("oneshot_real_engines", engines, targets={"top-10 overlap, int8 against fp32": ">= 0.95 for a default"})
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
