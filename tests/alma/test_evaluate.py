"""Scoring catalogues against the truth (pipeline.alma.evaluate), on hand-made tables whose
answers are known."""

import json

import numpy as np
import pytest
from astropy.table import Table

from pipeline.alma import evaluate as ev
from pipeline.alma.matching import RULES, box_iou, match
from pipeline.alma.simulate import gaussian_images
from pipeline.alma.truth import blended_flags, truth_boxes, truth_line_flux
from pipeline.errors import InputError


def make_truth(rows, cube=None):
    """Truth rows (x, y[, snr_peak]) with fixed shapes: 5 x 3 px at 1 deg, line at channel 20."""
    table = Table(rows=[r[:2] for r in rows], names=("x", "y"), dtype=(float, float))
    n = len(table)
    table["fwhm_x"], table["fwhm_y"], table["pa"] = np.full(n, 5.0), np.full(n, 3.0), np.full(n, 1.0)
    table["z"], table["fwhm_z"] = np.full(n, 20.0), np.full(n, 4.0)
    table["snr_peak"] = [r[2] if len(r) > 2 else 8.0 for r in rows]
    if cube is not None:
        table["cube"] = cube if isinstance(cube, list) else [cube] * n
    return table


def perfect_catalog(truth):
    """What a perfect detector would write: the truth's own boxes and parameters."""
    cat = truth_boxes(truth)
    cat["snr"] = cat["snr_peak"]
    cat["flux"] = np.ones(len(cat))
    cat.remove_column("snr_peak")
    return cat


def predictions(xy, cube=None, snr=None):
    """Predicted rows at ``xy`` with 5 x 5 px boxes, no z (2-D only)."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    cat = Table({"x": xy[:, 0], "y": xy[:, 1]})
    cat["x0"], cat["x1"] = np.floor(xy[:, 0]) - 2, np.floor(xy[:, 0]) + 3
    cat["y0"], cat["y1"] = np.floor(xy[:, 1]) - 2, np.floor(xy[:, 1]) + 3
    if snr is not None:
        cat["snr"] = snr
    if cube is not None:
        cat["cube"] = cube if isinstance(cube, list) else [cube] * len(cat)
    return cat


# --- truth boxes, blends, IoU -----------------------------------------------------------------

def test_truth_boxes_follow_the_papers_threshold_on_the_sources_own_image():
    """Box = bounding box of the source's normalised image above 3 std of that image."""
    size = 96
    truth = Table({"x": [40.3, 50.0, 30.7], "y": [45.6, 50.0, 60.2], "fwhm_x": [3.0, 8.0, 2.2],
                   "fwhm_y": [6.5, 2.5, 2.0], "pa": [30.0, 120.0, 0.0], "z": [10.4, 3.0, 50.0],
                   "fwhm_z": [4.0, 6.0, 3.0]})
    boxes = truth_boxes(truth, image_size_px=size)
    for row, image in zip(boxes, gaussian_images(truth, size), strict=True):
        norm = (image - image.min()) / (image.max() - image.min())
        ys, xs = np.nonzero(norm > 3 * norm.std())
        expected = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        got = (row["x0"], row["y0"], row["x1"], row["y1"])
        assert np.all(np.abs(np.subtract(got, expected)) <= 1), (got, expected)
    # channels within one line FWHM of the centre, clipped at 0
    assert list(boxes["z0"]) == [7, 0, 47] and list(boxes["z1"]) == [15, 10, 54]
    # a larger image has a lower 3-std level, so larger boxes
    big = truth_boxes(truth, image_size_px=512)
    assert np.all(big["x1"] - big["x0"] >= boxes["x1"] - boxes["x0"])
    assert np.any(big["x1"] - big["x0"] > boxes["x1"] - boxes["x0"])


def test_box_iou_2d_and_3d():
    a = {"x0": [0], "y0": [0], "x1": [2], "y1": [2], "z0": [0], "z1": [2]}
    b = {"x0": [1, 5], "y0": [1, 5], "x1": [3, 6], "y1": [3, 6], "z0": [0, 0], "z1": [4, 1]}
    assert box_iou(a, b).shape == (1, 2)
    assert box_iou(a, b)[0] == pytest.approx([1 / 7, 0.0])
    assert box_iou(a, b, axes="xyz")[0] == pytest.approx([2 / (8 + 16 - 2), 0.0])
    assert box_iou(a, a)[0] == pytest.approx([1.0])


def test_blended_needs_overlap_on_the_sky_and_in_frequency():
    truth = Table({
        "x": [50.0, 55.0, 50.0, 55.0, 80.0, 80.0],
        "y": [50.0, 50.0, 54.5, 50.0, 80.0, 84.5],
        # half-power radii along x are fwhm_x / 2 = 3, along y fwhm_y / 2 = 2 at pa 0
        "fwhm_x": [6.0] * 6, "fwhm_y": [4.0] * 6,
        "pa": [0.0, 0.0, 90.0, 0.0, 0.0, 0.0],
        "z": [20.0, 24.0, 20.0, 60.0, 20.0, 20.0], "fwhm_z": [6.0] * 6,
    })
    flags = blended_flags(truth)
    # 0-1: 5 px apart along x, radii 3 + 3, lines 4 channels apart (< 6): blended
    # 0-2: 4.5 px apart along y, radii 2 (source 0's minor) + 3 (source 2 turned by 90 deg)
    # 3: on the sky of 0 and 1 but its line is 36-40 channels away: isolated
    # 4-5: 4.5 px apart along y with radii 2 + 2: apart on the sky
    assert list(flags) == [True, True, True, False, False, False]
    truth["pa"][2] = 0.0  # now its radius along y is 2 as well: 2 + 2 < 4.5
    assert list(blended_flags(truth)) == [True, True, False, False, False, False]
    truth["cube"] = ["a", "b", "a", "b", "a", "b"]  # 0 and 1 in different cubes never blend
    assert not blended_flags(truth)[:2].any()


# --- matching rules ---------------------------------------------------------------------------

def test_perfect_catalog_scores_one_under_both_rules():
    truth = make_truth([(20, 20, 2.0), (60, 25, 4.0), (40, 70, 12.0)])
    cat = perfect_catalog(truth)
    for rule in RULES:
        result = ev.evaluate(truth, cat, rule=rule)
        o = result["overall"]
        assert (o["tp"], o["fp"], o["fn"]) == (3, 0, 0)
        assert o["precision"] == o["recall"] == o["f1"] == 1.0
        assert o["mean_iou"] == pytest.approx(1.0) and o["mean_iou_3d"] == pytest.approx(1.0)
        for name in ("x", "y", "z", "fwhm_major", "fwhm_minor", "pa"):
            assert result["residuals"][name]["n"] == 3
            assert result["residuals"][name]["mean"] == pytest.approx(0.0, abs=1e-9)
        json.dumps(result)  # JSON-ready: no NaN, no numpy types


def test_duplicate_is_a_false_positive_only_under_the_strict_rule():
    truth = make_truth([(20, 20), (60, 20), (40, 70)])
    cat = predictions([(20, 20), (20.5, 20), (60, 20)])  # two on the first, none on the third
    strict = ev.evaluate(truth, cat, rule="strict")["overall"]
    assert (strict["tp"], strict["fp"], strict["fn"]) == (2, 1, 1)
    assert strict["precision"] == pytest.approx(2 / 3)
    lenient = ev.evaluate(truth, cat, rule="lenient")["overall"]
    assert (lenient["tp"], lenient["fp"], lenient["fn"]) == (2, 0, 1)  # n_pred <= n_true
    assert lenient["precision"] == 1.0


def test_distance_limit_is_three_pixels():
    truth = make_truth([(20, 20), (60, 20)])
    cat = predictions([(22.9, 20), (64, 20)])  # 2.9 px and 4 px away
    for rule in RULES:
        pairs = match(truth, cat, rule=rule)
        assert list(pairs["truth_row"]) == [0] and list(pairs["catalog_row"]) == [0]
        assert pairs["distance_px"][0] == pytest.approx(2.9)
    o = ev.evaluate(truth, cat, rule="strict")["overall"]
    assert (o["tp"], o["fp"], o["fn"]) == (1, 1, 1)
    o = ev.evaluate(truth, cat, rule="strict", max_distance_px=4.5)["overall"]
    assert (o["tp"], o["fp"], o["fn"]) == (2, 0, 0)


def greedy_pairs(truth_xy, pred_xy, limit=3.0):
    """Closest pair first, the rule the Hungarian assignment must beat."""
    d = np.hypot(*(np.asarray(truth_xy)[:, None, :] - np.asarray(pred_xy)[None, :, :]).T).T
    pairs = []
    while np.isfinite(d).any() and d.min() <= limit:
        i, j = np.unravel_index(np.argmin(d), d.shape)
        pairs.append((i, j))
        d[i, :], d[:, j] = np.inf, np.inf
    return pairs


def test_hungarian_beats_greedy():
    # prediction 0 is nearest to source 1 (1.5 px), but taking it leaves prediction 1 6.5 px from
    # source 0; the one-to-one optimum pairs 0-0 and 1-1 at 2.5 px each
    truth_xy, pred_xy = [(10, 10), (14, 10)], [(12.5, 10), (16.5, 10)]
    assert len(greedy_pairs(truth_xy, pred_xy)) == 1
    pairs = match(make_truth(truth_xy), predictions(pred_xy), rule="strict")
    assert sorted(zip(pairs["truth_row"], pairs["catalog_row"], strict=True)) == [(0, 0), (1, 1)]
    o = ev.evaluate(make_truth(truth_xy), predictions(pred_xy))["overall"]
    assert (o["tp"], o["fp"], o["fn"]) == (2, 0, 0)


def test_lenient_mean_iou_is_each_sources_best_iou_including_misses():
    truth = make_truth([(20, 20), (60, 20)])
    cat = perfect_catalog(truth)[:1]
    cat.add_row(cat[0])
    cat["x0"][1] += 1  # a worse box on the same source
    strict = ev.evaluate(truth, cat, rule="strict")["overall"]
    lenient = ev.evaluate(truth, cat, rule="lenient")["overall"]
    assert strict["mean_iou"] == pytest.approx(1.0)  # the matched pair only
    assert lenient["mean_iou"] == pytest.approx(0.5)  # best IoU 1 for source 0, 0 for source 1


def test_multi_cube_tables_keep_cubes_apart():
    truth = make_truth([(20, 20), (20, 20), (60, 60)], cube=["a.fits", "b.fits", "b.fits"])
    # both predictions in cube a, though cube b has a source at the same place
    cat = predictions([(20, 20), (20.4, 20)], cube="a.fits")
    strict = ev.evaluate(truth, cat, rule="strict")
    assert strict["n_cubes"] == 2
    assert (strict["overall"]["tp"], strict["overall"]["fp"], strict["overall"]["fn"]) == (1, 1, 2)
    lenient = ev.evaluate(truth, cat, rule="lenient")["overall"]
    # surplus per cube: a has 2 for 1, b 0 for 2: one false positive (pooled it would be none)
    assert (lenient["tp"], lenient["fp"], lenient["fn"]) == (1, 1, 2)
    pairs = match(truth, cat)
    assert list(pairs["cube"]) == ["a.fits"] and list(pairs["truth_row"]) == [0]
    # cube names are compared by base name (a path in the catalogue is fine)
    cat["cube"] = ["/data/run/a.fits"] * 2
    assert ev.evaluate(truth, cat)["overall"]["tp"] == 1


# --- groups and residuals ---------------------------------------------------------------------

def test_snr_bins_recall_by_truth_precision_by_prediction():
    truth = make_truth([(20, 20, -0.5), (60, 20, 4.0), (20, 60, 7.0), (60, 60, 30.0),
                        (90, 90, 1.0)])
    # found: sources 0, 1, 3; source 1 found by a prediction that measured snr 6; a false
    # positive at snr 2.5
    cat = predictions([(20, 20), (60, 20), (60, 60), (100, 10)], snr=[2.0, 6.0, 25.0, 2.5])
    bins = {b["label"]: b for b in ev.evaluate(truth, cat, rule="strict")["snr_bins"]}
    assert list(bins) == ["<3", "3-5", "5-10", ">=10"]
    assert (bins["<3"]["n_true"], bins["<3"]["tp"], bins["<3"]["recall"]) == (2, 1, 0.5)
    assert (bins["<3"]["n_pred"], bins["<3"]["tp_pred"], bins["<3"]["fp"]) == (2, 1, 1)
    assert bins["<3"]["precision"] == 0.5
    assert (bins["3-5"]["n_true"], bins["3-5"]["tp"], bins["3-5"]["n_pred"]) == (1, 1, 0)
    assert bins["3-5"]["recall"] == 1.0 and bins["3-5"]["precision"] is None
    assert (bins["5-10"]["n_true"], bins["5-10"]["tp"], bins["5-10"]["recall"]) == (1, 0, 0.0)
    assert (bins["5-10"]["n_pred"], bins["5-10"]["tp_pred"], bins["5-10"]["precision"]) == (1, 1, 1.0)
    assert bins[">=10"]["recall"] == 1.0 and bins[">=10"]["precision"] == 1.0
    lenient = ev.evaluate(truth, cat, rule="lenient")["snr_bins"]
    assert [b["recall"] for b in lenient] == [0.5, 1.0, 0.0, 1.0]
    assert all(b["precision"] is None for b in lenient)


def test_blended_and_isolated_groups():
    truth = make_truth([(20, 20), (23, 20), (60, 60)])  # 3 px apart, 5 px wide along x
    assert list(blended_flags(truth)) == [True, True, False]
    cat = predictions([(20, 20), (60, 60)])
    groups = ev.evaluate(truth, cat)["blending"]
    assert (groups["blended"]["n_true"], groups["blended"]["tp"]) == (2, 1)
    assert groups["blended"]["recall"] == 0.5 and groups["isolated"]["recall"] == 1.0
    truth["blended"] = [False, False, True]  # the truth's own flags win
    groups = ev.evaluate(truth, cat)["blending"]
    assert groups["blended"]["n_true"] == 1 and groups["isolated"]["recall"] == 0.5


def test_pa_residuals_wrap_modulo_180():
    assert ev.wrap_pa(179.0 - 1.0) == pytest.approx(-2.0)
    assert ev.wrap_pa(1.0 - 179.0) == pytest.approx(2.0)
    assert ev.wrap_pa([90.0, -90.0, 270.0, 360.0]) == pytest.approx([90.0, 90.0, 90.0, 0.0])
    truth = make_truth([(20, 20), (60, 20)])  # 5 x 3 px at pa 1 deg
    cat = perfect_catalog(truth)
    cat["pa"] = [179.0, 91.0]
    cat["fwhm_x"][1], cat["fwhm_y"][1] = 3.0, 5.0  # the same ellipse as 5 x 3 at pa 1
    res = ev.evaluate(truth, cat)["residuals"]
    assert res["pa"]["n"] == 2 and res["pa"]["mean"] == pytest.approx(-1.0)  # (-2 + 0) / 2
    assert res["fwhm_major"]["mean"] == pytest.approx(0.0)
    assert res["fwhm_minor"]["mean"] == pytest.approx(0.0)


def test_position_and_flux_residuals():
    truth = make_truth([(20, 20), (60, 20), (20, 60)])
    truth["flux"] = [1.0, 2.0, 3.0]
    cat = perfect_catalog(truth)
    cat["x"] += [0.5, 1.0, 1.5]
    cat["flux"] = [1.1, 2.1, 3.1]
    res = ev.evaluate(truth, cat)["residuals"]
    assert res["x"]["mean"] == pytest.approx(1.0) and res["x"]["std"] == pytest.approx(0.5)
    assert res["flux"]["n"] == 3 and res["flux"]["mean"] == pytest.approx(0.1)
    del truth["flux"]
    result = ev.evaluate(truth, cat)
    assert result["residuals"]["flux"]["n"] == 0
    assert any("flux" in note for note in result["notes"])


def test_truth_line_flux_is_the_sum_of_the_sky_model():
    truth = make_truth([(30.3, 32.6), (20, 40)])
    truth["fwhm_x"][1], truth["fwhm_z"][1] = 2.5, 7.0
    truth["peak_jy_per_pix"] = [2e-3, 5e-4]
    channel_kms = 13.0
    line = np.exp(-4 * np.log(2) * ((np.arange(64)[None, :] - truth["z"][:, None])
                                    / truth["fwhm_z"][:, None]) ** 2)
    summed = (gaussian_images(truth, 64).sum(axis=(1, 2), dtype=np.float64) * line.sum(axis=1)
              * truth["peak_jy_per_pix"] * channel_kms)
    assert truth_line_flux(truth, channel_kms) == pytest.approx(summed, rel=1e-4)
    cat = perfect_catalog(truth)
    cat["flux"] = summed * 1.1
    res = ev.evaluate(truth, cat, channel_width_kms=channel_kms)["residuals"]["flux"]
    assert res["n"] == 2 and res["mean"] == pytest.approx(0.1 * summed.mean(), rel=1e-3)
    with pytest.raises(InputError, match="channel_width_kms"):
        ev.evaluate(truth, cat, channel_width_kms=-1.0)


def test_empty_catalogue_finds_nothing():
    truth = make_truth([(20, 20), (60, 20)])
    cat = predictions(np.empty((0, 2)))
    for rule in RULES:
        o = ev.evaluate(truth, cat, rule=rule)["overall"]
        assert (o["tp"], o["fp"], o["fn"], o["recall"]) == (0, 0, 2, 0.0)
        assert o["precision"] is None and o["mean_iou"] in (None, 0.0)


# --- files, report, bad input -----------------------------------------------------------------

def test_evaluate_files_and_report(tmp_path):
    truth = make_truth([(20, 20, 2.0), (60, 20, 12.0)], cube="sim_0_0000.fits")
    truth_csv, cat_csv = tmp_path / "truth.csv", tmp_path / "catalog.csv"
    truth.write(truth_csv, format="ascii.csv")
    cat = perfect_catalog(truth)[:1]
    cat["blended"] = [False]
    cat.write(cat_csv, format="ascii.csv")
    result = ev.evaluate_files(truth_csv, cat_csv)
    assert set(result["rules"]) == {"strict", "lenient"}
    assert result["rules"]["strict"]["overall"]["recall"] == 0.5
    json.loads(json.dumps(result))
    report = ev.format_report(result)
    assert "strict" in report and "lenient" in report and "SNR <3" in report
    assert "fwhm_major" in report and str(truth_csv) in report
    only = ev.evaluate_files(truth_csv, cat_csv, rule="lenient")
    assert list(only["rules"]) == ["lenient"]
    assert "lenient" in ev.format_report(only["rules"]["lenient"])


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("x,y,x0,y0,x1,y1\n", "no sources"),
])
def test_empty_files_are_input_errors(tmp_path, content, message):
    truth_csv, cat_csv = tmp_path / "truth.csv", tmp_path / "catalog.csv"
    truth_csv.write_text(content)
    make_truth([(20, 20)]).write(cat_csv, format="ascii.csv")
    with pytest.raises(InputError, match=message):
        ev.evaluate_files(truth_csv, cat_csv)


def test_bad_input_says_what_is_wrong(tmp_path):
    truth = make_truth([(20, 20), (60, 20)], cube=["a.fits", "b.fits"])
    with pytest.raises(InputError, match="does not exist"):
        ev.evaluate_files(tmp_path / "nope.csv", tmp_path / "nope.csv")
    with pytest.raises(InputError, match="lacks the column.*x0, y0, x1, y1"):
        ev.evaluate(truth, Table({"x": [1.0], "y": [1.0], "cube": ["a.fits"]}))
    with pytest.raises(InputError, match="lacks the column.*fwhm_z"):
        ev.evaluate(truth[[c for c in truth.colnames if c != "fwhm_z"]],
                    predictions([(20, 20)], cube="a.fits"))
    with pytest.raises(InputError, match="cubes the truth does not list: c.fits"):
        ev.evaluate(truth, predictions([(20, 20), (1, 1)], cube=["a.fits", "c.fits"]))
    with pytest.raises(InputError, match="no 'cube' column but the truth covers 2 cubes"):
        ev.evaluate(truth, predictions([(20, 20)]))
    with pytest.raises(InputError, match="Unknown matching rule"):
        ev.evaluate(truth, predictions([(20, 20)], cube="a.fits"), rule="greedy")
    with pytest.raises(InputError, match="snr_bins"):
        ev.evaluate(truth, predictions([(20, 20)], cube="a.fits"), snr_bins=(5, 3))
    with pytest.raises(InputError, match="not numeric"):
        bad = predictions([(20, 20)], cube="a.fits")
        bad["x"] = bad["x"].astype(str)
        bad["x"][0] = "west"
        ev.evaluate(truth, bad)


def test_unnamed_truth_takes_the_catalogues_single_cube():
    truth = make_truth([(20, 20)])  # no cube column
    cat = predictions([(20, 20)], cube="only.fits")
    assert ev.evaluate(truth, cat)["overall"]["tp"] == 1
    with pytest.raises(InputError, match="truth has no 'cube' column"):
        ev.evaluate(truth, predictions([(20, 20), (1, 1)], cube=["a.fits", "b.fits"]))
