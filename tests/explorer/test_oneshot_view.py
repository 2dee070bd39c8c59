"""The one-shot search tab without a browser: a small simulated survey indexed at 64 px."""

import io

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

from explorer.oneshot_view import OneShotViewer, available_sets
from pipeline.oneshot import galaxy_sets, survey
from pipeline.oneshot.galaxies import GalaxySet
from pipeline.oneshot.store import build_store


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("indexes")
    catalog = survey.simulate_survey(root / "survey", n=160, seed=5, size=48)
    build_store(GalaxySet.open(catalog, name="small survey"), root / "small", size=64, scheduler="synchronous")
    return root


@pytest.fixture
def viewer(index_dir, monkeypatch):
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", str(index_dir))
    v = OneShotViewer()
    assert v.galaxy_set == "small (index)"  # the operator's indexes come first
    v.activate()
    assert v.store is not None, v._error.object
    return v


def test_sets_listed_with_the_embedded_ones(index_dir, monkeypatch):
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", str(index_dir))
    names = list(available_sets())
    assert names == ["small (index)", galaxy_sets.SIMULATED_SET_NAME, galaxy_sets.HDF_SET_NAME]


def test_opening_a_set_starts_from_a_counted_galaxy(viewer):
    assert viewer.label == "bpt_class" and viewer.positive == "AGN"
    assert viewer._label_of(viewer.prototype) == "AGN"
    assert len(viewer.result) == viewer.n and viewer.prototype not in list(viewer.result["id"])
    assert viewer._notice.visible and "Simulated" in viewer._notice.object
    stats = viewer.statistics_panel().object
    assert "bpt_class = AGN" in stats and "base rate" in stats and "95% Wilson" in stats
    assert "EfficientNet-Lite0" in viewer.info_panel().object and "Lupton" in viewer.info_panel().object


def test_recursive_search_gives_iterations_and_provenance(viewer):
    viewer.n, viewer.iterations = 3, 3
    viewer.run_recursive()
    assert viewer.mode == "recursive" and viewer.result["iteration"].max() <= 3
    assert [s["iteration"] for s in viewer.iteration_stats] == sorted(set(viewer.result["iteration"]))
    panel = viewer.recursive_panel()
    assert len(panel.objects[0].objects) == 2  # the per-iteration chart and the provenance plot
    assert list(panel.objects[1].value.columns[:3]) == ["id", "iteration", "parent"]


def test_the_recursive_search_in_a_worker_process_gives_the_same_galaxies(viewer):
    """As in a served page: the work goes to a worker process, which opens the store itself."""
    viewer.n, viewer.iterations = 3, 3
    viewer.run_recursive()
    here = list(viewer.result["id"])
    viewer.job.processes = True
    viewer.run_recursive()
    assert viewer.mode == "recursive" and list(viewer.result["id"]) == here and viewer.job._process is not None


def test_feedback_reranks(viewer):
    first = list(viewer.result["id"])
    cards = viewer.neighbours_panel().objects[1].objects
    up, down = cards[1].objects[2].objects
    down.value = True
    assert viewer.disliked == {first[1]} and not viewer._refine_button.disabled
    up.value = True  # changing one's mind: up clears down
    assert viewer.liked == {first[1]} and viewer.disliked == set() and down.value is False
    cards[0].objects[2].objects[1].value = True
    viewer.refine()
    shown = list(viewer.result["id"])
    assert viewer.mode == "refined" and not {first[0], first[1]} & set(shown)  # marked: not shown again
    assert viewer.result.meta["provenance"]["mode"] == "feedback (linear classifier)"
    viewer.feedback = "rocchio"
    viewer.refine()
    assert viewer.result.meta["provenance"]["mode"] == "feedback (Rocchio)"


def test_upload_as_prototype_and_bad_upload(viewer):
    galaxies = viewer.store.galaxies
    buffer = io.BytesIO()
    Image.fromarray(galaxies.rgb(7)).save(buffer, "PNG")
    viewer._upload.filename = "mine.png"
    viewer._upload.value = buffer.getvalue()
    assert viewer.prototype == "" and viewer.result["id"][0] == galaxies.ids[7]
    assert viewer.result["distance"][0] < 0.01
    viewer._upload.filename = "notes.txt"
    viewer._upload.value = b"hello"
    assert viewer._error.visible and "upload PNG, JPEG or FITS" in viewer._error.object
    viewer._upload.filename = "broken.png"
    viewer._upload.value = b"not a png at all"
    assert viewer._error.visible and "Cannot read the image" in viewer._error.object


def test_export_and_browse(viewer):
    table = Table.read(io.BytesIO(viewer.export(".csv").getvalue()), format="ascii.csv", comment="#")
    assert table.colnames[:4] == ["id", "distance", "iteration", "parent"] and len(table) == viewer.n
    assert b"VOTABLE" in viewer.export(".vot").getvalue()
    header = viewer.export(".csv").getvalue().decode().split("\nid,")[0]  # the provenance above the columns
    assert f"# prototype: {viewer.prototype}" in header and f"# n: {viewer.n}" in header and "# set: " in header
    assert '<INFO ID="mode" name="mode"' in viewer.export(".vot").getvalue().decode()
    viewer.browser.only_positive = True
    browse = viewer.browser.panel()
    ids = [c.objects[1].name for c in browse.objects[1].objects]
    assert ids and all(viewer._label_of(i) == "AGN" for i in ids)
    ids_before = viewer.prototype
    browse.objects[1].objects[-1].objects[1].clicks += 1
    assert viewer.prototype == ids[-1] != ids_before or len(ids) == 1


def test_switching_sets_forgets_the_prototype(viewer, index_dir, tmp_path, monkeypatch):
    """A second set with other ids: the old prototype must not be looked up in it."""
    import os

    catalog = survey.simulate_survey(tmp_path / "s2", n=60, seed=9, size=48)
    table = Table.read(catalog, format="ascii.csv")
    table["id"] = [f"X{i}" for i in range(len(table))]
    table.write(catalog, format="ascii.csv", overwrite=True)
    build_store(GalaxySet.open(catalog, name="other"), tmp_path / "other", size=64, scheduler="synchronous")
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", f"{index_dir}{os.pathsep}{tmp_path}")  # images inside it
    viewer._sets = available_sets()
    viewer.param.galaxy_set.objects = list(viewer._sets)
    viewer.galaxy_set = "other (index)"
    assert viewer.store is not None and not viewer._error.visible, viewer._error.object
    assert viewer.prototype.startswith("X") and viewer.prototype_panel() is not None


def test_choosing_another_set_while_a_job_runs_keeps_the_set_shown(index_dir, monkeypatch):
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", str(index_dir))
    viewer = OneShotViewer()
    viewer.activate()
    shown, store = viewer.galaxy_set, viewer.store
    other = next(name for name in viewer.param.galaxy_set.objects if name != shown)
    viewer.job._poll = object()  # a recursive search still running, as in a served page
    viewer.galaxy_set = other
    assert viewer.galaxy_set == shown and viewer.store is store
    assert "wait for it or press Cancel" in viewer._error.object


def test_neighbours_vetted_for_a_question_are_a_label_and_feedback(viewer, index_dir, tmp_path):
    from pipeline.vetting.store import VettingStore

    files = {p: p.read_bytes() for p in index_dir.rglob("*") if p.is_file() and p.suffix in (".csv", ".vot")}
    viewer.vetting.store = VettingStore(tmp_path / "v.sqlite")
    shown = [str(i) for i in viewer.result["id"]]
    viewer.vetting.cast(shown[0], "yes")
    assert "Say what the neighbours are vetted for" in viewer.vetting.message
    viewer.vetting.question = "spiral arms"
    viewer.vetting.cast(shown[0], "yes")
    assert "reviewer name" in viewer.vetting.message
    viewer.vetting.reviewer = "ann"
    viewer.vetting.cast(shown[0], "yes")
    viewer.vetting.cast(shown[1], "no")
    assert viewer.vetting.message == ""
    assert "vetted_spiral_arms" in viewer.param.label.objects
    viewer.label = "vetted_spiral_arms"
    assert viewer.param.positive.objects == ["no", "yes"]
    viewer.positive = "yes"
    assert "vetted_spiral_arms = yes:\n1 of " in viewer.statistics_panel().object
    exported = Table.read(io.BytesIO(viewer.export(".vot").getvalue()), format="votable")
    said = dict(zip([str(i) for i in exported["id"]], [str(v) for v in exported["vetted_spiral_arms"]], strict=True))
    assert said[shown[0]] == "yes" and said[shown[1]] == "no"
    viewer.refine()  # the team's yes and no are feedback: the "no" galaxy never comes back
    assert viewer.mode == "refined" and shown[1] not in [str(i) for i in viewer.result["id"]]
    assert {p: p.read_bytes() for p in files} == files  # the set's own catalogue is never written to


def test_a_question_too_long_is_refused_and_breaks_nothing(viewer, tmp_path):
    from pipeline.vetting.store import VettingStore

    viewer.vetting.store = VettingStore(tmp_path / "v.sqlite")
    viewer.vetting.question = "x" * 81
    assert "at most 80 characters" in viewer.vetting.message
    assert viewer.vetting.label_name is None and viewer.vetting.collection is None
    viewer.vetting.refresh()  # the poll
    assert not any(str(o).startswith("vetted_") for o in viewer.param.label.objects)
    viewer.vetting.question = "bar"
    assert viewer.vetting.message == "" and "vetted_bar" in viewer.param.label.objects


def test_feature_map_colours_hover_selection_and_export(viewer):
    """Issue 15, item 5: the map of the feature space in the one-shot tab."""
    from astropy.table import Table as T

    view = viewer.feature_map
    viewer._tabs.active = 2  # the map's tab: the map is made (in this thread, without a server)
    assert view.positions is not None and view.positions.shape == (160, 2), view._error.object
    assert "160 galaxies" in view._status.object
    groups = view.groups()
    agn = [str(v) == "AGN" for v in viewer.store.catalog["bpt_class"]]
    assert list(groups == "counted value") == agn
    view.colour = "search"
    groups = view.groups()
    assert groups[viewer.store.row_of(viewer.prototype)] == "prototype" and (groups == "found").sum() == viewer.n
    # the pointer on a galaxy shows it; far from every galaxy, the last one stays
    row = 7
    view._on_pointer(*view.positions[row])
    assert view.hovered == row and str(viewer.store.catalog["id"][row]) in view.hover_panel()[1].object
    view._on_pointer(1e6, 1e6)
    assert view.hovered == row
    # a lasso round a few galaxies selects exactly those
    centre = view.positions[row]
    near = np.flatnonzero(np.linalg.norm(view.positions - centre, axis=1) < 5)
    view.select_polygon(centre + 5 * np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, 64)]))
    assert set(view.selected) == set(near) and row in view.selected
    assert not view._buttons["good"].disabled and f"{len(near)} galaxies selected" in view.selection_panel().object
    view.select_box((centre[0] - 1e-3, centre[1] - 1e-3, centre[0] + 1e-3, centre[1] + 1e-3))
    assert list(view.selected) == [row]
    view.select_polygon(centre + 5 * np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, 64)]))
    exported = T.read(io.BytesIO(view.export().getvalue()), format="ascii.csv", comment="#")
    assert exported.colnames[:3] == ["id", "map_x", "map_y"] and len(exported) == len(near)
    view.mark(False)
    assert viewer.disliked == set(view.selected_ids()) and not viewer._refine_button.disabled
    view.colour = "feedback"
    assert (view.groups() == "marked bad").sum() == len(near)
    view.search_from_selection()
    assert viewer.prototype == "" and viewer._upload_vector is not None and viewer.mode == "direct"
    assert "the mean of" in viewer.prototype_panel()[2].object and not viewer.disliked
    # the figure is made (datashaded points under the marks)
    import holoviews as hv
    assert isinstance(view._plot.object, hv.core.spaces.DynamicMap | hv.Overlay)


def test_feature_map_marks_at_most_a_limit(viewer, monkeypatch):
    from explorer import feature_map_view

    monkeypatch.setattr(feature_map_view, "MARK_AT_MOST", 3)
    view = viewer.feature_map
    view.activate()
    view.select_box((-1e9, -1e9, 1e9, 1e9))
    assert len(view.selected) == 160
    view.mark(True)
    assert not viewer.liked and "mark at most 3" in view._error.object


def test_the_gallery_saves_as_a_page_and_as_a_sheet(viewer):
    page = viewer.gallery_handout("html").getvalue().decode()
    assert f"the 12 nearest of {viewer.prototype}" in page and "cdn.bokeh.org" not in page
    for gid in viewer.result["id"][:12]:
        assert str(gid) in page
    sheet = Image.open(io.BytesIO(viewer.gallery_handout("png").getvalue()))
    assert sheet.format == "PNG"
    assert sheet.width >= 6 * 160 and sheet.height > 3 * 160  # the prototype and 12 neighbours, six a row
    pixels = np.asarray(sheet.convert("RGB"))
    counted = sum(1 for gid in viewer.result["id"][:12] if viewer._label_of(str(gid)) == viewer.positive)
    red = np.all(pixels == (214, 39, 40), axis=-1).sum()
    assert (red > 0) == (counted > 0)  # the galaxies with the counted label have their red border
    assert viewer._gallery_downloads["png"].filename == f"{viewer.prototype}-neighbours.png"
