"""Reliability from the user's own cube: the negated cube, p_false and the table per SNR bin."""

import numpy as np
import pytest
from astropy.table import Table

from pipeline.alma import cube_views, reliability
from pipeline.alma.catalog import read_catalog
from pipeline.alma.cube import open_cube
from tests.conftest import cube_data, run_cli


def test_the_negated_cube_turns_every_pixel_and_shares_the_file(make_cube):
    with open_cube(make_cube(layout="3d")) as cube:
        negated = cube_views.negated(cube)
        np.testing.assert_array_equal(negated.channel(6), -cube_data()[6])
        np.testing.assert_array_equal(negated.moment0(4, 8)[0], -cube.moment0(4, 8)[0])
        assert negated.shape == cube.shape and negated.lazy and negated.beam == cube.beam
        np.testing.assert_array_equal(cube.channel(6), cube_data()[6])  # the cube itself is as it was


def test_p_false_and_the_table_from_the_negative_detections():
    candidates = Table({"snr": [20.0, 9.0, 5.5, 5.2]})
    negatives = Table({"snr": [5.3, 5.1]})
    out, table = reliability.with_reliability(candidates, negatives, edges=(5.0, 6.0, 10.0))
    # no negative detection reaches 5.5 (0 of 3 candidates there); one reaches 5.2, where there are 4
    assert list(out["p_false"]) == [0.0, 0.0, 0.0, pytest.approx(0.25)]
    assert [tuple(row) for row in table] == [(5.0, 6.0, 2, 2, 0.0), (6.0, 10.0, 1, 0, 1.0),
                                             (10.0, np.inf, 1, 0, 1.0)]
    empty, table = reliability.with_reliability(Table({"snr": np.zeros(0)}), negatives, edges=(5.0,))
    assert len(empty) == 0 and table["reliability"][0] is None
    assert "reliability" in reliability.format_table(table)


def test_detect_with_reliability_on_the_command_line(make_cube, tmp_path):
    rng = np.random.default_rng(2)
    data = 0.01 * rng.standard_normal((12, 20, 24)).astype(np.float32)
    yy, xx = np.mgrid[0:20, 0:24]
    data[5:8] += np.exp(-((xx - 12) ** 2 + (yy - 10) ** 2) / 4.0)
    cube = make_cube(layout="3d", data=data)
    out = tmp_path / "cat.vot"
    result = run_cli("detect", cube, "-o", out, "--detector", "photutils", "--reliability")
    assert result.returncode == 0, result.stderr
    assert "the same search on the negated cube" in result.stdout
    catalog = read_catalog(out)
    assert len(catalog) == 1 and catalog["p_false"][0] == 0.0  # the negated cube holds a hole, not a source
    table = Table.read(tmp_path / "cat_reliability.csv", format="ascii.csv", comment="#")
    assert int(np.sum(table["candidates"])) == 1 and int(np.sum(table["negatives"])) == 0
