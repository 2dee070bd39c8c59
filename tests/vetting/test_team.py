"""Ten reviewers, each in a process of their own with their own connection, cast verdicts on one
cube's candidates for a minute (``VETTING_TEAM_SECONDS``): every verdict is stored exactly once,
none lost, and each reviewer's last word on each source is the verdict in force."""

import json
import multiprocessing
import os
import random
import time

from pipeline.vetting.candidates import add_candidates, cube_collection, stored_candidates
from pipeline.vetting.queue import Review
from pipeline.vetting.store import CUBE_VERDICTS, VettingStore, new_token
from tests.vetting.conftest import source

REVIEWERS = 10
SECONDS = float(os.environ.get("VETTING_TEAM_SECONDS", 60))
THINK_S = (0.005, 0.05)  # between two verdicts: a fast reviewer, a keyboard shortcut away


def reviewer(path, collection, name, seconds, seed, out):
    """One reviewer's session: verdicts (and now and then an undo) until the time is up, reading
    the others' verdicts as the explorer's poll does; writes what it cast to ``out`` as JSON."""
    from astropy.table import Table

    store = VettingStore(path)  # a session of its own
    rows = store.sources(collection)
    table = Table({"source": [r["source"] for r in rows], "score": [r["row"]["score"] for r in rows],
                   "snr": [r["row"]["snr"] for r in rows], "ra": [r["row"]["ra"] for r in rows],
                   "dec": [r["row"]["dec"] for r in rows]})
    review = Review(store, collection, table, name)
    rng = random.Random(seed)
    cast, undone, seen_others = [], 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cast and rng.random() < 0.05:
            undone += review.undo() is not None  # None: nothing left to undo, nothing stored
        else:
            target = rng.choice(review.sources)
            verdict, token = rng.choice(CUBE_VERDICTS), new_token()
            assert review.cast(verdict, f"{name} #{len(cast)}", source=target, token=token)
            cast.append({"source": target, "verdict": verdict, "token": token})
        if rng.random() < 0.2:
            review.refresh()
            seen_others = max(seen_others, sum(len(v) > 1 for v in review.verdicts.values()))
        time.sleep(rng.uniform(*THINK_S))
    with open(out, "w") as f:
        json.dump({"cast": cast, "undone": undone, "final": review.verdicts, "seen_others": seen_others}, f)


def test_ten_reviewers_for_a_minute_lose_nothing(store, cube, catalog, tmp_path):
    add_candidates(store, cube, catalog([source(2 + 2 * i, 2 + (7 * i) % 16, i % 12, 5 + i) for i in range(10)]))
    collection = cube_collection(cube)
    context = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"reviewer{i}.json" for i in range(REVIEWERS)]
    workers = [context.Process(target=reviewer, args=(store.path, collection, f"reviewer {i}", SECONDS, i, outs[i]))
               for i in range(REVIEWERS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(SECONDS + 120)
    assert [w.exitcode for w in workers] == [0] * REVIEWERS
    results = [json.loads(out.read_text()) for out in outs]
    history = store.history(collection)
    tokens = [h["token"] for h in history]
    cast = [c for r in results for c in r["cast"]]
    print(f"{REVIEWERS} reviewers, {SECONDS:.0f} s: {len(cast)} verdicts and {sum(r['undone'] for r in results)} "
          f"undos stored, {len(history)} rows")  # seen with pytest -s
    assert len(cast) > 100 * REVIEWERS * SECONDS / 60  # each cast at least 100 a minute
    assert len(set(tokens)) == len(tokens)  # nothing stored twice
    assert {c["token"] for c in cast} <= set(tokens)  # nothing lost
    assert len(history) == len(cast) + sum(r["undone"] for r in results)  # and nothing else
    # the verdict in force is each reviewer's last row for the source, as each session saw it
    latest = store.latest(collection)
    for i, result in enumerate(results):
        name = f"reviewer {i}"
        for key, verdicts in result["final"].items():
            assert latest.get(key, {}).get(name, {}).get("verdict") == verdicts.get(name, {}).get("verdict")
    assert all(r["seen_others"] > 0 for r in results)  # each saw the others' verdicts as they came
    assert len(stored_candidates(store, cube)) == 10
