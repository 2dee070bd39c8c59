"""The Learn tab's redraws: how long a change of a lesson's widget takes on the server.

``lessons_interferometer``: for each ALMA configuration shipped (compact to most extended) and a
short and a long track, the time of :func:`pipeline.alma.synthesis.observe` (uv tracks, dirty
beam and its fit, the dirty image) and of a whole redraw (``redraw_s``: a change of the widgets,
its observe, and the new data in every plot of every step, as Bokeh models on a page: the plots
are made once and updated). Target (issue 16): every change redrawn in under 1 s on 2 cores. The
browser's own drawing is not included. Drawing every step's plots the first time is measured
apart (``first_draw_of_every_step_s``).

``lessons_runs``: the lessons whose changes run in the background, with a progress bar and Cancel:
lesson 2 (a cube simulated with its PSF cube and searched by a classic finder and the pipeline),
lesson 3 (the pipeline's stages; a new cut reuses the Blobs Finder's map), lesson 5 (every
feature ranked by the label and its share on the maps' edge over a sample; the one-shot tab's
default set, built first if it is not). And the redraws that do not run anything: a new channel in
lesson 2, a new box in lesson 3.

Usage: python benchmarks/lessons.py [--quick] [--tables interferometer,runs]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's explorer and pipeline
sys.path.insert(0, str(Path(__file__).parent))

from _report import report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three configurations")
    parser.add_argument("--tables", default="interferometer,runs", help="which tables (comma-separated)")
    args = parser.parse_args(argv)
    tables = set(args.tables.split(","))
    if "interferometer" in tables:
        interferometer_table(args.quick)
    if "runs" in tables:
        runs_table()


def timed(action) -> float:
    t = time.perf_counter()
    action()
    return round(time.perf_counter() - t, 2)


def runs_table():
    import panel as pn

    from explorer.lesson_dirty_cubes import DirtyCubesLesson
    from explorer.lesson_features import FeaturesLesson
    from explorer.lesson_pipeline import PipelineLesson
    from explorer.oneshot_view import OneShotViewer
    from pipeline.oneshot import atlas

    rows = []
    dirty = DirtyCubesLesson()  # without a server a run ends before the call returns
    rows.append({"lesson": 2, "change": "first run (simulate 256 x 256 x 64, PSF cube, photutils, pipeline)",
                 "s": timed(dirty.start)})
    rows.append({"lesson": 2, "change": "track 5 -> 60 min (run again)",
                 "s": timed(lambda: setattr(dirty, "minutes", 60))})
    rows.append({"lesson": 2, "change": "classic finder -> pybdsf (run again)",
                 "s": timed(lambda: setattr(dirty, "classic", "pybdsf"))})
    panes = [dirty._pane(name, plot) for name, plot in dirty.plots(4)]
    roots = [pane.get_root() for pane in panes]
    rows.append({"lesson": 2, "change": "another channel (both plots of step 5 redrawn)",
                 "s": timed(lambda: setattr(dirty, "channel", 20))})
    stages = PipelineLesson()
    rows.append({"lesson": 3, "change": "first run (every stage on the bundled cube)", "s": timed(stages.start)})
    rows.append({"lesson": 3, "change": "significance 5 -> 6 (the map reused)",
                 "s": timed(lambda: setattr(stages, "min_snr", 6.0))})
    panes = [stages._pane(name, plot) for step in (3, 4, 5) for name, plot in stages.plots(step)]
    roots += [pane.get_root() for pane in panes]
    rows.append({"lesson": 3, "change": "another box (spectra and focused images redrawn)",
                 "s": timed(lambda: setattr(stages, "box", 1))})
    oneshot = OneShotViewer()
    built = timed(oneshot.activate)
    shutil.rmtree(atlas.maps_folder(oneshot.store), ignore_errors=True)  # every map made by the network
    features = FeaturesLesson(oneshot)
    rows.append({"lesson": 5, "change": f"rank every feature, edge shares over 32 galaxies (set opened in {built} s)",
                 "s": timed(features.start)})
    rows.append({"lesson": 5, "change": "another feature (its 6 maps made, in the background)",
                 "s": timed(lambda: features.show_feature(7))})
    rows.append({"lesson": 5, "change": "the gallery of 6 maps drawn",
                 "s": timed(lambda: pn.panel(features._step_view(0)).get_root())})
    for row in rows:
        print(row, flush=True)
    assert roots
    report("lessons_runs", rows)


def interferometer_table(quick: bool):
    import panel as pn

    from explorer.learn_view import LearnViewer
    from explorer.lesson_interferometer import STEPS
    from pipeline.alma import interferometer, synthesis



    view = LearnViewer()
    lesson = view.live
    t0 = time.perf_counter()
    roots = [pn.panel(lesson._step_plots(step)).get_root() for step in range(len(STEPS))]  # the page's plots
    first = time.perf_counter() - t0
    configs = interferometer.available_configurations()
    if quick:
        configs = [configs[0], configs[len(configs) // 2], configs[-1]]
    rows = []
    for config in configs:
        for track in ((-0.05, 0.05), (-4.0, 4.0)):
            lesson.param.update(config=configs[0] if config != configs[0] else configs[-1], hour_angles=(-1.0, 1.0))
            t = time.perf_counter()
            lesson.param.update(config=config, hour_angles=track)  # one change: one observe, every plot updated
            redraw = time.perf_counter() - t
            t = time.perf_counter()
            synthesis.observe(config, lesson.declination, *track, lesson.frequency_ghz * 1e9, lesson.sky, lesson.extent)
            observed = time.perf_counter() - t
            rows.append({"config": config, "hours": round(track[1] - track[0], 1),
                         "uv_points": len(lesson.result.uv_klambda), "observe_s": round(observed, 3),
                         "redraw_s": round(redraw, 2)})
            print(rows[-1], flush=True)
    assert len(roots) == len(STEPS)
    report("lessons_interferometer", rows, targets={"redraw_s": "< 1 s on 2 cores",
                                                    "first_draw_of_every_step_s": round(first, 2)})


if __name__ == "__main__":
    main()
