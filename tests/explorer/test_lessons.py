"""Lessons 2, 3 and 5 without a browser: their runs, numbers and plots, each step drawn."""

import numpy as np
import panel as pn
import pytest

from explorer import learn_view
from explorer.lesson_dirty_cubes import STEPS as DIRTY_STEPS
from explorer.lesson_dirty_cubes import DirtyCubesLesson
from explorer.lesson_features import STEPS as FEATURE_STEPS
from explorer.lesson_features import FeaturesLesson
from explorer.lesson_pipeline import STEPS as PIPELINE_STEPS
from explorer.lesson_pipeline import PipelineLesson
from pipeline.alma.measure import beam_on_grid
from tests.explorer.test_oneshot_view import index_dir, viewer  # noqa: F401 -- the module's fixtures, by name


def test_the_five_lessons_in_the_issues_order():
    assert list(learn_view.LESSONS) == ["How an interferometer sees", "Why dirty cubes are hard",
                                        "Inside the pipeline", "One-shot search and statistics",
                                        "What does a feature see?"]


@pytest.fixture(scope="module")
def dirty():
    lesson = DirtyCubesLesson()
    lesson.start()  # without a server the run ends before start returns
    assert lesson.result is not None, lesson._error.object
    return lesson


def test_dirty_cube_lesson_finds_sidelobes_where_the_bright_sources_beam_puts_them(dirty):
    r = dirty.result
    assert set(r.catalogs) == {"photutils", "pipeline"} and len(r.truth) == 5
    assert dirty.channel == round(float(r.bright["z"]))
    bright_xy = int(round(float(r.bright["x"]))), int(round(float(r.bright["y"])))
    beam = r.beam_map(dirty.channel)
    assert beam[bright_xy[1], bright_xy[0]] == pytest.approx(r.signal(dirty.channel)[bright_xy[1], bright_xy[0]])
    bmaj, _, _ = beam_on_grid(r.cube)
    false = 0
    for name, catalog in r.catalogs.items():
        for row, outcome in zip(catalog, r.outcomes[name]["rows"], strict=True):
            if outcome != "false positive" or abs(row["z"] - dirty.channel) > 2:
                continue
            false += 1
            x, y = int(round(float(row["x"]))), int(round(float(row["y"])))
            # a false candidate in the bright source's channels sits where its dirty beam alone puts
            # more than 5 times the noise, far from the source, and is flagged as its sidelobe
            assert beam[y, x] > 5 and np.hypot(x - bright_xy[0], y - bright_xy[1]) > 2 * bmaj
            assert row["sidelobe"] and row["sidelobe_of"] == catalog["id"][np.argmax(catalog["snr"])]
    assert false >= 3  # a 5-minute track, a source at 300 times the noise: sidelobes become candidates
    before, after = r.scores("photutils")
    assert after["precision"] > before["precision"] and after["recall"] == before["recall"]
    assert "flagged as sidelobes and dropped" in dirty.numbers(4)
    assert "its dirty beam puts" in dirty.numbers(3)


def test_dirty_cube_lesson_draws_every_step_and_runs_again_on_a_change(dirty):
    for step in range(len(DIRTY_STEPS)):
        pn.panel(dirty.panel(step)).get_root()
        for _, plot in dirty.plots(step):
            pn.panel(plot(dirty.result)).get_root()
    first = dirty.result
    folder = first.folder.parent
    dirty.minutes = 60  # a longer track: lower sidelobes
    assert dirty.result is not first and not folder.exists()  # the last run's files are gone
    long_track = sum(o["rows"].count("false positive") for o in dirty.result.outcomes.values())
    dirty.minutes = 5
    short_track = sum(o["rows"].count("false positive") for o in dirty.result.outcomes.values())
    assert long_track < short_track


@pytest.mark.parametrize("kind", [DirtyCubesLesson, PipelineLesson])
def test_plots_drawn_before_the_first_run_take_its_result(kind):
    """A page shows a lesson's plots while its first run goes: each DynamicMap must take the result
    (same layers) when it comes."""
    lesson = kind()
    panes = [lesson._pane(name, plot) for step in range(len(lesson_steps(kind))) for name, plot in lesson.plots(step)]
    roots = [pane.get_root() for pane in panes]
    lesson.start()
    assert lesson.result is not None
    for pane, root in zip(panes, roots, strict=True):
        pane.object[()]  # the DynamicMap evaluated again with the result
        assert root is not None


def lesson_steps(kind):
    return DIRTY_STEPS if kind is DirtyCubesLesson else PIPELINE_STEPS


def test_pipeline_lesson_walks_the_stages_with_the_truth():
    lesson = PipelineLesson()
    lesson.start()
    r = lesson.result
    assert r is not None and len(r.boxes) >= 4
    assert "6 true sources" in lesson.numbers(0) and "4 boxes" in lesson.numbers(2)
    for step in range(len(PIPELINE_STEPS)):
        lesson._step = step
        pn.panel(lesson.panel(step)).get_root()
        for _, plot in lesson.plots(step):
            pn.panel(plot(r)).get_root()
    held = [i for i, b in enumerate(r.boxes) if lesson._true_in(b)]
    assert lesson.box == held[0]
    table = lesson.numbers(6)
    assert "measured" in table and "true" in table and "flux (Jy km/s)" in table
    lesson.box = held[1]
    assert f"box {held[1] + 1}" in lesson.numbers(3) and lesson.numbers(6) != table
    lesson.min_snr = 9.9  # a stricter cut: the stages again on the same map
    assert lesson.result is not r and lesson.result.source_map is r.source_map
    assert sum(ln.significant for b in lesson.result.boxes for ln in b.lines) < sum(
        ln.significant for b in r.boxes for ln in b.lines)


def test_feature_lesson_ranks_features_and_measures_where_they_fire(viewer):  # noqa: F811
    lesson = FeaturesLesson(viewer)
    lesson.start()
    assert lesson.ranking is not None, lesson._error.object
    assert lesson.feature == int(lesson.ranking["feature"][0])
    shares, even = lesson.edges
    assert shares.shape == (1280,) and 0 < even <= 1
    for step in range(len(FEATURE_STEPS)):
        pn.panel(lesson.panel(step)).get_root()
        assert "Opening" not in lesson.numbers(step) and "Ranking" not in lesson.numbers(step)
    assert "too small to have an inside" in lesson.numbers(3)  # 64 px images: 2 x 2 maps
    assert "among the 10 nearest" in lesson.numbers(4)
    assert not lesson.show_feature(5000) and "numbered 0 to 1279" in lesson._error.object
    assert lesson.show_feature(7) and lesson.feature == 7 and "feature 7:" in lesson.numbers(1)
