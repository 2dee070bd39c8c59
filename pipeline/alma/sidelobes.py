"""Which detections are sidelobes of brighter ones: a physical check every finder's catalogue gets.

A dirty image is the sky convolved with the dirty beam, whose far sidelobes (beyond the main
lobe) reach 10-17 % of the peak for a short ALMA track. So a bright source plants copies of
itself across the image, in its own channels, and every finder, trained or classic, can take
them for sources. Such a copy has a signature no real source has: at each channel its brightness
is the parent's times the beam's value at their offset, so its spectrum is a scaled copy of the
parent's, at a ratio no larger than the beam's largest sidelobe.

For each detection (brightest first) and each brighter detection that shares channels with it
and lies at least ``MIN_OFFSET_BEAMS`` beams away, the candidate's spectrum at its position is
fitted, over the channels of both lines, with ``s(ch) x`` the parent's spectrum at its own:

- with the PSF cube (tclean's ``.psf``), ``s(ch)`` is the dirty beam at the offset between them,
  channel by channel (times the parent's extent over the beam's, since an extended parent puts
  more into its sidelobes than its peak shows), allowed to be off by ``PSF_SLACK`` (the parent's
  spectrum is taken at one pixel): the sidelobe the parent must put there;
- without it, ``s`` is a ratio fitted by least squares, allowed up to ``MAX_SIDELOBE`` (the
  largest far sidelobe of the ALMA configurations' dirty beams for tracks of 10 minutes or more,
  Briggs or natural weighting, measured with ``pipeline.alma.interferometer.psf``: 0.06-0.17).

The misfit, chi^2 over those channels with the per-channel noise measured on the cube
(:mod:`pipeline.alma.noise`), gives ``sidelobe_p``: the probability of a misfit at least this
large if the candidate were that sidelobe (the p-value of the fit). A real source whose line
differs from the parent's in centre or width, or (with the PSF) in brightness, fits badly and
gets ``sidelobe_p`` near 0. A detection is called a sidelobe when ``sidelobe_p`` is at least
``SIDELOBE_PROBABILITY``: the sidelobe explanation is not rejected at that level. Without the
PSF, a real source with the same line as a brighter one and at most ``MAX_SIDELOBE`` of its
brightness cannot be told from its sidelobe and is called one; give the PSF. A detection called
a sidelobe is nobody's parent; over several parents the best fit counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from pipeline.alma.companions import psf_peak
from pipeline.alma.cube import Cube
from pipeline.alma.measure import beam_on_grid
from pipeline.alma.noise import noise_of

MAX_SIDELOBE = 0.2
PSF_SLACK = 0.5  # with the PSF: the sidelobe level may be off by this fraction of the beam's
MIN_OFFSET_BEAMS = 2.0  # nearer than this (beam major FWHMs) the "sidelobe" is the parent itself
SIDELOBE_PROBABILITY = 0.05  # the fit's p-value from which a detection is called a sidelobe


@dataclass
class SidelobeCheck:
    """Per catalogue row (in the catalogue's order): ``probability`` in [0, 1] (the p-value of the
    best sidelobe fit), ``parent`` (the id of the brighter detection of that fit; 0 when none
    shares its channels), ``ratio`` (the sidelobe level fitted) and ``sidelobe`` (probability
    >= ``SIDELOBE_PROBABILITY``)."""

    probability: np.ndarray
    parent: np.ndarray
    ratio: np.ndarray

    @property
    def sidelobe(self) -> np.ndarray:
        return self.probability >= SIDELOBE_PROBABILITY


def check_sidelobes(catalog, cube: Cube, psf: Cube | None = None, max_sidelobe: float = MAX_SIDELOBE) -> SidelobeCheck:
    """:class:`SidelobeCheck` of every row of ``catalog`` (columns id, x, y, z0, z1, fwhm_x,
    fwhm_y, snr) found in ``cube``. ``psf``: the dirty-beam cube of the same image (an opened
    cube of the same grid and channels, or of one plane), peak at its centre pixel."""
    n = len(catalog)
    probability, parent, ratio = np.zeros(n), np.zeros(n, np.int64), np.full(n, np.nan)
    if n < 2:
        return SidelobeCheck(probability, parent, ratio)
    sigma = noise_of(cube).quiet
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.nanmedian(sigma))
    xs = np.clip(np.rint(np.asarray(catalog["x"], float)).astype(int), 0, cube.nx - 1)
    ys = np.clip(np.rint(np.asarray(catalog["y"], float)).astype(int), 0, cube.ny - 1)
    z0s, z1s = np.asarray(catalog["z0"], int), np.asarray(catalog["z1"], int)
    beam_centre = psf_peak(psf) if psf is not None else None
    # an extended parent puts more into its sidelobes than its peak shows: its flux over the
    # beam's area, i.e. its peak times the ratio of the convolved to the beam's area
    bmaj, bmin, _ = beam_on_grid(cube)
    fx, fy = (np.nan_to_num(np.asarray(catalog[c], float)) for c in ("fwhm_x", "fwhm_y"))
    spread = np.sqrt((bmaj ** 2 + fx ** 2) * (bmin ** 2 + fy ** 2)) / (bmaj * bmin)
    order = np.argsort(-np.asarray(catalog["snr"], float), kind="stable")
    parents = []  # rows already judged real, brightest first
    for i in order:
        for j in parents:
            if max(z0s[i], z0s[j]) >= min(z1s[i], z1s[j]):
                continue  # no channel in common
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if np.hypot(dx, dy) < MIN_OFFSET_BEAMS * bmaj:
                continue
            lo, hi = min(z0s[i], z0s[j]), max(z1s[i], z1s[j])
            mine = np.asarray(cube.data[lo:hi, ys[i], xs[i]], np.float64)
            theirs = np.asarray(cube.data[lo:hi, ys[j], xs[j]], np.float64)
            good = np.isfinite(mine) & np.isfinite(theirs)
            if good.sum() < 2:
                continue
            mine, theirs, noise = mine[good], theirs[good], sigma[lo:hi][good]
            if psf is not None and (level := _beam_at(psf, beam_centre, dx, dy, lo, hi)) is not None:
                template = level[good] * spread[j] * theirs
                bounds = (1.0 - PSF_SLACK, 1.0 + PSF_SLACK)
            else:  # no PSF (or the offset leaves it): any ratio up to the largest sidelobe
                template, bounds = theirs, (0.0, max_sidelobe)
            weight = 1.0 / noise ** 2
            scale = float(np.clip(np.sum(weight * mine * template) / max(np.sum(weight * template ** 2), 1e-30),
                                  *bounds))
            misfit = float(np.sum(weight * (mine - scale * template) ** 2))
            p = float(chi2.sf(misfit, len(mine) - 1))
            if p > probability[i]:
                probability[i], parent[i] = p, int(catalog["id"][j])
                ratio[i] = float(np.median(scale * template / np.where(theirs == 0, np.nan, theirs)))
        if probability[i] < SIDELOBE_PROBABILITY:
            parents.append(i)
    return SidelobeCheck(probability, parent, ratio)


def _beam_at(psf, centre, dx: int, dy: int, lo: int, hi: int):
    """The dirty beam at offset (dx, dy) px for channels lo..hi-1 (a one-plane PSF serves every
    channel), or None when the offset falls outside the PSF image."""
    x, y = centre[0] + dx, centre[1] + dy
    if not (0 <= x < psf.nx and 0 <= y < psf.ny):
        return None
    if psf.nchan == 1:
        return np.full(hi - lo, float(np.nan_to_num(psf.data[0, y, x])))
    return np.nan_to_num(np.asarray(psf.data[lo:hi, y, x], np.float64))


def mark_sidelobes(catalog, cube: Cube, psf: Cube | None = None, keep: bool = False,
                   max_sidelobe: float = MAX_SIDELOBE):
    """``catalog`` with the :func:`check_sidelobes` columns ``sidelobe`` (bool), ``sidelobe_p``
    (probability) and ``sidelobe_of`` (id of the parent, 0 for none); the probable sidelobes
    dropped unless ``keep`` (the rest renumbered 1..n, their parents' ids with them). The
    table's meta says how the check was made (``sidelobe_check``)."""
    check = check_sidelobes(catalog, cube, psf, max_sidelobe)
    out = catalog.copy()
    out["sidelobe"] = check.sidelobe
    out["sidelobe_p"] = check.probability
    out["sidelobe_of"] = check.parent
    how = ("the PSF cube" if psf is not None else f"a fitted ratio up to {max_sidelobe:g} (no PSF cube)")
    dropped = int(check.sidelobe.sum())
    out.meta["sidelobe_check"] = (f"sidelobes of brighter detections tested with {how}; "
                                  + ("probable sidelobes kept and flagged" if keep
                                     else f"{dropped} probable sidelobe(s) dropped"))
    if keep or not dropped:
        return out
    out = out[~check.sidelobe]
    new_id = {int(old): new for new, old in enumerate(out["id"], start=1)}
    out["sidelobe_of"] = [new_id.get(int(p), 0) for p in out["sidelobe_of"]]
    out["id"] = np.arange(1, len(out) + 1)
    return out
