"""Scoring a source catalogue against the truth of simulated cubes.

Two matching rules, reported side by side (the second is how Delli Veneri et al. 2022 scored):

- ``strict``: per cube, a one-to-one assignment of predictions to true sources (Hungarian,
  ``scipy.optimize.linear_sum_assignment``) on the 2-D distance between centres; it first makes
  as many pairs within ``max_distance_px`` as possible, then the smallest total distance. Pairs
  farther than ``max_distance_px`` are dropped; every unmatched prediction is a false positive.
  Mean IoU: over the matched pairs.
- ``lenient``: the rule of the paper's test code. A true source is a true positive when the
  nearest predicted centre in its cube is within ``max_distance_px`` (one prediction may serve
  several sources); false positives are only the surplus, ``max(0, n_pred - n_true)`` per cube.
  Mean IoU: each true source's best IoU with any predicted box of its cube (0 when there is
  none), averaged over all true sources.

Conventions (those of ``pipeline.alma.simulate``): pixels and channels 0-based; boxes
``x0, y0, x1, y1, z0, z1`` inclusive-exclusive; sizes are FWHM in pixels along the source's own
axes; ``pa`` degrees counter-clockwise from +x. Tables may carry a ``cube`` column (file name;
compared by base name); without it everything is one cube.

Definitions chosen here:

- truth box (``truth_boxes``): the paper's rule computed analytically. The source's own
  integrated image (a unit-peak elliptical Gaussian in a square image of ``image_size_px``
  pixels) is thresholded at 3 standard deviations of that image; the box is the ellipse where
  the Gaussian exceeds that level, rounded to the pixel centres it covers. For 256 px and FWHM
  2-8 px the level is 2-7 % of the peak, i.e. the ellipse at 2.3-2.8 sigma (about 1.0-1.2 FWHM
  from the centre). Channels: ``z +- fwhm_z`` (the paper's emission range, peak +- FWHM).
- blended (``blended_flags``): a source is blended when another source of the same cube
  overlaps it on the sky (the distance between centres is less than the sum of the two
  half-power radii along the line joining them, i.e. their half-power ellipses overlap along
  that line) and in frequency (``|z_a - z_b| < (fwhm_z_a + fwhm_z_b) / 2``: their lines
  overlap above half power). Intrinsic sizes, not convolved with the beam.
- residuals: prediction - truth over matched pairs. Sizes and angle are compared as major and
  minor FWHM and the position angle of the major axis (``fwhm_x``/``fwhm_y`` name the same
  Gaussian in two ways: 5 x 3 px at 0 deg is 3 x 5 px at 90 deg), the angle difference
  wrapped to (-90, 90] deg because an ellipse's angle is defined modulo 180 deg. Flux (the
  catalogue's integrated line flux, Jy km/s) against the truth's ``flux``, or one derived from
  ``peak_jy_per_pix`` by ``truth_line_flux`` when the channel width in km/s is given.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import scipy.optimize
from astropy.table import Table

from pipeline.alma.gaussian import FWHM_PER_SIGMA
from pipeline.alma.uncertainties import size_upper_limit
from pipeline.errors import InputError
from pipeline.tables import read_table

RULES = ("strict", "lenient")
DEFAULT_SNR_BINS = (0.0, 3.0, 5.0, 10.0, np.inf)
BOX_COLUMNS = ("x0", "y0", "x1", "y1", "z0", "z1")
TRUTH_COLUMNS = ("x", "y", "fwhm_x", "fwhm_y", "pa", "z", "fwhm_z")
CATALOG_COLUMNS = ("x", "y", "x0", "y0", "x1", "y1")
# what each residual is, with its unit, in the order reports list them
RESIDUALS = {"x": "px", "y": "px", "z": "channels", "fwhm_major": "px", "fwhm_minor": "px",
             "pa": "deg", "flux": "Jy km/s"}
#: characterisation is scored on matched sources at least this bright (the truth's SNR)...
CHARACTERISATION_SNR = 10.0
#: ...and the angle on those more elongated than this minor / major axis ratio
ELONGATED_AXIS_RATIO = 0.8
PAPER_THRESHOLD_STD = 3.0  # the paper's truth box: integrated image above 3 std of itself


# --- truth ------------------------------------------------------------------------------------

def truth_boxes(truth, image_size_px: int = 256) -> Table:
    """A copy of ``truth`` with integer box columns ``x0, y0, x1, y1, z0, z1`` (inclusive-exclusive).

    Needs x, y, fwhm_x, fwhm_y (FWHM, px), pa (deg), z, fwhm_z (channels). On the sky: the
    ellipse where the source's unit-peak Gaussian exceeds ``3 * std`` of its own image of
    ``image_size_px`` x ``image_size_px`` pixels (the paper's min-max normalised integrated image
    thresholded at 3 std; the std is the analytic one of an untruncated Gaussian), as the range
    of pixel centres its bounding box covers. In frequency: the channels within ``fwhm_z`` of
    ``z``. A box always holds the pixel and channel nearest the centre; boxes are clipped at 0
    but not at the far edges (the image size is not in the truth).
    """
    _require(truth, TRUTH_COLUMNS, "truth")
    if not image_size_px or image_size_px < 1:
        raise InputError(f"image_size_px must be a positive number of pixels, got {image_size_px!r}.")
    x, y, fx, fy, pa, z, fz = (_floats(truth, c, "truth") for c in TRUTH_COLUMNS)
    sig_a, sig_b = np.abs(fx) / FWHM_PER_SIGMA, np.abs(fy) / FWHM_PER_SIGMA
    pixels = float(image_size_px) ** 2
    mean = 2.0 * np.pi * sig_a * sig_b / pixels
    mean_square = np.pi * sig_a * sig_b / pixels
    level = PAPER_THRESHOLD_STD * np.sqrt(np.maximum(mean_square - mean**2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Gaussian >= level inside (along/sig_a)^2 + (across/sig_b)^2 <= k^2
        k = np.sqrt(2.0 * np.log(1.0 / np.clip(level, 1e-300, 1.0)))
    theta = np.radians(pa)
    half_x = k * np.hypot(sig_a * np.cos(theta), sig_b * np.sin(theta))
    half_y = k * np.hypot(sig_a * np.sin(theta), sig_b * np.cos(theta))

    out = Table(truth, copy=True)
    for axis, centre, half in (("x", x, half_x), ("y", y, half_y), ("z", z, np.abs(fz))):
        nearest = np.rint(centre)
        lo = np.maximum(np.minimum(np.ceil(centre - half), nearest), 0)
        hi = np.maximum(np.floor(centre + half) + 1, nearest + 1)
        out[f"{axis}0"] = _ints(lo)
        out[f"{axis}1"] = _ints(np.maximum(hi, lo + 1))
    return out


def truth_line_flux(truth, channel_width_kms: float) -> np.ndarray:
    """Integrated line flux (Jy km/s, the catalogue's ``flux``) of each simulated source:
    ``peak_jy_per_pix`` times the volume of its 3-D Gaussian,
    ``(pi / (4 ln 2))^1.5 * fwhm_x * fwhm_y * fwhm_z``, in pixels x channels, times the channel
    width in km/s (10 MHz at 230 GHz is 13.03 km/s). For line-only sources (the simulator's
    default); with a continuum, ``peak_jy_per_pix`` includes it and this is not the line's flux.
    """
    _require(truth, ("peak_jy_per_pix", "fwhm_x", "fwhm_y", "fwhm_z"), "truth")
    if not (channel_width_kms and np.isfinite(channel_width_kms) and channel_width_kms > 0):
        raise InputError(f"channel_width_kms must be a positive width in km/s, got "
                         f"{channel_width_kms!r}.")
    peak, fx, fy, fz = (_floats(truth, c, "truth")
                        for c in ("peak_jy_per_pix", "fwhm_x", "fwhm_y", "fwhm_z"))
    return (peak * (np.pi / (4.0 * np.log(2.0))) ** 1.5 * np.abs(fx * fy * fz)
            * channel_width_kms)


def blended_flags(truth) -> np.ndarray:
    """Boolean per row of ``truth``: True where another source of the same cube overlaps it on the
    sky and in frequency.

    Sky: centres closer than the sum of the two half-power radii along the line joining them
    (the half-power radius of an ellipse with FWHM a, b at angle t from its own x axis is
    ``1 / sqrt((2 cos t / a)^2 + (2 sin t / b)^2)``). Frequency: ``|z_a - z_b| < (fwhm_z_a +
    fwhm_z_b) / 2``. Sources that overlap on the sky but not in frequency count as isolated:
    focusing on each line's channels separates them.
    """
    _require(truth, TRUTH_COLUMNS, "truth")
    x, y, fx, fy, pa, z, fz = (_floats(truth, c, "truth") for c in TRUTH_COLUMNS)
    cubes = _cube_names(truth, "truth") if "cube" in truth.colnames else np.full(len(truth), "")
    flags = np.zeros(len(truth), bool)
    for cube in np.unique(cubes):
        rows = np.flatnonzero(cubes == cube)
        if len(rows) < 2:
            continue
        dx = x[rows][None, :] - x[rows][:, None]  # [i, j]: from source i towards source j
        dy = y[rows][None, :] - y[rows][:, None]
        towards = np.arctan2(dy, dx)
        radius_i = _half_power_radius(fx[rows][:, None], fy[rows][:, None],
                                      towards - np.radians(pa[rows])[:, None])
        radius_j = _half_power_radius(fx[rows][None, :], fy[rows][None, :],
                                      towards - np.radians(pa[rows])[None, :])
        on_sky = np.hypot(dx, dy) < radius_i + radius_j
        in_frequency = np.abs(z[rows][:, None] - z[rows][None, :]) < (
            fz[rows][:, None] + fz[rows][None, :]) / 2.0
        overlap = on_sky & in_frequency
        np.fill_diagonal(overlap, False)
        flags[rows] = overlap.any(axis=1)
    return flags


def _half_power_radius(fwhm_a, fwhm_b, angle_rad):
    with np.errstate(divide="ignore"):
        return 1.0 / np.hypot(2.0 * np.cos(angle_rad) / fwhm_a, 2.0 * np.sin(angle_rad) / fwhm_b)


# --- boxes and matching -----------------------------------------------------------------------

def box_iou(boxes_a, boxes_b, axes: str = "xy") -> np.ndarray:
    """Intersection over union of every box of ``boxes_a`` with every box of ``boxes_b``.

    Boxes are Tables (or dicts of arrays) with columns ``{axis}0, {axis}1`` (inclusive-exclusive
    pixel or channel indices) for each axis in ``axes`` ("xy" for 2-D, "xyz" for 3-D). Returns
    an (n_a, n_b) array; 0 where a union is empty or a box is undefined (NaN).
    """
    n_a, n_b = len(boxes_a[f"{axes[0]}0"]), len(boxes_b[f"{axes[0]}0"])
    inter, size_a, size_b = np.ones((n_a, n_b)), np.ones(n_a), np.ones(n_b)
    for axis in axes:
        lo_a, hi_a = (np.asarray(boxes_a[f"{axis}{e}"], float) for e in "01")
        lo_b, hi_b = (np.asarray(boxes_b[f"{axis}{e}"], float) for e in "01")
        overlap = np.minimum(hi_a[:, None], hi_b[None, :]) - np.maximum(lo_a[:, None], lo_b[None, :])
        inter *= np.clip(overlap, 0.0, None)
        size_a *= np.clip(hi_a - lo_a, 0.0, None)
        size_b *= np.clip(hi_b - lo_b, 0.0, None)
    union = size_a[:, None] + size_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return np.nan_to_num(iou, nan=0.0)


def match(truth, catalog, rule: str = "strict", max_distance_px: float = 3.0,
          image_size_px: int = 256) -> Table:
    """Pairs (true source, prediction) under ``rule`` ("strict" or "lenient", see the module).

    Returns a Table with one row per pair: ``cube``, ``truth_row`` and ``catalog_row`` (row
    indices into the given tables), ``distance_px`` (2-D centre distance), ``iou`` (2-D box IoU,
    truth boxes from ``truth_boxes`` unless the truth has its own box columns) and ``iou_3d``
    (NaN when the catalogue has no z0/z1). Under "lenient" a catalogue row may appear in several
    pairs. Bad input raises ``InputError``.
    """
    _check_rule(rule)
    _check_distance(max_distance_px)
    truth, catalog = _prepare(truth, catalog, image_size_px)
    return _match(truth, catalog, rule, max_distance_px)


def _match(truth, catalog, rule, max_distance_px) -> Table:
    cubes, truth_rows, catalog_rows, distances = [], [], [], []
    for cube, t_rows, c_rows in _per_cube(truth, catalog):
        if not len(t_rows) or not len(c_rows):
            continue
        d = np.hypot(truth["x"][t_rows][:, None] - catalog["x"][c_rows][None, :],
                     truth["y"][t_rows][:, None] - catalog["y"][c_rows][None, :])
        close = d <= max_distance_px  # False for NaN centres
        if rule == "strict":
            # a far pair costs more than any set of close ones: the assignment first maximises
            # the number of close pairs, then minimises their total distance
            far = max_distance_px * min(d.shape) + 1.0
            i, j = scipy.optimize.linear_sum_assignment(np.where(close, d, far))
        else:
            i = np.arange(len(t_rows))
            j = np.argmin(np.where(np.isnan(d), np.inf, d), axis=1)
        keep = close[i, j]
        i, j = i[keep], j[keep]
        cubes += [cube] * len(i)
        truth_rows.append(t_rows[i])
        catalog_rows.append(c_rows[j])
        distances.append(d[i, j])
    pairs = Table()
    pairs["cube"] = np.array(cubes, dtype=str) if cubes else np.array([], dtype=str)
    pairs["truth_row"] = np.concatenate(truth_rows).astype(int) if truth_rows else np.array([], int)
    pairs["catalog_row"] = (np.concatenate(catalog_rows).astype(int) if catalog_rows
                            else np.array([], int))
    pairs["distance_px"] = np.concatenate(distances) if distances else np.array([], float)
    t, c = truth[pairs["truth_row"]], catalog[pairs["catalog_row"]]
    pairs["iou"] = _paired_iou(t, c, "xy")
    pairs["iou_3d"] = _paired_iou(t, c, "xyz") if _has_z_boxes(catalog) else np.full(len(pairs), np.nan)
    return pairs


def _paired_iou(a, b, axes):
    if not len(a):
        return np.array([], float)
    return np.array([box_iou(a[k:k + 1], b[k:k + 1], axes)[0, 0] for k in range(len(a))])


# --- scores -----------------------------------------------------------------------------------

def evaluate(truth, catalog, rule: str = "strict", snr_bins=DEFAULT_SNR_BINS,
             snr_column: str = "snr_peak", max_distance_px: float = 3.0,
             image_size_px: int = 256, channel_width_kms: float | None = None) -> dict:
    """Score ``catalog`` against ``truth`` (astropy Tables) under ``rule``; a JSON-ready dict.

    Keys: ``rule``, ``max_distance_px``, ``image_size_px``, ``n_cubes``; ``overall`` with
    ``n_true, n_pred, tp, fp, fn, precision, recall, f1, mean_iou, mean_iou_3d``; ``snr_bins``,
    a list of the same per bin plus ``label, low, high, tp_pred`` (None without the truth's
    ``snr_column``); ``blending`` with ``blended`` and ``isolated``; ``residuals`` per
    parameter (``n, mean, std``; see ``RESIDUALS``); ``characterisation``, the size and angle
    residuals at truth SNR >= ``CHARACTERISATION_SNR`` (angle: axis ratio < ``ELONGATED_AXIS_RATIO``
    only), None without ``snr_column``; ``notes``. Undefined values are None.

    SNR bins ``[low, high)``; the first bin also takes values below its low edge (a faint
    source's measured peak can be negative). Recall per bin counts true sources by the truth's
    ``snr_column``; precision per bin counts predictions by their own ``snr`` (a matched
    prediction is correct, an unmatched one a false positive), so ``tp`` (true sources found)
    and ``tp_pred`` (predictions correct) can differ within a bin. Blended vs isolated (the
    truth's ``blended`` column if it has one, else ``blended_flags``): recall and mean IoU of
    those true sources; precision there is None, since a false positive belongs to no true
    source. Under "lenient" precision exists only overall (its false positives are a per-cube
    surplus, not predictions). Flux residuals (Jy km/s) need the catalogue's ``flux`` and the
    truth's ``flux``, or, given ``channel_width_kms``, the truth's ``peak_jy_per_pix`` turned into
    a flux by ``truth_line_flux``.
    """
    _check_rule(rule)
    _check_distance(max_distance_px)
    edges = _check_bins(snr_bins)
    truth, catalog = _prepare(truth, catalog, image_size_px)
    notes = []
    if "flux" not in truth.colnames and channel_width_kms is not None:
        truth["flux"] = truth_line_flux(truth, channel_width_kms)
        notes.append(f"true flux from peak_jy_per_pix x Gaussian volume x {channel_width_kms:g} "
                     f"km/s per channel (line-only sources).")
    pairs = _match(truth, catalog, rule, max_distance_px)
    n_true = len(truth)
    found = np.zeros(n_true, bool)
    found[pairs["truth_row"]] = True
    correct = np.zeros(len(catalog), bool)
    correct[pairs["catalog_row"]] = True
    has_z = _has_z_boxes(catalog)

    if rule == "strict":
        # per true source: IoU with its partner (NaN when unmatched, left out of the means)
        iou = np.full(n_true, np.nan)
        iou[pairs["truth_row"]] = pairs["iou"]
        iou_3d = np.full(n_true, np.nan)
        iou_3d[pairs["truth_row"]] = pairs["iou_3d"]
        fp_total = int(len(catalog) - correct.sum())
    else:
        iou, iou_3d = _best_iou(truth, catalog, "xy"), (
            _best_iou(truth, catalog, "xyz") if has_z else np.full(n_true, np.nan))
        fp_total = sum(max(0, len(c) - len(t)) for _, t, c in _per_cube(truth, catalog))
        notes.append("lenient: false positives are the surplus max(0, n_pred - n_true) per cube; "
                     "precision per SNR bin is not defined.")
    if not has_z:
        notes.append("catalogue has no z0/z1 columns: no 3-D IoU.")

    overall = _summary(found, iou, correct if rule == "strict" else None, fp_total)
    overall["tp"] = int(found.sum())
    overall["mean_iou_3d"] = _mean(iou_3d)
    if rule == "lenient":
        overall["n_pred"] = len(catalog)
        overall["precision"] = _ratio(overall["tp"], overall["tp"] + fp_total)
        overall["f1"] = _f1(overall["precision"], overall["recall"])

    by_snr = None
    if snr_column in truth.colnames:
        pred_snr = catalog["snr"] if "snr" in catalog.colnames else None
        if pred_snr is None and rule == "strict":
            notes.append("catalogue has no 'snr' column: no precision per SNR bin.")
        truth_bin = _bin(truth[snr_column], edges)
        pred_bin = _bin(pred_snr, edges) if pred_snr is not None else None
        by_snr = []
        for b, (low, high) in enumerate(pairwise(edges)):
            in_bin = truth_bin == b
            if rule == "strict" and pred_bin is not None:
                row = _summary(found[in_bin], iou[in_bin], correct[pred_bin == b])
            else:
                row = _summary(found[in_bin], iou[in_bin])
            by_snr.append({"label": _bin_label(edges, b), "low": _num(low), "high": _num(high),
                           **row})
        unbinned = int(np.isnan(truth[snr_column]).sum())
        if unbinned:
            notes.append(f"{unbinned} true sources have no {snr_column}: in no SNR bin.")
    else:
        notes.append(f"truth has no '{snr_column}' column: no SNR bins.")

    blended = truth["blended"]
    blending = {name: _summary(found[mask], iou[mask])
                for name, mask in (("blended", blended), ("isolated", ~blended))}

    residuals = _residuals(truth, catalog, pairs)
    characterisation = None
    if snr_column in truth.colnames:
        bright = pairs[np.asarray(truth[snr_column][pairs["truth_row"]], float) >= CHARACTERISATION_SNR]
        characterisation = {"snr_min": CHARACTERISATION_SNR, "elongated_axis_ratio": ELONGATED_AXIS_RATIO,
                            **{k: v for k, v in _residuals(truth, catalog, bright, elongated_pa=True).items()
                               if k in ("fwhm_major", "fwhm_minor", "pa")}}
        if all(k in catalog.colnames for k in ("resolved", "fwhm_x_err", "fwhm_y_err")):
            characterisation.update(_by_resolution(truth, catalog, bright))
    if residuals["flux"]["n"] == 0 and not ("flux" in truth.colnames and "flux" in catalog.colnames):
        notes.append("flux not compared: it needs 'flux' (Jy km/s) in the catalogue and in the "
                     "truth (or the truth's peak_jy_per_pix and channel_width_kms).")

    return {"rule": rule, "max_distance_px": float(max_distance_px),
            "image_size_px": int(image_size_px), "n_cubes": len(np.unique(truth["cube"])),
            "snr_column": snr_column, "overall": overall, "snr_bins": by_snr,
            "blending": blending, "residuals": residuals, "characterisation": characterisation,
            "notes": notes}


def _summary(found, iou, correct=None, fp=None) -> dict:
    """Counts and scores of one group of true sources (``found``, ``iou`` per source) and, under
    the strict rule, of one group of predictions (``correct`` per prediction)."""
    n_true, tp = len(found), int(np.sum(found))
    row = {"n_true": n_true, "tp": tp, "fn": n_true - tp, "recall": _ratio(tp, n_true),
           "n_pred": None, "tp_pred": None, "fp": None, "precision": None, "f1": None,
           "mean_iou": _mean(iou)}
    if correct is not None:
        tp_pred = int(np.sum(correct))
        fp = len(correct) - tp_pred if fp is None else fp
        row.update(n_pred=len(correct), tp_pred=tp_pred, fp=int(fp),
                   precision=_ratio(tp_pred, tp_pred + fp))
        row["f1"] = _f1(row["precision"], row["recall"])
    elif fp is not None:
        row["fp"] = int(fp)
    return row


def _best_iou(truth, catalog, axes) -> np.ndarray:
    """Each true source's best IoU with any predicted box of its cube (0 without predictions)."""
    best = np.zeros(len(truth))
    for _, t_rows, c_rows in _per_cube(truth, catalog):
        if len(t_rows) and len(c_rows):
            best[t_rows] = box_iou(truth[t_rows], catalog[c_rows], axes).max(axis=1)
    return best


def _residuals(truth, catalog, pairs, elongated_pa: bool = False) -> dict:
    """prediction - truth of each parameter over ``pairs``: n, mean (the bias) and std. With
    ``elongated_pa`` the angle only of true sources of axis ratio below ``ELONGATED_AXIS_RATIO``
    (a round source has no angle), with ``n_undefined`` of them the finder called round."""
    t, c = truth[pairs["truth_row"]], catalog[pairs["catalog_row"]]
    diffs = {}
    for name in ("x", "y", "z", "flux"):
        if name in t.colnames and name in c.colnames:
            diffs[name] = c[name] - t[name]
    if all(k in c.colnames for k in ("fwhm_x", "fwhm_y", "pa")):
        t_major, t_minor, t_pa = major_minor(t["fwhm_x"], t["fwhm_y"], t["pa"])
        c_major, c_minor, c_pa = major_minor(c["fwhm_x"], c["fwhm_y"], c["pa"])
        diffs["fwhm_major"] = c_major - t_major
        diffs["fwhm_minor"] = c_minor - t_minor
        diffs["pa"] = wrap_pa(c_pa - t_pa)
        if elongated_pa:
            diffs["pa"] = diffs["pa"][t_minor < ELONGATED_AXIS_RATIO * t_major]
    floors = {}
    if all(k in c.colnames for k in ("fwhm_x", "fwhm_y", "fwhm_x_err", "fwhm_y_err")):
        # the noise's share of the scatter: the rms of the catalogue's own errors (uncertainties.py)
        swap = np.asarray(c["fwhm_y"], float) > np.asarray(c["fwhm_x"], float)
        x_err, y_err = np.asarray(c["fwhm_x_err"], float), np.asarray(c["fwhm_y_err"], float)
        for name, err in (("fwhm_major", np.where(swap, y_err, x_err)), ("fwhm_minor", np.where(swap, x_err, y_err))):
            err = err[np.isfinite(err)]
            floors[name] = _num(np.sqrt(np.mean(err ** 2))) if len(err) else None
    out = {}
    for name, unit in RESIDUALS.items():
        values = np.asarray(diffs.get(name, []), float)
        values = values[np.isfinite(values)]
        out[name] = {"unit": unit, "n": len(values), "mean": _mean(values),
                     "std": _num(np.std(values, ddof=1)) if len(values) > 1 else None}
        if name in floors:
            out[name]["noise_floor"] = floors[name]
    if "pa" in diffs:
        out["pa"]["n_undefined"] = int(np.isnan(np.asarray(diffs["pa"], float)).sum())
    return out


def _by_resolution(truth, catalog, pairs) -> dict:
    """The sizes split by what the catalogue says of each source: the residuals of those it calls
    ``resolved``; for the others (sizes only bounded: a source much smaller than the beam widens
    the image by less than the noise moves it), how often the true major axis is below the
    catalogue's upper limit."""
    called = np.asarray(catalog["resolved"], bool)[pairs["catalog_row"]]
    resolved = _residuals(truth, catalog, pairs[called], elongated_pa=True)
    t, c = truth[pairs["truth_row"][~called]], catalog[pairs["catalog_row"][~called]]
    limit = np.fmax(size_upper_limit(c["fwhm_x"], c["fwhm_x_err"]), size_upper_limit(c["fwhm_y"], c["fwhm_y_err"]))
    below = np.fmax(np.asarray(t["fwhm_x"], float), np.asarray(t["fwhm_y"], float)) <= limit
    return {"resolved": {"n": int(called.sum()), **{k: resolved[k] for k in ("fwhm_major", "fwhm_minor", "pa")}},
            "unresolved": {"n": int((~called).sum()), "limit_holds": _ratio(int(below.sum()), len(below))}}


def major_minor(fwhm_x, fwhm_y, pa_deg):
    """(major FWHM, minor FWHM, PA of the major axis in deg) of ellipses given along their own
    x and y axes: the major axis is the source's y axis, 90 deg further, when fwhm_y > fwhm_x."""
    fwhm_x, fwhm_y, pa_deg = (np.asarray(v, float) for v in (fwhm_x, fwhm_y, pa_deg))
    swap = fwhm_y > fwhm_x
    return (np.where(swap, fwhm_y, fwhm_x), np.where(swap, fwhm_x, fwhm_y),
            np.where(swap, pa_deg + 90.0, pa_deg))


def wrap_pa(delta_deg):
    """Angle differences wrapped to (-90, 90] deg (an ellipse's PA is defined modulo 180)."""
    return 90.0 - np.mod(90.0 - np.asarray(delta_deg, float), 180.0)


# --- files and report -------------------------------------------------------------------------

def read_truth(path) -> Table:
    """A truth table (CSV or VOTable): ``simulate``'s truth.csv, one row per true source with at
    least x, y and either the sizes (fwhm_x, fwhm_y, pa, z, fwhm_z) or the boxes."""
    return read_table(path, "truth")


def truth_for_cube(cube_path) -> Table | None:
    """The truth of one simulated cube, or None: ``<stem>_truth.csv`` beside it, or the rows of
    ``truth.csv`` in its folder whose ``cube`` is its file name (what ``simulate`` writes)."""
    cube_path = Path(cube_path)
    for candidate in (cube_path.with_name(cube_path.stem + "_truth.csv"), cube_path.parent / "truth.csv"):
        if candidate.is_file():
            table = read_truth(candidate)
            if "cube" in table.colnames:
                table = table[np.array([Path(str(name)).name == cube_path.name for name in table["cube"]], bool)]
            if len(table):
                return table
    return None


def classify(truth, catalog, cube_name: str, image_size_px: int) -> dict:
    """Each catalogue row against one cube's truth (strict rule): ``{"rows": ["true positive" or
    "false positive" per catalogue row], "missed": [the truth rows nothing matched]}``."""
    catalog = catalog.copy(copy_data=False)
    catalog["cube"] = truth["cube"][0] if "cube" in truth.colnames else cube_name
    pairs = match(truth, catalog, rule="strict", image_size_px=image_size_px)
    matched_catalog = {int(r) for r in pairs["catalog_row"]}
    matched_truth = {int(r) for r in pairs["truth_row"]}
    return {"rows": ["true positive" if i in matched_catalog else "false positive" for i in range(len(catalog))],
            "missed": [truth[i] for i in range(len(truth)) if i not in matched_truth]}


def evaluate_files(truth_csv, catalog_csv, rule: str = "both", **options) -> dict:
    """Read a truth table (``simulate``'s truth.csv) and a catalogue (CSV or VOTable, as ``detect``
    writes it, or any table with x, y and the box x0, y0, x1, y1) and score them.

    ``rule``: "strict", "lenient" or "both". ``options`` go to ``evaluate`` (``snr_bins``,
    ``snr_column``, ``max_distance_px``, ``image_size_px``, ``channel_width_kms``). Returns ``{"truth": path,
    "catalog": path, "rules": {rule: evaluate(...)}}``, JSON-ready; ``format_report`` prints it.
    """
    rules = RULES if rule == "both" else (rule,)
    for r in rules:
        _check_rule(r, allow_both=True)
    truth = read_truth(truth_csv)
    catalog = read_table(catalog_csv, "catalogue")
    return {"truth": str(truth_csv), "catalog": str(catalog_csv),
            "rules": {r: evaluate(truth, catalog, rule=r, **options) for r in rules}}


RULE_TITLES = {
    "strict": "strict: one-to-one (Hungarian) within {d:g} px; every unmatched prediction a FP",
    "lenient": ("lenient (the paper's): TP if the nearest prediction is within {d:g} px; "
                "FP = max(0, n_pred - n_true) per cube"),
}


def format_report(result: dict) -> str:
    """A readable table per rule, from ``evaluate_files`` or from one ``evaluate`` result."""
    lines = []
    if "rules" in result:
        lines += [f"truth     {result['truth']}", f"catalogue {result['catalog']}"]
        results = list(result["rules"].values())
    else:
        results = [result]
    for r in results:
        o = r["overall"]
        lines += ["", RULE_TITLES[r["rule"]].format(d=r["max_distance_px"]),
                  (f"  {r['n_cubes']} cubes, {o['n_true']} true sources, {o['n_pred']} "
                   f"predictions; mean IoU {_fmt(o['mean_iou'])} (3-D {_fmt(o['mean_iou_3d'])})"),
                  (f"  {'group':<14}{'n_true':>7}{'TP':>6}{'FN':>6}{'recall':>8}"
                   f"{'n_pred':>8}{'FP':>6}{'precision':>10}{'F1':>7}{'IoU':>7}")]
        rows = [("all", o)]
        rows += [(f"SNR {b['label']}", b) for b in (r["snr_bins"] or [])]
        rows += [(name, r["blending"][name]) for name in ("blended", "isolated")]
        for name, s in rows:
            lines.append(f"  {name:<14}{s['n_true']:>7}{s['tp']:>6}{s['fn']:>6}{_fmt(s['recall']):>8}"
                         f"{_fmt(s['n_pred']):>8}{_fmt(s['fp']):>6}{_fmt(s['precision']):>10}"
                         f"{_fmt(s['f1']):>7}{_fmt(s['mean_iou']):>7}")
        res = r["residuals"]
        lines += [f"  residuals, prediction - truth ({o['tp']} matched true sources):",
                  f"  {'parameter':<14}{'unit':<16}{'n':>5}{'mean':>10}{'std':>10}"]
        for name, v in res.items():
            lines.append(f"  {name:<14}{v['unit']:<16}{v['n']:>5}{_fmt(v['mean']):>10}"
                         f"{_fmt(v['std']):>10}")
        ch = r.get("characterisation")
        if ch:
            lines += [f"  characterisation at SNR >= {ch['snr_min']:g} (angle: axis ratio < "
                      f"{ch['elongated_axis_ratio']:g}; {ch['pa'].get('n_undefined', 0)} called round):"]
            for name in ("fwhm_major", "fwhm_minor", "pa"):
                v = ch[name]
                floor = f"  (noise floor {_fmt(v['noise_floor'])})" if v.get("noise_floor") is not None else ""
                lines.append(f"  {name:<14}{v['unit']:<16}{v['n']:>5}{_fmt(v['mean']):>10}{_fmt(v['std']):>10}{floor}")
            if "resolved" in ch:
                res_, unres = ch["resolved"], ch["unresolved"]
                lines.append(f"  of which the catalogue calls {res_['n']} resolved, {unres['n']} unresolved "
                             f"(true major FWHM below its upper limit for {_fmt(unres['limit_holds'])})")
                for name in ("fwhm_major", "fwhm_minor", "pa"):
                    v = res_[name]
                    lines.append(f"  {'  ' + name:<14}{'resolved':<16}{v['n']:>5}{_fmt(v['mean']):>10}{_fmt(v['std']):>10}")
        lines += [f"  note: {n}" for n in r["notes"]]
    lines.append("SNR bins: recall by the truth's SNR, precision by each prediction's own snr; "
                 "blended/isolated: true sources only.")
    return "\n".join(lines).lstrip("\n")


# --- input checks and helpers -----------------------------------------------------------------

def _prepare(truth, catalog, image_size_px):
    """Validated float copies: truth with boxes, ``blended`` and ``cube``; catalogue with ``cube``
    (base names). Raises InputError for what cannot be scored."""
    if not isinstance(truth, Table) or not isinstance(catalog, Table):
        raise InputError("evaluate needs the truth and the catalogue as astropy Tables "
                         "(use evaluate_files for CSV files).")
    if len(truth) == 0:
        raise InputError("The truth has no sources: nothing to score against. Check that it is "
                         "the truth catalogue of the cubes the detector ran on.")
    own_boxes = all(c in truth.colnames for c in BOX_COLUMNS)
    _require(truth, ("x", "y") if own_boxes else TRUTH_COLUMNS, "truth")
    _require(catalog, CATALOG_COLUMNS, "catalogue")

    truth_cubes, catalog_cubes = _cube_columns(truth, catalog)
    t = Table()
    t["cube"] = np.asarray(truth_cubes, dtype=str)
    for name in truth.colnames:
        if name != "cube" and truth[name].dtype.kind in "iufb":
            t[name] = _floats(truth, name, "truth")
    for name in ("x", "y") + (BOX_COLUMNS if own_boxes else TRUTH_COLUMNS):
        t[name] = _floats(truth, name, "truth")
    if not own_boxes:
        t = truth_boxes(t, image_size_px)
    t["blended"] = (_bools(truth["blended"]) if "blended" in truth.colnames else blended_flags(t))

    c = Table()
    c["cube"] = np.asarray(catalog_cubes, dtype=str)
    for name in catalog.colnames:
        if name not in ("cube", "blended") and (name in CATALOG_COLUMNS + BOX_COLUMNS
                                                or catalog[name].dtype.kind in "iuf"):
            c[name] = _floats(catalog, name, "catalogue")
    if "resolved" in catalog.colnames:
        c["resolved"] = _bools(catalog["resolved"])
    return t, c


def _cube_columns(truth, catalog):
    """Cube names (base names) of the truth and catalogue rows, checked against each other."""
    truth_cubes = (_cube_names(truth, "truth") if "cube" in truth.colnames
                   else np.full(len(truth), "", dtype=object))
    truth_names = set(truth_cubes)
    if "cube" in catalog.colnames:
        names = _cube_names(catalog, "catalogue")
        if "cube" not in truth.colnames and len(set(names)) <= 1:
            # the truth is one cube without a name: the catalogue's single name is that cube
            return np.full(len(truth), names[0] if len(names) else "", dtype=object), names
        if "cube" not in truth.colnames:
            raise InputError("The catalogue names several cubes but the truth has no 'cube' "
                             "column: add it to the truth (the cube's file name).")
        unknown = sorted(set(names) - truth_names)
        if unknown:
            listed = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise InputError(f"The catalogue has cubes the truth does not list: {listed}. Score it "
                             f"against the truth of the same cubes, or drop those rows.")
        return truth_cubes, names
    if len(catalog) and len(truth_names) > 1:
        raise InputError(f"The catalogue has no 'cube' column but the truth covers "
                         f"{len(truth_names)} cubes: add a 'cube' column (the cube's file name) to "
                         f"the catalogue, or score one cube at a time.")
    return truth_cubes, np.full(len(catalog), next(iter(truth_names)), dtype=object)


def _cube_names(table, what) -> np.ndarray:
    column = table["cube"]
    if getattr(column, "mask", None) is not None and np.any(column.mask):
        raise InputError(f"Some rows of the {what} have an empty 'cube': give every row its cube's "
                         f"file name.")
    return np.array([Path(str(v)).name for v in column], dtype=object)


def _per_cube(truth, catalog):
    """(cube, truth rows, catalogue rows) for every cube of the truth."""
    for cube in np.unique(truth["cube"]):
        yield cube, np.flatnonzero(truth["cube"] == cube), np.flatnonzero(catalog["cube"] == cube)


def _require(table, columns, what):
    if not hasattr(table, "colnames"):
        raise InputError(f"The {what} must be an astropy Table, got {type(table).__name__}.")
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise InputError(f"The {what} lacks the column(s) {', '.join(missing)} (it has "
                         f"{', '.join(table.colnames) or 'none'}): it needs "
                         f"{', '.join(columns)}.")


def _floats(table, name, what) -> np.ndarray:
    column = table[name]
    try:
        values = np.ma.asarray(column, dtype=float) if column.dtype.kind != "b" else np.ma.asarray(
            column).astype(float)
    except (TypeError, ValueError):
        raise InputError(f"The {what}'s column '{name}' is not numeric (e.g. {column[0]!r}): "
                         f"fix those values.") from None
    return np.ma.filled(values, np.nan)


def _bools(column) -> np.ndarray:
    if column.dtype.kind in "US":
        return np.array([str(v).strip().lower() in ("true", "1", "yes") for v in column])
    return np.ma.filled(np.ma.asarray(column).astype(bool), False)


def _ints(values):
    return np.asarray(values, float).astype(int)


def _has_z_boxes(catalog):
    return "z0" in catalog.colnames and "z1" in catalog.colnames


def _bin(values, edges) -> np.ndarray:
    """Bin index per value (-1 outside): [low, high), the first bin open below."""
    values = np.asarray(values, float)
    index = np.searchsorted(edges[1:], values, side="right")
    index[np.isnan(values)] = -1
    index[index >= len(edges) - 1] = -1
    return index


def _bin_label(edges, b):
    low, high = edges[b], edges[b + 1]
    if b == 0:
        return f"<{high:g}"
    if np.isinf(high):
        return f">={low:g}"
    return f"{low:g}-{high:g}"


def _check_rule(rule, allow_both=False):
    if rule not in RULES:
        options = RULES + (("both",) if allow_both else ())
        raise InputError(f"Unknown matching rule {rule!r}: use one of {', '.join(options)}.")


def _check_distance(d):
    if not (isinstance(d, (int, float, np.number)) and np.isfinite(d) and d > 0):
        raise InputError(f"max_distance_px must be a positive number of pixels, got {d!r}.")


def _check_bins(bins) -> np.ndarray:
    try:
        edges = np.asarray(bins, float)
    except (TypeError, ValueError):
        edges = np.array([])
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0) or np.isnan(edges).any():
        raise InputError(f"snr_bins must be at least two increasing edges, e.g. (0, 3, 5, 10, inf); "
                         f"got {bins!r}.")
    return edges


def _ratio(a, b):
    return a / b if b else None


def _f1(precision, recall):
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _mean(values):
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def _num(value):
    value = float(value)
    return value if np.isfinite(value) else None


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.3f}"
