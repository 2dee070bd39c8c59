"""Noise measured on the cube itself, so that a signal-to-noise ratio means the same on any cube.

A dirty cube's noise is not what a formula says: it changes from channel to channel (the
atmosphere, the edges of the band), it is correlated between neighbouring pixels (over the
beam) and often between neighbouring channels (Hanning smoothing, online averaging), so the
noise of an image integrated over n channels is generally not sqrt(n) times the noise of one
channel. Every threshold of the finders is therefore set against a noise measured where it
applies:

- :func:`channel_rms`: a robust rms per channel;
- :class:`IntegratedNoise`: the rms of the image integrated over a range of channels, from the
  channels' rms and a correlation factor measured on sums of as many channels (so correlated
  channels count as they should), without the bright lines (whose sidelobes raise the rms of
  their channels over the whole plane).

Both are robust standard deviations (1.4826 x the median absolute deviation) of the pixels left
after clipping everything beyond ``CLIP_SIGMA`` of it (sources and their strongest sidelobes),
so sources do not inflate them. Large planes are sampled on a regular grid of at most
``MAX_PIXELS`` pixels (the noise is stationary over a plane; a sample of 32,768 pixels holds
hundreds of beams, which pins the rms to about 2 %).
"""

from __future__ import annotations

import functools
import math
import weakref
from functools import cached_property

import numpy as np
import scipy.ndimage
from astropy.stats import mad_std

from pipeline.alma.cube import Cube
from pipeline.progress import check_cancel

MAX_PIXELS = 2**15  # pixels of a plane measured (a regular sample beyond that: hundreds of beams)
CLIP_SIGMA = 4.0  # pixels beyond this many rms from the median are left out as signal
QUIET_WINDOW = 17  # channels of the running median that takes bright lines out of the channel rms
KAPPA_WINDOWS = 8  # windows over which the noise of a sum of channels is measured
KAPPA_LENGTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # sums of channels measured


def robust_rms(values) -> float:
    """Robust rms of ``values`` (NaN ignored): the MAD standard deviation of the values within
    ``CLIP_SIGMA`` of the median, iterated until no more are clipped (at most 3 times). NaN
    when nothing is finite; falls back to the plain standard deviation when the MAD is 0."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan")
    for _ in range(3):
        centre, rms = float(np.median(v)), float(mad_std(v))
        if not rms > 0:
            return float(np.std(v))
        kept = np.abs(v - centre) <= CLIP_SIGMA * rms
        if kept.all():
            break
        v = v[kept]
    return float(mad_std(v)) or float(np.std(v))


def _stride(ny: int, nx: int) -> int:
    """Step of the regular sample that keeps at most ``MAX_PIXELS`` pixels of a plane."""
    return max(1, math.ceil(math.sqrt(ny * nx / MAX_PIXELS)))


def channel_rms(cube: Cube, cancel=None) -> np.ndarray:
    """Robust rms of every channel (cube units), (nchan,); NaN for a blank channel. ``cancel`` is
    checked before each read."""
    step = _stride(cube.ny, cube.nx)
    rms = []
    for _, block in cube.blocks(y=slice(None, None, step), x=slice(None, None, step)):
        check_cancel(cancel, "detection")
        rms.extend(robust_rms(plane) for plane in block)
    return np.array(rms)


def quiet_channel_rms(rms: np.ndarray) -> np.ndarray:
    """The channel rms without the bright lines: a running median over ``QUIET_WINDOW`` channels.
    In the channels of a bright source its sidelobes cover the whole plane and raise the
    measured rms; that is the source's doing (the sidelobe check deals with it), not noise. The
    smooth changes of the noise along the band (its edges, atmospheric lines) stay."""
    rms = np.asarray(rms, np.float64)
    good = np.isfinite(rms)
    if not good.any():
        return rms
    filled = np.where(good, rms, np.nanmedian(rms))
    size = min(QUIET_WINDOW, len(filled) | 1)
    return np.where(good, scipy.ndimage.median_filter(filled, size=size, mode="nearest"), np.nan)


def sum_rms(cube: Cube, first: int, last: int) -> float:
    """Robust rms of the cube summed over channels ``first..last - 1``, measured on that sum."""
    step = _stride(cube.ny, cube.nx)
    image, seen = 0.0, False
    for _, block in cube.blocks(first, last, slice(None, None, step), slice(None, None, step)):
        image = image + np.nansum(block, axis=0, dtype=np.float64)
        seen = seen | np.isfinite(block).any(axis=0)
    return robust_rms(np.where(seen, image, np.nan))


class IntegratedNoise:
    """The noise of the cube summed over any range of channels (cube units x channels).

    ``sqrt(sum of the quiet channel variances)`` (:func:`quiet_channel_rms`) times ``kappa(n)``,
    the correlation factor of a sum of n channels, measured on the cube: the median, over up to
    ``KAPPA_WINDOWS`` windows of n channels spread over the band, of the measured rms of the
    window's sum (:func:`sum_rms`) over the quadrature sum of its channels' rms. Independent
    channels give kappa = 1; channels that share noise (Hanning smoothing) more; the median
    keeps the windows of bright lines out. Factors are remembered per n."""

    def __init__(self, cube):
        self.cube = weakref.proxy(cube)  # held by the cube's entry in _MEASURED: no cycle
        self._kappa: dict[int, float] = {}

    @cached_property
    def channel(self) -> np.ndarray:
        """:func:`channel_rms` of the cube."""
        return channel_rms(self.cube)

    def measure(self, cancel=None) -> IntegratedNoise:
        """Measure :attr:`channel` now unless it is known (a read of the cube that ``cancel``
        stops, leaving it unmeasured); returns self."""
        if "channel" not in self.__dict__:
            self.__dict__["channel"] = channel_rms(self.cube, cancel)
        return self

    @cached_property
    def quiet(self) -> np.ndarray:
        """:func:`quiet_channel_rms` of the cube."""
        return quiet_channel_rms(self.channel)

    @cached_property
    def quiet_variance_sums(self) -> np.ndarray:
        """Sums of the first 0, 1, ..., nchan :attr:`quiet` channel variances (NaN as 0)."""
        return np.concatenate([[0.0], np.cumsum(np.nan_to_num(self.quiet**2))])

    def kappa(self, n: int) -> float:
        """The correlation factor of a sum of ``n`` channels, measured at the nearest of
        ``KAPPA_LENGTHS`` (it changes slowly with n)."""
        n = _nearest_length(int(min(max(n, 1), self.cube.nchan)), self.cube.nchan)
        if n not in self._kappa:
            starts = np.unique(np.linspace(0, self.cube.nchan - n, min(KAPPA_WINDOWS, self.cube.nchan - n + 1))
                               .round().astype(int))
            ratios = []
            for z in starts:
                quadrature = math.sqrt(np.nansum(self.channel[z:z + n] ** 2))
                if quadrature > 0:
                    ratios.append(sum_rms(self.cube, z, z + n) / quadrature)
            self._kappa[n] = float(np.nanmedian(ratios)) if ratios else 1.0
        return self._kappa[n]

    def __call__(self, first: int, last: int) -> float:
        first, last = int(first), int(last)
        sums = self.quiet_variance_sums
        return self.kappa(last - first) * math.sqrt(max(sums[last] - sums[first], 0.0))


@functools.lru_cache(maxsize=4096)
def _nearest_length(n: int, nchan: int) -> int:
    """The length of ``KAPPA_LENGTHS`` (at most ``nchan``) nearest to ``n`` in ratio."""
    return min((k for k in KAPPA_LENGTHS if k <= nchan), key=lambda k: abs(math.log(k / n)))


_MEASURED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def noise_of(cube: Cube) -> IntegratedNoise:
    """The :class:`IntegratedNoise` of an opened cube, measured once however many steps ask
    (the finder's focusing, the sidelobe check) and forgotten with the cube."""
    if cube not in _MEASURED:
        _MEASURED[cube] = IntegratedNoise(cube)
    return _MEASURED[cube]


def integrated_rms(cube: Cube, first: int, last: int) -> float:
    """The noise of the cube summed over channels ``first..last - 1`` (:class:`IntegratedNoise`)."""
    return noise_of(cube)(first, last)
