"""Radio images for the search's tasks: an array observes a sky through the project's
interferometer (:mod:`pipeline.alma.interferometer`, :func:`pipeline.alma.simulate.dirty_cube`),
one image at a time, with thermal noise of rms 1 (images come out in units of their noise)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.alma import interferometer
from pipeline.alma.gaussian import gaussian_images
from pipeline.alma.simulate import dirty_cube


@dataclass(frozen=True)
class Instrument:
    """One observation's imaging: the gridded ``sampling`` for ``npix`` images of ``cell_arcsec``
    pixels, its dirty beam ``psf`` (2 npix square, peak 1 at (npix, npix), so that it covers any
    shift across an image) and the Gaussian fitted to its main lobe, ``beam`` (major, minor FWHM in
    pixels, position angle deg, east of north)."""

    sampling: interferometer.UVSampling
    psf: np.ndarray
    beam: tuple[float, float, float]
    npix: int
    cell_arcsec: float
    declination_deg: float
    hours: float


def make_instrument(config, frequency_hz: float, npix: int, cell_arcsec: float, declination_deg: float,
                    hours: float, integration_s: float, weighting: str = "natural", robust: float = 0.5,
                    latitude_deg=None) -> Instrument:
    """``config`` (a configuration or a .cfg path) observing for ``hours`` about transit at
    ``declination_deg``."""
    uv = interferometer.uv_tracks(config, declination_deg, -hours / 2, hours / 2, integration_s, latitude_deg,
                                  shadowing=False)
    uv = uv[: len(uv) // 2]
    sampling = interferometer.uv_sampling(uv, frequency_hz, npix, cell_arcsec, weighting, robust)
    psf = interferometer.psf_from_sampling(sampling, 2 * npix)[0]
    bmaj, bmin, bpa = interferometer.fit_beam(psf, cell_arcsec)
    return Instrument(sampling, psf, (bmaj / cell_arcsec, bmin / cell_arcsec, bpa), npix, cell_arcsec,
                      float(declination_deg), float(hours))


def gaussian_sky(rows, fluxes, size: int) -> np.ndarray:
    """Elliptical Gaussians (rows of x, y, fwhm_x, fwhm_y, pa, as :func:`gaussian_images` takes them)
    of the given total ``fluxes``, summed: (size, size) float32 flux per pixel."""
    if not len(rows):
        return np.zeros((size, size), np.float32)
    images = gaussian_images(rows, size)
    sums = np.maximum(images.reshape(len(rows), -1).sum(1), 1e-12)
    return np.tensordot(np.asarray(fluxes, np.float32) / sums, images, axes=1).astype(np.float32)


def observe(sky: np.ndarray, instrument: Instrument, rng: np.random.Generator) -> np.ndarray:
    """The dirty image of ``sky`` (npix square, flux per pixel in units of the image noise) with
    thermal noise of rms 1: (npix, npix) float32, per beam."""
    dirty, _ = dirty_cube(sky[None], np.ones((1, 1)), instrument.sampling, 1.0, rng)
    return dirty[0]


def restoring_beam(beam: tuple[float, float, float], npix: int) -> np.ndarray:
    """The elliptical Gaussian ``beam`` (major, minor FWHM px, position angle deg east of north;
    x runs towards west as on the sky) as an (npix, npix) image of peak 1 at (npix // 2, npix // 2)."""
    major, minor, pa = beam
    centre = npix // 2
    # a direction pa east of north is (x, y) = (-sin pa, cos pa): 90 + pa counter-clockwise from +x
    return gaussian_images([{"x": centre, "y": centre, "fwhm_x": major, "fwhm_y": minor, "pa": 90.0 + pa}], npix)[0]


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``image`` convolved with ``kernel`` (the same shape, centred at (n // 2, n // 2)), linearly
    (zero-padded, no wrap), on ``image``'s pixels."""
    import scipy.signal

    full = scipy.signal.fftconvolve(image, kernel, mode="full")
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    return full[cy:cy + image.shape[0], cx:cx + image.shape[1]].astype(np.float32)
