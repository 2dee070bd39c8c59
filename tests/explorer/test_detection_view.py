"""The detection panel without a server: run a classic finder, boxes per channel, truth colours, export."""

import re

import pytest

from explorer.cube_view import CubeViewer
from explorer.detection_view import TRUTH_COLOURS, DetectionViewer
from pipeline.alma.catalog import read_catalog
from pipeline.alma.cube import open_cube
from pipeline.alma.simulate import Observation, simulate_cube, write_cube, write_truth
from tests.conftest import write_simulated_with_companions


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


def test_a_damaged_truth_file_leaves_the_cube_without_a_comparison(panel_on_sim, tmp_path):
    viewer, _ = panel_on_sim
    (tmp_path / "truth.csv").write_bytes(b"\x00\xff not, a\n\"table")
    again = DetectionViewer(CubeViewer(open_cube(viewer.cube.path)))
    assert again.truth is None


def drawn(overlay):
    """The boxes drawn (not their halos), every layer: solid, dashed and selected."""
    import pandas as pd

    return pd.concat([overlay.get(("Boxes", name)).data
                      for name in ("Solid", "Sidelobes", "Selected")])


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
    rects_in = drawn(inside)
    assert int(best["id"]) in list(rects_in["id"])
    assert TRUTH_COLOURS["true positive"] in list(rects_in["colour"])
    every = drawn(viewer.boxes(0, True, viewer.version, None, "channel"))
    assert len(every) == len(viewer.catalog)
    assert len(drawn(outside)) <= len(every)
    # picking the last row of the table selects it and shows its peak channel
    last = viewer.catalog[-1]
    viewer.cube_viewer.channel = (int(last["z"]) + 1) % viewer.cube.nchan
    viewer._table.selection = []
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


@pytest.fixture
def panel_with_companions(tmp_path, monkeypatch):
    """A data folder "alma" holding a simulated cube as tclean names it (sim.image.fits), its
    sim.pb.fits and sim.psf.fits, and an unrelated cube; the panel on the simulated cube."""
    folder = tmp_path / "alma"
    folder.mkdir()
    monkeypatch.setenv("EXPLORER_DATA_DIRS", str(folder))
    paths = write_simulated_with_companions(folder)
    write_simulated_with_companions(tmp_path, name="elsewhere.fits", size=64, channels=16)
    (tmp_path / "elsewhere.fits").rename(folder / "other.fits")
    return DetectionViewer(CubeViewer(open_cube(paths["cube"]))), paths


def test_primary_beam_and_psf_beside_the_cube_are_attached_and_used(panel_with_companions):
    viewer, paths = panel_with_companions
    assert (viewer.pb_file, viewer.psf_file) == ("alma/sim.pb.fits", "alma/sim.psf.fits")
    assert "Primary beam: alma/sim.pb.fits (found beside the cube), 32 channels" in viewer.attached
    assert "PSF: alma/sim.psf.fits (found beside the cube)" in viewer.attached
    assert str(paths["pb"].parent) not in viewer.attached  # the data folder by name, never its place
    assert set(viewer.param.pb_file.objects) >= {"none", "alma/other.fits"}
    assert "alma/sim.image.fits" not in viewer.param.pb_file.objects  # not the cube itself
    viewer.detector = "photutils"
    viewer.start()
    assert viewer.catalog.meta["pb_corrected"] and "fluxes primary-beam corrected" in viewer.status
    assert "pb" in viewer._table.value.columns and (viewer._table.value["pb"] > 0.5).all()
    params = viewer.source_panel(viewer.selected, viewer.version).objects[1].objects[1].object
    assert re.search(r"primary beam (0\.9|1\.0)\d\d \(flux corrected\)", params)


def test_a_companion_that_does_not_fit_is_refused_and_detection_goes_uncorrected(panel_with_companions):
    viewer, _ = panel_with_companions
    viewer.pb_file = "alma/other.fits"  # 64 x 64 pixels, 16 channels
    assert viewer._error.visible and "is 64 x 64 pixels but the cube is 96 x 96" in viewer._error.object
    assert viewer.pb_file == "none" and "Primary beam: none (fluxes will be uncorrected" in viewer.attached
    assert "pb" not in viewer.companions and "psf" in viewer.companions
    viewer.pb_file = "alma/sim.pb.fits"  # picked by hand this time: opened once, reused
    assert viewer.companions["pb"].path.name == "sim.pb.fits"
    viewer.pb_file = "none"
    viewer.detector = "photutils"
    viewer.start()
    assert not viewer.catalog.meta["pb_corrected"] and "fluxes uncorrected for the primary beam" in viewer.status
    assert "pb" not in viewer._table.value.columns  # shown only when measured
    viewer.close()
    assert viewer.companions == {}


def test_missing_models_give_a_message_not_a_crash(panel_on_sim, tmp_path):
    viewer, _ = panel_on_sim
    viewer.models = tmp_path / "none"
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
    found = ({(int(t["x"]), int(t["y"])) for t in bright}
             - {(int(t["x"]), int(t["y"])) for t in viewer.outcome["missed"]})
    assert len(found) == len(bright)
    # the selected pipeline source shows the Deep GRU spectrum beside the box spectrum
    viewer.selected = int(viewer.catalog[0]["id"])
    panel = viewer.source_panel(viewer.selected, viewer.version)
    assert "Deep GRU" in [curve.label for curve in panel.objects[0].object]


def test_probable_sidelobes_are_hidden_and_shown_dashed_on_request(panel_on_sim):
    viewer, _ = panel_on_sim
    viewer.detector = "photutils"
    viewer.start()
    from astropy.table import vstack

    found = vstack([viewer.found[:1], viewer.found[:1]])  # the source and a copy of it
    found["id"] = [1, 2]
    # as if the check had called the faintest detection a sidelobe of the brightest
    found["sidelobe"][-1], found["sidelobe_p"][-1], found["sidelobe_of"][-1] = True, 0.4, 1
    found["pa"][-1] = float("nan")
    viewer._on_done((found, {}))
    assert len(viewer.catalog) == len(found) - 1 and "1 probable sidelobe(s) hidden" in viewer.status
    viewer.show_sidelobes = True
    assert len(viewer.catalog) == len(found) and "shown dashed" in viewer.status
    row = viewer.catalog[-1]
    viewer.selected = int(row["id"])
    text = viewer.source_panel(viewer.selected, viewer.version).objects[1].objects[1].object
    assert "probable sidelobe of source 1 (p = 0.40)" in text and "PA undefined (round source)" in text
    z = int(row["z"])
    boxes = viewer.boxes(z, True, viewer.version, viewer.selected, "channel")
    solid, chosen = boxes.Boxes.Solid, boxes.Boxes.Selected  # the sidelobe is the one selected: thick
    assert chosen.dimension_values("id").tolist() == [int(row["id"])] and 1 in solid.dimension_values("id")
    assert chosen.opts.get().kwargs["line_width"] == 3
    viewer.selected = None
    unselected = viewer.boxes(z, True, viewer.version, None, "channel").Boxes.Sidelobes
    assert unselected.opts.get().kwargs["line_dash"] == "dashed"


def test_the_inspector_gives_size_errors_and_calls_unresolved_sizes_upper_limits(panel_on_sim):
    viewer, _ = panel_on_sim
    viewer.detector = "photutils"
    viewer.start()
    row = viewer.catalog[0]
    assert all(c in viewer.catalog.colnames for c in ("fwhm_x_err", "fwhm_y_err", "pa_err", "resolved"))
    assert row["fwhm_x_err"] > 0
    viewer.selected = int(row["id"])
    text = viewer.source_panel(viewer.selected, viewer.version).objects[1].objects[1].object
    assert f"FWHM {row['fwhm_x']:.2f} ± {row['fwhm_x_err']:.2f}" in text
    found = viewer.found.copy()
    found["resolved"][0] = False
    viewer._on_done((found, {}))
    first = viewer.catalog[0]
    viewer.selected = int(first["id"])
    text = viewer.source_panel(viewer.selected, viewer.version).objects[1].objects[1].object
    limit = first["fwhm_x"] + 2 * first["fwhm_x_err"]
    assert f"unresolved: not wider than the beam beyond its errors; FWHM below {limit:.2f}" in text


def test_reliability_and_completeness_on_request(panel_on_sim):
    """Ticked, a run also searches the negated cube (each source's p_false in the table and the
    reliability table under the status) or the cube with sources injected (the completeness
    table); unticked, neither."""
    viewer, _ = panel_on_sim
    viewer.detector = "photutils"
    viewer.start()
    assert "p_false" not in viewer._table.value.columns and viewer.statistics_text == ""
    viewer.reliability = True
    viewer.start()
    assert "p_false" in viewer._table.value.columns and (viewer._table.value["p_false"] >= 0).all()
    assert "the same search on the negated cube" in viewer.statistics_text
    viewer.reliability, viewer.completeness = False, True
    viewer.start()
    assert "point sources injected" in viewer.statistics_text and "negated" not in viewer.statistics_text
    plot = viewer.quality_plot()
    assert [c.label for c in plot if type(c).__name__ == "Curve"] == ["completeness"]
    assert 0 <= plot.Curve.completeness.dimension_values("fraction").min() <= 1


def test_candidates_so_far_are_drawn_while_the_pipeline_runs_and_go_with_its_end(panel_on_sim):
    viewer, _ = panel_on_sim
    viewer.job.on_partial([(10, 12, 20, 24, 0.6), (40, 40, 48, 50, 0.3)])  # what the job's poll hands over
    def drawn():  # over the solid and dashed boxes and the missed sources' circles
        return viewer.boxes(0, False, viewer.version, None, "channel", viewer.preliminary).Boxes.Candidates.data

    assert list(drawn()["x0"]) == [9.5, 39.5] and set(drawn()["colour"]) == {"#ffffff"}
    viewer._on_status("pipeline: Blobs Finder, channels 4-11 (2/14)")
    assert viewer.status.endswith("2 candidate boxes so far (dotted white)")
    viewer.detector = "photutils"
    viewer.start()  # done: the final boxes replace them
    assert viewer.preliminary == [] and len(drawn()) == 0


def _luminance(colour: str) -> float:
    """WCAG relative luminance of "#rrggbb"."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_markers_stay_visible_on_every_colour_map():
    """Issue 13, item 11: every box and circle colour, with its dark halo, stands out at 3:1 or more
    (WCAG's contrast for graphics) against every colour of every map and stretch the viewer offers."""
    from explorer.cube_view import STRETCHES, CubeViewer, stretched_palette
    from explorer.detection_view import DETECTOR_COLOURS, HALO_COLOUR, PRELIMINARY_COLOUR

    markers = {*TRUTH_COLOURS.values(), *DETECTOR_COLOURS.values(), PRELIMINARY_COLOUR}
    for cmap in CubeViewer.param.cmap.objects:
        for stretch in STRETCHES:
            for background in set(stretched_palette(cmap, stretch, n=64)):
                background = background[:7].lower()
                for marker in markers:
                    seen = max(_contrast(marker, background), _contrast(HALO_COLOUR, background))
                    assert seen >= 3, (cmap, stretch, marker, background, seen)
