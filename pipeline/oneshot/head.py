"""A linear head over frozen features that makes them (nearly) invariant to what does not change a
galaxy, learnt from the set's own images without labels.

For a sample of the set's galaxies, the network describes eight augmented views of each
(:func:`pipeline.oneshot.views.augmented_views`: rotations, flips, small shifts and rescalings of
the frame). The head is the linear map W that takes the features of any one view as close as it
can to the mean of that galaxy's views, by ridge regression on centred features::

    W = argmin sum_i ||(x_i - m) W - (y_i - m)||^2 + RIDGE * N * s2 * ||W||^2

(x_i a view's features, y_i its galaxy's mean, m the mean of all views, s2 the mean per-feature
variance of the views, N their number: the penalty keeps its meaning whatever the features'
scale). Indexing then costs one network pass per galaxy, as without the head, and reaches about
the quality of averaging eight passes (see ``benchmarks/oneshot_real.py``). Closed form: seconds
for a 1280-d head; saved as plain arrays (``head.npz``, read without pickle).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write
from pipeline.errors import InputError

RIDGE = 0.1
SAMPLE = 300  # galaxies whose augmented views train the head (8 network passes each)
BLOCK = 65536  # rows mapped at a time


@dataclass
class InvarianceHead:
    """``mean`` (dim,) and ``weights`` (dim, dim) of the map x -> (x - mean) W + mean."""

    mean: np.ndarray
    weights: np.ndarray

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Head of features (n, dim) or (dim,), float32; ``BLOCK`` rows at a time, so that a
        memory-mapped (n, dim) array is never copied whole more than once (the result)."""
        x = np.asarray(features)
        if x.ndim == 1:
            return ((x.astype(np.float32) - self.mean) @ self.weights + self.mean).astype(np.float32)
        out = np.empty(x.shape, np.float32)
        for start in range(0, len(x), BLOCK):
            block = np.asarray(x[start:start + BLOCK], np.float32) - self.mean
            np.matmul(block, self.weights, out=out[start:start + BLOCK])
            out[start:start + BLOCK] += self.mean
        return out

    def save(self, path) -> None:
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mean=self.mean.astype(np.float32), weights=self.weights.astype(np.float32))

    @classmethod
    def load(cls, path, dim: int) -> InvarianceHead:
        """The head of ``dim`` features in ``path``; InputError (without the path: the caller names
        the file) when it is not one. Never unpickles; the archive's members are checked by name
        and size before any is read, so a planted file cannot make it allocate more than a head."""
        most = 4 * dim * dim + 4096  # bytes of the larger member, weights (dim, dim) float32, with its header
        try:
            with zipfile.ZipFile(path) as archive:
                sizes = {info.filename: info.file_size for info in archive.infolist()}
            if set(sizes) != {"mean.npy", "weights.npy"} or max(sizes.values()) > most:
                raise ValueError(f"members {sorted(sizes)[:4]} of {max(sizes.values(), default=0):,} bytes at most")
            with np.load(Path(path), allow_pickle=False) as data:
                mean, weights = np.asarray(data["mean"], np.float32), np.asarray(data["weights"], np.float32)
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as exc:
            raise InputError(f"not a readable invariance head ({type(exc).__name__}: {str(exc)[:120]})") from None
        if mean.shape != (dim,) or weights.shape != (dim, dim):
            raise InputError(f"a head of shape {weights.shape} for {mean.shape} features, not {dim}")
        if not (np.isfinite(weights).all() and np.isfinite(mean).all()):
            raise InputError("a head with values that are not finite")
        return cls(mean, weights)


def fit_head(views: np.ndarray, ridge: float = RIDGE) -> InvarianceHead:
    """Fit the head on ``views`` (galaxies, views per galaxy, dim): features of several augmented
    views of each galaxy (see the module docstring)."""
    views = np.asarray(views, np.float64)
    if views.ndim != 3 or views.shape[0] < 2 or views.shape[1] < 2:
        raise InputError(f"The head needs several views of at least 2 galaxies, as (galaxies, views, features); "
                         f"got shape {views.shape}.")
    n, v, dim = views.shape
    x = views.reshape(n * v, dim)
    y = np.repeat(views.mean(axis=1), v, axis=0)
    mean = x.mean(axis=0)
    x, y = x - mean, y - mean
    gram = x.T @ x
    # views that do not differ at all (blank or repeated cutouts) leave gram at 0: the head is then 0
    penalty = max(ridge * float(np.trace(gram)) / dim, 1e-12)
    weights = np.linalg.solve(gram + penalty * np.eye(dim), x.T @ y)
    return InvarianceHead(mean.astype(np.float32), weights.astype(np.float32))
