"""``python -m pipeline automl``: the search that carries DECORAS to other instruments and tasks
(:mod:`pipeline.automl`)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from pipeline.cli.checks import at_least, output_folder, positive_number, progress_bar
from pipeline.errors import InputError

ACTIONS = ("best", "export")


def add_automl_parser(commands) -> None:
    from pipeline.automl.tasks import TASK_NAMES

    p = commands.add_parser(
        "automl", help="search DECORAS-family networks for a task (Optuna), show or export the best",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Search over DECORAS-family encoder-decoders and their training for a task, in an Optuna "
        "study (SQLite in the cache by default; --storage postgresql://... or mysql://... to share one study "
        "between machines). Running the same command again continues the study.\n\n"
        "  python -m pipeline automl TASK [--minutes 60] [--storage URL] [--study NAME] [--workers N]\n"
        "  python -m pipeline automl best STUDY      the best configuration and its scores\n"
        "  python -m pipeline automl export STUDY --out DIR   train it fully, write weights + model card\n\n"
        "tasks: vlba (VLBA-like source detection), lofar (LOFAR-like surface-brightness recovery), "
        "vst (VST-like deblending of galaxy pairs)")
    p.add_argument("what", metavar="TASK|best|export", help=f"a task ({', '.join(TASK_NAMES)}) to search, "
                   "or best / export")
    p.add_argument("name", nargs="?", metavar="STUDY", help="the study, after best or export")
    p.add_argument("--minutes", type=float, default=60.0, help="search time budget, wall clock (default 60)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<cache>/automl/studies.db)")
    p.add_argument("--study", help="study name (default: the task's name)")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the study (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--trials", type=int,
                   help="search: each worker stops after this many trials (default: the budget decides)")
    p.add_argument("--max-steps", type=int, default=1200,
                   help="search: the most training steps a trial gets (default 1200; Hyperband's rungs are twelfths)")
    p.add_argument("--examples", type=int, default=4096, help="search: simulated training examples (default 4096)")
    p.add_argument("--validation-examples", type=int, default=128,
                   help="search: simulated validation examples trials are ranked on (default 128)")
    p.add_argument("--out", help="export: the folder to write (new, empty, or an earlier export)")
    p.add_argument("--steps", type=int, help="export: training steps (default 3000)")
    p.add_argument("--no-compare", action="store_true",
                   help="export: do not also train the hand-designed DECORAS for the model card")
    p.add_argument("--json", action="store_true", help="best: print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_automl)


def cmd_automl(args) -> int:
    from pipeline.automl.tasks import TASK_NAMES

    if args.what in ACTIONS:
        if not args.name:
            raise InputError(f"automl {args.what} needs the study's name, e.g. automl {args.what} vlba.")
        return cmd_best(args) if args.what == "best" else cmd_export(args)
    if args.what not in TASK_NAMES:
        raise InputError(f"automl takes a task ({', '.join(TASK_NAMES)}), best or export; got {args.what!r}.")
    if args.name:
        raise InputError(f"automl {args.what} takes no second argument; name the study with --study.")
    positive_number(args.minutes, "--minutes", "number of minutes")
    at_least(args.workers, 1, "--workers")
    at_least(args.seed, 0, "--seed")
    at_least(args.trials, 1, "--trials")
    at_least(args.max_steps, 1, "--max-steps")
    at_least(args.examples, 1, "--examples")
    at_least(args.validation_examples, 1, "--validation-examples")
    from pipeline.automl import search

    search.storage(args.storage)  # a bad URL is said before any work
    fidelity = search.Fidelity(max_steps=args.max_steps, report_every=max(1, args.max_steps // 12),
                               n_train=args.examples, n_validation=args.validation_examples)
    try:
        with progress_bar(args.quiet, "s") as progress:
            study = search.run(args.what, args.minutes, args.storage, args.study, args.workers, fidelity=fidelity,
                               seed=args.seed, progress=progress, trials=args.trials)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the study {args.study or args.what!r} keeps its trials; run the same command to "
              "continue it", file=sys.stderr)
        return 130
    print(search.best_text(search.best(study)))
    return 0


def cmd_best(args) -> int:
    from pipeline.automl import search

    found = search.best(search.load(args.name, args.storage))
    print(json.dumps(found, indent=1) if args.json else search.best_text(found))
    return 0


def cmd_export(args) -> int:
    from pipeline.automl import export, search

    if not args.out:
        raise InputError("automl export needs --out DIR, the folder for the weights and model card.")
    output_folder("--out", args.out)
    export.check_out(args.out)
    at_least(args.steps, 1, "--steps")
    study = search.load(args.name, args.storage)
    with progress_bar(args.quiet, "step") as progress:
        result = export.export(study, args.out, steps=args.steps or export.EXPORT_STEPS, compare=not args.no_compare,
                               seed=args.seed, progress=progress, command="python -m pipeline " + shlex.join(args.argv))
    print(f"exported to {args.out}: model.pt, MODEL_CARD.md, scores.json")
    for label, key in (("this model", "scores"), ("hand-designed DECORAS", "hand_scores"),
                       (result["baseline"], "baseline_scores")):
        if key in result:
            print(f"  {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in result[key].items()))
    return 0
