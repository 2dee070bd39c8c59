"""Task "vlba": finding compact sources in VLBA-like images, DECORAS's own setting (Rezaei et al.
2022: VLBA at 1.4 GHz, mJy sources at milliarcsecond resolution).

The simulator: the ten VLBA stations of CASA's ``vlba.cfg`` (assets/vlba, LGPL), each with its
own horizon (10 deg), at 1.4 GHz, observing 2-10 h about transit at declinations -15 to +65 deg,
2-minute integrations, natural or Briggs (robust 0.5) weighting; 64 x 64 images of 1.5 mas
pixels (beam about 12 x 6 mas). Each image holds 0-6 compact sources (Gaussians of 0.75-3 mas
FWHM, flux 3-60 times the image noise, log-uniform) anywhere but a 6-px margin, with thermal noise
of rms 1. Instruments (declination, track, weighting) are drawn anew for every set, so the
validation and held-out images are seen through coverages no training image had.

The network learns a mask: discs of 2 px radius at the sources whose peak is at least 5 times the
noise (:data:`TARGET_SNR`); its sources are the blobs of its map above 0.5, at their weighted
centres. The classic baseline is photutils: segmentation at 5 times the image's sigma-clipped rms
(at least 5 connected pixels), then deblended, at the segments' centroids. Scored: precision,
recall and F1, a found source matching a true one within 3 px (one to one); recall over sources
of peak SNR >= 5, and a find that matches a fainter true source counts neither way.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import scipy.ndimage
import scipy.optimize

from pipeline.automl import radio
from pipeline.automl.tasks import AutomlTask, Examples, Score

VLBA_CONFIG = Path(__file__).resolve().parents[2] / "assets" / "vlba" / "vlba.cfg"
FREQUENCY_HZ = 1.4e9
SIZE = 64
CELL_ARCSEC = 1.5e-3
INTEGRATION_S = 120.0
INSTRUMENTS_PER_SET = 12
MARGIN_PX = 6
MAX_SOURCES = 6
FLUX_RANGE = (3.0, 60.0)  # in units of the image noise (Jy over Jy/beam noise): peak SNR of a point
FWHM_RANGE_PX = (0.5, 2.0)
TARGET_SNR = 5.0
TARGET_RADIUS_PX = 2.0
MATCH_PX = 3.0
MAP_THRESHOLD = 0.5
PHOTUTILS_NSIGMA = 5.0
PHOTUTILS_NPIXELS = 5


def instruments(rng, n=INSTRUMENTS_PER_SET) -> list[radio.Instrument]:
    """``n`` observations of random declination, track length and weighting."""
    made = []
    for _ in range(n):
        weighting = "natural" if rng.random() < 0.5 else "briggs"
        made.append(radio.make_instrument(VLBA_CONFIG, FREQUENCY_HZ, SIZE, CELL_ARCSEC, rng.uniform(-15, 65),
                                          rng.uniform(2, 10), INTEGRATION_S, weighting))
    return made


def peak_snr(flux, fwhm_px, beam) -> np.ndarray:
    """A compact Gaussian's peak in the image (in units of the noise): its flux spread over the beam
    convolved with it."""
    major, minor, _ = beam
    fwhm_px = np.asarray(fwhm_px, float)
    return np.asarray(flux, float) * major * minor / np.sqrt((major**2 + fwhm_px**2) * (minor**2 + fwhm_px**2))


def examples(seed: int, n: int) -> Examples:
    rng = np.random.default_rng(seed)
    pool = instruments(rng)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    inputs = np.empty((n, 1, SIZE, SIZE), np.float32)
    targets = np.zeros((n, 1, SIZE, SIZE), np.float32)
    truth = []
    for i in range(n):
        instrument = pool[int(rng.integers(len(pool)))]
        k = int(rng.integers(0, MAX_SOURCES + 1))
        x, y = rng.uniform(MARGIN_PX, SIZE - 1 - MARGIN_PX, (2, k))
        flux = np.exp(rng.uniform(*np.log(FLUX_RANGE), k))
        fwhm = rng.uniform(*FWHM_RANGE_PX, k)
        sky = radio.gaussian_sky([{"x": xs, "y": ys, "fwhm_x": w, "fwhm_y": w, "pa": 0.0}
                                  for xs, ys, w in zip(x, y, fwhm, strict=True)], flux, SIZE)
        inputs[i, 0] = radio.observe(sky, instrument, rng)
        snr = peak_snr(flux, fwhm, instrument.beam)
        for xs, ys in zip(x[snr >= TARGET_SNR], y[snr >= TARGET_SNR], strict=True):
            targets[i, 0][(xx - xs) ** 2 + (yy - ys) ** 2 <= TARGET_RADIUS_PX**2] = 1.0
        truth.append({"x": x, "y": y, "snr": snr, "flux": flux})
    return Examples(inputs, targets, truth)


def answers(outputs: np.ndarray, _examples=None) -> list[np.ndarray]:
    """Sources of each detection map: (k, 2) x, y of the blobs above :data:`MAP_THRESHOLD`."""
    found = []
    for image in np.asarray(outputs)[:, 0]:
        labels, k = scipy.ndimage.label(image > MAP_THRESHOLD)
        centres = scipy.ndimage.center_of_mass(image, labels, range(1, k + 1)) if k else []
        found.append(np.array([(x, y) for y, x in centres]).reshape(-1, 2))
    return found


def photutils_sources(examples: Examples) -> list[np.ndarray]:
    """The classic finder: photutils segmentation and deblending of each image."""
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources
    from photutils.utils import NoDetectionsWarning

    found = []
    for image in examples.inputs[:, 0]:
        _, median, std = sigma_clipped_stats(image)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDetectionsWarning)  # an empty image is an answer
            segments = detect_sources(image - median, PHOTUTILS_NSIGMA * std, PHOTUTILS_NPIXELS)
        if segments is None:
            found.append(np.zeros((0, 2)))
            continue
        segments = deblend_sources(image - median, segments, PHOTUTILS_NPIXELS, progress_bar=False)
        catalog = SourceCatalog(image - median, segments)
        found.append(np.stack([catalog.x_centroid, catalog.y_centroid], axis=1))
    return found


def counts(found: np.ndarray, truth: dict) -> tuple[int, int, int]:
    """(true positives, false positives, missed) of one image: found and true sources paired one
    to one within :data:`MATCH_PX` (fewest unpaired, then least distance); a find paired with a
    true source fainter than :data:`TARGET_SNR` is neither right nor wrong."""
    true_xy = np.stack([truth["x"], truth["y"]], axis=1)
    bright = truth["snr"] >= TARGET_SNR
    if not len(found) or not len(true_xy):
        return 0, len(found), int(bright.sum())
    distance = np.hypot(*(found[:, None, :] - true_xy[None, :, :]).transpose(2, 0, 1))
    cost = np.where(distance <= MATCH_PX, distance, 1e6)
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    paired = cost[rows, cols] < 1e6
    rows, cols = rows[paired], cols[paired]
    tp = int(bright[cols].sum())
    fp = len(found) - len(rows)
    return tp, fp, int(bright.sum()) - tp


def scores(found: list, examples: Examples) -> dict:
    tp, fp, fn = (int(v) for v in np.sum([counts(f, t) for f, t in zip(found, examples.truth, strict=True)], axis=0))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


TASK = AutomlTask(
    name="vlba", title="VLBA-like source detection", instrument="VLBA (10 stations), 1.4 GHz, 1.5 mas pixels",
    size=SIZE, out_channels=1, output="probability", losses=("bce", "dice", "focal"), hand_loss="bce",
    score_names={"f1": Score("F1", True), "precision": Score("precision", True), "recall": Score("recall", True)},
    examples=examples, answers=answers, baseline=photutils_sources, baseline_name="photutils",
    scores=scores, objective=lambda s, _b: s["f1"], direction="maximize",
    objective_note="F1 of the validation images",
    # the target: the hand-designed DECORAS's F1 with at most half its parameters (120,545)
    max_parameters=120_545 // 2,
)
