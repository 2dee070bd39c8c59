"""What each network of the source finder learns: model, loss, inputs and targets (no torch here,
so the command line can list the tasks without importing it)."""

import json
from dataclasses import dataclass, field

import numpy as np

# --- targets ------------------------------------------------------------------------------------
SHAPE_SCALE_PX = 10.0  # the shape ResNet regresses FWHM / 10 px: targets of order one
#: what the shape ResNet outputs, in order (see :func:`shape_to_target`)
SHAPE_OUTPUTS = ("fwhm_major", "fwhm_minor", "e1", "e2")


def shape_to_target(major, minor, pa_deg) -> np.ndarray:
    """Intrinsic major and minor FWHM (px) and the major axis's angle (deg, counter-clockwise
    from +x) -> the shape ResNet's targets ``(n, 4)``: major / 10, minor / 10 and the
    ellipticity vector ``e (cos 2 pa, sin 2 pa)`` with ``e = (major - minor) / (major + minor)``.

    An ellipse's angle is periodic in 180 deg (pa and pa + 180 are the same ellipse; 1 and 179
    deg are nearly the same), so the angle enters as 2 pa on the unit circle, where the loss
    sees 1 and 179 deg as close. Scaled by e, the vector shrinks to 0 for a round source, whose
    angle means nothing, so a round source asks for no angle at all."""
    major, minor, pa = (np.atleast_1d(np.asarray(v, np.float64)) for v in (major, minor, pa_deg))
    major, minor = np.maximum(major, minor), np.minimum(major, minor)
    e = (major - minor) / np.maximum(major + minor, 1e-9)
    twice = np.radians(2.0 * pa)
    return np.stack([major / SHAPE_SCALE_PX, minor / SHAPE_SCALE_PX, e * np.cos(twice),
                     e * np.sin(twice)], axis=-1).astype(np.float32)


def target_to_shape(targets) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`shape_to_target` for network outputs ``(n, 4)``: (major, minor FWHM px,
    pa deg in [0, 180), ellipticity e). Negative sizes are clipped to 0 and the axes sorted."""
    t = np.atleast_2d(np.asarray(targets, np.float64))
    a, b = np.clip(t[:, 0], 0, None) * SHAPE_SCALE_PX, np.clip(t[:, 1], 0, None) * SHAPE_SCALE_PX
    pa = np.degrees(0.5 * np.arctan2(t[:, 3], t[:, 2])) % 180.0
    return np.maximum(a, b), np.minimum(a, b), pa, np.hypot(t[:, 2], t[:, 3])


def value_to_target(parameter: str, values) -> np.ndarray:
    """Flux / noise rms -> what the flux ResNet regresses, log10 of it."""
    if parameter != "flux":
        raise ValueError(f"value_to_target is for the flux; the shape uses shape_to_target, not {parameter!r}")
    return np.log10(np.maximum(np.asarray(values, np.float32), 1e-3)).astype(np.float32)


def target_to_value(parameter: str, targets) -> np.ndarray:
    """Inverse of :func:`value_to_target`."""
    if parameter != "flux":
        raise ValueError(f"target_to_value is for the flux; the shape uses target_to_shape, not {parameter!r}")
    return (10.0 ** np.asarray(targets, np.float32)).astype(np.float32)


# --- tasks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    model_kind: str
    config: dict
    loss: str
    batch_size: int
    lr: float = 1e-3
    weight_decay: float = 1e-5
    #: "constant", or "cosine": the learning rate falls from lr to 0 over the run's --steps
    #: (a function of the step alone, so a resumed run follows the same schedule)
    schedule: str = "constant"
    notes: str = ""
    extra: dict = field(default_factory=dict)


def _resnet(parameter):
    if parameter == "shape":
        return Task("resnet", {"base_width": 16, "hidden_features": 64, "in_channels": 2,
                               "out_features": len(SHAPE_OUTPUTS)}, "l1", 32, schedule="cosine",
                    extra={"parameter": "shape", "outputs": list(SHAPE_OUTPUTS)},
                    notes="input: focused 64x64 image, min-max scaled, and the beam as a second channel "
                          "(unit peak, centred): the dirty beam (the cube's PSF) for three skies in four, "
                          "the fitted Gaussian beam for the fourth; target: intrinsic "
                          "major and minor FWHM / 10 px and the ellipticity vector e (cos 2PA, sin 2PA), "
                          "e = (major - minor) / (major + minor)")
    return Task("resnet", {"base_width": 16, "hidden_features": 64}, "l1", 32,
                extra={"parameter": parameter},
                notes="input: focused 64x64 image in units of its noise rms (not rescaled); "
                      "target: log10(flux / noise rms)")


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
    # one network for major, minor and angle (the paper trains one per parameter; together they
    # agree on which axis is the major one), told the beam so it can take the beam out
    "resnet_shape": _resnet("shape"),
    "resnet_flux": _resnet("flux"),
    # BCE on the Blobs Finder's footprint (as a mask), so the detection maps compare as networks
    "decoras_bce": Task("decoras", {"widths": [16, 32, 64], "loss": "bce"}, "bce", 16, extra={"target": "footprint"},
                        notes="input: min-max integrated dirty image; target: footprint map > 0.15 (a mask)"),
    # DECORAS's MSLE network regresses brightness ("how bright"), the BCE one detection
    "decoras_msle": Task("decoras", {"widths": [16, 32, 64], "loss": "msle"}, "msle", 16, extra={"target": "snr"},
                         notes="input: min-max integrated dirty image; "
                               "target: noiseless integrated image in units of its noise rms"),
}
DECORAS_MASK_LEVEL = 0.15
#: channel counts integrated in Blobs Finder / DECORAS examples: from narrow sub-bands (the
#: detector also searches windows of the band) to whole cubes; log-uniform
BLOB_CHANNELS = (6, 320)
#: fraction of Blobs Finder / DECORAS examples with no emission at all (most sub-bands are empty)
EMPTY_FRACTION = 0.15


def describe_tasks() -> str:
    return "\n".join(f"  {k:15s} {v.model_kind} {json.dumps(v.config)}: {v.notes}" for k, v in TASKS.items())

