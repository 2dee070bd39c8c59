"""What a search task is: its simulator, what the network outputs, how an answer is scored, and the
classic method it must beat. One module per task says the physics (:mod:`.detection`,
:mod:`.surface_brightness`, :mod:`.deblending`); this one holds their common shape and the
registry (:data:`TASKS`, built lazily so that the command line lists tasks without importing
torch or the simulators)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import InputError

#: seeds of the three sets never overlap: training below 10**6, validation (what the search
#: ranks trials on) from 10**6, held-out (what `automl best`, export and benchmarks report) from 2 * 10**6
VALIDATION_SEED = 10**6
HELD_OUT_SEED = 2 * 10**6


@dataclass
class Examples:
    """``inputs`` (n, in, size, size) float32 for the network, ``targets`` (n, out, size, size)
    float32 that it learns, and ``truth``: per example, what the scores need (task-specific).
    ``observed`` (n, size, size): the images as the instrument gave them, where the network's input
    is made from them (None: the input's first channel is the observed image)."""

    inputs: np.ndarray
    targets: np.ndarray
    truth: list
    observed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, index) -> Examples:
        index = np.atleast_1d(np.arange(len(self))[index])
        return Examples(self.inputs[index], self.targets[index], [self.truth[i] for i in index],
                        None if self.observed is None else self.observed[index])

    def observed_image(self, index: int) -> np.ndarray:
        """Example ``index``'s image as observed: (size, size)."""
        return self.inputs[index, 0] if self.observed is None else self.observed[index]


@dataclass(frozen=True)
class Score:
    """One score of a task: its ``label``, whether ``higher`` is better, and its ``unit``."""

    label: str
    higher: bool
    unit: str = ""


@dataclass(frozen=True)
class AutomlTask:
    """A problem the DECORAS family is carried to.

    ``examples(seed, n)`` simulates ``n`` examples (the same for the same seed); ``answers(outputs,
    examples)`` turns network outputs (n, out, size, size) into what is scored, the form the
    ``baseline(examples)`` gives too; ``scores(answers, examples)`` -> {name: value} for the names
    of ``score_names``. The search optimises ``objective(scores, baseline_scores)`` in ``direction``.
    ``output``: "probability" (sigmoid maps, for ``losses`` on masks), "brightness" (softplus) or
    "refinement" (the input's first channel, a classic answer or part of it, corrected). ``in_channels``: the
    input's channels, and ``input_note`` what they are (when they are not just the observed image).
    ``hand_loss``: the loss the hand-designed DECORAS is trained with on this task.
    ``max_parameters``: trials over it are not trained (None: no limit)."""

    name: str
    title: str
    instrument: str
    size: int
    out_channels: int
    output: str
    losses: tuple[str, ...]
    hand_loss: str
    score_names: dict[str, Score]
    examples: Callable
    answers: Callable
    baseline: Callable
    baseline_name: str
    scores: Callable
    objective: Callable
    direction: str
    objective_note: str
    max_parameters: int | None = None
    in_channels: int = 1
    input_note: str = ""
    notes: dict = field(default_factory=dict)


def relative_objective(errors=(), similarities=()):
    """An objective for scores against the baseline's: the worst ratio of an error (lower better)
    or of a similarity's distance from 1 (a score at most 1, higher better) to the baseline's. 1
    is the baseline; below 1 beats it on every score, which is the target (a mean would let one
    score's gain hide another's loss). A ratio is capped at 10."""
    def objective(scores: dict, baseline: dict) -> float:
        ratios = [scores[k] / max(baseline[k], 1e-9) for k in errors]
        ratios += [(1 - scores[k]) / max(1 - baseline[k], 1e-9) for k in similarities]
        return float(np.max(np.minimum(ratios, 10.0)))

    return objective


TASK_NAMES = ("vlba", "lofar", "vst")


def get_task(name: str) -> AutomlTask:
    """The task called ``name`` (one of :data:`TASK_NAMES`)."""
    if name == "vlba":
        from pipeline.automl.detection import TASK
    elif name == "lofar":
        from pipeline.automl.surface_brightness import TASK
    elif name == "vst":
        from pipeline.automl.deblending import TASK
    else:
        raise InputError(f"Unknown search task {name!r}; choose one of {', '.join(TASK_NAMES)}.")
    return TASK
