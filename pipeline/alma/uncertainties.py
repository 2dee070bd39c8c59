"""How well a source's size and angle can be known: Condon (1997, PASP 109, 166, "Errors in
elliptical Gaussian fits") for an elliptical Gaussian seen through the beam, in noise that the
beam correlates (a dirty image's), then carried to the intrinsic (beam-deconvolved) size.

Whatever measures the source (a fit, the ResNets), the image holds only so much: a source of 0.3
beam at peak SNR 10 widens the image by less than the noise moves its width, so its intrinsic
size is not measurable there and its angle still less. The catalogue gives each measurement these
1-sigma errors and calls a source ``resolved`` when its observed major axis exceeds the beam's by
``RESOLVED_SIGMA`` of them (as CASA's imfit tells a source it could deconvolve from a point
source); an unresolved source's sizes are estimates whose upper limit is
:func:`size_upper_limit`, and its angle, as a round source's, is undefined.

All sizes are FWHM in pixels, angles in degrees counter-clockwise from +x.
"""

from __future__ import annotations

import numpy as np

from pipeline.alma.cube import Cube
from pipeline.alma.gaussian import FWHM_PER_SIGMA, gaussian_covariance, major_minor, y_is_major
from pipeline.alma.measure import beam_on_grid

#: an observed axis this many of its errors wider than the beam's is resolved
RESOLVED_SIGMA = 2.0
#: an unresolved source's size is below its estimate plus this many errors
UPPER_LIMIT_SIGMA = 2.0
#: largest angle error given: the standard deviation of an angle drawn at random in 180 deg
MAX_PA_ERROR_DEG = 180.0 / np.sqrt(12.0)

# Condon's (alpha_major, alpha_minor) exponents for the major axis, the minor axis and the angle
_ALPHAS = {"major": (2.5, 0.5), "minor": (0.5, 2.5), "pa": (0.5, 2.5)}


def observed_axes(fwhm_major, fwhm_minor, pa_deg, beam):
    """(major, minor, beam_along_major, beam_along_minor) FWHM of the source seen through
    ``beam`` (beam_major, beam_minor, beam_pa_deg): the covariances add; the beam's extent along
    the observed ellipse's axes is what an unresolved source would show."""
    source = np.stack([gaussian_covariance(a, b, t) for a, b, t in
                       zip(*np.broadcast_arrays(*map(np.atleast_1d, (fwhm_major, fwhm_minor, pa_deg))), strict=True)])
    beam_cov = gaussian_covariance(*beam)
    values, vectors = np.linalg.eigh(source + beam_cov)  # ascending
    along = np.einsum("nik,ij,njk->nk", vectors, beam_cov, vectors)  # beam variance along each axis
    fwhm = FWHM_PER_SIGMA * np.sqrt(np.clip(values, 0.0, None))
    beam_fwhm = FWHM_PER_SIGMA * np.sqrt(np.clip(along, 0.0, None))
    return fwhm[:, 1], fwhm[:, 0], beam_fwhm[:, 1], beam_fwhm[:, 0]


def shape_errors(fwhm_major, fwhm_minor, pa_deg, beam, snr) -> dict:
    """1-sigma errors of the intrinsic major and minor FWHM (px) and of the angle (deg) of
    sources measured at peak ``snr`` (the image they were measured on, in its noise rms) through
    ``beam`` (beam_major, beam_minor, beam_pa_deg; the noise is correlated over it), and whether
    each is ``resolved``. Arrays in, arrays out (keys err_major, err_minor, err_pa, resolved).

    Observed axes theta_M, theta_m (the source convolved with the beam) have errors
    theta sqrt(2) / rho, rho^2 = theta_M theta_m / (4 theta_N^2) (1 + theta_N^2/theta_M^2)^a_M
    (1 + theta_N^2/theta_m^2)^a_m snr^2 with theta_N the beam (Condon 1997, eq. 41 and 21). An
    intrinsic axis a = sqrt(theta^2 - b^2) (b: the beam along that axis) moves by theta/a times
    as much; at a = 0 it is known to sqrt(theta sigma_theta) at best, which bounds the error. The
    angle's error 2/rho theta_M theta_m / (theta_M^2 - theta_m^2) is taken as the intrinsic one
    (a round beam adds the same to both axes' variances, so the difference is the source's; an
    elongated beam's share is in the observed axes), capped at ``MAX_PA_ERROR_DEG``."""
    snr = np.atleast_1d(np.asarray(snr, float))
    major, minor, b_major, b_minor = observed_axes(fwhm_major, fwhm_minor, pa_deg, beam)
    noise_fwhm2 = beam[0] * beam[1]

    def rho(kind):
        a_major, a_minor = _ALPHAS[kind]
        return np.sqrt(major * minor / (4.0 * noise_fwhm2) * (1.0 + noise_fwhm2 / major ** 2) ** a_major
                       * (1.0 + noise_fwhm2 / minor ** 2) ** a_minor) * np.clip(snr, 1e-3, None)

    out = {}
    for kind, observed, beam_along in (("major", major, b_major), ("minor", minor, b_minor)):
        sigma = observed * np.sqrt(2.0) / rho(kind)
        intrinsic2 = np.clip(observed ** 2 - beam_along ** 2, 0.0, None)
        out[f"err_{kind}"] = observed * sigma / np.sqrt(intrinsic2 + observed * sigma)
        if kind == "major":
            out["resolved"] = observed - beam_along >= RESOLVED_SIGMA * sigma
    spread = np.clip(major ** 2 - minor ** 2, 1e-9, None)
    pa_error = np.degrees(2.0 / rho("pa") * major * minor / spread)
    out["err_pa"] = np.minimum(pa_error, MAX_PA_ERROR_DEG)
    return out


def size_upper_limit(fwhm, err):
    """The FWHM an unresolved source is smaller than (about 98 % of the time, errors Gaussian)."""
    return np.asarray(fwhm, float) + UPPER_LIMIT_SIGMA * np.asarray(err, float)


def add_shape_errors(catalog, cube: Cube):
    """``catalog`` (any finder's, on ``cube``) with ``fwhm_x_err``, ``fwhm_y_err``, ``pa_err``
    and ``resolved`` from :func:`shape_errors` at each source's ``snr`` through the cube's beam."""
    if not len(catalog):
        return catalog
    fwhm_x, fwhm_y, snr = (np.asarray(catalog[c], float) for c in ("fwhm_x", "fwhm_y", "snr"))
    swap = y_is_major(fwhm_x, fwhm_y)
    errors = shape_errors(*major_minor(fwhm_x, fwhm_y, np.nan_to_num(np.asarray(catalog["pa"], float))),
                          beam_on_grid(cube), snr)
    catalog["fwhm_x_err"] = np.where(swap, errors["err_minor"], errors["err_major"])
    catalog["fwhm_y_err"] = np.where(swap, errors["err_major"], errors["err_minor"])
    catalog["pa_err"] = np.where(np.isfinite(catalog["pa"]), errors["err_pa"], np.nan)
    catalog["resolved"] = errors["resolved"]
    return catalog
