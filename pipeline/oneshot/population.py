"""The galaxies of the simulated SDSS-like survey (:mod:`pipeline.oneshot.survey`), before labels
and nuclei: their types, luminosities, distances, sizes, shapes, colours and fields
(:func:`draw_galaxies`), drawn as follows.

Each galaxy is, in nanomaggies (flux of an AB magnitude 22.5 source, SDSS's image unit):

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
"""

from __future__ import annotations

import functools

import numpy as np
from astropy.table import Table

from pipeline.oneshot.render import SEEING_BAND_RATIO, SEEING_MEDIAN_ARCSEC

# --- the selection and the field ---
MAGNITUDE_LIMITS = (14.0, 17.77)  # r: main galaxy sample's spectroscopic limit, bright end
STAR_DENSITY = 0.3  # field stars per 64 x 64 px cutout
BACKGROUND_DENSITY = 1.0  # faint background galaxies per 64 x 64 px cutout

# --- the population ---
MORPHOLOGY_FRACTIONS = {"elliptical": 0.20, "lenticular": 0.22, "spiral": 0.48, "irregular": 0.10}
ABS_MAG_R = {"elliptical": (-20.8, 0.8), "lenticular": (-20.5, 0.8), "spiral": (-20.2, 0.9),
             "irregular": (-18.8, 0.8)}  # mean, sd of M_r (H0 = 70) before the flux limit
DISK_THICKNESS = {"elliptical": 0.5, "lenticular": 0.25, "spiral": 0.15, "irregular": 0.35}
SERSIC_GRID = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)  # bulge indices are rounded to these


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
    return dict(zip(names, counts.tolist(), strict=True))


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
    abs_mag, redshift = _luminosities(morphology, rng)
    z_grid, modulus, _, kpc_per_arcsec = _distance_tables()
    r_mag = abs_mag + np.interp(redshift, z_grid, modulus)
    arcsec_per_kpc = 1.0 / np.interp(redshift, z_grid, kpc_per_arcsec)
    bt, sersic_n = _bulges(morphology, rng)
    bulge_re, disk_re = _half_light_radii(morphology, abs_mag, arcsec_per_kpc, rng)
    cos_i, bulge_q, disk_q = _inclinations(morphology, rng)
    colours, clump_fraction = _colours(morphology, bt, cos_i, redshift, rng)
    seeing = _seeing(n, rng)
    ra = rng.uniform(120.0, 250.0, n)  # SDSS's northern Galactic cap, roughly
    sin_dec = rng.uniform(np.sin(np.radians(-3.0)), np.sin(np.radians(65.0)), n)
    # the draws below are made in this order too: the same seed gives the same galaxies
    return Table({
        "morphology": morphology, "redshift": redshift, "abs_mag_r": abs_mag, "r_mag": r_mag,
        "bulge_to_total": bt, "bulge_sersic_n": sersic_n, "bulge_re_arcsec": bulge_re,
        "disk_re_arcsec": disk_re, "bulge_q": bulge_q, "disk_q": disk_q,
        "inclination_deg": np.degrees(np.arccos(cos_i)), "position_angle_deg": rng.uniform(0, 180, n),
        **colours,
        "clump_g_r": rng.normal(0.2, 0.08, n) + 0.5 * redshift, "clump_r_i": rng.normal(0.0, 0.05, n),
        "clump_fraction": clump_fraction,
        "seeing_g_arcsec": seeing[:, 0], "seeing_r_arcsec": seeing[:, 1], "seeing_i_arcsec": seeing[:, 2],
        "centre_dx_px": rng.uniform(-0.5, 0.5, n), "centre_dy_px": rng.uniform(-0.5, 0.5, n),
        "n_stars": rng.poisson(STAR_DENSITY, n), "n_background": rng.poisson(BACKGROUND_DENSITY, n),
        "ra": ra, "dec": np.degrees(np.arcsin(sin_dec)),
        "render_seed": rng.integers(0, 2**63 - 1, n),
    })


def _luminosities(morphology, rng):
    """(absolute magnitude M_r, redshift) of each galaxy, flux-limited: candidates weighted by the
    volume in which they pass, placed uniformly in comoving volume."""
    n = len(morphology)
    z_grid, modulus, volume, _ = _distance_tables()
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
    return abs_mag, redshift


def _types(morphology):
    """Masks of the elliptical, lenticular, spiral and irregular galaxies."""
    return tuple(morphology == kind for kind in ("elliptical", "lenticular", "spiral", "irregular"))


def _bulges(morphology, rng):
    """(bulge-to-total light ratio, bulge Sersic index) of each galaxy."""
    n = len(morphology)
    is_e, is_s0, is_sp, _ = _types(morphology)
    bt = np.select([is_e, is_s0, is_sp], [rng.uniform(0.8, 1.0, n), rng.uniform(0.35, 0.75, n),
                                          0.6 * rng.beta(2.0, 5.0, n)], rng.uniform(0.0, 0.05, n))
    # bulge index: de Vaucouleurs-like in ellipticals, lower (pseudo-bulges) in late spirals
    n_free = np.select([is_e, is_s0, is_sp], [rng.uniform(3.0, 4.2, n), rng.uniform(2.0, 4.2, n),
                                              1.0 + 6.0 * bt + rng.normal(0, 0.5, n)], np.ones(n))
    sersic_n = np.asarray(SERSIC_GRID)[np.abs(np.clip(n_free, 1, 4)[:, None] - SERSIC_GRID).argmin(1)]
    return bt, sersic_n


def _half_light_radii(morphology, abs_mag, arcsec_per_kpc, rng):
    """(bulge, disk) half-light radii in arcsec, from size-luminosity relations."""
    n = len(morphology)
    is_e, is_s0, _, _ = _types(morphology)
    luminosity = -0.4 * (abs_mag + 21.0)  # log10 L / L(M_r = -21)
    e_size_kpc = 3.0 * 10 ** (0.56 * luminosity + rng.normal(0, 0.15, n))
    disk_size_kpc = 4.0 * 10 ** (0.3 * luminosity + rng.normal(0, 0.17, n))
    disk_size_kpc = np.where(is_s0, 0.85 * disk_size_kpc, disk_size_kpc)
    bulge_ratio = 10 ** rng.normal(np.log10(np.where(is_s0, 0.3, 0.2)), 0.12)
    bulge_kpc = np.where(is_e, e_size_kpc, bulge_ratio * disk_size_kpc)
    disk_kpc = np.where(is_e, 1.6 * e_size_kpc, disk_size_kpc)  # an elliptical's faint envelope
    bulge_re = np.maximum(bulge_kpc * arcsec_per_kpc, 0.1)
    disk_re = np.maximum(disk_kpc * arcsec_per_kpc, 0.2)
    return bulge_re, disk_re


def _inclinations(morphology, rng):
    """(cos i, bulge axis ratio, disk axis ratio) of inclined bulges and disks."""
    n = len(morphology)
    is_e = _types(morphology)[0]
    cos_i = rng.uniform(0, 1, n)
    sin2 = 1 - cos_i**2
    q0_bulge = np.where(is_e, rng.uniform(0.5, 0.8, n), 0.7)
    q0_disk = np.array([DISK_THICKNESS[m] for m in morphology])
    bulge_q = np.sqrt(cos_i**2 + q0_bulge**2 * sin2)
    disk_q = np.where(is_e, bulge_q, np.sqrt(cos_i**2 + q0_disk**2 * sin2))  # E: a round envelope
    return cos_i, bulge_q, disk_q


def _colours(morphology, bt, cos_i, redshift, rng):
    """({bulge_g_r, bulge_r_i, disk_g_r, disk_r_i}: observed colours in mag, the share of the
    disk's light in star-forming knots)."""
    n = len(morphology)
    is_e, is_s0, is_sp, is_irr = _types(morphology)
    early = is_e | is_s0
    red_k, blue_k = 1.2 * redshift, 0.5 * redshift  # rough k-corrections in g - r
    bulge_g_r = 0.78 + rng.normal(0, 0.04, n) + red_k
    bulge_r_i = 0.40 + rng.normal(0, 0.03, n) + 0.3 * redshift
    disk_base = np.select([is_e, is_s0, is_sp], [0.76, 0.70, 0.38 + 0.5 * bt], 0.30)
    dust = np.where(is_sp, 0.12 * (1 - cos_i), 0.0)  # inclined spirals redden
    disk_g_r = disk_base + rng.normal(0, 0.06, n) + dust + np.where(early, red_k, blue_k)
    disk_r_i = np.select([early, is_sp], [0.36, 0.25], 0.15) + rng.normal(0, 0.04, n) + 0.2 * redshift
    clump_fraction = np.where(is_sp | is_irr, rng.uniform(0.15, 0.35, n), 0.0)
    return ({"bulge_g_r": bulge_g_r, "bulge_r_i": bulge_r_i, "disk_g_r": disk_g_r,
             "disk_r_i": disk_r_i}, clump_fraction)


def _seeing(n, rng):
    """PSF FWHM (arcsec) in g, r, i of each galaxy's field: (n, 3)."""
    seeing_r = np.clip(SEEING_MEDIAN_ARCSEC * np.exp(rng.normal(0, 0.1, n)), 1.0, 2.2)
    seeing = seeing_r[:, None] * np.asarray(SEEING_BAND_RATIO) * np.exp(rng.normal(0, 0.03, (n, 3)))
    seeing[:, 1] = seeing_r
    return seeing
