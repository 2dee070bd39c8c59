"""The training losses of the networks: SSIM and L1 + SSIM (Blobs Finder), binary cross-entropy +
Dice for sparse maps, the mean squared logarithmic error (DECORAS), and Dice and focal losses
alone (choices of :mod:`pipeline.automl`'s search)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.errors import InputError


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    window = torch.exp(-coords**2 / (2 * sigma**2))
    return window / window.sum()


def ssim(prediction: torch.Tensor, target: torch.Tensor, window_size: int = 11,
         sigma: float = 1.5, data_range: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of images ``[b, c, H, W]`` with a Gaussian window
    of ``window_size`` px and ``sigma`` px, over the pixels where the window fits (no padding).

    ``data_range``: the span of pixel values (1 for min-max normalised images). Returns the mean
    SSIM (``reduction="mean"``) or one value per image (``"none"``, shape ``[b]``); 1 when the
    images are equal.
    """
    if prediction.shape != target.shape or prediction.ndim != 4:
        raise InputError(f"ssim takes two images of the same shape [b, c, H, W]; got "
                         f"{list(prediction.shape)} and {list(target.shape)}.")
    if min(prediction.shape[-2:]) < window_size:
        raise InputError(f"ssim window of {window_size} px is larger than the image "
                         f"{tuple(prediction.shape[-2:])}; use a smaller window_size.")
    channels = prediction.shape[1]
    g = _gaussian_window(window_size, sigma, prediction.dtype, prediction.device)
    kernel_x = g.view(1, 1, 1, -1).expand(channels, 1, 1, window_size)
    kernel_y = g.view(1, 1, -1, 1).expand(channels, 1, window_size, 1)

    def blur(x):  # separable Gaussian mean, per channel
        return F.conv2d(F.conv2d(x, kernel_x, groups=channels), kernel_y, groups=channels)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_t = blur(prediction), blur(target)
    var_p = blur(prediction * prediction) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(prediction * target) - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    per_image = ssim_map.flatten(1).mean(1)
    return per_image.mean() if reduction == "mean" else per_image


def l1_ssim_loss(prediction: torch.Tensor, target: torch.Tensor, ssim_weight: float = 1.0,
                 window_size: int = 11, data_range: float = 1.0) -> torch.Tensor:
    """The Blobs Finder's loss: mean absolute error + ``ssim_weight`` * (1 - SSIM).

    0 for equal images, positive otherwise. (The released code adds kornia's ``SSIMLoss``, which
    is (1 - SSIM) / 2: ``ssim_weight=0.5`` reproduces it.)
    """
    structural = 1.0 - ssim(prediction, target, window_size=window_size, data_range=data_range)
    return F.l1_loss(prediction, target) + ssim_weight * structural


def bce_dice_loss(prediction: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy (soft targets allowed) + (1 - soft Dice) per image, for sparse maps
    in [0, 1]: the Dice term is relative to the target's own area, so a map that is almost all
    background cannot be matched by predicting background everywhere; ``smooth`` keeps it
    defined (and asking for an empty map) when the target is empty."""
    return F.binary_cross_entropy(prediction, target) + dice_loss(prediction, target, smooth)


def dice_loss(prediction: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice coefficient per image, averaged, for maps in [0, 1] (Milletari et al. 2016)."""
    p, t = prediction.flatten(1), target.flatten(1)
    dice = (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)
    return (1 - dice).mean()


def focal_loss(prediction: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) for probabilities in [0, 1] and 0/1 targets: cross-entropy
    scaled by ``(1 - p_t) ** gamma``, so the many easy background pixels weigh little, and
    weighted ``alpha`` for the positives, ``1 - alpha`` for the negatives."""
    bce = F.binary_cross_entropy(prediction, target, reduction="none")
    p_t = prediction * target + (1 - prediction) * (1 - target)
    weight = alpha * target + (1 - alpha) * (1 - target)
    return (weight * (1 - p_t) ** gamma * bce).mean()


def msle_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared logarithmic error, ``mean((log(1 + p) - log(1 + t))^2)``, for non-negative
    maps (negative values are clipped to 0, as Keras does)."""
    return F.mse_loss(torch.log1p(prediction.clamp(min=0)), torch.log1p(target.clamp(min=0)))

