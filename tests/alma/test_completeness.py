"""Completeness from the user's own cube: sources injected with its beam where nothing was found."""

import numpy as np
import pytest
from astropy.table import Table

from pipeline.alma import completeness as cm
from pipeline.alma import cube_views
from pipeline.alma.cube import open_cube
from tests.conftest import run_cli


@pytest.fixture
def noise_cube(make_cube):
    data = 0.01 * np.random.default_rng(5).standard_normal((24, 96, 96)).astype(np.float32)
    return make_cube(layout="3d", nx=96, ny=96, nchan=24, data=data)


def test_injected_sources_are_the_beam_times_a_line_read_lazily(noise_cube):
    with open_cube(noise_cube) as cube:
        sources = Table({"x": [30.0], "y": [40.0], "z": [10.0], "peak": [0.5]})
        twin = cube_views.injected(cube, sources)
        assert twin.data[10, 40, 30] == pytest.approx(cube.data[10, 40, 30] + 0.5, abs=1e-6)
        # two channels off the line's centre
        half = 0.5 * np.exp(-0.5 * (2 / (cube_views.LINE_FWHM_CHANNELS / 2.3548)) ** 2)
        assert twin.data[12, 40, 30] == pytest.approx(cube.data[12, 40, 30] + half, abs=1e-5)
        far = twin.data[:, 90, 90]
        np.testing.assert_array_equal(far, cube.data[:, 90, 90])  # beyond 3 beams nothing is added
        np.testing.assert_allclose(twin.data[::2, 30:50:3, 20:40][5], twin.data[10, 30:50:3, 20:40])  # any slicing
        assert twin.moment0()[0][40, 30] > cube.moment0()[0][40, 30]


def test_sites_keep_away_from_the_detections_and_each_other(noise_cube):
    with open_cube(noise_cube) as cube:  # beam 5 px: sites every 20 px, 20 px from the edges
        sites = cm.injection_sites(cube, Table({"x": [45.0], "y": [45.0]}), 100, np.random.default_rng(0))
        # of the 3 x 3 grid, (40, 40), (60, 40) and (40, 60) lie within 20 px of the detection
        assert len(sites) == 6 and np.min(np.hypot(sites[:, 0] - 45, sites[:, 1] - 45)) > 20
        assert sites.min() >= 20 and sites.max() <= 76


def test_bright_injected_lines_are_found_and_the_command_line_writes_the_table(noise_cube, tmp_path):
    with open_cube(noise_cube) as cube:
        table = cm.completeness(cube, Table({"x": np.zeros(0), "y": np.zeros(0)}), "photutils", snrs=(40.0,),
                                per_snr=3)
    assert list(table["injected"]) == [3] and list(table["completeness"]) == [1.0]
    result = run_cli("detect", noise_cube, "-o", tmp_path / "cat.csv", "--detector", "photutils", "--completeness")
    assert result.returncode == 0, result.stderr
    assert "point sources injected" in result.stdout
    written = Table.read(tmp_path / "cat_completeness.csv", format="ascii.csv", comment="#")
    # 9 sites for 4 sources at each of 7 SNRs: every SNR gets one before any gets two
    assert list(written["snr"]) == list(cm.SNRS) and list(written["injected"]) == [2, 2, 1, 1, 1, 1, 1]
