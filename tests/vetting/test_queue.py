"""A reviewer's pass through the queue: order, filters, verdicts, undo, the team's verdicts; and
the vetted catalogue that comes out."""

import numpy as np
import pytest
from astropy.table import Table

from pipeline.errors import InputError
from pipeline.vetting.candidates import add_candidates, cube_collection, stored_candidates
from pipeline.vetting.export import vetted_catalog, write_vetted, write_vetted_regions
from pipeline.vetting.queue import Review, order
from tests.vetting.conftest import source


@pytest.fixture
def candidates(store, cube, catalog):
    """Four candidates: snr 20, 4, 9, 6 (scores the other way round), the third a probable sidelobe."""
    rows = [source(10, 8, 6, 20, score=0.1), source(3, 15, 2, 4, score=0.9), source(18, 4, 9, 9, score=0.5),
            source(20, 16, 3, 6, score=0.7)]
    for row, p in zip(rows, (np.nan, 0.1, 0.8, np.nan), strict=True):
        row.update(sidelobe=p > 0.5, sidelobe_p=p)
    add_candidates(store, cube, catalog(rows))
    return stored_candidates(store, cube)


def review(store, cube, candidates, reviewer, **options):
    return Review(store, cube_collection(cube), candidates, reviewer, **options)


def test_the_queue_is_ordered_by_score_snr_or_position(candidates):
    assert list(order(candidates, "score")) == [1, 3, 2, 0]
    assert list(order(candidates, "snr")) == [0, 2, 3, 1]
    ra = np.asarray(candidates["ra"])
    assert list(ra[order(candidates, "position")]) == sorted(ra, reverse=True)  # east first
    with pytest.raises(InputError, match="ordered by one of score, snr, position"):
        order(candidates, "flux")
    nan_score = candidates.copy()
    nan_score["score"][1] = np.nan
    assert list(order(nan_score, "score"))[-1] == 1


def test_verdicts_move_the_queue_on_and_undo_walks_back(store, cube, candidates):
    ann = review(store, cube, candidates, "ann", by="snr")
    first = ann.current
    assert first == candidates["source"][0]
    ann.cast("real", "clean line")
    assert ann.current == candidates["source"][2]
    ann.cast("spurious")
    ann.cast("unsure", note="faint")
    assert ann.progress()["mine"] == 3
    assert ann.undo() == candidates["source"][3] and ann.mine(candidates["source"][3]) == {"verdict": "", "note": ""}
    assert ann.undo() == candidates["source"][2]
    assert ann.current == candidates["source"][2]
    assert ann.undo() == first and ann.undo() is None
    assert store.latest(cube_collection(cube))[first] == {}
    assert len(store.history(cube_collection(cube))) == 6  # three verdicts, three undos: all kept
    ann.step(-5)
    assert ann.current == first
    ann.step(99)
    assert ann.current == candidates["source"][1]


def test_the_team_sees_each_others_verdicts_and_disagreements(store, cube, candidates):
    ann, bob = review(store, cube, candidates, "ann"), review(store, cube, candidates, "bob")
    target = candidates["source"][0]
    ann.cast("real", source=target)
    bob.cast("spurious", "a sidelobe of the bright one", source=target)
    assert ann.refresh() == {target}
    assert ann.summary(target)["verdict"] == "disputed"
    assert ann.refresh() == set()  # nothing new
    ann.arrange(only="disagreements")
    assert ann.sources == [target]
    ann.arrange(only="unvetted")
    assert target not in ann.sources and len(ann.sources) == 3
    ann.arrange(only="sidelobes")
    assert ann.sources == [candidates["source"][2]]
    ann.go_to(target)  # hidden by the filter: the queue shows everything again
    assert ann.only == "all" and ann.current == target


def test_marking_many_alike_at_once(store, cube, candidates):
    ann = review(store, cube, candidates, "ann")
    assert ann.cast_many(list(candidates["source"][1:3]), "spurious", "sidelobe pattern") == 2
    assert ann.progress()["verdicts"] == {"unvetted": 2, "spurious": 2}
    ann.undo()
    assert ann.progress()["verdicts"] == {"unvetted": 3, "spurious": 1}


def test_the_vetted_catalogue_and_its_regions(store, cube, candidates, tmp_path):
    ann, bob = review(store, cube, candidates, "ann"), review(store, cube, candidates, "bob")
    s = list(candidates["source"])
    ann.cast("real", "clean", source=s[0])
    bob.cast("real", source=s[0])
    ann.cast("spurious", source=s[1])
    bob.cast("real", "I see a line", source=s[1])
    ann.cast("unsure", source=s[2])
    table = vetted_catalog(candidates, store.latest(cube_collection(cube)))
    assert list(table["verdict"]) == ["real", "disputed", "unsure", ""]
    assert list(table["n_real"]) == [2, 1, 0, 0] and list(table["n_spurious"]) == [0, 1, 0, 0]
    assert list(table["reviewer"]) == ["ann,bob", "ann,bob", "ann", ""]
    assert list(table["note"]) == ["ann: clean", "bob: I see a line", "", ""]
    assert table.colnames[:3] == ["id", "x", "y"] and table.colnames[-1] == "vetted"
    write_vetted(table, tmp_path / "v.vot")
    back = Table.read(tmp_path / "v.vot")
    assert list(back["verdict"]) == ["real", "disputed", "unsure", ""]
    assert back["verdict"].description.startswith("what the reviewers say")
    write_vetted_regions(table, cube, tmp_path / "v.reg")
    lines = (tmp_path / "v.reg").read_text().splitlines()[2:]
    assert ["color=green" in lines[0], "color=magenta" in lines[1], "color=yellow" in lines[2],
            "color=cyan" in lines[3]] == [True] * 4
    assert "text={2 disputed}" in lines[1]
    empty = vetted_catalog(candidates[:0], {})
    assert len(empty) == 0 and "verdict" in empty.colnames


def test_verdicts_against_the_truth(store, cube, candidates):
    from pipeline.vetting.scoring import against_truth, format_against_truth

    # the truth: the first two candidates are real sources (the same boxes), the others are not
    truth = Table({"x": candidates["x"][:2], "y": candidates["y"][:2], "z": candidates["z"][:2],
                   "fwhm_x": [3.0, 3.0], "fwhm_y": [3.0, 3.0], "pa": [0.0, 0.0], "fwhm_z": [2.0, 2.0]})
    ann = review(store, cube, candidates, "ann")
    s = list(candidates["source"])
    ann.cast("real", source=s[0])
    ann.cast("spurious", source=s[1])  # wrong: it is real
    ann.cast("spurious", source=s[2])  # right
    score = against_truth(candidates, store.latest(cube_collection(cube)), truth, cube.path.name, cube.nx)
    assert list(score["true"]) == [True, True, False, False]
    assert score["table"]["real"] == (1, 0) and score["table"]["spurious"] == (1, 1) and score["table"][""] == (0, 1)
    assert score["precision_before"] == 0.5 and score["precision_after"] == 0.5  # kept: s0 (true) and s3 (false)
    assert score["rejected_true"] == 1 and (score["correct"], score["judged"]) == (2, 3)
    text = format_against_truth(score)
    assert "Precision before vetting 0.50; after dropping the spurious 0.50" in text
    assert "spurious         1      1" in text


def test_undo_never_puts_back_what_was_changed_elsewhere(store, cube, candidates):
    """The same reviewer in two windows: the first window's undo would bring back a verdict the
    second has changed since; it refuses and says so."""
    first, second = review(store, cube, candidates, "ann"), review(store, cube, candidates, "ann")
    target = candidates["source"][0]
    first.cast("real", source=target)
    second.cast("spurious", source=target)  # second has not polled: it read "real" from the store
    assert second._undo[-1][1]["verdict"] == "real"
    with pytest.raises(InputError, match=f"Your verdict on {target} was changed elsewhere since \\(spurious\\)"):
        first.undo()
    assert store.latest(cube_collection(cube))[target]["ann"]["verdict"] == "spurious"
    assert second.undo() == target
    assert store.latest(cube_collection(cube))[target]["ann"]["verdict"] == "real"
