"""The input check the networks share: images shaped ``[batch, channel, y, x]``."""

from __future__ import annotations

import torch

from pipeline.errors import InputError


def check_images(name: str, x: torch.Tensor, in_channels: int) -> None:
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise InputError(
            f"{name} takes images shaped [batch, {in_channels}, y, x]; got {list(x.shape)}. "
            "Add the batch and channel axes, e.g. image[None, None].")
