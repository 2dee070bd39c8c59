"""The renderer of the simulated SDSS-like survey (:mod:`pipeline.oneshot.survey`): galaxies drawn
as they would look in SDSS's g, r, i images.

Observation, as SDSS imaging: 0.396"/px; bands g, r, i; a double-Gaussian PSF (a wing twice as
wide with a tenth of the core's central intensity, the shape SDSS's photometric pipeline fits)
whose FWHM is about 1.4" in r (lognormal, 0.1 in ln; 1.0-2.2"), a little wider in g and
narrower in i (seeing ~ wavelength^-0.2) with per-band jitter; sky-subtracted images with the
noise of the sky (g 21.9, r 20.9, i 20.2 mag/arcsec^2) scaled so that a point source at the
95%-completeness limits of SDSS (g 22.2, r 22.2, i 21.3; Abazajian et al. 2004) is a 5-sigma
detection in 1.4" seeing (r: 0.05 nanomaggy per pixel), plus the source's own Poisson noise
with the same effective gain.

Rendering is exact and fast: every profile is drawn in Fourier space, where the PSF, the pixel
(a sinc) and sub-pixel shifts are products (knots and neighbours sit on whole pixels, which
their random positions do not mind). A Sersic profile's transform is that of a mixture
of Gaussians fitted to it once (non-negative least squares, within 2% in enclosed light),
tabulated against radius x spatial frequency; an inclined profile is the same table at a
stretched frequency. Cutouts are rendered on a grid twice their size so light does not wrap
around, then cropped.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

DEFAULT_SIZE = 64  # px: 25" at SDSS's pixel scale, several half-light radii of a typical galaxy

# --- the observation (SDSS imaging) ---
PIXEL_SCALE_ARCSEC = 0.396
BANDS = ("g", "r", "i")
NANOMAGGY_ZERO_POINT = 22.5  # AB magnitude of 1 nanomaggy
SKY_MAG_PER_ARCSEC2 = (21.9, 20.9, 20.2)  # g, r, i dark sky at Apache Point
DEPTH_MAG = (22.2, 22.2, 21.3)  # 95% completeness for point sources, taken here as 5 sigma
SEEING_MEDIAN_ARCSEC = 1.4  # r-band PSF FWHM
SEEING_BAND_RATIO = (1.055, 1.0, 0.96)  # (lambda / 623 nm)^-0.2 at g 477, r 623, i 763 nm
PSF_WING_WIDTH = 2.0  # wing sigma / core sigma of the double Gaussian
PSF_WING_PEAK = 0.1  # wing / core central intensity


# ----------------------------------------------------------------------------------------------
# Profiles in Fourier space


def sersic_profile(r, n: float) -> np.ndarray:
    """Surface brightness of a Sersic profile of index ``n`` at radius ``r`` (units of the
    half-light radius), 1 at r = 1, tapered by a half cosine to 0 between ``3 + 4 (n - 1) / 3``
    and one half-light radius further (SDSS truncates exponentials at 3-4, de Vaucouleurs at 7-8)."""
    from scipy.special import gammaincinv

    r = np.asarray(r, float)
    b = gammaincinv(2 * n, 0.5)  # makes r = 1 enclose half the (untruncated) light
    start = 3.0 + 4.0 * (n - 1.0) / 3.0
    taper = np.clip((r - start), 0.0, 1.0)
    return np.exp(-b * (r ** (1.0 / n) - 1.0)) * 0.5 * (1.0 + np.cos(np.pi * taper))


@functools.cache
def sersic_mixture(n: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture of a unit-flux Sersic profile with half-light radius 1: (fluxes, variances),
    fitted by non-negative least squares on the surface brightness, weighted by area."""
    from scipy.optimize import nnls

    r = np.concatenate([np.geomspace(1e-5, 0.05, 300, endpoint=False), np.linspace(0.05, 9.0, 3000)])
    area = 2 * np.pi * r * np.gradient(r)
    variances = np.geomspace(1e-6, 9.0, 16)
    basis = np.exp(-r[:, None] ** 2 / (2 * variances)) / (2 * np.pi * variances)  # unit-flux Gaussians
    design = basis * np.sqrt(area)[:, None]
    scale = np.linalg.norm(design, axis=0)  # columns of similar size: NNLS converges
    fluxes, _ = nnls(design / scale, sersic_profile(r, n) * np.sqrt(area), maxiter=5000)
    fluxes = fluxes / scale
    return fluxes / fluxes.sum(), variances


U_MAX = 100.0  # largest radius x frequency tabulated; beyond it the PSF leaves nothing
U_STEPS = 8192
_U_GRID = np.linspace(0.0, U_MAX, U_STEPS)


@functools.cache
def sersic_transform(n: float) -> np.ndarray:
    """Fourier transform of the unit-flux Sersic profile (half-light radius 1) at ``U_STEPS``
    frequencies 0 ... ``U_MAX`` cycles per half-light radius: the table :func:`render_galaxies`
    interpolates."""
    fluxes, variances = sersic_mixture(n)
    return np.exp(-2 * np.pi**2 * np.outer(_U_GRID**2, variances)) @ fluxes


@functools.cache
def psf_core_sigma_per_fwhm() -> float:
    """Core sigma of the double-Gaussian PSF per unit of its full width at half maximum."""
    from scipy.optimize import brentq

    # half maximum of exp(-t) + b exp(-t / w^2), t = r^2 / (2 sigma^2)
    b, w2 = PSF_WING_PEAK, PSF_WING_WIDTH**2
    t = brentq(lambda t: np.exp(-t) + b * np.exp(-t / w2) - (1 + b) / 2, 0.1, 5.0)
    return 1.0 / (2.0 * np.sqrt(2.0 * t))


def psf_transform(fwhm_px, k2) -> np.ndarray:
    """Fourier transform (unit flux) of the double-Gaussian PSF of FWHM ``fwhm_px`` (pixels, any
    shape ``s``) at squared spatial frequencies ``k2`` (cycles/px squared): shape ``s + k2.shape``."""
    sigma = np.asarray(fwhm_px, float)[..., None, None] * psf_core_sigma_per_fwhm()
    wing_flux = PSF_WING_PEAK * PSF_WING_WIDTH**2 / (1 + PSF_WING_PEAK * PSF_WING_WIDTH**2)
    return ((1 - wing_flux) * np.exp(-2 * np.pi**2 * sigma**2 * k2)
            + wing_flux * np.exp(-2 * np.pi**2 * (PSF_WING_WIDTH * sigma) ** 2 * k2))



def component_fluxes(galaxies: Table) -> np.ndarray:
    """Fluxes (nanomaggies) of each galaxy's bulge, smooth disk, knots and nucleus in g, r, i:
    shape (n, 3 bands, 4 components)."""
    c = {name: np.asarray(galaxies[name], float) for name in (
        "r_mag", "agn_strength", "bulge_to_total", "clump_fraction", "bulge_g_r", "bulge_r_i",
        "disk_g_r", "disk_r_i", "clump_g_r", "clump_r_i", "agn_g_r", "agn_r_i")}
    total = 10 ** (-0.4 * (c["r_mag"] - NANOMAGGY_ZERO_POINT))
    nucleus = c["agn_strength"] * total
    host = total - nucleus
    disk = (1 - c["bulge_to_total"]) * host
    r_band = np.stack([c["bulge_to_total"] * host, (1 - c["clump_fraction"]) * disk,
                       c["clump_fraction"] * disk, nucleus], axis=1)
    g_r = np.stack([c["bulge_g_r"], c["disk_g_r"], c["clump_g_r"], c["agn_g_r"]], axis=1)
    r_i = np.stack([c["bulge_r_i"], c["disk_r_i"], c["clump_r_i"], c["agn_r_i"]], axis=1)
    return np.stack([r_band * 10 ** (-0.4 * g_r), r_band, r_band * 10 ** (0.4 * r_i)], axis=1)



# ----------------------------------------------------------------------------------------------
# Rendering


@functools.lru_cache(maxsize=4)
def _frequency_grid(size: int):
    """Frequencies (cycles/px) of the padded grid (2 size)^2: ky (N, 1), kx (1, N/2 + 1), k^2 and
    the pixel's transform (a box: sinc x sinc)."""
    n_pad = 2 * size
    ky = np.fft.fftfreq(n_pad)[:, None]
    kx = np.fft.rfftfreq(n_pad)[None, :]
    return ky, kx, kx**2 + ky**2, np.sinc(ky) * np.sinc(kx)


@functools.lru_cache(maxsize=1)
def _noise_levels():
    """Per band: sky noise sigma (nanomaggy/px) and the effective gain (per nanomaggy) that makes
    the sky's Poisson noise that sigma."""
    sky_mag = np.asarray(SKY_MAG_PER_ARCSEC2)
    sky = 10 ** (-0.4 * (sky_mag - NANOMAGGY_ZERO_POINT)) * PIXEL_SCALE_ARCSEC**2  # nanomaggy/px
    # FWHM per sigma as the simulated survey was built with (the exact 2.35482 would change its cached images)
    sigma_psf_px = SEEING_MEDIAN_ARCSEC / PIXEL_SCALE_ARCSEC / 2.3548
    noise_area = 4 * np.pi * sigma_psf_px**2  # effective area of a Gaussian PSF's optimal aperture
    limit = 10 ** (-0.4 * (np.asarray(DEPTH_MAG) - NANOMAGGY_ZERO_POINT))
    sigma = limit / (5 * np.sqrt(noise_area))
    return sigma, sky / sigma**2


def _point_transform(x, y, flux, n_pad) -> np.ndarray:
    """Transform of point sources of ``flux`` (bands, S) at (``x``, ``y``) (px, rounded to whole
    pixels, which is all knots and neighbours need) on the padded grid: (bands, N, N/2 + 1)."""
    grid = np.zeros((len(flux), n_pad, n_pad))
    ix = np.clip(np.round(x).astype(int), 0, n_pad - 1)
    iy = np.clip(np.round(y).astype(int), 0, n_pad - 1)
    for band, values in enumerate(flux):
        np.add.at(grid[band], (iy, ix), values)
    return np.fft.rfft2(grid)


def _arm_positions(rng, count, scale_px):
    """Knots along two logarithmic spiral arms in the disk plane (px), 0.5 to 3.2 disk scale
    lengths ``scale_px`` from the centre (uniform: arms show best in the outer disk), the angle
    winding with log radius (pitch 12-25 deg)."""
    radius = scale_px * rng.uniform(0.5, 3.2, count)
    pitch = np.radians(rng.uniform(12, 25))
    arm = rng.integers(0, 2, count) * np.pi + rng.uniform(0, 2 * np.pi)
    winding = np.log(radius / scale_px) / np.tan(pitch)
    angle = arm + winding + rng.normal(0, 0.15, count)
    return radius * np.cos(angle), radius * np.sin(angle)


def _positions_away_from_centre(rng, count, size, min_px) -> np.ndarray:
    """(2, count) uniform pixel positions (x, y) in a cutout, at least ``min_px`` from its centre
    pixel, so a neighbour does not sit on the nucleus."""
    xy = rng.uniform(1, size - 2, (2, count))
    for _ in range(50):
        close = np.hypot(*(xy - size // 2)) < min_px
        if not close.any():
            break
        xy[:, close] = rng.uniform(1, size - 2, (2, int(close.sum())))
    return xy


def _counts_slope_magnitudes(rng, count, bright, faint, slope) -> np.ndarray:
    """Magnitudes between ``bright`` and ``faint`` with counts rising as 10^(slope m)."""
    a = slope * np.log(10)
    return bright + np.log1p(rng.uniform(size=count) * np.expm1(a * (faint - bright))) / a



@dataclass(frozen=True)
class _Frame:
    """The padded Fourier grid of one cutout and the galaxy's place and orientation on it:
    frequencies ``ky``, ``kx`` (cycles/px), ``k2`` and the pixel's transform ``pixel``; the galaxy's
    centre ``x0``, ``y0`` (px on the padded grid, ``offset`` px from the cutout's corner); the
    frequencies along its major and minor axes; ``scale`` px per arcsec."""

    size: int
    ky: np.ndarray
    kx: np.ndarray
    k2: np.ndarray
    pixel: np.ndarray
    x0: float
    y0: float
    cos_pa: float
    sin_pa: float
    k_major: np.ndarray
    k_minor: np.ndarray
    scale: float = 1.0 / PIXEL_SCALE_ARCSEC

    @classmethod
    def of(cls, p: dict, size: int, pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC) -> _Frame:
        ky, kx, k2, pixel = _frequency_grid(size)
        offset = centre = size // 2
        pa = np.radians(p["position_angle_deg"])
        cos_pa, sin_pa = np.cos(pa), np.sin(pa)
        return cls(size, ky, kx, k2, pixel, offset + centre + p["centre_dx_px"], offset + centre + p["centre_dy_px"],
                   cos_pa, sin_pa, kx * cos_pa + ky * sin_pa, -kx * sin_pa + ky * cos_pa, 1.0 / pixel_scale_arcsec)

    @property
    def n_pad(self) -> int:
        return 2 * self.size

    @property
    def offset(self) -> int:
        return self.size // 2


def _render_one(p: dict, fluxes: np.ndarray, size: int, noise: bool,
                pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC) -> np.ndarray:
    """One galaxy (``p``: a row of :func:`~pipeline.oneshot.survey.draw_galaxies` +
    :func:`~pipeline.oneshot.survey.assign_labels` as a dict; ``fluxes``: its (3, 4)
    :func:`component_fluxes`): (3, size, size) float32 nanomaggies/px."""
    rng = np.random.default_rng(int(p["render_seed"]))
    frame = _Frame.of(p, size, pixel_scale_arcsec)
    model = _smooth_light(p, fluxes, frame, rng)
    if fluxes[1, 2] > 0:
        model = model + _knots(p, fluxes, frame, rng)
    model = _with_neighbours(model, p, frame, rng)
    return _observed(model, p, frame, noise, rng)


def _smooth_light(p: dict, fluxes: np.ndarray, frame: _Frame, rng) -> np.ndarray:
    """The parts that share the galaxy's centre, bulge + disk + nucleus: (bands, N, N/2 + 1)."""
    k_major, k_minor, scale, kx, ky = frame.k_major, frame.k_minor, frame.scale, frame.kx, frame.ky
    disk = np.interp(p["disk_re_arcsec"] * scale * np.hypot(k_major, p["disk_q"] * k_minor),
                     _U_GRID, sersic_transform(1.0), right=0.0)
    if p["morphology"] == "irregular":  # lopsided: the disk light in three offset pieces
        offsets = rng.normal(0, 0.35 * p["disk_re_arcsec"] * scale, (2, 3))
        weights = rng.dirichlet(np.ones(3))
        disk = disk * sum(w * np.exp(-2j * np.pi * ky * dy) * np.exp(-2j * np.pi * kx * dx)
                          for w, dx, dy in zip(weights, *offsets, strict=True))
    smooth = fluxes[:, 1, None, None] * disk + fluxes[:, 3, None, None]
    if fluxes[1, 0] > 0:
        bulge = np.interp(p["bulge_re_arcsec"] * scale * np.hypot(k_major, p["bulge_q"] * k_minor),
                          _U_GRID, sersic_transform(float(p["bulge_sersic_n"])),
                          right=0.0)
        smooth = smooth + fluxes[:, 0, None, None] * bulge
    return smooth * (np.exp(-2j * np.pi * ky * frame.y0) * np.exp(-2j * np.pi * kx * frame.x0))


def _knots(p: dict, fluxes: np.ndarray, frame: _Frame, rng) -> np.ndarray:
    """Star-forming knots: Gaussian clumps in the disk plane, projected."""
    disk_px = p["disk_re_arcsec"] * frame.scale
    if p["morphology"] == "spiral":
        count = 30 + rng.poisson(30)
        u, v = _arm_positions(rng, count, disk_px / 1.678)
        width = rng.uniform(0.03, 0.06) * disk_px
    else:  # irregular: a few knots scattered lopsidedly
        count = rng.integers(4, 16)
        u, v = rng.normal(0, 0.5 * disk_px, (2, count)) + rng.normal(0, 0.25 * disk_px, (2, 1))
        width = rng.uniform(0.02, 0.05) * disk_px
    share = rng.lognormal(0, 0.6, count)
    v = v * p["disk_q"]  # the disk plane seen inclined
    x = frame.x0 + u * frame.cos_pa - v * frame.sin_pa
    y = frame.y0 + u * frame.sin_pa + v * frame.cos_pa
    knots = _point_transform(x, y, fluxes[:, 2, None] * share / share.sum(), frame.n_pad)
    return knots * np.exp(-2 * np.pi**2 * max(width, 0.3) ** 2 * frame.k2)


def _with_neighbours(model: np.ndarray, p: dict, frame: _Frame, rng) -> np.ndarray:
    """``model`` with field stars (points) and faint background galaxies (small Gaussians) added."""
    size, offset, kx, ky = frame.size, frame.offset, frame.kx, frame.ky
    if p["n_stars"]:
        x, y = _positions_away_from_centre(rng, int(p["n_stars"]), size, 6.0) + offset
        r_mag = _counts_slope_magnitudes(rng, len(x), 16.0, 22.0, 0.25)
        g_r = rng.uniform(0.3, 1.5, len(x))
        r_i = 0.45 * g_r - 0.12 + 2.0 * np.maximum(g_r - 1.3, 0)  # the stellar locus, M dwarfs last
        r_flux = 10 ** (-0.4 * (r_mag - NANOMAGGY_ZERO_POINT))
        model = model + _point_transform(x, y, np.stack([r_flux * 10 ** (-0.4 * g_r), r_flux,
                                                         r_flux * 10 ** (0.4 * r_i)]), frame.n_pad)
    for _ in range(int(p["n_background"])):
        (x,), (y,) = _positions_away_from_centre(rng, 1, size, 4.0) + offset
        r_mag = _counts_slope_magnitudes(rng, 1, 19.0, 23.0, 0.35)[0]
        g_r, sigma, q = rng.uniform(0.4, 1.6), rng.uniform(0.5, 2.0), rng.uniform(0.4, 1)
        angle = rng.uniform(0, np.pi)
        k_a, k_b = kx * np.cos(angle) + ky * np.sin(angle), -kx * np.sin(angle) + ky * np.cos(angle)
        shape = np.exp(-2 * np.pi**2 * sigma**2 * (k_a**2 + q**2 * k_b**2))
        shape = shape * np.exp(-2j * np.pi * ky * y) * np.exp(-2j * np.pi * kx * x)
        r_flux = 10 ** (-0.4 * (r_mag - NANOMAGGY_ZERO_POINT))
        colour = np.array([10 ** (-0.4 * g_r), 1.0, 10 ** (0.2 * g_r)])  # r - i ~ (g - r) / 2
        model = model + (r_flux * colour)[:, None, None] * shape
    return model


def _observed(model: np.ndarray, p: dict, frame: _Frame, noise: bool, rng) -> np.ndarray:
    """The model seen through the PSF and the pixel, cropped to the cutout, with the sky's and
    the source's noise when ``noise``: (3, size, size) float32."""
    seeing_px = np.array([p["seeing_g_arcsec"], p["seeing_r_arcsec"], p["seeing_i_arcsec"]]) * frame.scale
    model = model * psf_transform(seeing_px, frame.k2) * frame.pixel
    size, offset = frame.size, frame.offset
    image = np.fft.irfft2(model, s=(frame.n_pad, frame.n_pad))[:, offset:offset + size, offset:offset + size]
    if noise:
        sigma, gain = _noise_levels()
        variance = sigma[:, None, None] ** 2 + np.maximum(image, 0) / gain[:, None, None]
        image = image + np.sqrt(variance) * rng.standard_normal(image.shape)
    return image.astype(np.float32)


def render_galaxies(galaxies: Table, size: int = DEFAULT_SIZE, noise: bool = True,
                    pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC):
    """Cutouts of ``galaxies`` (a table from :func:`~pipeline.oneshot.survey.draw_galaxies` and
    :func:`~pipeline.oneshot.survey.assign_labels`):
    a generator of (3, size, size) float32 arrays, bands g, r, i, in nanomaggies per pixel,
    sky-subtracted, the galaxy at pixel (size // 2, size // 2) within half a pixel. Each is
    determined by its row alone (its ``render_seed`` draws the knots, neighbours and noise);
    ``noise=False`` gives the noiseless model. ``pixel_scale_arcsec``: another camera's pixels
    (the noise is SDSS's, per SDSS pixel: use ``noise=False`` and add the camera's own)."""
    columns = {name: np.asarray(galaxies[name]) for name in galaxies.colnames}
    fluxes = component_fluxes(galaxies)
    for i in range(len(galaxies)):
        yield _render_one({name: col[i] for name, col in columns.items()}, fluxes[i], size, noise,
                          pixel_scale_arcsec)
