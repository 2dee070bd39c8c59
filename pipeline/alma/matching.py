"""Pairing a catalogue with the truth: box IoU and the two matching rules.

- ``strict``: per cube, a one-to-one assignment of predictions to true sources (Hungarian,
  ``scipy.optimize.linear_sum_assignment``) on the 2-D distance between centres; it first makes
  as many pairs within ``max_distance_px`` as possible, then the smallest total distance.
- ``lenient``: the rule of the paper's test code: each true source pairs with the nearest
  predicted centre of its cube within ``max_distance_px`` (one prediction may serve several).

Tables may carry a ``cube`` column (file name; compared by base name); without it everything is
one cube. :func:`prepare` checks both tables and gives the float copies every score is made from.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
from astropy.table import Table

from pipeline.alma.truth import BOX_COLUMNS, TRUTH_COLUMNS, blended_flags, cube_names, truth_boxes
from pipeline.errors import InputError
from pipeline.tables import bool_column, float_column, require_columns

RULES = ("strict", "lenient")
CATALOG_COLUMNS = ("x", "y", "x0", "y0", "x1", "y1")


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
    check_rule(rule)
    check_distance(max_distance_px)
    truth, catalog = prepare(truth, catalog, image_size_px)
    return pair(truth, catalog, rule, max_distance_px)


def pair(truth, catalog, rule: str, max_distance_px: float) -> Table:
    """:func:`match` on tables already checked by :func:`prepare`."""
    cubes, truth_rows, catalog_rows, distances = [], [], [], []
    for cube, t_rows, c_rows in per_cube(truth, catalog):
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
    pairs["iou_3d"] = _paired_iou(t, c, "xyz") if has_z_boxes(catalog) else np.full(len(pairs), np.nan)
    return pairs


def _paired_iou(a, b, axes):
    if not len(a):
        return np.array([], float)
    return np.array([box_iou(a[k:k + 1], b[k:k + 1], axes)[0, 0] for k in range(len(a))])


def best_iou(truth, catalog, axes) -> np.ndarray:
    """Each true source's best IoU with any predicted box of its cube (0 without predictions)."""
    best = np.zeros(len(truth))
    for _, t_rows, c_rows in per_cube(truth, catalog):
        if len(t_rows) and len(c_rows):
            best[t_rows] = box_iou(truth[t_rows], catalog[c_rows], axes).max(axis=1)
    return best


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


# --- checked input ------------------------------------------------------------------------------

def prepare(truth, catalog, image_size_px):
    """Validated float copies: truth with boxes, ``blended`` and ``cube``; catalogue with ``cube``
    (base names). Raises InputError for what cannot be scored."""
    if not isinstance(truth, Table) or not isinstance(catalog, Table):
        raise InputError("evaluate needs the truth and the catalogue as astropy Tables "
                         "(use evaluate_files for CSV files).")
    if len(truth) == 0:
        raise InputError("The truth has no sources: nothing to score against. Check that it is "
                         "the truth catalogue of the cubes the detector ran on.")
    own_boxes = all(c in truth.colnames for c in BOX_COLUMNS)
    require_columns(truth, ("x", "y") if own_boxes else TRUTH_COLUMNS, "truth")
    require_columns(catalog, CATALOG_COLUMNS, "catalogue")

    truth_cubes, catalog_cubes = _cube_columns(truth, catalog)
    t = Table()
    t["cube"] = np.asarray(truth_cubes, dtype=str)
    for name in truth.colnames:
        if name != "cube" and truth[name].dtype.kind in "iufb":
            t[name] = float_column(truth, name, "truth")
    for name in ("x", "y") + (BOX_COLUMNS if own_boxes else TRUTH_COLUMNS):
        t[name] = float_column(truth, name, "truth")
    if not own_boxes:
        t = truth_boxes(t, image_size_px)
    t["blended"] = (bool_column(truth["blended"]) if "blended" in truth.colnames else blended_flags(t))

    c = Table()
    c["cube"] = np.asarray(catalog_cubes, dtype=str)
    for name in catalog.colnames:
        if name not in ("cube", "blended") and (name in CATALOG_COLUMNS + BOX_COLUMNS
                                                or catalog[name].dtype.kind in "iuf"):
            c[name] = float_column(catalog, name, "catalogue")
    if "resolved" in catalog.colnames:
        c["resolved"] = bool_column(catalog["resolved"])
    return t, c


def _cube_columns(truth, catalog):
    """Cube names (base names) of the truth and catalogue rows, checked against each other."""
    truth_cubes = (cube_names(truth, "truth") if "cube" in truth.colnames
                   else np.full(len(truth), "", dtype=object))
    truth_names = set(truth_cubes)
    if "cube" in catalog.colnames:
        names = cube_names(catalog, "catalogue")
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


def per_cube(truth, catalog):
    """(cube, truth rows, catalogue rows) for every cube of the truth."""
    for cube in np.unique(truth["cube"]):
        yield cube, np.flatnonzero(truth["cube"] == cube), np.flatnonzero(catalog["cube"] == cube)


def has_z_boxes(catalog):
    return "z0" in catalog.colnames and "z1" in catalog.colnames


def check_rule(rule, allow_both=False):
    if rule not in RULES:
        options = RULES + (("both",) if allow_both else ())
        raise InputError(f"Unknown matching rule {rule!r}: use one of {', '.join(options)}.")


def check_distance(d):
    if not (isinstance(d, (int, float, np.number)) and np.isfinite(d) and d > 0):
        raise InputError(f"max_distance_px must be a positive number of pixels, got {d!r}.")
