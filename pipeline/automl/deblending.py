"""Task "vst": separating two overlapping galaxies in VST-like optical images.

The simulator: pairs of galaxies from the project's population and renderer
(:mod:`pipeline.oneshot.population`, :mod:`pipeline.oneshot.render`), moved from their SDSS-like
redshifts (about 0.1) to 0.2-0.6 as a deeper survey sees them (sizes by the angular-diameter
distance, fluxes by the distance modulus, flat LCDM H0 = 70, Omega_m = 0.3; no k-correction or
evolution), without field stars or background galaxies, drawn in the r band as the VLT Survey
Telescope's OmegaCAM sees it: 0.21" pixels, seeing 0.8" (log-normal, 0.15 in ln, 0.5-1.3") with
the renderer's double-Gaussian PSF, sky noise of KiDS r (5 sigma at r = 25.0 in a 2" aperture,
sky 21.0 mag/arcsec^2) and the galaxies' own Poisson noise. 64 x 64 stamps (13.4"): one galaxy
at the centre, the other 3-24 px away (0.6-2 times the sum of their half-light radii).

The network outputs two images: the central galaxy's, then its companion's (noiseless, in units
of the sky noise). The classic baseline is photutils: segmentation at 1.5 times the stamp's
sigma-clipped rms (5 connected pixels), deblended (32 levels, contrast 0.001); the segment at the
centre is the central galaxy, the brightest other one its companion, each galaxy's image the
stamp within its segment. Scored per galaxy, within where its true image is above the noise
(the same aperture for every answer): flux (fractional error), centroid (error in pixels) and
ellipticity (the modulus of the difference of the complex ellipticities from second moments).
"""

from __future__ import annotations

import warnings

import numpy as np

from pipeline.automl.tasks import AutomlTask, Examples, Score, relative_objective

SIZE = 64
PIXEL_SCALE_ARCSEC = 0.21
SEEING_ARCSEC = (0.8, 0.15, 0.5, 1.3)  # median, ln scatter, clipped to
DEPTH_MAG, DEPTH_APERTURE_ARCSEC = 25.0, 2.0  # KiDS r: 5 sigma in a 2" diameter aperture
SKY_MAG_PER_ARCSEC2 = 21.0
REDSHIFT_RANGE = (0.2, 0.6)
SEPARATION_PX = (3.0, 24.0)
APERTURE_LEVEL = 1.0  # a galaxy's aperture: its true image above this many times the noise
PHOTUTILS_NSIGMA = 1.5
PHOTUTILS_NPIXELS = 5


def noise_levels() -> tuple[float, float]:
    """(sky noise per pixel in nanomaggies, effective gain per nanomaggy) of the VST-like r band."""
    from pipeline.oneshot.render import NANOMAGGY_ZERO_POINT

    area_px = np.pi * (DEPTH_APERTURE_ARCSEC / 2) ** 2 / PIXEL_SCALE_ARCSEC**2
    sigma = 10 ** (-0.4 * (DEPTH_MAG - NANOMAGGY_ZERO_POINT)) / (5 * np.sqrt(area_px))
    sky = 10 ** (-0.4 * (SKY_MAG_PER_ARCSEC2 - NANOMAGGY_ZERO_POINT)) * PIXEL_SCALE_ARCSEC**2
    return float(sigma), float(sky / sigma**2)


def galaxies(rng, n: int):
    """``n`` galaxies of the population, moved to VST-like redshifts and seeing, alone in their field."""
    from astropy.cosmology import FlatLambdaCDM

    from pipeline.oneshot.population import draw_galaxies

    table = draw_galaxies(n, rng)
    cosmology = FlatLambdaCDM(H0=70.0, Om0=0.3)
    z_old = np.asarray(table["redshift"], float)
    z_new = rng.uniform(*REDSHIFT_RANGE, n)
    shrink = (cosmology.angular_diameter_distance(z_old) / cosmology.angular_diameter_distance(z_new)).value
    for column in ("bulge_re_arcsec", "disk_re_arcsec"):
        table[column] = np.asarray(table[column]) * shrink
    table["r_mag"] = np.asarray(table["r_mag"]) + (cosmology.distmod(z_new) - cosmology.distmod(z_old)).value
    table["redshift"] = z_new
    median, scatter, low, high = SEEING_ARCSEC
    seeing = np.clip(median * np.exp(rng.normal(0, scatter, n)), low, high)
    for band in "gri":
        table[f"seeing_{band}_arcsec"] = seeing
    table["n_stars"] = 0
    table["n_background"] = 0
    table["agn_strength"], table["agn_g_r"], table["agn_r_i"] = 0.0, 0.0, 0.0  # no nucleus
    return table


def examples(seed: int, n: int) -> Examples:
    from pipeline.oneshot.render import render_galaxies

    rng = np.random.default_rng(seed)
    sigma, gain = noise_levels()
    table = galaxies(rng, 2 * n)
    central, companion = table[:n], table[n:]
    size_px = (np.asarray(central["disk_re_arcsec"]) + np.asarray(companion["disk_re_arcsec"])) / PIXEL_SCALE_ARCSEC
    separation = np.clip(rng.uniform(0.6, 2.0, n) * size_px, *SEPARATION_PX)
    angle = rng.uniform(0, 2 * np.pi, n)
    companion["centre_dx_px"] = np.asarray(companion["centre_dx_px"]) + separation * np.cos(angle)
    companion["centre_dy_px"] = np.asarray(companion["centre_dy_px"]) + separation * np.sin(angle)
    r_band = 1
    images = [np.stack([a[r_band], b[r_band]]) / sigma for a, b in zip(
        render_galaxies(central, SIZE, noise=False, pixel_scale_arcsec=PIXEL_SCALE_ARCSEC),
        render_galaxies(companion, SIZE, noise=False, pixel_scale_arcsec=PIXEL_SCALE_ARCSEC), strict=True)]
    targets = np.stack(images).astype(np.float32)
    blend = targets.sum(1)
    # sky noise (1 in these units) plus the galaxies' own Poisson noise at the effective gain
    noisy = blend + np.sqrt(1.0 + np.maximum(blend, 0) / (gain * sigma)) * rng.standard_normal(blend.shape)
    truth = [{"apertures": target >= APERTURE_LEVEL, "measured": [measure(g, a) for g, a in
                                                                  zip(target, target >= APERTURE_LEVEL, strict=True)]}
             for target in targets]
    return Examples(noisy[:, None].astype(np.float32), targets, truth)


def measure(image: np.ndarray, aperture: np.ndarray) -> tuple[float, float, float, complex]:
    """(flux, x, y, complex ellipticity) of ``image`` within ``aperture``: the flux summed, the
    centroid and second moments of its positive part, e = (Qxx - Qyy + 2i Qxy) / (Qxx + Qyy).
    NaN centroid and ellipticity when nothing in the aperture is positive."""
    flux = float(image[aperture].sum())
    weight = np.clip(image, 0, None) * aperture
    total = weight.sum()
    if total <= 0:
        return flux, np.nan, np.nan, complex(np.nan, np.nan)
    y, x = np.indices(image.shape)
    cx, cy = (weight * x).sum() / total, (weight * y).sum() / total
    qxx = (weight * (x - cx) ** 2).sum() / total
    qyy = (weight * (y - cy) ** 2).sum() / total
    qxy = (weight * (x - cx) * (y - cy)).sum() / total
    return flux, float(cx), float(cy), complex(qxx - qyy, 2 * qxy) / max(qxx + qyy, 1e-12)


def answers(outputs: np.ndarray, _examples=None) -> np.ndarray:
    return np.asarray(outputs)


def photutils_deblended(examples: Examples) -> np.ndarray:
    """The classic answer: each stamp's segments, deblended; the central segment and the brightest
    other one, each as the stamp within it (zeros for a galaxy with no segment)."""
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import deblend_sources, detect_sources
    from photutils.utils import NoDetectionsWarning

    out = np.zeros((len(examples), 2, SIZE, SIZE), np.float32)
    for i, image in enumerate(examples.inputs[:, 0]):
        _, median, std = sigma_clipped_stats(image)
        data = image - median
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDetectionsWarning)
            segments = detect_sources(data, PHOTUTILS_NSIGMA * std, PHOTUTILS_NPIXELS)
            if segments is None:
                continue
            segments = deblend_sources(data, segments, PHOTUTILS_NPIXELS, n_levels=32, contrast=0.001,
                                       progress_bar=False)
        labels = segments.data
        centre = labels[SIZE // 2, SIZE // 2]
        if centre == 0:  # the centre fell between segments: the nearest one
            y, x = np.nonzero(labels)
            nearest = np.argmin(np.hypot(x - SIZE // 2, y - SIZE // 2))
            centre = labels[y[nearest], x[nearest]]
        out[i, 0] = np.where(labels == centre, data, 0)
        others = [k for k in segments.labels if k != centre]
        if others:
            brightest = max(others, key=lambda k: data[labels == k].sum())
            out[i, 1] = np.where(labels == brightest, data, 0)
    return out


def scores(images: np.ndarray, examples: Examples) -> dict:
    flux, centroid, ellipticity = [], [], []
    for answer, truth in zip(images, examples.truth, strict=True):
        for k in range(2):
            f_true, x_true, y_true, e_true = truth["measured"][k]
            if not truth["apertures"][k].any() or f_true <= 0:
                continue
            f, x, y, e = measure(answer[k], truth["apertures"][k])
            flux.append(abs(f / f_true - 1))
            # nothing found: the error of a centroid anywhere in the stamp, and of a round shape
            centroid.append(SIZE / 2 if np.isnan(x) else float(np.hypot(x - x_true, y - y_true)))
            ellipticity.append(abs(e_true) if np.isnan(e.real) else abs(e - e_true))
    return {"flux_error": float(np.mean(flux)), "centroid_error": float(np.mean(centroid)),
            "ellipticity_error": float(np.mean(ellipticity))}


TASK = AutomlTask(
    name="vst", title="VST-like deblending of galaxy pairs",
    instrument="VST OmegaCAM-like r band, 0.21\" pixels, 0.8\" seeing",
    size=SIZE, out_channels=2, output="brightness", losses=("msle", "l1_ssim"), hand_loss="msle",
    score_names={"flux_error": Score("flux error per galaxy", False),
                 "centroid_error": Score("centroid error", False, "px"),
                 "ellipticity_error": Score("ellipticity error", False)},
    examples=examples, answers=answers, baseline=photutils_deblended, baseline_name="photutils deblending",
    scores=scores, objective=relative_objective(("flux_error", "centroid_error", "ellipticity_error")),
    direction="minimize",
    objective_note="the worst ratio of the flux, centroid and ellipticity errors to photutils' "
                   "(below 1 beats it on all)",
    max_parameters=400_000,
)
