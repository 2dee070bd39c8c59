"""The simulated SDSS-like survey (:func:`simulate_survey`), one of the two galaxy sets the explorer
embeds (:mod:`pipeline.oneshot.galaxy_sets`), made on this machine, deterministically.

A stand-in for ULISSE's sample (SDSS DR galaxies with BPT and X-ray labels): galaxies drawn by
:mod:`pipeline.oneshot.population` (which says what each one is made of), rendered by
:mod:`pipeline.oneshot.render` (which describes the observation: SDSS's pixels, bands, PSF and
noise), labelled here.

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
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from pipeline.oneshot.population import draw_galaxies, exact_counts
from pipeline.oneshot.render import (
    BANDS,
    DEFAULT_SIZE,
    NANOMAGGY_ZERO_POINT,
    PIXEL_SCALE_ARCSEC,
    component_fluxes,
    render_galaxies,
)
from pipeline.oneshot.set_folders import building, check_target, whole_number
from pipeline.progress import check_cancel, report

SURVEY_VERSION = 2  # bump when the renderer or the population changes: default_sets rebuilds
DEFAULT_N = 3000
SIMULATED_NOTE = (
    "Simulated SDSS-like survey made by this project: not real galaxies; labels are drawn with "
    "ULISSE's class fractions and tied to the simulated hosts and nuclei (AGN prefer bulge-"
    "dominated hosts), not measured from spectra.")

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

SURVEY_README = """\
{n} galaxies (seed {seed}) rendered by pipeline.oneshot.survey (version {version}) of the
alma-ulisse explorer. Images: images/<id>.fits, {size} x {size} px at 0.396"/px, bands g, r, i
(BAND1-3), nanomaggies per pixel, sky-subtracted, stored as 16-bit integers with BSCALE/BZERO.
Labels: bpt_class (AGN, composite, star-forming, unclassified), xray_class (AGN, non-AGN;
empty = unknown). Truth: morphology, bulge_to_total, agn_strength (nucleus's share of the
r-band light), inclination_deg, r_mag, g_r, redshift ... The model and its numbers are described
in the module's docstring (python -c "import pipeline.oneshot.survey as s; help(s)").
"""


# ----------------------------------------------------------------------------------------------
# Labels


def weighted_pick(weights, count: int, rng) -> np.ndarray:
    """Indices of ``count`` items drawn without replacement with probability proportional to
    ``weights`` (Efraimidis & Spirakis 2006: the largest u^(1/w))."""
    weights = np.asarray(weights, float)
    keys = np.log(rng.uniform(size=len(weights))) / np.maximum(weights, 1e-300)
    return np.argsort(-keys, kind="stable")[:count]



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


# ----------------------------------------------------------------------------------------------
# Writing the set


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


def simulate_survey(folder, n: int = DEFAULT_N, seed: int = 0, size: int = DEFAULT_SIZE,
                    progress=None, cancel: threading.Event | None = None) -> Path:
    """Write a simulated SDSS-like galaxy set of ``n`` galaxies into ``folder`` and return the
    path of its ``catalog.csv``.

    Images: ``images/SIM000001.fits`` ... : (3, ``size``, ``size``) bands g, r, i in nanomaggies
    per pixel (int16 with BSCALE/BZERO), 0.396"/px. Catalogue columns: ``CATALOG_COLUMNS`` (labels
    ``bpt_class``, ``xray_class``; truth ``morphology``, ``bulge_to_total``, ``agn_strength``
    ...; ``simulated`` = True). The same ``seed`` gives the same set, byte for byte.
    ``progress(done, total, stage)`` (:mod:`pipeline.progress`) is called as galaxies are written; setting ``cancel`` (a
    ``threading.Event``) stops with :class:`~pipeline.errors.Cancelled`. The set is built in a
    hidden sibling folder and renamed into place at the end, so a stopped or failed run leaves
    nothing; an existing set in ``folder`` is replaced."""
    n = whole_number(n, "n", 1, 10_000_000, "the number of galaxies to simulate")
    size = whole_number(size, "size", 16, 512, "the cutout side in pixels (64 is SDSS-like)")
    folder = Path(folder)
    check_target(folder)
    rng = np.random.default_rng(seed)
    galaxies = assign_labels(draw_galaxies(n, rng), rng)
    ids = [f"SIM{i:06d}" for i in range(1, n + 1)]
    galaxies["id"] = ids
    galaxies["file"] = [f"images/{i}.fits" for i in ids]
    galaxies["simulated"] = np.ones(n, bool)

    with building(folder) as build:
        (build / "images").mkdir()
        columns = {name: np.asarray(galaxies[name]) for name in galaxies.colnames}
        for i, image in enumerate(render_galaxies(galaxies, size)):
            check_cancel(cancel, "simulated survey", then="nothing was written")
            write_cutout(build / galaxies["file"][i], image, ids[i],
                         {name: col[i] for name, col in columns.items()})
            if (i + 1) % 25 == 0 or i + 1 == n:
                report(progress, i + 1, n, "rendering the simulated survey")
        catalog = galaxies[list(CATALOG_COLUMNS)]
        for name in catalog.colnames:
            if catalog[name].dtype.kind == "f":
                catalog[name] = np.round(catalog[name], 6 if name in ("ra", "dec", "agn_strength") else 4)
        catalog.write(build / "catalog.csv", format="ascii.csv")
        (build / "README.txt").write_text(SIMULATED_NOTE + "\n\n" + SURVEY_README.format(
            n=n, seed=seed, size=size, version=SURVEY_VERSION))
    return folder / "catalog.csv"
