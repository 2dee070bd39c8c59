"""A study's best configuration trained fully and written out: ``model.pt`` (weights, loaded with
:func:`pipeline.alma.models.load_checkpoint`, kind ``encoder_decoder``), ``MODEL_CARD.md``,
``scores.json`` and, when compared, ``hand_designed.pt``. The card compares, on held-out
simulations no search or training saw, the exported network, the hand-designed DECORAS trained
the same way, and the classic baseline."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.alma.model_card import code_version
from pipeline.alma.models import save_checkpoint
from pipeline.atomic import replace_folder
from pipeline.automl import space
from pipeline.automl.search import Fidelity, best, held_out
from pipeline.automl.tasks import HELD_OUT_SEED, get_task
from pipeline.errors import InputError
from pipeline.progress import report

EXPORT_STEPS = 3000
HELD_OUT_N = 256
MARKER = "scores.json"  # what says a folder is an export (and may be replaced by a new one)
HAND_FILE = "hand_designed.pt"  # the hand-designed DECORAS trained alike, beside the model


def check_out(out) -> Path:
    """``out`` may be new, empty, or an earlier export: anything else is the user's and is refused."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise InputError(f"--out {out} holds files that are not an exported model: give a new or empty folder "
                         "(an export only replaces an earlier export).")
    return out


def export(study, out, steps: int = EXPORT_STEPS, held_out_n: int = HELD_OUT_N, compare: bool = True,
           seed: int = 0, progress=None, cancel=None, command: str = "") -> dict:
    """Train ``study``'s best configuration for ``steps`` steps on its task's training examples,
    score it (and, with ``compare``, the hand-designed DECORAS trained alike, and the baseline) on
    ``held_out_n`` held-out examples, and write the folder ``out`` atomically. Returns the scores."""
    from pipeline.automl import training

    out = check_out(out)
    if not (isinstance(steps, int) and steps >= 1):
        raise InputError(f"--steps must be a whole number of at least 1; got {steps!r}.")
    chosen = best(study)
    task = get_task(chosen["task"])
    fidelity = Fidelity(**study.user_attrs.get("fidelity", {}))
    total = steps * (2 if compare else 1)
    report(progress, 0, total, "simulating examples")
    train_set = task.examples(seed, fidelity.n_train)
    held_out_set = held_out(task, held_out_n)
    started = time.perf_counter()
    model, log = training.train(chosen["config"], task, train_set, steps, seed=seed, cancel=cancel,
                                progress=lambda d, n, s: report(progress, d, total, f"best configuration, {s}"))
    result = {"task": task.name, "study": chosen["study"], "trial": chosen["trial"], "steps": steps,
              "config": chosen["config"], "parameters": training.parameters(chosen["config"], task),
              "held_out": {"n": held_out_n, "seed": HELD_OUT_SEED},
              "scores": training.evaluate(model, task, held_out_set), "train_seconds": round(log["seconds"], 1)}
    if compare:
        hand = space.hand_designed(task)
        hand_model, _ = training.train(hand, task, train_set, steps, seed=seed, cancel=cancel,
                                       progress=lambda d, n, s: report(progress, steps + d, total,
                                                                       f"hand-designed DECORAS, {s}"))
        result.update(hand_config=hand, hand_parameters=training.parameters(hand, task),
                      hand_scores=training.evaluate(hand_model, task, held_out_set))
    else:
        hand_model = None
    result["baseline"] = task.baseline_name
    result["baseline_scores"] = task.scores(task.baseline(held_out_set), held_out_set)
    result["seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(built, 0o777 & ~umask)  # a folder like any other, not mkdtemp's private one
    try:
        save_checkpoint(built / "model.pt", model, "encoder_decoder", space.network_config(chosen["config"], task),
                        extra={"automl": {k: v for k, v in result.items() if k != "hand_config"},
                               "code": code_version()})
        if hand_model is not None:  # kept for comparisons (the explorer's Models tab shows both)
            save_checkpoint(built / HAND_FILE, hand_model, "encoder_decoder",
                            space.network_config(result["hand_config"], task),
                            extra={"automl": {"task": task.name, "hand_designed": True}, "code": code_version()})
        (built / MARKER).write_text(json.dumps(result, indent=1))
        (built / "MODEL_CARD.md").write_text(model_card(result, task, chosen, command))
        replace_folder(built, out)
    finally:
        if built.exists():
            shutil.rmtree(built, ignore_errors=True)
    return result


def model_card(result: dict, task, chosen: dict, command: str) -> str:
    """The model card: what the model is, how it was found and trained, its held-out scores against
    the hand-designed DECORAS and the baseline, and what it is not for."""
    names = list(task.score_names)
    header = "| | parameters | " + " | ".join(task.score_names[k].label for k in names) + " |"
    rows = [header, "|" + " --- |" * (len(names) + 2)]

    def row(label, params, scores):
        cells = [f"{scores[k]:.3f}" for k in names]
        return f"| {label} | {params if params is not None else '-'} | " + " | ".join(cells) + " |"

    rows.append(row("this model", f"{result['parameters']:,}", result["scores"]))
    if "hand_scores" in result:
        rows.append(row("hand-designed DECORAS", f"{result['hand_parameters']:,}", result["hand_scores"]))
    rows.append(row(result["baseline"], None, result["baseline_scores"]))
    better = ", ".join(f"{task.score_names[k].label} {'higher' if task.score_names[k].higher else 'lower'}"
                       for k in names)
    trials = ", ".join(f"{n} {state}" for state, n in chosen["trials"].items())
    return "\n".join([
        f"# {task.title}: a searched DECORAS-family network",
        "",
        f"- Task `{task.name}`: {task.instrument}. Input: "
        f"{task.input_note or f'one {task.size} x {task.size} image in units of its noise'};"
        f" output: {task.out_channels} map(s), {task.output}.",
        f"- Found by the Optuna study `{chosen['study']}` (trial {chosen['trial']}; trials: {trials}), ranked on "
        f"{task.objective_note}.",
        f"- Configuration: {space.describe(result['config'])}.",
        f"- Trained {result['steps']} steps on simulated examples (seed 0) in {result['train_seconds']:.0f} s on a CPU;"
        f" code {code_version()}.",
        f"- Command: `{command}`" if command else "- Written by pipeline.automl.export.",
        "",
        f"## Held-out scores ({result['held_out']['n']} simulations, seeds from {result['held_out']['seed']}; "
        f"{better} is better)",
        "",
        *rows,
        "",
        "## What it is for, and not",
        "",
        f"Made from the project's own simulator alone (see `{task.examples.__module__}` for the"
        " physics). It has never seen real data: check it on images of your instrument with known answers"
        " before you trust its numbers. Inputs must be made and scaled as in training (in units of the image"
        " noise rms) and their sides a multiple of 2 to the number of levels.",
        "",
    ])

