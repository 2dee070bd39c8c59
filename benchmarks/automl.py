"""The AutoML search's full runs (issue 17): for each task, a search of ``--minutes`` wall-clock
minutes on ``--workers`` processes (Optuna, Hyperband), then the best configuration exported
(trained ``--steps`` steps) beside the hand-designed DECORAS trained the same way, all scored with
the classic baseline on 256 held-out simulations.

Targets (2 cores, 60-minute search per task): vlba, at least the hand-designed DECORAS's F1 with
at most half its parameters; lofar and vst, better than the classic baseline (Hogbom CLEAN,
photutils deblending) on every score.

Usage: python benchmarks/automl.py [--tasks vlba,lofar,vst] [--minutes 60] [--workers 2]
       [--storage URL] [--steps 3000] [--out-root DIR] [--export-only]
The exported folders go to ``--out-root``/automl_<task> (default benchmarks/work/automl); the
shipped models in assets/models were made with ``--out-root assets/models``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline
sys.path.insert(0, str(Path(__file__).parent))

from _report import report

ROOT = Path(__file__).resolve().parent


def main(argv=None):
    from pipeline.automl import export, search, space
    from pipeline.automl.tasks import get_task

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="vlba,lofar,vst")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--storage", default=f"sqlite:///{ROOT / 'work' / 'automl' / 'studies.db'}")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out-root", default=str(ROOT / "work" / "automl"))
    parser.add_argument("--export-only", action="store_true", help="no search: export the studies as they are")
    args = parser.parse_args(argv)
    command = "python benchmarks/automl.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows, searches = [], []
    for name in args.tasks.split(","):
        task = get_task(name)
        started = time.perf_counter()
        if not args.export_only:
            search.run(name, args.minutes, args.storage, name, args.workers,
                       progress=lambda d, n, s, name=name: print(f"  {name}: {d:.0f}/{n:.0f} s, {s}", flush=True))
        searched = time.perf_counter() - started
        study = search.load(name, args.storage)
        found = search.best(study)
        started = time.perf_counter()
        result = export.export(study, Path(args.out_root) / f"automl_{name}", steps=args.steps, command=command,
                               progress=lambda d, n, s, name=name: print(f"  {name} export: {d}/{n} {s}", flush=True)
                               if d % 500 == 0 else None)
        exported = time.perf_counter() - started
        for who, scores, params in (("searched", result["scores"], result["parameters"]),
                                    ("hand-designed DECORAS", result["hand_scores"], result["hand_parameters"]),
                                    (result["baseline"], result["baseline_scores"], None)):
            rows.append({"task": name, "model": who, "parameters": params,
                         **{task.score_names[k].label: round(v, 4) for k, v in scores.items()}})
        searches.append({"task": name, "trials": ", ".join(f"{n} {s}" for s, n in found["trials"].items()),
                         "search_min": round(searched / 60, 1), "export_min": round(exported / 60, 1),
                         "best_trial": found["trial"], "validation_objective": round(found["objective"], 4),
                         "config": space.describe(found["config"])})
    report("automl_search", searches)
    report("automl", rows, targets={
        "vlba": "F1 >= the hand-designed DECORAS's with at most half its parameters (60,272)",
        "lofar": "flux error, residual rms lower and SSIM higher than Hogbom CLEAN's",
        "vst": "flux, centroid and ellipticity errors lower than photutils deblending's"})


if __name__ == "__main__":
    main()
