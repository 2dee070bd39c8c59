"""Elliptical Gaussians on the pixel grid, the one place for their formulas: FWHM and sigma, the
covariance of an ellipse, its area, and images of it (sources, beams)."""

from __future__ import annotations

import math

import numpy as np

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...


def gaussian_covariance(fwhm_a: float, fwhm_b: float, theta_deg: float) -> np.ndarray:
    """2x2 covariance (pixels^2, [[xx, xy], [xy, yy]]) of a Gaussian with FWHMs ``fwhm_a`` along
    the axis at ``theta_deg`` (counter-clockwise from +x) and ``fwhm_b`` across it."""
    t = math.radians(theta_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return rot @ np.diag([(fwhm_a / FWHM_PER_SIGMA) ** 2, (fwhm_b / FWHM_PER_SIGMA) ** 2]) @ rot.T


def gaussian_area(fwhm_a, fwhm_b):
    """Integral of a unit-peak Gaussian of FWHMs ``fwhm_a`` x ``fwhm_b``: ``pi / (4 ln 2) a b``
    (in the square of their unit: a beam's area in pixels from its FWHMs in pixels)."""
    return math.pi / (4 * math.log(2)) * fwhm_a * fwhm_b


def gaussian_images(sources, size) -> np.ndarray:
    """Unit-peak elliptical Gaussians (n_sources, size, size) float32 sampled at pixel centres.

    ``sources`` has columns x, y (pixels, 0-based), fwhm_x, fwhm_y (FWHM in pixels along the
    source's own axes) and pa (degrees counter-clockwise from +x, the source's x axis).
    Sampling at pixel centres keeps the sum equal to the analytic integral
    :func:`gaussian_area` to ~1e-6 for FWHM >= 2 px (3e-4 at 1.5 px).
    A source is truncated where it crosses the image edge.
    """
    grid = np.arange(size, dtype=np.float64)
    images = np.empty((len(sources), size, size), np.float32)
    for i, s in enumerate(sources):
        pa = np.radians(s["pa"])
        dx = grid[None, :] - s["x"]
        dy = grid[:, None] - s["y"]
        along = dx * np.cos(pa) + dy * np.sin(pa)
        across = -dx * np.sin(pa) + dy * np.cos(pa)
        images[i] = np.exp(-4.0 * np.log(2.0) * ((along / s["fwhm_x"]) ** 2
                                                  + (across / s["fwhm_y"]) ** 2))
    return images


def y_is_major(fwhm_x, fwhm_y) -> np.ndarray:
    """Where an ellipse given along its own x and y axes has its major axis along y (fwhm_y >
    fwhm_x): then the major axis lies 90 deg further than ``pa``."""
    return np.asarray(fwhm_y, float) > np.asarray(fwhm_x, float)


def major_minor(fwhm_x, fwhm_y, pa_deg):
    """(major FWHM, minor FWHM, PA of the major axis in deg) of ellipses given along their own
    x and y axes: the major axis is the source's y axis, 90 deg further, when fwhm_y > fwhm_x."""
    fwhm_x, fwhm_y, pa_deg = (np.asarray(v, float) for v in (fwhm_x, fwhm_y, pa_deg))
    swap = y_is_major(fwhm_x, fwhm_y)
    return (np.where(swap, fwhm_y, fwhm_x), np.where(swap, fwhm_x, fwhm_y),
            np.where(swap, pa_deg + 90.0, pa_deg))
