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

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write
from pipeline.errors import InputError

RIDGE = 0.1
SAMPLE = 300  # galaxies whose augmented views train the head (8 network passes each)


@dataclass
class InvarianceHead:
    """``mean`` (dim,) and ``weights`` (dim, dim) of the map x -> (x - mean) W + mean."""

    mean: np.ndarray
    weights: np.ndarray

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Head of features (n, dim) or (dim,), float32."""
        x = np.asarray(features, np.float32)
        return ((x - self.mean) @ self.weights + self.mean).astype(np.float32)

    def save(self, path) -> None:
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mean=self.mean.astype(np.float32), weights=self.weights.astype(np.float32))

    @classmethod
    def load(cls, path) -> InvarianceHead:
        """The head in ``path``; InputError when it is not one (never unpickles)."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                mean, weights = np.asarray(data["mean"], np.float32), np.asarray(data["weights"], np.float32)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise InputError(f"{path} is not a readable invariance head ({type(exc).__name__}).") from None
        if mean.ndim != 1 or weights.shape != (len(mean), len(mean)) or not np.isfinite(weights).all():
            raise InputError(f"{path} holds a head of shape {weights.shape} for {mean.shape} features.")
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
    penalty = ridge * len(x) * float(np.trace(gram)) / (len(x) * dim)
    weights = np.linalg.solve(gram + penalty * np.eye(dim), x.T @ y)
    return InvarianceHead(mean.astype(np.float32), weights.astype(np.float32))
