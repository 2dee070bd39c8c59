"""The two galaxy sets the explorer embeds: a simulated SDSS-like survey and real Hubble Deep Field
cutouts. Both are made on this machine, deterministically; nothing is downloaded.

Simulated SDSS-like survey (:func:`simulate_survey`)
----------------------------------------------------
A stand-in for ULISSE's sample (SDSS DR galaxies with BPT and X-ray labels), drawn by our own
renderer. Each galaxy is, in nanomaggies (flux of an AB magnitude 22.5 source, SDSS's image unit):

- a **bulge** (Sersic index 1-4; 3-4 in ellipticals) plus an **exponential disk**, each an
  inclined ellipse: intrinsic thickness q0 (disks 0.15 spiral, 0.25 lenticular, 0.35 irregular;
  bulges 0.7, ellipticals 0.5-0.8), seen at an inclination i with cos i uniform, so the axis
  ratio is sqrt(cos^2 i + q0^2 sin^2 i); position angle uniform. Profiles are truncated smoothly
  beyond 3 (n = 1) to 7 (n = 4) half-light radii, as SDSS's photometric pipeline truncates its
  exponential and de Vaucouleurs models. An elliptical's "disk" is a faint round envelope
  (1.6 times its bulge's radius) holding the 0-20% of light its bulge does not;
- **star-forming knots** (blue Gaussian clumps, g - r ~ 0.2) taking 15-35% of a disk's light:
  30-90 along two logarithmic arms in spirals, 4-15 scattered in irregulars, whose smooth light
  is also lopsided (three offset pieces);
- an **AGN** nucleus when the galaxy has one: a point source (the PSF itself) holding a fraction
  ``agn_strength`` of the galaxy's r-band light, from invisible (0.1%) to dominant (80%), with
  its own colour (g - r ~ 0.3 +- 0.25: blue quasar-like to reddened);
- occasional field **stars** (about 0.3 per 25" cutout, r = 16-22, as SDSS star counts at high
  Galactic latitude) and small faint **background galaxies** (about 1 per cutout), kept 6 px
  and 4 px away from the centre so they do not sit on the nucleus.

Population (per morphological type: elliptical 20%, lenticular 22%, spiral 48%, irregular 10%,
roughly the visual mix of the SDSS main galaxy sample):

- absolute magnitude M_r (H0 = 70, flat, Omega_m = 0.3) Gaussian per type (ellipticals
  -20.8 +- 0.8 ... irregulars -18.8 +- 0.8), then selected like SDSS's main galaxy sample:
  14 < r < 17.77 (its spectroscopic limit), each M weighted by the volume in which it passes
  (so brighter galaxies are over-represented, as in any flux-limited sample) and placed
  uniformly in that comoving volume: median redshift about 0.1, median M_r about -21.2;
- bulge-to-total light ratio: ellipticals 0.8-1, lenticulars 0.35-0.75, spirals 0-0.6 (mean
  0.17), irregulars < 0.05;
- half-light radii from size-luminosity relations close to Shen et al. (2003): ellipticals
  3 kpc at M_r = -21 scaling as L^0.56, disks 4 kpc as L^0.3, both with 0.15-0.17 dex scatter;
  bulges of disk galaxies 0.2-0.3 of their disk's radius. At z = 0.1 a 3 kpc radius is 1.7",
  4 px: SDSS galaxies are small;
- colours (observed g - r, r - i): bulges 0.78, 0.40 (red sequence); disks 0.70 (lenticular),
  0.38-0.68 (spirals, redder with more bulge and with inclination: dust), 0.30 (irregular); plus
  a rough k-correction of 1.2 z (red) or 0.5 z (blue) in g - r.

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

Labels follow ULISSE's Table 1 exactly in count: BPT AGN 12.0%, composite 5.8%, star-forming
44.0%, unclassified 38.2%; X-ray AGN 0.2% and X-ray non-AGN 5.6%, the other 94.2% left empty
(ULISSE's "unknown": no X-ray classification), so label statistics count them in neither.
Which galaxy gets which label is drawn with host-dependent weights: AGN in luminous,
bulge-dominated hosts, as Kauffmann et al. (2003) find (weights elliptical 2, lenticular 3,
spiral 1.5, irregular 0.1, times (0.2 + B/T) and L^0.5: about 80% of BPT AGN are ellipticals or
lenticulars, against 37% of the other galaxies), star formation in spirals and irregulars, the
unclassified (weak-lined) mostly early types; X-ray AGN are mostly BPT AGN with bright nuclei.
Most BPT AGN have faint nuclei (median 7% of the light; log-normal, 0.55 dex), and compact
early-type bulges without an AGN look similar, so one prototype finds AGN better than chance but
far from all. Measured on version 2 (3000 galaxies, seed 0) with the frozen EfficientNet-Lite0
features at 128 px, cosine distance: the 50 nearest neighbours of a prototype whose nucleus has
more than 30% of the light hold a median 28% BPT AGN (6-56% by prototype; 32% with composites),
of a faint-nucleus (< 2%) prototype 14%, against 12% at random; ULISSE found 21-65% (with
composites) on real SDSS images.

Hubble Deep Field set (:func:`hubble_deep_field_set`)
----------------------------------------------------
Real galaxies, no labels: sources detected with photutils in the colour image that scikit-image
ships as ``skimage.data.hubble_deep_field`` (1000 x 872 px; it is the Hubble eXtreme Deep Field,
NASA's 2012 release, public domain), cut out as RGB PNGs centred on each source.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from pipeline.atomic import replace_folder
from pipeline.cache import cache_dir
from pipeline.errors import Cancelled, InputError

SURVEY_VERSION = 2  # bump when the renderer or the population changes: default_sets rebuilds
HDF_VERSION = 1  # likewise for the Hubble Deep Field detection and cutouts
DEFAULT_N = 3000
DEFAULT_SIZE = 64  # px: 25" at SDSS's pixel scale, several half-light radii of a typical galaxy
SIMULATED_SET_NAME = "simulated SDSS-like survey"
HDF_SET_NAME = "Hubble Deep Field (real)"
SIMULATED_NOTE = (
    "Simulated SDSS-like survey made by this project: not real galaxies; labels are drawn with "
    "ULISSE's class fractions and tied to the simulated hosts and nuclei (AGN prefer bulge-"
    "dominated hosts), not measured from spectra.")

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
MAGNITUDE_LIMITS = (14.0, 17.77)  # r: main galaxy sample's spectroscopic limit, bright end
STAR_DENSITY = 0.3  # field stars per 64 x 64 px cutout
BACKGROUND_DENSITY = 1.0  # faint background galaxies per 64 x 64 px cutout

# --- the population ---
MORPHOLOGY_FRACTIONS = {"elliptical": 0.20, "lenticular": 0.22, "spiral": 0.48, "irregular": 0.10}
ABS_MAG_R = {"elliptical": (-20.8, 0.8), "lenticular": (-20.5, 0.8), "spiral": (-20.2, 0.9),
             "irregular": (-18.8, 0.8)}  # mean, sd of M_r (H0 = 70) before the flux limit
DISK_THICKNESS = {"elliptical": 0.5, "lenticular": 0.25, "spiral": 0.15, "irregular": 0.35}
SERSIC_GRID = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)  # bulge indices are rounded to these

# --- labels (ULISSE Table 1) ---
BPT_FRACTIONS = {"AGN": 0.120, "composite": 0.058, "star-forming": 0.440, "unclassified": 0.382}
XRAY_FRACTIONS = {"AGN": 0.002, "non-AGN": 0.056}  # the other 94.2% "unknown": left empty
# relative chance of each BPT class by host type; classes are dealt in this order among the
# galaxies still unlabelled, and what is left is unclassified
BPT_TYPE_WEIGHTS = {
    "AGN": {"elliptical": 2.0, "lenticular": 3.0, "spiral": 1.5, "irregular": 0.1},
    "composite": {"elliptical": 0.5, "lenticular": 1.5, "spiral": 2.0, "irregular": 0.5},
    "star-forming": {"elliptical": 0.05, "lenticular": 0.4, "spiral": 3.0, "irregular": 5.0},
}
AGN_LOG_STRENGTH = (-1.15, 0.55, -3.0, -0.1)  # log10 nuclear fraction: mean, sd, clipped to
COMPOSITE_NUCLEUS = (0.5, -2.0, 0.4)  # share of composites with a nucleus; its log10 mean, sd

CATALOG_COLUMNS = ("id", "file", "ra", "dec", "bpt_class", "xray_class", "morphology",
                   "bulge_to_total", "bulge_sersic_n", "bulge_re_arcsec", "disk_re_arcsec",
                   "inclination_deg", "position_angle_deg", "agn_strength", "agn_g_r", "r_mag",
                   "g_r", "abs_mag_r", "redshift", "seeing_r_arcsec", "n_stars", "simulated")

# --- Hubble Deep Field ---
HDF_MIN_AREA_PX = 30  # detected area (2 sigma): smaller ones are specks or noise
HDF_THRESHOLD_SIGMA = 2.0
HDF_MIN_SNR = 60.0  # segment flux / (rms sqrt(area)): fainter ones barely show in a cutout

SURVEY_README = """\
{n} galaxies (seed {seed}) rendered by pipeline.oneshot.survey (version {version}) of the
alma-ulisse explorer. Images: images/<id>.fits, {size} x {size} px at 0.396"/px, bands g, r, i
(BAND1-3), nanomaggies per pixel, sky-subtracted, stored as 16-bit integers with BSCALE/BZERO.
Labels: bpt_class (AGN, composite, star-forming, unclassified), xray_class (AGN, non-AGN;
empty = unknown). Truth: morphology, bulge_to_total, agn_strength (nucleus's share of the
r-band light), inclination_deg, r_mag, g_r, redshift ... The model and its numbers are described
in the module's docstring (python -c "import pipeline.oneshot.survey as s; help(s)").
"""
HDF_README = """\
{n} cutouts ({size} x {size} px RGB PNG) of the sources detected in the Hubble Deep Field
colour image shipped with scikit-image (skimage.data.hubble_deep_field: the Hubble eXtreme Deep
Field, NASA 2012, public domain), made by pipeline.oneshot.survey (version {version}). Real
galaxies, no labels. x, y: centroid in px of the 1000 x 872 image, 0-based from its top-left;
area_px: detected area; flux: background-subtracted R + G + B over the source's segment.
"""

STALE_BUILD_S = 86400.0
_BUILD_LOCK = threading.Lock()  # one build of a default set at a time in this process


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


@functools.lru_cache(maxsize=None)
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


@functools.lru_cache(maxsize=None)
def sersic_transform(n: float) -> np.ndarray:
    """Fourier transform of the unit-flux Sersic profile (half-light radius 1) at ``U_STEPS``
    frequencies 0 ... ``U_MAX`` cycles per half-light radius: the table :func:`render_galaxies`
    interpolates."""
    fluxes, variances = sersic_mixture(n)
    return np.exp(-2 * np.pi**2 * np.outer(_U_GRID**2, variances)) @ fluxes


@functools.lru_cache(maxsize=None)
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


# ----------------------------------------------------------------------------------------------
# Cosmology (flat, H0 = 70, Omega_m = 0.3), tabulated once


@functools.lru_cache(maxsize=1)
def _distance_tables():
    from astropy.cosmology import FlatLambdaCDM

    cosmo = FlatLambdaCDM(H0=70.0, Om0=0.3)
    z = np.linspace(0.002, 0.4, 400)
    modulus = cosmo.distmod(z).value
    volume = cosmo.comoving_volume(z).value
    kpc_per_arcsec = cosmo.angular_diameter_distance(z).to("kpc").value / 206264.806
    return z, modulus, volume, kpc_per_arcsec


# ----------------------------------------------------------------------------------------------
# The population


def exact_counts(fractions, n: int) -> dict:
    """Integers summing to ``n`` closest to ``fractions * n`` (largest remainders get the rest)."""
    names = list(fractions)
    share = np.array([fractions[k] for k in names], float)
    share = share / share.sum() * n
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return dict(zip(names, counts.tolist()))


def weighted_pick(weights, count: int, rng) -> np.ndarray:
    """Indices of ``count`` items drawn without replacement with probability proportional to
    ``weights`` (Efraimidis & Spirakis 2006: the largest u^(1/w))."""
    weights = np.asarray(weights, float)
    keys = np.log(rng.uniform(size=len(weights))) / np.maximum(weights, 1e-300)
    return np.argsort(-keys, kind="stable")[:count]


def draw_galaxies(n: int, rng) -> Table:
    """The hosts of ``n`` simulated galaxies (see the module docstring), without labels or nuclei.

    Columns: ``morphology``; ``redshift``; ``abs_mag_r``, ``r_mag`` (AB); ``bulge_to_total``
    (r-band share of the host's light), ``bulge_sersic_n``; ``bulge_re_arcsec``,
    ``disk_re_arcsec`` (half-light radii along the major axis); ``bulge_q``, ``disk_q`` (axis
    ratios); ``inclination_deg``, ``position_angle_deg`` (of the major axis, counter-clockwise
    from +x); ``bulge_g_r``, ``bulge_r_i``, ``disk_g_r``, ``disk_r_i``, ``clump_g_r``,
    ``clump_r_i`` (colours, mag); ``clump_fraction`` (of the disk light); ``seeing_g_arcsec``,
    ``seeing_r_arcsec``, ``seeing_i_arcsec`` (PSF FWHM); ``centre_dx_px``, ``centre_dy_px``
    (offset from the cutout's centre pixel); ``n_stars``, ``n_background``; ``ra``, ``dec``
    (deg); ``render_seed`` (draws the knots, neighbours and noise of this galaxy alone)."""
    counts = exact_counts(MORPHOLOGY_FRACTIONS, n)
    morphology = rng.permutation(np.repeat(list(counts), list(counts.values())))
    z_grid, modulus, volume, kpc_per_arcsec = _distance_tables()

    # absolute magnitude, flux-limited: candidates weighted by the volume in which they pass
    abs_mag = np.empty(n)
    redshift = np.empty(n)
    for kind, (mean, sd) in ABS_MAG_R.items():
        rows = np.flatnonzero(morphology == kind)
        if not len(rows):
            continue
        candidates = np.clip(rng.normal(mean, sd, 20 * len(rows)), -23.5, -17.5)
        z_lo = np.interp(MAGNITUDE_LIMITS[0] - candidates, modulus, z_grid)
        z_hi = np.interp(MAGNITUDE_LIMITS[1] - candidates, modulus, z_grid)
        v_lo, v_hi = np.interp(z_lo, z_grid, volume), np.interp(z_hi, z_grid, volume)
        chosen = rng.choice(len(candidates), len(rows), p=(v_hi - v_lo) / (v_hi - v_lo).sum())
        abs_mag[rows] = candidates[chosen]
        v = v_lo[chosen] + rng.uniform(size=len(rows)) * (v_hi[chosen] - v_lo[chosen])
        redshift[rows] = np.interp(v, volume, z_grid)  # uniform in comoving volume
    r_mag = abs_mag + np.interp(redshift, z_grid, modulus)
    arcsec_per_kpc = 1.0 / np.interp(redshift, z_grid, kpc_per_arcsec)

    is_e, is_s0 = morphology == "elliptical", morphology == "lenticular"
    is_sp, is_irr = morphology == "spiral", morphology == "irregular"
    early = is_e | is_s0
    bt = np.select([is_e, is_s0, is_sp], [rng.uniform(0.8, 1.0, n), rng.uniform(0.35, 0.75, n),
                                          0.6 * rng.beta(2.0, 5.0, n)], rng.uniform(0.0, 0.05, n))
    # bulge index: de Vaucouleurs-like in ellipticals, lower (pseudo-bulges) in late spirals
    n_free = np.select([is_e, is_s0, is_sp], [rng.uniform(3.0, 4.2, n), rng.uniform(2.0, 4.2, n),
                                              1.0 + 6.0 * bt + rng.normal(0, 0.5, n)], np.ones(n))
    sersic_n = np.asarray(SERSIC_GRID)[np.abs(np.clip(n_free, 1, 4)[:, None] - SERSIC_GRID).argmin(1)]

    luminosity = -0.4 * (abs_mag + 21.0)  # log10 L / L(M_r = -21)
    e_size_kpc = 3.0 * 10 ** (0.56 * luminosity + rng.normal(0, 0.15, n))
    disk_size_kpc = 4.0 * 10 ** (0.3 * luminosity + rng.normal(0, 0.17, n))
    disk_size_kpc = np.where(is_s0, 0.85 * disk_size_kpc, disk_size_kpc)
    bulge_ratio = 10 ** rng.normal(np.log10(np.where(is_s0, 0.3, 0.2)), 0.12)
    bulge_kpc = np.where(is_e, e_size_kpc, bulge_ratio * disk_size_kpc)
    disk_kpc = np.where(is_e, 1.6 * e_size_kpc, disk_size_kpc)  # an elliptical's faint envelope
    bulge_re = np.maximum(bulge_kpc * arcsec_per_kpc, 0.1)
    disk_re = np.maximum(disk_kpc * arcsec_per_kpc, 0.2)

    cos_i = rng.uniform(0, 1, n)
    sin2 = 1 - cos_i**2
    q0_bulge = np.where(is_e, rng.uniform(0.5, 0.8, n), 0.7)
    q0_disk = np.array([DISK_THICKNESS[m] for m in morphology])
    bulge_q = np.sqrt(cos_i**2 + q0_bulge**2 * sin2)
    disk_q = np.where(is_e, bulge_q, np.sqrt(cos_i**2 + q0_disk**2 * sin2))  # E: a round envelope

    red_k, blue_k = 1.2 * redshift, 0.5 * redshift  # rough k-corrections in g - r
    bulge_g_r = 0.78 + rng.normal(0, 0.04, n) + red_k
    bulge_r_i = 0.40 + rng.normal(0, 0.03, n) + 0.3 * redshift
    disk_base = np.select([is_e, is_s0, is_sp], [0.76, 0.70, 0.38 + 0.5 * bt], 0.30)
    dust = np.where(is_sp, 0.12 * (1 - cos_i), 0.0)  # inclined spirals redden
    disk_g_r = disk_base + rng.normal(0, 0.06, n) + dust + np.where(early, red_k, blue_k)
    disk_r_i = np.select([early, is_sp], [0.36, 0.25], 0.15) + rng.normal(0, 0.04, n) + 0.2 * redshift
    clump_fraction = np.where(is_sp | is_irr, rng.uniform(0.15, 0.35, n), 0.0)

    seeing_r = np.clip(SEEING_MEDIAN_ARCSEC * np.exp(rng.normal(0, 0.1, n)), 1.0, 2.2)
    seeing = seeing_r[:, None] * np.asarray(SEEING_BAND_RATIO) * np.exp(rng.normal(0, 0.03, (n, 3)))
    seeing[:, 1] = seeing_r

    ra = rng.uniform(120.0, 250.0, n)  # SDSS's northern Galactic cap, roughly
    sin_dec = rng.uniform(np.sin(np.radians(-3.0)), np.sin(np.radians(65.0)), n)

    return Table({
        "morphology": morphology, "redshift": redshift, "abs_mag_r": abs_mag, "r_mag": r_mag,
        "bulge_to_total": bt, "bulge_sersic_n": sersic_n, "bulge_re_arcsec": bulge_re,
        "disk_re_arcsec": disk_re, "bulge_q": bulge_q, "disk_q": disk_q,
        "inclination_deg": np.degrees(np.arccos(cos_i)), "position_angle_deg": rng.uniform(0, 180, n),
        "bulge_g_r": bulge_g_r, "bulge_r_i": bulge_r_i, "disk_g_r": disk_g_r, "disk_r_i": disk_r_i,
        "clump_g_r": rng.normal(0.2, 0.08, n) + blue_k, "clump_r_i": rng.normal(0.0, 0.05, n),
        "clump_fraction": clump_fraction,
        "seeing_g_arcsec": seeing[:, 0], "seeing_r_arcsec": seeing[:, 1], "seeing_i_arcsec": seeing[:, 2],
        "centre_dx_px": rng.uniform(-0.5, 0.5, n), "centre_dy_px": rng.uniform(-0.5, 0.5, n),
        "n_stars": rng.poisson(STAR_DENSITY, n), "n_background": rng.poisson(BACKGROUND_DENSITY, n),
        "ra": ra, "dec": np.degrees(np.arcsin(sin_dec)),
        "render_seed": rng.integers(0, 2**63 - 1, n),
    })


def assign_labels(galaxies: Table, rng) -> Table:
    """Add BPT and X-ray classes and the nuclei to ``galaxies`` (from :func:`draw_galaxies`), in
    place, and return it: ``bpt_class``, ``xray_class`` ("" = unknown), ``agn_strength`` (the
    nucleus's share of the galaxy's r-band light; 0 without one), ``agn_g_r``, ``agn_r_i``
    (nucleus colours, mag). ``r_mag`` becomes host plus nucleus; ``g_r`` is the whole galaxy's
    colour. Class counts match ULISSE's fractions to the nearest galaxy."""
    n = len(galaxies)
    morphology = np.asarray(galaxies["morphology"])
    bt = np.asarray(galaxies["bulge_to_total"], float)
    luminosity = 10 ** (-0.4 * (np.asarray(galaxies["abs_mag_r"]) + 21.0))
    counts = exact_counts(BPT_FRACTIONS, n)
    bpt = np.full(n, "unclassified", dtype="<U12")
    free = np.ones(n, bool)
    for label, type_weights in BPT_TYPE_WEIGHTS.items():
        weights = np.array([type_weights[m] for m in morphology])
        if label == "AGN":  # luminous, bulge-dominated hosts (Kauffmann et al. 2003)
            weights = weights * (0.2 + bt) * luminosity**0.5
        elif label == "composite":
            weights = weights * (0.3 + bt) * luminosity**0.25
        candidates = np.flatnonzero(free)
        rows = candidates[weighted_pick(weights[candidates], counts[label], rng)]
        bpt[rows] = label
        free[rows] = False

    mean, sd, low, high = AGN_LOG_STRENGTH
    strength = np.where(bpt == "AGN", 10 ** np.clip(rng.normal(mean, sd, n), low, high), 0.0)
    share, c_mean, c_sd = COMPOSITE_NUCLEUS
    weak = (bpt == "composite") & (rng.uniform(size=n) < share)
    strength = np.where(weak, 10 ** np.clip(rng.normal(c_mean, c_sd, n), low, high), strength)
    agn_g_r = np.where(strength > 0, rng.normal(0.3, 0.25, n), 0.0)
    agn_r_i = np.where(strength > 0, 0.4 * agn_g_r + rng.normal(0.0, 0.05, n), 0.0)

    # X-ray classes for a small subset: AGN mostly BPT AGN with bright nuclei
    x_counts = exact_counts({**XRAY_FRACTIONS, "unknown": 1 - sum(XRAY_FRACTIONS.values())}, n)
    xray = np.full(n, "", dtype="<U8")
    bpt_weight = np.select([bpt == "AGN", bpt == "composite"], [1.0, 0.3], 0.02)
    rows = weighted_pick(bpt_weight * (strength + 0.01) ** 2, x_counts["AGN"], rng)
    xray[rows] = "AGN"
    candidates = np.flatnonzero(xray == "")
    rows = candidates[weighted_pick(np.where(strength[candidates] > 0, 0.3, 1.0), x_counts["non-AGN"], rng)]
    xray[rows] = "non-AGN"

    host_flux = 10 ** (-0.4 * (np.asarray(galaxies["r_mag"]) - NANOMAGGY_ZERO_POINT))
    total_flux = host_flux / (1 - strength)
    galaxies["bpt_class"] = bpt
    galaxies["xray_class"] = xray
    galaxies["agn_strength"] = strength
    galaxies["agn_g_r"] = agn_g_r
    galaxies["agn_r_i"] = agn_r_i
    galaxies["r_mag"] = NANOMAGGY_ZERO_POINT - 2.5 * np.log10(total_flux)
    fluxes = component_fluxes(galaxies)
    galaxies["g_r"] = -2.5 * np.log10(fluxes[:, 0].sum(1) / fluxes[:, 1].sum(1))
    return galaxies


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


def _render_one(p: dict, fluxes: np.ndarray, size: int, noise: bool) -> np.ndarray:
    """One galaxy (``p``: a row of :func:`draw_galaxies` + :func:`assign_labels` as a dict;
    ``fluxes``: its (3, 4) :func:`component_fluxes`): (3, size, size) float32 nanomaggies/px."""
    rng = np.random.default_rng(int(p["render_seed"]))
    ky, kx, k2, pixel = _frequency_grid(size)
    n_pad, offset, centre = 2 * size, size // 2, size // 2
    x0, y0 = offset + centre + p["centre_dx_px"], offset + centre + p["centre_dy_px"]
    pa = np.radians(p["position_angle_deg"])
    cos_pa, sin_pa = np.cos(pa), np.sin(pa)
    k_major = kx * cos_pa + ky * sin_pa  # frequency along the major axis
    k_minor = -kx * sin_pa + ky * cos_pa

    # smooth parts share the galaxy's centre: bulge + disk + nucleus, (bands, N, N/2 + 1)
    scale = 1.0 / PIXEL_SCALE_ARCSEC
    disk = np.interp(p["disk_re_arcsec"] * scale * np.hypot(k_major, p["disk_q"] * k_minor),
                     _U_GRID, sersic_transform(1.0), right=0.0)
    if p["morphology"] == "irregular":  # lopsided: the disk light in three offset pieces
        offsets = rng.normal(0, 0.35 * p["disk_re_arcsec"] * scale, (2, 3))
        weights = rng.dirichlet(np.ones(3))
        disk = disk * sum(w * np.exp(-2j * np.pi * ky * dy) * np.exp(-2j * np.pi * kx * dx)
                          for w, dx, dy in zip(weights, *offsets))
    smooth = fluxes[:, 1, None, None] * disk + fluxes[:, 3, None, None]
    if fluxes[1, 0] > 0:
        bulge = np.interp(p["bulge_re_arcsec"] * scale * np.hypot(k_major, p["bulge_q"] * k_minor),
                          _U_GRID, sersic_transform(float(p["bulge_sersic_n"])),
                          right=0.0)
        smooth = smooth + fluxes[:, 0, None, None] * bulge
    model = smooth * (np.exp(-2j * np.pi * ky * y0) * np.exp(-2j * np.pi * kx * x0))

    # star-forming knots: Gaussian clumps in the disk plane, projected
    if fluxes[1, 2] > 0:
        disk_px = p["disk_re_arcsec"] * scale
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
        x, y = x0 + u * cos_pa - v * sin_pa, y0 + u * sin_pa + v * cos_pa
        knots = _point_transform(x, y, fluxes[:, 2, None] * share / share.sum(), n_pad)
        model = model + knots * np.exp(-2 * np.pi**2 * max(width, 0.3) ** 2 * k2)

    # neighbours: field stars (points) and faint background galaxies (small Gaussians)
    if p["n_stars"]:
        x, y = _positions_away_from_centre(rng, int(p["n_stars"]), size, 6.0) + offset
        r_mag = _counts_slope_magnitudes(rng, len(x), 16.0, 22.0, 0.25)
        g_r = rng.uniform(0.3, 1.5, len(x))
        r_i = 0.45 * g_r - 0.12 + 2.0 * np.maximum(g_r - 1.3, 0)  # the stellar locus, M dwarfs last
        r_flux = 10 ** (-0.4 * (r_mag - NANOMAGGY_ZERO_POINT))
        model = model + _point_transform(x, y, np.stack([r_flux * 10 ** (-0.4 * g_r), r_flux,
                                                         r_flux * 10 ** (0.4 * r_i)]), n_pad)
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

    seeing_px = np.array([p["seeing_g_arcsec"], p["seeing_r_arcsec"], p["seeing_i_arcsec"]]) * scale
    model = model * psf_transform(seeing_px, k2) * pixel
    image = np.fft.irfft2(model, s=(n_pad, n_pad))[:, offset:offset + size, offset:offset + size]
    if noise:
        sigma, gain = _noise_levels()
        variance = sigma[:, None, None] ** 2 + np.maximum(image, 0) / gain[:, None, None]
        image = image + np.sqrt(variance) * rng.standard_normal(image.shape)
    return image.astype(np.float32)


def render_galaxies(galaxies: Table, size: int = DEFAULT_SIZE, noise: bool = True):
    """Cutouts of ``galaxies`` (a table from :func:`draw_galaxies` and :func:`assign_labels`):
    a generator of (3, size, size) float32 arrays, bands g, r, i, in nanomaggies per pixel,
    sky-subtracted, the galaxy at pixel (size // 2, size // 2) within half a pixel. Each is
    determined by its row alone (its ``render_seed`` draws the knots, neighbours and noise);
    ``noise=False`` gives the noiseless model."""
    columns = {name: np.asarray(galaxies[name]) for name in galaxies.colnames}
    fluxes = component_fluxes(galaxies)
    for i in range(len(galaxies)):
        yield _render_one({name: col[i] for name, col in columns.items()}, fluxes[i], size, noise)


def _cutout_header(galaxy_id: str, row: dict, bscale: float, bzero: float) -> fits.Header:
    header = fits.Header()
    header["BAND1"], header["BAND2"], header["BAND3"] = BANDS
    header["BUNIT"] = ("nanomaggy", "AB mag 22.5 per pixel; sky-subtracted")
    header["PIXSCALE"] = (PIXEL_SCALE_ARCSEC, "arcsec/px")
    header["SIMULATE"] = (True, "simulated galaxy, not an observation")
    header["OBJECT"] = galaxy_id
    header["RA"], header["DEC"] = round(float(row["ra"]), 6), round(float(row["dec"]), 6)
    for band in BANDS:
        header[f"FWHM_{band.upper()}"] = (round(float(row[f"seeing_{band}_arcsec"]), 3), "PSF FWHM, arcsec")
    header["SURVEYV"] = (SURVEY_VERSION, "pipeline.oneshot.survey version")
    header["COMMENT"] = ("Simulated SDSS-like galaxy (g, r, i) rendered by pipeline.oneshot.survey "
                         "of the alma-ulisse explorer; not real data.")
    header["BSCALE"], header["BZERO"] = bscale, bzero
    return header


def write_cutout(path, image: np.ndarray, galaxy_id: str, row: dict) -> None:
    """Write ``image`` (3, size, size) float nanomaggies as 16-bit integers with BSCALE/BZERO
    (min to max over the three bands: a step well below the noise) and the survey's keywords."""
    lo, hi = float(image.min()), float(image.max())
    bscale = max(hi - lo, 1e-12) / 65534.0
    bzero = (hi + lo) / 2.0
    quantised = np.round((image - bzero) / bscale).astype(np.int16)
    hdu = fits.PrimaryHDU(quantised)
    hdu.header.update(_cutout_header(galaxy_id, row, bscale, bzero))
    hdu.writeto(path)


# ----------------------------------------------------------------------------------------------
# Writing sets atomically


def _check_target(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir())
                                                  and not (folder / "catalog.csv").is_file())):
        raise InputError(f"{folder} exists and is not a galaxy set (no catalog.csv): give a new or "
                         "empty folder for the set, or an older set to replace.")


def _building(folder: Path) -> Path:
    """A new hidden folder beside ``folder`` to build a set in, with the usual permissions
    (mkdtemp's are private). Builds abandoned more than a day ago are removed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.partial-*"):  # left by a killed process
        if time.time() - stale.stat().st_mtime > STALE_BUILD_S:
            shutil.rmtree(stale, ignore_errors=True)
    build = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(build, 0o777 & ~umask)
    return build


def _whole_number(value, name: str, low: int, high: int, meaning: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number != value or not low <= number <= high:
        raise InputError(f"{name} = {value!r}: give {meaning}, a whole number from {low} to {high}.")
    return number


def simulate_survey(folder, n: int = DEFAULT_N, seed: int = 0, size: int = DEFAULT_SIZE,
                    progress=None, cancel: threading.Event | None = None) -> Path:
    """Write a simulated SDSS-like galaxy set of ``n`` galaxies into ``folder`` and return the
    path of its ``catalog.csv``.

    Images: ``images/SIM000001.fits`` ... : (3, ``size``, ``size``) bands g, r, i in nanomaggies
    per pixel (int16 with BSCALE/BZERO), 0.396"/px. Catalogue columns: ``CATALOG_COLUMNS`` (labels
    ``bpt_class``, ``xray_class``; truth ``morphology``, ``bulge_to_total``, ``agn_strength``
    ...; ``simulated`` = True). The same ``seed`` gives the same set, byte for byte.
    ``progress(done, total)`` is called as galaxies are written; setting ``cancel`` (a
    ``threading.Event``) stops with :class:`~pipeline.errors.Cancelled`. The set is built in a
    hidden sibling folder and renamed into place at the end, so a stopped or failed run leaves
    nothing; an existing set in ``folder`` is replaced."""
    n = _whole_number(n, "n", 1, 10_000_000, "the number of galaxies to simulate")
    size = _whole_number(size, "size", 16, 512, "the cutout side in pixels (64 is SDSS-like)")
    folder = Path(folder)
    _check_target(folder)
    rng = np.random.default_rng(seed)
    galaxies = assign_labels(draw_galaxies(n, rng), rng)
    ids = [f"SIM{i:06d}" for i in range(1, n + 1)]
    galaxies["id"] = ids
    galaxies["file"] = [f"images/{i}.fits" for i in ids]
    galaxies["simulated"] = np.ones(n, bool)

    build = _building(folder)
    try:
        (build / "images").mkdir()
        columns = {name: np.asarray(galaxies[name]) for name in galaxies.colnames}
        for i, image in enumerate(render_galaxies(galaxies, size)):
            if cancel is not None and cancel.is_set():
                raise Cancelled("simulated survey cancelled: nothing was written")
            write_cutout(build / galaxies["file"][i], image, ids[i],
                         {name: col[i] for name, col in columns.items()})
            if progress is not None and ((i + 1) % 25 == 0 or i + 1 == n):
                progress(i + 1, n)
        catalog = galaxies[list(CATALOG_COLUMNS)]
        for name in catalog.colnames:
            if catalog[name].dtype.kind == "f":
                catalog[name] = np.round(catalog[name], 6 if name in ("ra", "dec", "agn_strength") else 4)
        catalog.write(build / "catalog.csv", format="ascii.csv")
        (build / "README.txt").write_text(SIMULATED_NOTE + "\n\n" + SURVEY_README.format(
            n=n, seed=seed, size=size, version=SURVEY_VERSION))
        replace_folder(build, folder)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return folder / "catalog.csv"


def hubble_deep_field_set(folder, size: int = DEFAULT_SIZE, progress=None) -> Path:
    """Cut the galaxies of the Hubble (eXtreme) Deep Field image shipped with scikit-image into a set
    in ``folder``; return the path of its ``catalog.csv``.

    Detection (photutils) on the sum of the R, G, B planes: a 50 px mesh background, a Gaussian
    filter (3 px FWHM), segments of >= 10 px above 2 sigma, deblended. Kept: sources with a
    detected area >= ``HDF_MIN_AREA_PX``, signal-to-noise >= ``HDF_MIN_SNR`` and a whole
    ``size`` x ``size`` cutout inside the image. Images ``images/HDF0001.png`` ... (RGB, centred
    on the centroid rounded to a pixel); catalogue columns ``id``, ``file``, ``x``, ``y``
    (centroid, px, 0-based from the image's top-left), ``area_px`` (detected area) and ``flux``
    (background-subtracted sum of R + G + B over the segment, 0-255 units): real, unlabelled.
    ``progress(done, total)`` is called as cutouts are written. Atomic like
    :func:`simulate_survey`."""
    from astropy.convolution import convolve
    from photutils.background import Background2D, MedianBackground
    from photutils.segmentation import SourceCatalog, SourceFinder, make_2dgaussian_kernel
    from PIL import Image
    from skimage.data import hubble_deep_field

    size = _whole_number(size, "size", 16, 256, "the cutout side in pixels")
    folder = Path(folder)
    _check_target(folder)
    rgb = hubble_deep_field()
    light = rgb.astype(np.float32).sum(axis=2)
    background = Background2D(light, (50, 50), filter_size=(3, 3), bkg_estimator=MedianBackground())
    data = light - background.background
    smoothed = convolve(data, make_2dgaussian_kernel(3.0, size=5))
    segments = SourceFinder(10, deblend=True, progress_bar=False)(
        smoothed, HDF_THRESHOLD_SIGMA * background.background_rms)
    sources = SourceCatalog(data, segments, convolved_data=smoothed)
    x, y = sources.centroid.T
    area = np.asarray(getattr(sources.area, "value", sources.area), float)
    flux = np.asarray(sources.segment_flux, float)
    snr = flux / (background.background_rms_median * np.sqrt(area))
    ny, nx = light.shape
    half = size // 2
    xc, yc = (np.round(np.nan_to_num(c, nan=-1e9)).astype(int) for c in (x, y))  # NaN: dropped
    keep = ((area >= HDF_MIN_AREA_PX) & (snr >= HDF_MIN_SNR) & (xc - half >= 0) & (yc - half >= 0)
            & (xc - half + size <= nx) & (yc - half + size <= ny))
    order = np.flatnonzero(keep)
    order = order[np.lexsort((x[order], y[order]))]  # top to bottom, then left to right

    ids = [f"HDF{i:04d}" for i in range(1, len(order) + 1)]
    catalog = Table({"id": ids, "file": [f"images/{i}.png" for i in ids],
                     "x": np.round(x[order], 2), "y": np.round(y[order], 2),
                     "area_px": area[order].astype(int), "flux": np.round(flux[order], 1)})
    build = _building(folder)
    try:
        (build / "images").mkdir()
        for k, row in enumerate(order):
            cutout = rgb[yc[row] - half: yc[row] - half + size, xc[row] - half: xc[row] - half + size]
            Image.fromarray(np.ascontiguousarray(cutout)).save(build / catalog["file"][k])
            if progress is not None and ((k + 1) % 25 == 0 or k + 1 == len(order)):
                progress(k + 1, len(order))
        catalog.write(build / "catalog.csv", format="ascii.csv")
        (build / "README.txt").write_text(HDF_README.format(n=len(order), size=size, version=HDF_VERSION))
        replace_folder(build, folder)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return folder / "catalog.csv"


def default_sets(progress=None) -> dict[str, Path]:
    """The two sets the explorer embeds, {name: catalogue path}: ``SIMULATED_SET_NAME``
    (``DEFAULT_N`` galaxies, seed 0) and ``HDF_SET_NAME``. Each is built once into
    ``pipeline.cache.cache_dir("galaxy-sets", ...)`` (about 20 s and 90 MB for the survey, a few
    seconds for the Hubble Deep Field) and reused afterwards; a version bump rebuilds.
    ``progress(done, total)`` is passed to whichever build runs."""
    with _BUILD_LOCK:
        survey = cache_dir("galaxy-sets", f"simulated-sdss-v{SURVEY_VERSION}")
        if not (survey / "catalog.csv").is_file():
            simulate_survey(survey, n=DEFAULT_N, seed=0, size=DEFAULT_SIZE, progress=progress)
        hdf = cache_dir("galaxy-sets", f"hubble-deep-field-v{HDF_VERSION}")
        if not (hdf / "catalog.csv").is_file():
            hubble_deep_field_set(hdf, size=DEFAULT_SIZE, progress=progress)
    return {SIMULATED_SET_NAME: survey / "catalog.csv", HDF_SET_NAME: hdf / "catalog.csv"}
