"""One configuration of the search space trained on a task's examples and scored, at any fidelity:
``steps`` Adam steps on batches drawn from a fixed pool of simulated examples, the validation
scores reported every ``report_every`` steps (what Optuna's pruner judges)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.alma.models import EncoderDecoder, count_parameters, dice_loss, focal_loss, l1_ssim_loss, msle_loss
from pipeline.automl.space import network_config
from pipeline.automl.tasks import AutomlTask, Examples
from pipeline.progress import check_cancel, report

PREDICT_BATCH = 64


def loss_function(name: str) -> Callable:
    """The training loss called ``name``: ``(prediction, target) -> scalar``."""
    if name == "bce":
        return F.binary_cross_entropy
    if name == "dice":
        return dice_loss
    if name == "focal":
        return focal_loss
    if name == "msle":
        return msle_loss
    if name == "mse":  # the rms of the answer's error, squared
        return F.mse_loss
    if name == "l1_ssim":
        # SSIM's constants scale with the span of the values: the batch's own, as the targets are
        # in units of the image noise and span tens
        return lambda p, t: l1_ssim_loss(p, t, data_range=max(float(t.max() - t.min()), 1.0))
    raise ValueError(f"unknown loss {name!r}")


def build(config: dict, task: AutomlTask, seed: int = 0) -> EncoderDecoder:
    torch.manual_seed(seed)
    return EncoderDecoder(**network_config(config, task))


def parameters(config: dict, task: AutomlTask) -> int:
    """How many parameters ``config``'s network has (built on the meta device: no memory)."""
    with torch.device("meta"):
        return count_parameters(EncoderDecoder(**network_config(config, task)))


def dihedral(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator):
    """The same one of the eight rotations and flips applied to inputs and targets."""
    k = int(rng.integers(4))
    x, y = torch.rot90(x, k, (2, 3)), torch.rot90(y, k, (2, 3))
    if rng.integers(2):
        x, y = torch.flip(x, (3,)), torch.flip(y, (3,))
    return x, y


def predict(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    """The model's outputs for ``inputs`` (n, 1, size, size), in batches, without gradients."""
    model.eval()
    with torch.no_grad():
        out = [model(torch.from_numpy(np.ascontiguousarray(inputs[i:i + PREDICT_BATCH]))).numpy()
               for i in range(0, len(inputs), PREDICT_BATCH)]
    return np.concatenate(out) if out else np.zeros((0,) + inputs.shape[1:], np.float32)


def evaluate(model: torch.nn.Module, task: AutomlTask, examples: Examples) -> dict:
    """The task's scores of ``model`` on ``examples``."""
    return task.scores(task.answers(predict(model, examples.inputs), examples), examples)


def train(config: dict, task: AutomlTask, examples: Examples, steps: int, seed: int = 0,
          validation: Examples | None = None, report_every: int = 0, on_report=None,
          progress=None, cancel=None) -> tuple[EncoderDecoder, dict]:
    """Train ``config``'s network on ``examples`` for ``steps`` steps (seeded: the same run for the
    same arguments). Every ``report_every`` steps and at the end, with ``validation``, the scores
    are computed and ``on_report(step, scores)`` called; it may raise (Optuna's TrialPruned) to
    stop. Returns the model (in evaluation mode) and a log: losses, reports, seconds."""
    model = build(config, task, seed)
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config["lr"])
    criterion = loss_function(config["loss"])
    inputs, targets = torch.from_numpy(examples.inputs), torch.from_numpy(examples.targets)
    log = {"loss": [], "reports": [], "seconds": 0.0}
    started = time.perf_counter()
    for step in range(1, steps + 1):
        check_cancel(cancel, "training")
        model.train()
        index = torch.from_numpy(rng.integers(0, len(inputs), config["batch_size"]))
        x, y = inputs[index], targets[index]
        if config["augmentation"] == "dihedral":
            x, y = dihedral(x, y, rng)
        # in the units the network answers in (its input's peak with scale="peak"), so that each
        # image counts alike whatever its brightness
        scale = model.input_scale(x) if model.output != "probability" else 1.0
        loss = criterion(model(x) / scale, y / scale)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        log["loss"].append(float(loss.detach()))
        if validation is not None and report_every and (step % report_every == 0 or step == steps):
            scores = evaluate(model, task, validation)
            log["reports"].append({"step": step, **scores})
            log["seconds"] = time.perf_counter() - started
            if on_report is not None:
                on_report(step, scores)
        report(progress, step, steps, f"loss {float(loss.detach()):.4f}")
    log["seconds"] = time.perf_counter() - started
    model.eval()
    return model, log
