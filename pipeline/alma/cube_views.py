"""Lazy views of an opened cube that share its file and compute what is read: the cube negated
(:mod:`pipeline.alma.reliability`) and the cube with sources injected
(:mod:`pipeline.alma.completeness`). Close the cube, not the view."""

from __future__ import annotations

import copy

import numpy as np
from astropy.table import Table

from pipeline.alma.cube import Cube
from pipeline.alma.gaussian import FWHM_PER_SIGMA, gaussian_covariance
from pipeline.alma.measure import beam_on_grid

LINE_FWHM_CHANNELS = 4.0  # the lines of injected sources


def _view(cube: Cube, data) -> Cube:
    twin = copy.copy(cube)
    twin.data = data
    twin.__dict__.pop("nan_fraction", None)  # measured again on the view, if asked
    return twin


def negated(cube: Cube) -> Cube:
    """``cube`` with every pixel's sign turned: a search of it finds noise peaks as the search of
    the cube does, and no sources."""
    return _view(cube, _Negated(cube.data))


def injected(cube: Cube, sources: Table) -> Cube:
    """``cube`` with ``sources`` (x, y, z, peak in the cube's unit) added, read lazily: a twin that
    shares the file (close the cube, not the twin)."""
    major, minor, theta = beam_on_grid(cube)
    inverse = np.linalg.inv(gaussian_covariance(major, minor, theta))
    return _view(cube, _Injected(cube.data, sources, inverse, 3 * major))


class _Negated:
    """``-data``, computed for what is read: ``data[key]`` is ``-base[key]``."""

    def __init__(self, base):
        self.base, self.shape, self.dtype, self.ndim = base, base.shape, base.dtype, base.ndim

    def __getitem__(self, key):
        return np.negative(self.base[key])

    def __len__(self):
        return len(self.base)


class _Injected:
    """``base + model``, the model computed for what is read: each source a Gaussian beam in the sky
    times a Gaussian line."""

    def __init__(self, base, sources, inverse_covariance, reach: float):
        self.base, self.shape, self.dtype, self.ndim = base, base.shape, base.dtype, base.ndim
        self._sources, self._inverse, self._reach = sources, inverse_covariance, reach

    def __len__(self):
        return len(self.base)

    def __getitem__(self, key):
        data = np.array(self.base[key], dtype=np.float32)
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        axes = [np.arange(n)[k] for n, k in zip(self.shape, key, strict=True)]
        z, y, x = (np.atleast_1d(a).astype(float) for a in axes)
        sigma_z = LINE_FWHM_CHANNELS / FWHM_PER_SIGMA
        model = np.zeros((len(z), len(y), len(x)))
        (a, b), (_, c) = self._inverse
        for s in self._sources:
            line = np.exp(-0.5 * ((z - s["z"]) / sigma_z) ** 2)
            if line.max() < 1e-6:
                continue
            # within 3 beams of the source only (the rows and columns read are in increasing order)
            y0, y1 = np.searchsorted(y, [s["y"] - self._reach, s["y"] + self._reach])
            x0, x1 = np.searchsorted(x, [s["x"] - self._reach, s["x"] + self._reach])
            dy, dx = (y[y0:y1] - s["y"])[:, None], (x[x0:x1] - s["x"])[None, :]
            sky = np.exp(-0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy))
            model[:, y0:y1, x0:x1] += s["peak"] * line[:, None, None] * sky[None]
        return data + model.reshape(data.shape).astype(np.float32)
