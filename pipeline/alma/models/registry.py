"""Every model kind by name, so that a checkpoint's ``(kind, config)`` rebuilds its model."""

from __future__ import annotations

from torch import nn

from pipeline.alma.models.blobs_finder import BlobsFinder
from pipeline.alma.models.decoras import Decoras, DecorasPair
from pipeline.alma.models.deep_gru import DeepGRU
from pipeline.alma.models.encoder_decoder import EncoderDecoder
from pipeline.alma.models.resnet import ResNetRegressor
from pipeline.errors import InputError

MODEL_REGISTRY = {
    "blobs_finder": BlobsFinder,
    "deep_gru": DeepGRU,
    "resnet": ResNetRegressor,
    "decoras": Decoras,
    "decoras_pair": DecorasPair,
    "encoder_decoder": EncoderDecoder,
}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_model(kind: str, **config) -> nn.Module:
    """A new model of ``kind`` (a key of :data:`MODEL_REGISTRY`) built with ``config``."""
    if kind not in MODEL_REGISTRY:
        raise InputError(f"Unknown model kind {kind!r}; known: {', '.join(MODEL_REGISTRY)}.")
    try:
        return MODEL_REGISTRY[kind](**config)
    except TypeError as error:
        raise InputError(f"Bad configuration for a {kind} model: {error}.") from error

