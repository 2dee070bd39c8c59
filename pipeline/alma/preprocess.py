"""What the networks are given, the same in training and at inference: scalings, crops, the
focused image's size and the beam image the shape ResNet is told."""

from __future__ import annotations

import numpy as np

from pipeline.alma.gaussian import gaussian_images

FOCUS_SIZE = 64  # side of the focused images the ResNets take (the paper's 64 x 64 crops)


def minmax(a: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] (NaN to 0); a constant array gives zeros."""
    a = np.nan_to_num(np.asarray(a, np.float32))
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def standardise(a: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (NaN to 0)."""
    a = np.nan_to_num(np.asarray(a, np.float32))
    std = float(a.std())
    return (a - a.mean()) / std if std > 0 else a - a.mean()


def crop(image: np.ndarray, x: float, y: float, side: int = FOCUS_SIZE) -> np.ndarray:
    """``side`` x ``side`` float32 cut centred on (x, y) (the centre at ``(side // 2, side // 2)``),
    zero-padded where it leaves the image."""
    out = np.zeros((side, side), np.float32)
    inside, into = crop_slices(image.shape[-2:], x, y, side)
    out[into] = image[inside]
    return out


def crop_slices(shape, x: float, y: float, side: int = FOCUS_SIZE):
    """``(inside, into)``: the (y, x) slices of an image of ``shape`` (ny, nx) that a :func:`crop`
    about (x, y) takes, and where they go in the ``side`` x ``side`` cut. For reading only that
    window of a memory-mapped cube."""
    x0, y0 = int(round(x)) - side // 2, int(round(y)) - side // 2
    ys = slice(max(0, y0), min(shape[0], y0 + side))
    xs = slice(max(0, x0), min(shape[1], x0 + side))
    return (ys, xs), (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))


def beam_image_px(major_px: float, minor_px: float, theta_deg: float, side: int = FOCUS_SIZE) -> np.ndarray:
    """A unit-peak Gaussian of FWHM ``major_px`` x ``minor_px`` with its major axis at
    ``theta_deg`` counter-clockwise from +x, centred at ``(side // 2, side // 2)``: the fitted
    beam as the shape ResNet is told it."""
    row = {"x": side // 2, "y": side // 2, "fwhm_x": major_px, "fwhm_y": minor_px, "pa": theta_deg}
    return gaussian_images([row], side)[0]
