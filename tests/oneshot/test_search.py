"""One-shot, recursive and feedback search on a small known feature space."""

import threading
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.table import Table

from pipeline.errors import Cancelled, InputError
from pipeline.oneshot import search
from pipeline.oneshot.index import FeatureIndex


@pytest.fixture(scope="module")
def store():
    """Two clusters in 8-d: 40 'AGN' near +e0, 160 others near +e1."""
    rng = np.random.default_rng(3)
    agn = np.eye(8)[0] * 5 + rng.normal(size=(40, 8))
    other = np.eye(8)[1] * 5 + rng.normal(size=(160, 8))
    features = np.vstack([agn, other]).astype(np.float32)
    catalog = Table({"id": [f"g{i:03d}" for i in range(200)], "file": [f"{i}.png" for i in range(200)],
                     "bpt_class": ["AGN"] * 40 + ["star-forming"] * 160})
    ids = {v: i for i, v in enumerate(catalog["id"])}
    return SimpleNamespace(catalog=catalog, features=features, index=FeatureIndex.build(features, metric="l2"),
                           row_of=lambda i: ids[str(i)], meta={"name": "two clusters", "model_label": "test vectors"},
                           search_space=lambda x: np.asarray(x, np.float32))


def test_one_shot_leaves_the_prototype_out_and_sorts(store):
    found = search.one_shot(store, "g000", 10)
    assert len(found) == 10 and "g000" not in list(found["id"])
    assert list(found.colnames[:4]) == ["id", "distance", "iteration", "parent"]
    assert (np.diff(found["distance"]) >= 0).all() and set(found["parent"]) == {"g000"}
    assert set(found["bpt_class"]) == {"AGN"}  # its own cluster
    d = np.linalg.norm(store.features - store.features[0], axis=1)
    np.testing.assert_allclose(found["distance"], np.sort(d)[1:11], rtol=1e-4)


def test_a_vector_prototype_is_not_excluded(store):
    found = search.one_shot(store, store.features[5].copy(), 3)
    assert found["id"][0] == "g005" and found["distance"][0] == pytest.approx(0, abs=1e-3)


def test_recursive_search_provenance_and_no_duplicates(store):
    calls = []
    result = search.recursive(store, "g000", 3, 4, progress=lambda d, t, stage: calls.append((d, t)))
    ids = list(result["id"])
    assert len(ids) == len(set(ids)) and "g000" not in ids
    assert calls[-1][1] == 4 and result["iteration"].max() <= 4
    first = result[result["iteration"] == 1]
    assert len(first) == 3 and set(first["parent"]) == {"g000"}
    for row in result[result["iteration"] > 1]:  # each was brought by one found the iteration before
        parent = result[result["id"] == row["parent"]]
        assert len(parent) == 1 and parent["iteration"][0] == row["iteration"] - 1
    # per query at most n new ones
    assert max(np.unique(result["parent"], return_counts=True)[1]) <= 3


def test_the_recursive_frontier_is_capped_to_the_nearest_finds(store):
    free = search.recursive(store, "g000", 5, 3, max_frontier=1000)
    capped = search.recursive(store, "g000", 5, 3, max_frontier=2)
    assert len(capped) < len(free) and set(capped["id"][capped["iteration"] == 1]) == set(
        free["id"][free["iteration"] == 1])
    for level in (2, 3):  # only the 2 nearest finds of the iteration before query
        before = capped[capped["iteration"] == level - 1]
        queried = set(capped["parent"][capped["iteration"] == level])
        assert len(queried) <= 2 and queried <= set(before["id"][:2])
    assert capped.meta["provenance"]["max_frontier"] == "2"
    with pytest.raises(InputError, match="max_frontier"):
        search.recursive(store, "g000", 5, 3, max_frontier=0)


def test_iteration_statistics_against_the_direct_query(store):
    result = search.recursive(store, "g000", 3, 3)
    stats = search.iteration_statistics(store, result, "bpt_class", "AGN", prototype="g000")
    assert [s["iteration"] for s in stats] == sorted(set(result["iteration"]))
    assert stats[-1]["total"] == len(result) and stats[-1]["direct"]["n"] == len(result)
    assert stats[0]["base_rate"] == pytest.approx(0.2) and stats[0]["fraction"] == 1.0


@pytest.mark.parametrize("method", search.FEEDBACK_METHODS)
def test_feedback_moves_the_query_and_shows_only_new_galaxies(store, method):
    plain = search.one_shot(store, "g000", 20)
    disliked = list(plain["id"][:5])
    liked = ["g100", "g101"]
    refined = search.refine(store, "g000", 20, liked=liked, disliked=disliked, method=method)
    assert not set(disliked + liked + ["g000"]) & set(refined["id"]) and len(refined) == 20
    # liking galaxies of the other cluster pulls some of them in
    assert (refined["bpt_class"] == "star-forming").sum() > (plain["bpt_class"] == "star-forming").sum()
    assert refined.meta["provenance"]["mode"] == {"linear": "feedback (linear classifier)",
                                                   "rocchio": "feedback (Rocchio)"}[method]
    rows = [store.row_of(i) for i in refined["id"]]  # distances to the prototype, as a direct search's
    np.testing.assert_allclose(refined["distance"], np.linalg.norm(store.features[rows] - store.features[0], axis=1),
                               rtol=1e-4)


def test_linear_feedback_learns_the_direction_the_marks_share():
    """Two features tell the classes apart, many others are noise; the prototype's own noise
    misleads a nearest-neighbour search, the classifier on a few marks sees through it."""
    rng = np.random.default_rng(3)
    n, noise = 400, 100
    good = rng.random(n) < 0.1
    x = np.hstack([np.where(good[:, None], [3.0, 0.0], [0.0, 3.0]) + rng.normal(0, 0.3, (n, 2)),
                   rng.normal(0, 1.5, (n, noise))]).astype(np.float32) + 5.0
    catalog = Table({"id": [f"s{i}" for i in range(n)], "good": good.astype(int)})
    ids = {v: i for i, v in enumerate(catalog["id"])}
    fake = SimpleNamespace(catalog=catalog, features=x, index=FeatureIndex.build(x), row_of=lambda i: ids[str(i)],
                           meta={"name": "planted", "model_label": "test"}, search_space=lambda v: np.asarray(v))
    proto = f"s{np.flatnonzero(good)[0]}"
    shown = search.one_shot(fake, proto, 10)
    marks = {True: [], False: []}
    for gid in shown["id"]:
        marks[bool(good[ids[gid]])].append(gid)
    precision = {"direct": np.mean([good[ids[g]] for g in shown["id"]])}
    for method in search.FEEDBACK_METHODS:
        again = search.refine(fake, proto, 10, liked=marks[True], disliked=marks[False], method=method)
        precision[method] = np.mean([good[ids[g]] for g in again["id"]])
    assert precision["direct"] <= 0.3  # the noise hides the class from the prototype's neighbours
    assert precision["linear"] >= 0.5 and precision["linear"] >= precision["rocchio"] + 0.3


@pytest.mark.parametrize("method", search.FEEDBACK_METHODS)
def test_feedback_distances_are_to_the_prototype_in_a_cosine_store(store, method):
    cosine = SimpleNamespace(**{**vars(store), "index": FeatureIndex.build(store.features)})  # cosine by default
    refined = search.refine(cosine, "g000", 8, liked=["g001", "g100"], disliked=["g002"], method=method)
    unit = search.unit_rows(store.features)
    expected = 1 - unit[[store.row_of(i) for i in refined["id"]]] @ unit[0]
    np.testing.assert_allclose(refined["distance"], expected, atol=1e-5)


def test_feedback_without_bad_marks_and_unknown_methods(store):
    only_good = search.refine(store, "g000", 5, liked=["g001"])  # the background stands for the bad ones
    assert len(only_good) == 5 and not {"g000", "g001"} & set(only_good["id"])
    assert set(only_good["bpt_class"]) == {"AGN"}
    with pytest.raises(InputError, match="feedback method"):
        search.refine(store, "g000", 5, liked=["g001"], method="svm")


def test_bad_requests(store):
    with pytest.raises(InputError, match="No galaxy|between 1"):
        search.one_shot(store, "g000", 0)
    with pytest.raises(InputError, match="iterations"):
        search.recursive(store, "g000", 3, 0)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        search.recursive(store, "g000", 3, 2, cancel=stop)


def test_every_result_says_how_it_was_found(store, tmp_path):
    from pipeline.tables import read_table, write_table

    direct = search.one_shot(store, "g000", 5).meta["provenance"]
    assert (direct["set"], direct["model"], direct["mode"], direct["prototype"], direct["n"]) == (
        "two clusters", "test vectors", "direct", "g000", "5")
    deep = search.recursive(store, "g000", 3, 2).meta["provenance"]
    assert deep["mode"] == "recursive" and deep["iterations"] == "2"
    fed = search.refine(store, "g000", 4, liked=["g001"], disliked=["g002"]).meta["provenance"]
    assert fed["mode"].startswith("feedback") and '"liked": ["g001"]' in fed["feedback"]
    image = search.one_shot(store, store.features[5].copy(), 3).meta["provenance"]
    assert "image" in image["prototype"]
    for suffix in (".csv", ".vot"):
        back = read_table(write_table(search.one_shot(store, "g000", 5), tmp_path / f"r{suffix}"))
        assert back.meta["provenance"]["prototype"] == "g000" and back.meta["provenance"]["set"] == "two clusters"
