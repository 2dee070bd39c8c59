"""The pipeline's stages kept for inspection, on the bundled simulated cube with the shipped networks:
each stage is the pipeline's own, so its significant lines are the pipeline's sources."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.alma import detect
from pipeline.alma.cube import open_cube
from pipeline.alma.source_maps import boxes_from_map
from pipeline.alma.stages import stages
from pipeline.alma.truth import truth_for_cube

CUBE = Path(__file__).resolve().parents[2] / "assets" / "cubes" / "sim_7_0000.fits"


@pytest.fixture(scope="module")
def kept():
    with open_cube(CUBE) as cube:
        return stages(cube), detect.detect(cube, keep_sidelobes=True)


def test_every_stage_is_kept_and_its_lines_are_the_pipelines_sources(kept):
    s, catalog = kept
    assert s.integrated.shape == s.source_map.shape == (128, 128)
    assert 0 <= s.source_map.min() and s.source_map.max() <= 1
    assert [b[:4] for b in boxes_from_map(s.source_map, s.threshold)] == [(b.x0, b.y0, b.x1, b.y1) for b in s.boxes]
    for box in s.boxes:
        assert box.spectrum.shape == box.denoised.shape == (64,)
        assert box.lines and all(0 <= ln.first <= ln.peak < ln.last <= 64 for ln in box.lines)
    rows = [ln.row for b in s.boxes for ln in b.lines if ln.significant]
    # the catalogue adds blended neighbours, never loses a significant line
    assert len(catalog) >= len(rows) >= 3
    for row in rows:
        assert np.min(np.hypot(catalog["x"] - row["x"], catalog["y"] - row["y"])) < 0.5
        assert row["snr"] >= s.level


def test_a_line_is_measured_when_significant_and_the_truth_is_in_the_boxes(kept):
    s, _ = kept
    truth = truth_for_cube(CUBE)
    bright = truth[truth["snr_peak"] >= 5]
    for t in bright:  # every source at signal/noise >= 5 is in a box whose line covers its channel
        box = next(b for b in s.boxes if b.holds(t["x"], t["y"]))
        assert any(ln.first <= t["z"] < ln.last for ln in box.lines)
    for ln in (ln for b in s.boxes for ln in b.lines):
        assert ln.significant == (ln.row is not None)
        if ln.significant:
            assert {"x", "y", "fwhm_x", "fwhm_y", "pa", "flux", "snr"} <= set(ln.row)


def test_another_cut_reuses_the_map_and_a_higher_level_keeps_fewer_lines(kept):
    s, _ = kept
    with open_cube(CUBE) as cube:
        strict = stages(cube, min_snr=20.0, threshold=0.9, source_map=s.source_map)
    assert strict.source_map is s.source_map and len(strict.boxes) <= len(s.boxes)
    assert strict.level == 20.0
    kept_lines = [ln for b in strict.boxes for ln in b.lines if ln.significant]
    assert all(ln.row["snr"] >= 20.0 for ln in kept_lines)
    assert len(kept_lines) < sum(ln.significant for b in s.boxes for ln in b.lines)
