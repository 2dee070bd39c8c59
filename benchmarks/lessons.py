"""The Learn tab's redraws: how long a change of a lesson's widget takes on the server.

``lessons_interferometer``: for each ALMA configuration shipped (compact to most extended) and a
short and a long track, the time of :func:`pipeline.alma.synthesis.observe` (uv tracks, dirty
beam and its fit, the dirty image) and of a whole redraw (``redraw_s``: a change of the widgets,
its observe, and the new data in every plot of every step, as Bokeh models on a page: the plots
are made once and updated). Target (issue 16): every change redrawn in under 1 s on 2 cores. The
browser's own drawing is not included. Drawing every step's plots the first time is measured
apart (``first_draw_of_every_step_s``).

Usage: python benchmarks/lessons.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's explorer and pipeline
sys.path.insert(0, str(Path(__file__).parent))

from _report import report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three configurations")
    args = parser.parse_args(argv)

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
    if args.quick:
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
