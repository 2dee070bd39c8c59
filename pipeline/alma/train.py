"""Training the source finder's networks from the project's simulator, reproducibly, on a CPU.

``train(task, out_dir, steps=...)`` trains one network on examples drawn on the fly by
:mod:`pipeline.alma.examples` (every batch new, so there is no fixed training set to over-fit),
with fixed seeds, a checkpoint (model, optimiser, random states) every ``checkpoint_every``
steps that a later call resumes from, a JSON log of the losses, and at the end ``model.pt`` and
``MODEL_CARD.md`` in ``out_dir``. Validation uses fixed examples from seeds disjoint from
training, drawn both from the training configurations and from a held-out one.

Tasks: ``blobs_finder``, ``deep_gru``, ``resnet_shape``, ``resnet_flux``, ``decoras_bce``,
``decoras_msle``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.alma import examples as ex
from pipeline.alma import models
from pipeline.alma.model_card import code_version, write_model_card
from pipeline.alma.preprocess import minmax
from pipeline.alma.simulate import Observation
from pipeline.alma.tasks import (
    BLOB_CHANNELS,
    DECORAS_MASK_LEVEL,
    EMPTY_FRACTION,
    TASKS,
    Task,
    shape_to_target,
    value_to_target,
)
from pipeline.atomic import atomic_write
from pipeline.errors import InputError
from pipeline.progress import report

VALIDATION_SEED = 10**6  # validation examples come from seeds at and above this; training below
INSTRUMENT_POOL = 24  # instruments kept and reused for blob batches (one replaced per batch)
#: the shape ResNet is told the dirty beam (a cube's PSF cube) for all skies but one in this many,
#: which get the fitted Gaussian beam (all a cube without its PSF cube has)
GAUSSIAN_BEAM_EVERY = 4
MIN_SIZE = 32  # smallest image side (pixels) the simulator and the networks take
CHECKPOINT_FORMAT = 2  # 2: plain values and tensors only (loaded with weights_only=True)


# --- batches ------------------------------------------------------------------------------------
class BatchMaker:
    """Draws batches for one task from a numpy Generator (its state is checkpointed)."""

    def __init__(self, task: str, rng: np.random.Generator, size: int, configs=ex.TRAINING_CONFIGS):
        self.task, self.rng, self.size, self.configs = task, rng, size, configs
        self._pool = []
        self._focused_skies = 0

    def _instrument(self):
        if len(self._pool) < INSTRUMENT_POOL:
            self._pool.append(ex.random_instrument(self.rng, self.size, self.configs))
            return self._pool[-1]
        return self._pool[int(self.rng.integers(len(self._pool)))]

    def refresh(self):
        """Replace one pooled instrument, so the pool keeps changing over training."""
        if len(self._pool) == INSTRUMENT_POOL:
            self._pool[int(self.rng.integers(INSTRUMENT_POOL))] = ex.random_instrument(
                self.rng, self.size, self.configs)

    def sky(self, channels=None):
        return ex.draw_example(self.rng, self.size, self.configs, instrument=self._instrument(),
                               channels=channels)

    def blob_sky(self):
        """A sky for an image example: any channel count from a sub-band to a cube, shifted, and
        now and then with no emission."""
        lo, hi = np.log(BLOB_CHANNELS)
        sky = ex.draw_example(self.rng, self.size, self.configs, instrument=self._instrument(),
                              channels=int(round(np.exp(self.rng.uniform(lo, hi)))), shift=True)
        if self.rng.random() < EMPTY_FRACTION:
            sky.spectra = np.zeros_like(sky.spectra)
        return sky

    def batch(self, batch_size: int):
        """(inputs, targets) tensors for the task."""
        self.refresh()
        if self.task in ("blobs_finder", "decoras_bce", "decoras_msle"):
            pairs = [ex.blob_pair(self.rng, self.blob_sky(), TASKS[self.task].extra.get("target", "sky"))
                     for _ in range(batch_size)]
            x = np.stack([p[0] for p in pairs])[:, None]
            y = np.stack([p[1] for p in pairs])[:, None]
            k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))  # the paper's rotations and flips
            x, y = np.rot90(x, k, axes=(2, 3)), np.rot90(y, k, axes=(2, 3))
            if flip:
                x, y = x[..., ::-1], y[..., ::-1]
            return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
        if self.task == "deep_gru":
            lo, hi = np.log(ex.Ranges().channels)
            channels = int(round(np.exp(self.rng.uniform(lo, hi))))  # one length per batch
            pairs = []
            while len(pairs) < batch_size:
                pairs.extend(ex.spectrum_pairs(self.rng, self.sky(channels))[0])
            pairs = pairs[:batch_size]
            x = np.stack([p[0] for p in pairs])
            y = np.stack([p[1] for p in pairs])
            return torch.from_numpy(x), torch.from_numpy(y)
        items = []
        shape = TASKS[self.task].extra["parameter"] == "shape"
        while len(items) < batch_size:
            self._focused_skies += 1
            dirty = shape and self._focused_skies % GAUSSIAN_BEAM_EVERY != 0
            items.extend(ex.focused_pairs(self.rng, self.sky(), dirty_beam=dirty))
        items = items[:batch_size]
        if TASKS[self.task].extra["parameter"] == "flux":
            x = np.stack([image for image, _, _ in items])[:, None]
            y = value_to_target("flux", [t["flux"] for _, _, t in items])[:, None]
        else:
            x = np.stack([np.stack([minmax(image), beam]) for image, beam, _ in items])
            y = shape_to_target(*(np.array([t[k] for _, _, t in items])
                                  for k in ("fwhm_major", "fwhm_minor", "pa_major")))
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)


def loss_fn(task: Task, prediction, target):
    if task.loss == "l1_ssim":
        return models.l1_ssim_loss(prediction, target)
    if task.loss == "bce_dice":
        return models.bce_dice_loss(prediction, target)
    if task.loss == "bce":
        return F.binary_cross_entropy(prediction, (target > DECORAS_MASK_LEVEL).float())
    if task.loss == "msle":
        return models.msle_loss(prediction, target)
    return F.l1_loss(prediction, target)


# --- the loop -----------------------------------------------------------------------------------
def validation_batches(name, size, n_batches, batch_size, configs):
    """Fixed validation batches: the same for every run, from seeds no training run uses."""
    maker = BatchMaker(name, np.random.default_rng(VALIDATION_SEED + len(configs)), size, configs)
    return [maker.batch(batch_size) for _ in range(n_batches)]


def evaluate_loss(model, task, batches) -> float:
    model.eval()
    with torch.no_grad():
        losses = [float(loss_fn(task, model(x), y)) for x, y in batches]
    model.train()
    return float(np.mean(losses))


def train(name: str, out_dir, steps: int, seed: int = 0, batch_size: int | None = None,
          lr: float | None = None, size: int = 256, checkpoint_every: int = 50,
          validate_every: int = 100, validation_batches_n: int = 4, resume: bool = True,
          progress=None, command: str = "") -> Path:
    """Train task ``name`` for ``steps`` optimiser steps in total (a resumed run continues up to it).

    Writes ``out_dir/checkpoint.pt`` (atomically, every ``checkpoint_every`` steps and when
    interrupted), ``out_dir/log.json`` and, when done, ``out_dir/model.pt`` and ``MODEL_CARD.md``
    (the checkpoint stays: a later call with more steps continues). ``progress(step, steps, stage)``
    (:mod:`pipeline.progress`) is called every step with stage "loss L", and once with stage ""
    when the options and any checkpoint are accepted, before the work.
    Returns the path of ``model.pt``. Options are checked (:func:`check_options`) and a checkpoint
    to resume is loaded as plain weights and checked before anything is written.
    """
    if name not in TASKS:
        raise InputError(f"Unknown training task {name!r}; choose one of {', '.join(TASKS)}.")
    check_options(steps=steps, seed=seed, batch_size=batch_size, lr=lr, size=size,
                  checkpoint_every=checkpoint_every, validate_every=validate_every,
                  validation_batches_n=validation_batches_n)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a folder: give the folder for the "
                         "checkpoint, log and model.")
    run = TrainingRun.start(name, seed, batch_size, lr, size)
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        run.resume(ckpt_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    report(progress, run.step, steps, "")  # accepted: starting (or resuming) at ``run.step``
    val = {"training_configs": validation_batches(name, size, validation_batches_n, run.batch_size,
                                                  ex.TRAINING_CONFIGS),
           "held_out_config": validation_batches(name, size, validation_batches_n, run.batch_size,
                                                 ex.HELD_OUT_CONFIGS)}
    run.run_steps(steps, val, checkpoint_every, validate_every, progress,
                  save=lambda: run.save(ckpt_path, out_dir / "log.json"))
    run.model.eval()
    task, final = run.task, run.log["validation"][-1]
    extra = {"task": name, **task.extra, "loss": task.loss, "steps": run.step, "seed": seed,
             "validation": final, "notes": task.notes, "trained": time.strftime("%Y-%m-%d"),
             "decoras_mask_level": DECORAS_MASK_LEVEL}
    model_path = models.save_checkpoint(out_dir / "model.pt", run.model, task.model_kind, task.config, extra)
    write_model_card(out_dir / "MODEL_CARD.md", name, task, run.log, command)
    return model_path


@dataclasses.dataclass
class TrainingRun:
    """One task's training as it stands at ``step``: what a checkpoint holds and a resumed run
    continues from (the model, its optimiser, the random states, the batch maker's instruments
    and the log)."""

    name: str
    task: Task
    lr: float
    batch_size: int
    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    rng: np.random.Generator
    maker: BatchMaker
    log: dict
    step: int = 0

    @classmethod
    def start(cls, name: str, seed: int, batch_size: int | None, lr: float | None, size: int) -> TrainingRun:
        """A new run of task ``name``, seeded: the model's weights from torch's seed, the
        examples from a numpy Generator of its own. ``batch_size``, ``lr``: None for the task's."""
        task = TASKS[name]
        if "image_size" in task.config:  # the Blobs Finder's fully connected layers fix its input size
            task = dataclasses.replace(task, config={**task.config, "image_size": size})
        batch_size = batch_size or task.batch_size
        lr = lr or task.lr
        torch.manual_seed(seed)
        model = models.build_model(task.model_kind, **task.config)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=task.weight_decay)
        rng = np.random.default_rng(seed)
        log = {"task": name, "seed": seed, "batch_size": batch_size, "lr": lr, "size": size,
               "model": {"kind": task.model_kind, "config": task.config,
                         "parameters": models.count_parameters(model)},
               "train": [], "validation": [], "seconds": 0.0, "code": code_version()}
        return cls(name, task, lr, batch_size, model, optimiser, rng, BatchMaker(name, rng, size), log)

    def resume(self, ckpt_path: Path) -> None:
        """Continue from the checkpoint at ``ckpt_path`` (checked by :func:`load_training_state`)."""
        state = load_training_state(ckpt_path, self.name, self.log)
        try:
            self.model.load_state_dict(state["model"])
            self.optimiser.load_state_dict(state["optimiser"])
            self.rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
            pool = [ex.make_instrument(Observation(**i["observation"]), int(i["size"])) for i in state["pool"]]
        except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InputError(f"{ckpt_path} does not fit this training run ({_first_line(exc)}): "
                             "delete it, or use --no-resume to start afresh.") from None
        self.maker._pool = pool
        self.maker._focused_skies = int(state.get("focused_skies", 0))
        self.log, self.step = state["log"], state["step"]

    def save(self, ckpt_path: Path, log_path: Path) -> None:
        """Write the checkpoint and the log, atomically."""
        # plain values and tensors only, so that resuming loads it with weights_only=True: the
        # pooled instruments are kept as the observations that rebuild them exactly
        pool = [{"observation": _plain(dataclasses.asdict(i.observation)), "size": int(i.size)}
                for i in self.maker._pool]
        with atomic_write(ckpt_path) as tmp:
            torch.save({"format": CHECKPOINT_FORMAT, "task": self.name, "model": self.model.state_dict(),
                        "optimiser": self.optimiser.state_dict(), "rng": _plain(self.rng.bit_generator.state),
                        "torch_rng": torch.get_rng_state(), "pool": pool,
                        "focused_skies": self.maker._focused_skies, "log": self.log, "step": self.step}, tmp)
        write_json(log_path, self.log)

    def optimiser_step(self, steps: int) -> float:
        """One step on a new batch, at the learning rate of the schedule; returns its loss."""
        x, y = self.maker.batch(self.batch_size)
        for group in self.optimiser.param_groups:
            group["lr"] = learning_rate(self.task, self.lr, self.step, steps)
        loss = loss_fn(self.task, self.model(x), y)
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        self.step += 1
        return float(loss.detach())

    def run_steps(self, steps: int, val: dict, checkpoint_every: int, validate_every: int,
                  progress, save) -> None:
        """Step up to ``steps``, logging each loss and the validation losses (on the batches of
        ``val``) every ``validate_every`` steps; ``save()`` every ``checkpoint_every`` steps, when
        interrupted and at the end."""
        self.model.train()
        started = time.perf_counter() - self.log["seconds"]
        try:
            while self.step < steps:
                loss = self.optimiser_step(steps)
                log, step = self.log, self.step
                log["seconds"] = time.perf_counter() - started
                log["train"].append({"step": step, "loss": loss, "seconds": round(log["seconds"], 2)})
                if step % validate_every == 0 or step == steps:
                    log["validation"].append({"step": step, **{k: evaluate_loss(self.model, self.task, v)
                                                               for k, v in val.items()}})
                if step % checkpoint_every == 0:
                    save()
                report(progress, step, steps, f"loss {loss:.4f}")
        except KeyboardInterrupt:
            save()
            raise
        save()  # kept, so a later call with more steps continues from here


def learning_rate(task: Task, lr: float, step: int, steps: int) -> float:
    """The learning rate of step ``step`` (0-based) of ``steps``: ``lr``, or under the task's
    cosine schedule ``lr (1 + cos(pi step / steps)) / 2``."""
    if task.schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
    return lr


def check_options(steps, seed=0, batch_size=None, lr=None, size=256, checkpoint_every=50,
                  validate_every=100, validation_batches_n=4) -> None:
    """Refuse training options that cannot work, before anything is built or written (the names of
    the command line's options in brackets)."""
    def whole(value, least, what):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise InputError(f"{what} must be a whole number of at least {least}; got {value!r}.")

    whole(steps, 1, "steps (--steps)")
    whole(seed, 0, "seed (--seed)")
    whole(size, MIN_SIZE, "size (--size, image side in pixels)")
    whole(checkpoint_every, 1, "checkpoint_every (--checkpoint-every)")
    whole(validate_every, 1, "validate_every")
    whole(validation_batches_n, 1, "validation_batches_n")
    if batch_size is not None:
        whole(batch_size, 1, "batch_size (--batch)")
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"lr (--lr) must be a positive learning rate; got {lr!r}.")


def load_training_state(path: Path, name: str, log: dict) -> dict:
    """The training state in ``path`` (a checkpoint of :func:`train`), loaded with
    ``weights_only=True`` so that a planted file cannot run code, and checked against this run
    (task ``name``; seed, batch, lr and size in ``log``). InputError on anything else."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path} is not a plain weights file (it holds Python objects other than "
                         "tensors and plain values, so it is not loaded: loading it could run code). "
                         "Delete it, or use --no-resume to start afresh.") from None
    except Exception as exc:  # noqa: BLE001 -- torch raises many types on damaged files
        raise InputError(f"{path} cannot be read as a checkpoint ({_first_line(exc)}). "
                         "Delete it, or use --no-resume to start afresh.") from None
    keys = {"task", "model", "optimiser", "rng", "torch_rng", "pool", "log", "step"}
    if not isinstance(state, dict) or not keys <= set(state) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not a checkpoint of this version of `train`: delete it, or use "
                         "--no-resume to start afresh.")
    if state["task"] != name:
        raise InputError(f"{path} belongs to task {state['task']!r}, not {name!r}; "
                         "use another --out folder or --no-resume.")
    made = state["log"]
    for key, option in (("seed", "--seed"), ("batch_size", "--batch"), ("lr", "--lr"), ("size", "--size")):
        if made.get(key) != log[key]:
            raise InputError(f"{path} was made with {option} {made.get(key)} (not {log[key]}): run the "
                             "same command to resume it, or use --no-resume or another --out to start afresh.")
    return state


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _plain(value):
    """``value`` with numpy scalars turned into Python ones (dicts, lists and tuples walked)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def write_json(path, doc):
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=1))
