"""What each network of the source finder learns: model, loss, inputs and targets (no torch here,
so the command line can list the tasks without importing it)."""

import json
from dataclasses import dataclass, field

import numpy as np

# --- targets ------------------------------------------------------------------------------------
# ResNet targets are scaled to order one; ``target_to_value`` undoes it at inference
TARGET_SCALES = {"fwhm_x": 10.0, "fwhm_y": 10.0, "pa": 90.0}


def value_to_target(parameter: str, values) -> np.ndarray:
    """Physical value -> what the ResNet regresses: FWHM / 10 px, PA / 90 deg, log10(flux / rms)."""
    v = np.asarray(values, np.float32)
    if parameter == "flux":
        return np.log10(np.maximum(v, 1e-3)).astype(np.float32)
    return v / TARGET_SCALES[parameter]


def target_to_value(parameter: str, targets) -> np.ndarray:
    """Inverse of :func:`value_to_target`."""
    t = np.asarray(targets, np.float32)
    if parameter == "flux":
        return (10.0 ** t).astype(np.float32)
    return t * TARGET_SCALES[parameter]


# --- tasks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    model_kind: str
    config: dict
    loss: str
    batch_size: int
    lr: float = 1e-3
    weight_decay: float = 1e-5
    notes: str = ""
    extra: dict = field(default_factory=dict)


def _resnet(parameter):
    return Task("resnet", {"base_width": 16, "hidden_features": 64}, "l1", 32,
                extra={"parameter": parameter},
                notes=("input: focused 64x64 image, min-max scaled" if parameter != "flux" else
                       "input: focused 64x64 image in units of its noise rms (not rescaled)")
                + f"; target: {'log10(flux / noise rms)' if parameter == 'flux' else f'{parameter} / {TARGET_SCALES[parameter]:g}'}")


TASKS = {
    # CPU-sized: the paper's layout (Table 3) with a 256-wide latent instead of 1024 (the two
    # fully connected layers hold almost all the weights: 34 M parameters at 1024), skip
    # connections, and the footprint target with BCE + Dice (see BlobsFinder and
    # examples.footprint_map for why); {"skips": False} with target "sky" and loss "l1_ssim" is
    # the paper's recipe
    "blobs_finder": Task("blobs_finder", {"widths": [8, 16, 32, 64], "latent_dim": 256, "image_size": 256,
                                          "skips": True},
                         "bce_dice", 8, extra={"target": "footprint"},
                         notes="input: min-max integrated dirty image (full band or any sub-band); "
                               "target: footprint map (each source's unit-peak image weighted by its integrated SNR)"),
    "deep_gru": Task("deep_gru", {"hidden_size": 32, "num_layers": 2, "bidirectional": True}, "l1", 32,
                     notes="input: z-scored box spectrum; target: min-max box-summed sky spectrum"),
    "resnet_fwhm_x": _resnet("fwhm_x"),
    "resnet_fwhm_y": _resnet("fwhm_y"),
    "resnet_pa": _resnet("pa"),
    "resnet_flux": _resnet("flux"),
    # BCE on the Blobs Finder's footprint (as a mask), so the detection maps compare as networks
    "decoras_bce": Task("decoras", {"widths": [16, 32, 64], "loss": "bce"}, "bce", 16, extra={"target": "footprint"},
                        notes="input: min-max integrated dirty image; target: footprint map > 0.15 (a mask)"),
    # DECORAS's MSLE network regresses brightness ("how bright"), the BCE one detection
    "decoras_msle": Task("decoras", {"widths": [16, 32, 64], "loss": "msle"}, "msle", 16, extra={"target": "snr"},
                         notes="input: min-max integrated dirty image; target: noiseless integrated image in units of its noise rms"),
}
DECORAS_MASK_LEVEL = 0.15
#: channel counts integrated in Blobs Finder / DECORAS examples: from narrow sub-bands (the
#: detector also searches windows of the band) to whole cubes; log-uniform
BLOB_CHANNELS = (6, 320)
#: fraction of Blobs Finder / DECORAS examples with no emission at all (most sub-bands are empty)
EMPTY_FRACTION = 0.15


def describe_tasks() -> str:
    return "\n".join(f"  {k:15s} {v.model_kind} {json.dumps(v.config)}: {v.notes}" for k, v in TASKS.items())

