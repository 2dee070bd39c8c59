"""How sizes and angles are reported and scored: round sources have no angle; the scores of
the characterisation (SNR >= 10; angle only for elongated sources) respect the angle's wrap."""

import numpy as np
import pytest
from astropy.table import Table

from pipeline.alma import evaluate as ev
from pipeline.alma import uncertainties as un
from pipeline.alma.catalog import ROUND_AXIS_RATIO, canonical_ellipse
from pipeline.alma.truth import truth_boxes


def test_round_sources_have_no_angle_and_keep_the_major_axis_first():
    fx, fy, pa = canonical_ellipse([4.0, 3.0, 5.0, 0.0, 6.0], [3.9, 5.0, 0.0, 0.0, 3.0],
                                   [30.0, 120.0, 10.0, 0.0, 100.0])
    assert fx.tolist() == [4.0, 5.0, 5.0, 0.0, 3.0] and fy.tolist() == [3.9, 3.0, 0.0, 0.0, 6.0]
    assert np.isnan(pa[0]) and np.isnan(pa[3])  # 3.9 / 4 > 0.9; a point source
    assert pa[1] == pytest.approx(30.0) and pa[2] == 10.0 and pa[4] == pytest.approx(10.0)
    assert ROUND_AXIS_RATIO == 0.9


def _pair_tables(true_pa, found_pa, snr, true_minor=3.0, found_major=6.0):
    n = len(true_pa)
    truth = Table({"x": np.arange(n) * 20.0 + 10, "y": np.full(n, 30.0), "fwhm_x": np.full(n, 6.0),
                   "fwhm_y": np.full(n, true_minor), "pa": true_pa, "z": np.full(n, 20.0),
                   "fwhm_z": np.full(n, 4.0), "snr_peak": snr})
    catalog = truth_boxes(truth)
    catalog.remove_column("snr_peak")
    catalog["snr"] = snr
    catalog["fwhm_x"], catalog["pa"] = np.full(n, found_major), found_pa
    return truth, catalog


def test_characterisation_takes_bright_sources_and_the_angle_of_elongated_ones_across_the_wrap():
    # 179 vs 1 deg is a 2-deg error, not 178; the faint source (SNR 6) is left out
    truth, catalog = _pair_tables([1.0, 89.0, 45.0], [179.0, 85.0, 0.0], [20.0, 30.0, 6.0])
    result = ev.evaluate(truth, catalog)
    ch = result["characterisation"]
    assert ch["snr_min"] == 10.0 and ch["pa"]["n"] == 2
    assert ch["pa"]["mean"] == pytest.approx(-3.0) and ch["pa"]["std"] == pytest.approx(np.std([-2, -4], ddof=1))
    assert ch["fwhm_major"]["n"] == 2 and ch["fwhm_major"]["mean"] == pytest.approx(0.0)
    assert "characterisation at SNR >= 10" in ev.format_report(result)


def test_nearly_round_true_sources_and_round_calls_are_not_angle_errors():
    truth, catalog = _pair_tables([10.0, 10.0], [80.0, np.nan], [20.0, 20.0], true_minor=5.5)
    ch = ev.evaluate(truth, catalog)["characterisation"]
    assert ch["pa"]["n"] == 0  # 5.5 / 6 > 0.8: the true angle is not scored
    truth, catalog = _pair_tables([10.0, 10.0], [12.0, np.nan], [20.0, 20.0])
    ch = ev.evaluate(truth, catalog)["characterisation"]
    assert ch["pa"]["n"] == 1 and ch["pa"]["n_undefined"] == 1 and ch["pa"]["mean"] == pytest.approx(2.0)


# --- errors from the noise and the beam (pipeline.alma.uncertainties) ---------------------------
def test_a_point_source_size_error_is_condons():
    # a source as wide as the beam (and its noise correlation): rho^2 = 2 snr^2, so the observed
    # axis is known to theta / snr; its intrinsic size (0) to sqrt(theta x that)
    errors = un.shape_errors([0.0], [0.0], [0.0], (6.0, 6.0, 0.0), [10.0])
    assert errors["err_major"][0] == pytest.approx(6.0 / np.sqrt(10.0))
    assert errors["err_minor"][0] == pytest.approx(6.0 / np.sqrt(10.0))
    assert not errors["resolved"][0] and errors["err_pa"][0] == pytest.approx(un.MAX_PA_ERROR_DEG)


def test_size_errors_fall_with_snr_and_a_large_bright_source_is_resolved():
    faint, bright = (un.shape_errors([8.0], [4.0], [30.0], (5.0, 4.0, 10.0), [snr]) for snr in (10.0, 40.0))
    for key in ("err_major", "err_minor", "err_pa"):
        assert bright[key][0] < faint[key][0]
    # well resolved (three beams), the error goes as 1 / snr
    faint_large, bright_large = (un.shape_errors([15.0], [12.0], [30.0], (5.0, 4.0, 10.0), [snr])
                                 for snr in (10.0, 40.0))
    assert bright_large["err_major"][0] == pytest.approx(faint_large["err_major"][0] / 4.0, rel=0.05)
    assert bright["resolved"][0] and bright["err_pa"][0] < 10.0
    # a source of a fifth of the beam at SNR 10 is not told from a point source
    assert not un.shape_errors([1.0], [1.0], [0.0], (5.0, 4.0, 10.0), [10.0])["resolved"][0]


def test_catalogue_errors_follow_the_source_axes_and_the_noise_floor_is_scored(monkeypatch):
    truth, catalog = _pair_tables([10.0, 60.0], [12.0, 58.0], [20.0, 20.0])
    catalog["fwhm_y"] = [3.0, 8.0]  # the second source's major axis is its y axis, at 148 deg
    monkeypatch.setattr(un, "beam_on_grid", lambda cube: (5.0, 4.0, 0.0))  # all it asks of a cube
    un.add_shape_errors(catalog, cube=None)
    first = un.shape_errors([6.0], [3.0], [12.0], (5.0, 4.0, 0.0), [20.0])
    second = un.shape_errors([8.0], [6.0], [148.0], (5.0, 4.0, 0.0), [20.0])
    assert catalog["fwhm_x_err"][0] == pytest.approx(first["err_major"][0])
    assert catalog["fwhm_y_err"][0] == pytest.approx(first["err_minor"][0])
    assert catalog["fwhm_y_err"][1] == pytest.approx(second["err_major"][0])
    assert catalog["fwhm_x_err"][1] == pytest.approx(second["err_minor"][0])
    assert catalog["pa_err"][1] == pytest.approx(second["err_pa"][0])
    result = ev.evaluate(truth, catalog)
    floor = np.sqrt(np.mean(np.array([first["err_major"][0], second["err_major"][0]]) ** 2))
    assert result["characterisation"]["fwhm_major"]["noise_floor"] == pytest.approx(floor)
    assert "noise floor" in ev.format_report(result)


def test_sizes_are_scored_where_the_catalogue_calls_them_resolved_and_limits_checked_elsewhere():
    truth, catalog = _pair_tables([10.0, 60.0, 100.0], [12.0, 58.0, 100.0], [20.0, 20.0, 20.0])
    catalog["fwhm_x"] = [7.0, 4.0, 4.0]  # true major axes are all 6 px
    catalog["fwhm_x_err"] = [0.5, 0.5, 1.1]
    catalog["fwhm_y_err"] = [0.5, 0.5, 0.5]
    catalog["resolved"] = [True, False, False]
    ch = ev.evaluate(truth, catalog)["characterisation"]
    assert ch["fwhm_major"]["n"] == 3  # every source still in the headline scores
    assert ch["resolved"]["n"] == 1 and ch["resolved"]["fwhm_major"]["mean"] == pytest.approx(1.0)
    # 6 px is above 4 + 2 x 0.5 but below 4 + 2 x 1.1: one of the two limits holds
    assert ch["unresolved"]["n"] == 2 and ch["unresolved"]["limit_holds"] == pytest.approx(0.5)
    assert un.size_upper_limit(4.0, 1.1) == pytest.approx(6.2)
