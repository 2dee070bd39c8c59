"""Exported models at work: the folders :mod:`.export` writes (those shipped in assets/models as
``automl_<task>``, or any other), and one example answered by the searched network, the
hand-designed DECORAS and the classic baseline side by side."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.alma.models import load_checkpoint
from pipeline.automl.export import HAND_FILE, MARKER
from pipeline.automl.tasks import TASK_NAMES, AutomlTask, Examples, get_task
from pipeline.errors import InputError

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "assets" / "models"
SHIPPED_STUDIES = Path(__file__).resolve().parents[2] / "assets" / "automl" / "studies.db"


def shipped_exports() -> dict[str, Path]:
    """{task: folder} of the exported models shipped with the project."""
    return {name: SHIPPED_DIR / f"automl_{name}" for name in TASK_NAMES
            if (SHIPPED_DIR / f"automl_{name}" / MARKER).is_file()}


@dataclass
class Exported:
    """An export folder loaded: its task, the searched ``model``, the ``hand`` DECORAS (or None) and
    what ``scores.json`` says (``result``)."""

    task: AutomlTask
    model: object
    hand: object
    result: dict


def load_export(folder) -> Exported:
    folder = Path(folder)
    if not (folder / MARKER).is_file():
        raise InputError(f"{folder} is not an exported model (no {MARKER}): export one with "
                         "`python -m pipeline automl export STUDY --out DIR`.")
    result = json.loads((folder / MARKER).read_text())
    model, _ = load_checkpoint(folder / "model.pt")
    hand = load_checkpoint(folder / HAND_FILE)[0] if (folder / HAND_FILE).is_file() else None
    return Exported(get_task(result["task"]), model, hand, result)


def answer_one(exported: Exported, examples: Examples, index: int) -> dict:
    """Example ``index`` of ``examples`` answered three ways: {"input", "target", "searched",
    "hand", "baseline"} images (out_channels, size, size) (None for a missing hand-designed model),
    and {"scores": {who: scores}} on this example alone. Detection answers also give ``found``:
    {who: (k, 2) x, y}."""
    from pipeline.automl.training import predict

    task = exported.task
    one = examples.subset([index])
    outputs = {"searched": predict(exported.model, one.inputs)}
    if exported.hand is not None:
        outputs["hand"] = predict(exported.hand, one.inputs)
    baseline = task.baseline(one)
    shown = {"input": one.observed_image(0)[None], "target": one.targets[0], "hand": None}
    scores, found = {}, {}
    for who, out in outputs.items():
        answer = task.answers(out, one)
        scores[who] = task.scores(answer, one)
        shown[who] = out[0]
        if task.output == "probability":
            found[who] = answer[0]
    scores["baseline"] = task.scores(baseline, one)
    if task.output == "probability":  # the baseline's answer is its sources: shown as the input with them
        found["baseline"] = baseline[0]
        shown["baseline"] = shown["input"]
        found["target"] = np.stack([one.truth[0]["x"], one.truth[0]["y"]], axis=1)
    else:
        shown["baseline"] = np.asarray(baseline)[0].reshape(shown["target"].shape)
    return {**shown, "scores": scores, "found": found}
