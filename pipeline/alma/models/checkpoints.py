"""Saving a model as ``(kind, config, state_dict, extra)`` and rebuilding it from that, the one
way weights are written and loaded."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.alma.models.registry import MODEL_REGISTRY, build_model
from pipeline.atomic import atomic_write
from pipeline.errors import InputError

CHECKPOINT_FORMAT = 1


def save_checkpoint(path, model: nn.Module, kind: str, config: dict, extra: dict | None = None) -> Path:
    """Write ``model`` to ``path`` (atomically) as ``{kind, config, state_dict, extra}`` so that
    :func:`load_checkpoint` can rebuild it.

    ``config`` must be what the model was built with: it is checked by building the model on
    torch's meta device and comparing parameter shapes. ``config`` and ``extra`` (e.g.
    normalisation, training history) must hold plain Python values (numbers, strings, lists,
    tuples, dicts) or tensors. Returns the path.
    """
    config = dict(config)
    if kind not in MODEL_REGISTRY or not isinstance(model, MODEL_REGISTRY[kind]):
        raise InputError(f"A {type(model).__name__} cannot be saved as kind {kind!r}; "
                         f"kinds: {', '.join(f'{k}={v.__name__}' for k, v in MODEL_REGISTRY.items())}.")
    with torch.device("meta"):
        rebuilt = build_model(kind, **config)
    expected = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    actual = {k: tuple(v.shape) for k, v in state_dict.items()}
    if expected != actual:
        differ = sorted(set(expected.items()) ^ set(actual.items()))[:3]
        raise InputError(f"config {config} does not describe this {kind} model "
                         f"(parameters differ, e.g. {differ}); pass the config it was built with.")
    checkpoint = {"format": CHECKPOINT_FORMAT, "kind": kind, "config": config,
                  "state_dict": state_dict, "extra": dict(extra or {}),
                  "torch_version": str(torch.__version__)}
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save(checkpoint, tmp)
    return path


def load_checkpoint(path) -> tuple[nn.Module, dict]:
    """Rebuild the model saved by :func:`save_checkpoint` at ``path``, on the CPU and in
    evaluation mode. Returns ``(model, checkpoint)`` where ``checkpoint`` holds ``kind``,
    ``config``, ``extra`` (and the ``state_dict``).

    Only tensors and plain values are unpickled (``weights_only``), so a checkpoint cannot run
    code.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No checkpoint at {path}; train a model or give the path of one.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise InputError(f"{path} is not a readable model checkpoint: {error}") from error
    missing = {"kind", "config", "state_dict"} - set(checkpoint if isinstance(checkpoint, dict) else ())
    if missing:
        raise InputError(f"{path} is not a checkpoint written by save_checkpoint "
                         f"(missing {', '.join(sorted(missing))}).")
    model = build_model(checkpoint["kind"], **checkpoint["config"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise InputError(f"{path}: the weights do not fit a {checkpoint['kind']} model with "
                         f"config {checkpoint['config']}: {error}") from error
    model.eval()
    return model, checkpoint
