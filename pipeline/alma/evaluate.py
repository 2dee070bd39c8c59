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

- truth boxes and blends: :mod:`pipeline.alma.truth`; the pairing: :mod:`pipeline.alma.matching`.
- residuals: prediction - truth over matched pairs. Sizes and angle are compared as major and
  minor FWHM and the position angle of the major axis (``fwhm_x``/``fwhm_y`` name the same
  Gaussian in two ways: 5 x 3 px at 0 deg is 3 x 5 px at 90 deg), the angle difference
  wrapped to (-90, 90] deg because an ellipse's angle is defined modulo 180 deg. Flux (the
  catalogue's integrated line flux, Jy km/s) against the truth's ``flux``, or one derived from
  ``peak_jy_per_pix`` by ``truth_line_flux`` when the channel width in km/s is given.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from pipeline.alma.gaussian import major_minor, y_is_major
from pipeline.alma.matching import RULES, best_iou, check_distance, check_rule, has_z_boxes, pair, per_cube, prepare
from pipeline.alma.truth import read_truth, truth_line_flux
from pipeline.alma.uncertainties import size_upper_limit
from pipeline.errors import InputError
from pipeline.tables import read_table

DEFAULT_SNR_BINS = (0.0, 3.0, 5.0, 10.0, np.inf)
# what each residual is, with its unit, in the order reports list them
RESIDUALS = {"x": "px", "y": "px", "z": "channels", "fwhm_major": "px", "fwhm_minor": "px",
             "pa": "deg", "flux": "Jy km/s"}
#: characterisation is scored on matched sources at least this bright (the truth's SNR)...
CHARACTERISATION_SNR = 10.0
#: ...and the angle on those more elongated than this minor / major axis ratio
ELONGATED_AXIS_RATIO = 0.8


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
    check_rule(rule)
    check_distance(max_distance_px)
    edges = _check_bins(snr_bins)
    truth, catalog = prepare(truth, catalog, image_size_px)
    notes = []
    if "flux" not in truth.colnames and channel_width_kms is not None:
        truth["flux"] = truth_line_flux(truth, channel_width_kms)
        notes.append(f"true flux from peak_jy_per_pix x Gaussian volume x {channel_width_kms:g} "
                     f"km/s per channel (line-only sources).")
    pairs = pair(truth, catalog, rule, max_distance_px)
    found, correct, iou, overall = _detections(truth, catalog, pairs, rule, notes)
    by_snr = _by_snr(truth, catalog, found, correct, iou, rule, edges, snr_column, notes)
    blended = truth["blended"]
    residuals = _residuals(truth, catalog, pairs)
    if residuals["flux"]["n"] == 0 and not ("flux" in truth.colnames and "flux" in catalog.colnames):
        notes.append("flux not compared: it needs 'flux' (Jy km/s) in the catalogue and in the "
                     "truth (or the truth's peak_jy_per_pix and channel_width_kms).")
    return {"rule": rule, "max_distance_px": float(max_distance_px),
            "image_size_px": int(image_size_px), "n_cubes": len(np.unique(truth["cube"])),
            "snr_column": snr_column, "overall": overall,
            "snr_bins": by_snr,
            "blending": {name: _summary(found[mask], iou[mask])
                         for name, mask in (("blended", blended), ("isolated", ~blended))},
            "residuals": residuals, "characterisation": _characterisation(truth, catalog, pairs, snr_column),
            "notes": notes}


def _detections(truth, catalog, pairs, rule, notes):
    """(found per true source, correct per prediction, IoU per true source, overall scores)."""
    n_true = len(truth)
    found = np.zeros(n_true, bool)
    found[pairs["truth_row"]] = True
    correct = np.zeros(len(catalog), bool)
    correct[pairs["catalog_row"]] = True
    has_z = has_z_boxes(catalog)
    if rule == "strict":
        # per true source: IoU with its partner (NaN when unmatched, left out of the means)
        iou = np.full(n_true, np.nan)
        iou[pairs["truth_row"]] = pairs["iou"]
        iou_3d = np.full(n_true, np.nan)
        iou_3d[pairs["truth_row"]] = pairs["iou_3d"]
        fp_total = int(len(catalog) - correct.sum())
    else:
        iou, iou_3d = best_iou(truth, catalog, "xy"), (
            best_iou(truth, catalog, "xyz") if has_z else np.full(n_true, np.nan))
        fp_total = sum(max(0, len(c) - len(t)) for _, t, c in per_cube(truth, catalog))
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
    return found, correct, iou, overall


def _by_snr(truth, catalog, found, correct, iou, rule, edges, snr_column, notes):
    """Scores per bin of the truth's ``snr_column`` (None without it)."""
    if snr_column not in truth.colnames:
        notes.append(f"truth has no '{snr_column}' column: no SNR bins.")
        return None
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
        by_snr.append({"label": _bin_label(edges, b), "low": _num(low), "high": _num(high), **row})
    unbinned = int(np.isnan(truth[snr_column]).sum())
    if unbinned:
        notes.append(f"{unbinned} true sources have no {snr_column}: in no SNR bin.")
    return by_snr


def _characterisation(truth, catalog, pairs, snr_column):
    """Sizes and angle of the matched sources at truth SNR >= ``CHARACTERISATION_SNR`` (None
    without ``snr_column``), and split by what the catalogue calls resolved."""
    if snr_column not in truth.colnames:
        return None
    bright = pairs[np.asarray(truth[snr_column][pairs["truth_row"]], float) >= CHARACTERISATION_SNR]
    result = {"snr_min": CHARACTERISATION_SNR, "elongated_axis_ratio": ELONGATED_AXIS_RATIO,
              **{k: v for k, v in _residuals(truth, catalog, bright, elongated_pa=True).items()
                 if k in ("fwhm_major", "fwhm_minor", "pa")}}
    if all(k in catalog.colnames for k in ("resolved", "fwhm_x_err", "fwhm_y_err")):
        result.update(_by_resolution(truth, catalog, bright))
    return result


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
        swap = y_is_major(c["fwhm_x"], c["fwhm_y"])
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


def wrap_pa(delta_deg):
    """Angle differences wrapped to (-90, 90] deg (an ellipse's PA is defined modulo 180)."""
    return 90.0 - np.mod(90.0 - np.asarray(delta_deg, float), 180.0)


# --- files and report -------------------------------------------------------------------------

def evaluate_files(truth_csv, catalog_csv, rule: str = "both", **options) -> dict:
    """Read a truth table (``simulate``'s truth.csv) and a catalogue (CSV or VOTable, as ``detect``
    writes it, or any table with x, y and the box x0, y0, x1, y1) and score them.

    ``rule``: "strict", "lenient" or "both". ``options`` go to ``evaluate`` (``snr_bins``,
    ``snr_column``, ``max_distance_px``, ``image_size_px``, ``channel_width_kms``). Returns ``{"truth": path,
    "catalog": path, "rules": {rule: evaluate(...)}}``, JSON-ready; ``format_report`` prints it.
    """
    rules = RULES if rule == "both" else (rule,)
    for r in rules:
        check_rule(r, allow_both=True)
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
                    lines.append(f"  {'  ' + name:<14}{'resolved':<16}{v['n']:>5}"
                                 f"{_fmt(v['mean']):>10}{_fmt(v['std']):>10}")
        lines += [f"  note: {n}" for n in r["notes"]]
    lines.append("SNR bins: recall by the truth's SNR, precision by each prediction's own snr; "
                 "blended/isolated: true sources only.")
    return "\n".join(lines).lstrip("\n")


# --- input checks and helpers -----------------------------------------------------------------

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
