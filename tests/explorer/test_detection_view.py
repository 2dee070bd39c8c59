"""The detection panel without a server: run a classic finder, boxes per channel, truth colours, export."""

import pytest

from explorer.cube_view import CubeViewer
from explorer.detection_view import TRUTH_COLOURS, DetectionViewer, find_truth
from pipeline.alma.catalog import read_catalog
from pipeline.alma.cube import open_cube
from pipeline.alma.simulate import Observation, simulate_cube, write_cube, write_truth


@pytest.fixture
def panel_on_sim(tmp_path):
    obs = Observation(cell_arcsec=0.15, observation_s=1200, integration_s=60)
    sim = simulate_cube(11, size=96, channels=32, observation=obs, name="s.fits")
    path = write_cube(tmp_path / "s.fits", sim.dirty_cube, sim.frequency_hz, obs, sim.beams)
    write_truth(tmp_path / "truth.csv", sim.truth)
    return DetectionViewer(CubeViewer(open_cube(path))), sim.truth


def test_truth_is_found_beside_a_simulated_cube(panel_on_sim, tmp_path):
    viewer, truth = panel_on_sim
    assert viewer.truth is not None and len(viewer.truth) == len(truth)
    assert find_truth(tmp_path / "other.fits") is None


def test_run_photutils_boxes_truth_and_selection(panel_on_sim):
    viewer, truth = panel_on_sim
    viewer.detector = "photutils"
    viewer.start()
    assert not viewer.running and viewer.catalog is not None and len(viewer.catalog) >= 1
    assert "sources (" in viewer.status and "against the truth" in viewer.status
    assert viewer.outcome["rows"][0] == "true positive"  # the brightest detection is a real source
    best = viewer.catalog[0]
    inside = viewer.boxes(int(best["z"]), False, viewer.version, viewer.selected, "channel")
    outside = viewer.boxes(int(best["z1"]) + 3 if best["z1"] + 3 < 32 else 0, False, viewer.version, None, "channel")
    rects_in = inside.get(0).data
    assert int(best["id"]) in list(rects_in["id"])
    assert TRUTH_COLOURS["true positive"] in list(rects_in["colour"])
    every = viewer.boxes(0, True, viewer.version, None, "channel").get(0).data
    assert len(every) == len(viewer.catalog)
    assert len(outside.get(0).data) <= len(every)
    # picking the last row of the table selects it and shows its peak channel
    last = viewer.catalog[-1]
    viewer.cube_viewer.channel = (int(last["z"]) + 1) % viewer.cube.nchan
    viewer._table.selection = [len(viewer.catalog) - 1]
    assert viewer.selected == int(last["id"]) and viewer.cube_viewer.channel == int(last["z"])
    # clicking inside the box of the best source selects it
    viewer.selected = None
    viewer.cube_viewer.channel = int(best["z"])
    viewer._on_tap(x=float(best["x"]), y=float(best["y"]))
    assert viewer.selected == int(best["id"])
    panel = viewer.source_panel(viewer.selected, viewer.version)
    assert "Source" in str(panel.objects[0].object.opts.get().kwargs.get("title", ""))


def test_export_files_read_back(panel_on_sim, tmp_path):
    viewer, _ = panel_on_sim
    viewer.detector = "photutils"
    viewer.start()
    (tmp_path / "c.vot").write_bytes(viewer.export(".vot").getvalue())
    assert len(read_catalog(tmp_path / "c.vot")) == len(viewer.catalog)
    assert "# Region file format: DS9" in viewer.export(".reg").getvalue().decode()
    assert viewer.export(".crtf").getvalue().decode().startswith("#CRTF")


def test_missing_models_give_a_message_not_a_crash(panel_on_sim, monkeypatch, tmp_path):
    viewer, _ = panel_on_sim
    from pipeline.alma import detect
    monkeypatch.setattr(detect, "MODELS_DIR", tmp_path / "none")
    monkeypatch.setattr(detect.SourceFinder.load.__func__, "__defaults__", (tmp_path / "none",))
    viewer.detector = "pipeline"
    viewer.start()
    assert viewer._error.visible and "python -m pipeline train" in viewer._error.object
    assert viewer.catalog is None


def test_shipped_pipeline_finds_the_bright_sources_of_the_bundled_cube():
    """The trained networks in assets/models on the bundled simulated cube: every source with
    SNR >= 10 is found, and nothing that is not in the truth."""
    from explorer.files import BUNDLED_CUBES

    viewer = DetectionViewer(CubeViewer(open_cube(BUNDLED_CUBES / "sim_7_0000.fits")))
    assert viewer.detector == "pipeline"  # the default
    viewer.start()
    assert viewer.catalog is not None and "sources (pipeline)" in viewer.status
    outcome = viewer.outcome["rows"]
    assert outcome.count("true positive") >= 3 and "false positive" not in outcome
    bright = viewer.truth[viewer.truth["snr_peak"] >= 10]
    found = {(int(t["x"]), int(t["y"])) for t in bright} - {(int(t["x"]), int(t["y"])) for t in viewer.outcome["missed"]}
    assert len(found) == len(bright)
    # the selected pipeline source shows the Deep GRU spectrum beside the box spectrum
    viewer.selected = int(viewer.catalog[0]["id"])
    panel = viewer.source_panel(viewer.selected, viewer.version)
    assert "Deep GRU" in [curve.label for curve in panel.objects[0].object]
