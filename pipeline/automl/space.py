"""The search space: a DECORAS-family network (:class:`~pipeline.alma.models.EncoderDecoder`) and
how it is trained, as one flat configuration.

Network: depth (2-4 levels), width of the first level (4-24 channels) and its growth per level
(x1, x1.5, x2; "add" skips keep widths equal), kernel sizes (the first level's 3/5/7 px, deeper
levels' 3/5 px), convolutions per level (1-2), skips (none, add, concat), normalisation
(batch, group, instance, none) and input scaling (none; each image divided by its peak and a
brightness answer multiplied back, an answer that scales with the sky as imaging is linear; or
arcsinh, linear within the noise and logarithmic for bright emission).
Training: loss (the task's: BCE, Dice or focal on masks; MSLE, L1 + SSIM or MSE on brightness),
learning rate (1e-4 to 1e-2, log-uniform), batch size (8, 16, 32) and augmentation (none, or the
eight rotations and flips).
"""

from __future__ import annotations

from pipeline.alma.models import DECORAS_SHAPE
from pipeline.alma.models.encoder_decoder import SCALES

BASE_WIDTHS = (4, 6, 8, 12, 16, 24)
GROWTHS = (1.0, 1.5, 2.0)
AUGMENTATIONS = ("none", "dihedral")
NETWORK_KEYS = ("widths", "kernels", "convs", "skip", "norm", "scale")
#: how :func:`describe` names each input scaling
SCALE_NOTES = {"none": "", "peak": ", peak-scaled", "asinh": ", asinh-scaled"}


def suggest(trial, task) -> dict:
    """A configuration drawn by an Optuna ``trial`` for ``task`` (an AutomlTask)."""
    depth = trial.suggest_int("depth", 2, 4)
    base = trial.suggest_categorical("base_width", BASE_WIDTHS)
    skip = trial.suggest_categorical("skip", ("none", "add", "concat"))
    growth = 1.0 if skip == "add" else trial.suggest_categorical("growth", GROWTHS)
    first = trial.suggest_categorical("kernel_first", (3, 5, 7))
    deep = trial.suggest_categorical("kernel_deep", (3, 5))
    return {
        "widths": widths(base, growth, depth),
        "kernels": [first] + [deep] * (depth - 1),
        "convs": trial.suggest_int("convs", 1, 2),
        "skip": skip,
        "norm": trial.suggest_categorical("norm", ("batch", "group", "instance", "none")),
        "scale": trial.suggest_categorical("scale", SCALES),
        "loss": trial.suggest_categorical("loss", task.losses),
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", (8, 16, 32)),
        "augmentation": trial.suggest_categorical("augmentation", AUGMENTATIONS),
    }


def widths(base: int, growth: float, depth: int) -> list[int]:
    """Channels per level: ``base`` times ``growth`` per level down, rounded."""
    return [int(round(base * growth**level)) for level in range(depth)]


def from_params(params: dict, task) -> dict:
    """The configuration an Optuna trial's ``params`` describe (what :func:`suggest` returned)."""
    depth, skip = int(params["depth"]), params["skip"]
    growth = 1.0 if skip == "add" else float(params["growth"])
    return {"widths": widths(int(params["base_width"]), growth, depth),
            "kernels": [int(params["kernel_first"])] + [int(params["kernel_deep"])] * (depth - 1),
            "convs": int(params["convs"]), "skip": skip, "norm": params["norm"],
            "scale": params.get("scale", "none"),  # studies from before the choice existed: none
            "loss": params["loss"],
            "lr": float(params["lr"]), "batch_size": int(params["batch_size"]),
            "augmentation": params["augmentation"]}


def hand_designed(task) -> dict:
    """DECORAS as designed by hand (the ALMA paper's re-implementation), trained with the task's
    own loss, Adam at 1e-3, batches of 16 and the rotations and flips."""
    return {**DECORAS_SHAPE, "loss": task.hand_loss, "lr": 1e-3, "batch_size": 16, "augmentation": "dihedral"}


def hand_designed_params(task) -> dict:
    """:func:`hand_designed` as the search's own parameters (what :func:`from_params` turns back)."""
    config = hand_designed(task)
    widths = config["widths"]
    return {"depth": len(widths), "base_width": widths[0], "skip": config["skip"], "growth": widths[1] / widths[0],
            "kernel_first": config["kernels"][0], "kernel_deep": config["kernels"][1], "convs": config["convs"],
            "norm": config["norm"], "scale": config["scale"], "loss": config["loss"], "lr": config["lr"],
            "batch_size": config["batch_size"], "augmentation": config["augmentation"]}


def network_config(config: dict, task) -> dict:
    """The :class:`~pipeline.alma.models.EncoderDecoder` arguments of ``config`` for ``task``."""
    return {"in_channels": task.in_channels, "out_channels": task.out_channels, "output": task.output,
            **{k: config[k] for k in NETWORK_KEYS}}


def describe(config: dict) -> str:
    """One line: the network's shape and its training."""
    return (f"{len(config['widths'])} levels of {'/'.join(map(str, config['widths']))} channels, kernels "
            f"{'/'.join(map(str, config['kernels']))}, {config['convs']} conv/level, skips {config['skip']}, "
            f"{config['norm']} norm{SCALE_NOTES[config['scale']]}; {config['loss']} loss, "
            f"lr {config['lr']:.2g}, batch {config['batch_size']}, "
            f"augmentation {config['augmentation']}")

