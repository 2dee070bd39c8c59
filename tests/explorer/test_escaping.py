"""Text from files and visitors reaches the browser as text: never as HTML or Markdown, never with a
server path (issue 9, items 1 and 4)."""

import html

import numpy as np
import panel as pn
import pytest
from astropy.table import Table
from panel.pane.markup import HTMLBasePane

from explorer.cube_explorer import CubeExplorer
from explorer.cube_view import CubeViewer
from explorer.detection_view import DetectionViewer
from explorer.text import Alert, Prose, Text, TextTable, for_visitor
from pipeline.alma.cube import open_cube

SCRIPT = '<img src=x onerror="window.hacked=1">'
MARKUP = "**bold** [link](javascript:alert(1)) `code`"


def shown_html(layout) -> str:
    """What the browser would put into the page (innerHTML) for every text pane of ``layout``."""
    parts = []
    for pane in layout.select(HTMLBasePane):
        if isinstance(pane, (pn.pane.image.ImageBase, pn.pane.HoloViews)):  # pixels, not text
            continue
        parts.append(html.unescape(pane._transform_object(pane.object)["object"]))  # the browser decodes once
    return "\n".join(parts)


def test_text_pane_escapes_what_panels_str_pane_does_not():
    assert "<img" in html.unescape(pn.pane.Str(SCRIPT)._transform_object(SCRIPT)["object"])  # why Text exists
    for pane in (Text(SCRIPT), Prose(SCRIPT), Alert(SCRIPT)):
        shown = html.unescape(pane._transform_object(pane.object)["object"])
        assert "<img" not in shown and "&lt;img src=x" in shown


def test_alert_shows_markdown_as_it_is():
    shown = html.unescape(Alert(MARKUP)._transform_object(MARKUP)["object"])
    assert "<strong>" not in shown and "<a " not in shown and "**bold**" in shown


def test_header_cards_and_file_name_are_text(make_cube):
    from astropy.io import fits

    path = make_cube(f"{SCRIPT.replace('/', '')}.fits", layout="3d")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["OBJECT"] = SCRIPT
        hdul[0].header["HISTORY"] = "```"
        hdul[0].header["COMMENT"] = "<script>window.hacked=2</script>"
        hdul[0].header["BUNIT"] = "<b>Jy</b>/beam"
    viewer = CubeViewer(open_cube(path))
    shown = shown_html(pn.Column(viewer.header_panel(), viewer.plots(), viewer.controls()))
    assert "<img" not in shown and "<script" not in shown and "<b>" not in shown
    assert "&lt;img src=x" in shown and "&lt;script&gt;" in shown


def test_error_messages_are_text_without_server_paths(tmp_path, monkeypatch):
    evil = tmp_path / f"{SCRIPT.replace('/', '')}.fits"
    evil.write_text("not FITS at all")
    monkeypatch.setenv("EXPLORER_DATA_DIRS", str(tmp_path))
    explorer = CubeExplorer()
    assert not explorer.open_file(evil)
    shown = shown_html(explorer._alert)
    assert "<img" not in shown and "&lt;img src=x" in shown
    assert str(tmp_path) not in shown
    assert not explorer.open_path("/etc/passwd")
    shown = shown_html(explorer._alert)
    assert "outside the data folders" in shown and str(tmp_path) not in shown and "/etc" not in shown


def test_header_summary_names_the_cube_not_its_server_path(tmp_path, monkeypatch, make_cube):
    path = make_cube("mine.fits")
    monkeypatch.setenv("EXPLORER_DATA_DIRS", str(path.parent))
    explorer = CubeExplorer()
    assert explorer.open_path("mine.fits")
    shown = shown_html(explorer._plots_area)
    assert f"{path.parent.name}/mine.fits" in shown and str(path.parent) not in shown


def test_for_visitor_keeps_units_and_removes_paths():
    assert for_visitor("flux in Jy/beam km/s") == "flux in Jy/beam km/s"
    assert for_visitor("Cannot read /srv/private/data/x.png (bad)") == "Cannot read x.png (bad)"


def test_catalogue_strings_are_text(make_cube):
    viewer = CubeViewer(open_cube(make_cube()))
    detection = DetectionViewer(viewer)
    row = {"id": 1, "x": 10.0, "y": 8.0, "z": 6, "ra": 150.0, "dec": -30.0, "freq": 230.5e9, "fwhm_x": 2.0,
           "fwhm_y": 2.0, "pa": 0.0, "flux": 1.0, "snr": 9.0, "blended": False, "score": 1.0, "x0": 6, "y0": 4,
           "x1": 14, "y1": 12, "z0": 3, "z1": 9, "detector": SCRIPT}
    catalog = Table(rows=[row])
    catalog.meta["detector"] = SCRIPT
    detection.set_catalog(catalog)
    shown = shown_html(pn.Column(detection, detection.source_panel(1, 1)))
    assert "<img" not in shown


@pytest.fixture
def oneshot_viewer(tmp_path, monkeypatch):
    """A one-shot viewer over a tiny store whose ids and labels carry markup."""
    from explorer.oneshot_view import OneShotViewer
    from pipeline.oneshot import survey
    from pipeline.oneshot.galaxies import GalaxySet
    from pipeline.oneshot.store import build_store

    catalog = survey.simulate_survey(tmp_path / "s", n=40, seed=3, size=32)
    table = Table.read(catalog, format="ascii.csv")
    table["id"] = [f"{SCRIPT}{i}" for i in range(len(table))]
    table["bpt_class"] = [SCRIPT if v == "AGN" else str(v) for v in table["bpt_class"]]
    table.write(catalog, format="ascii.csv", overwrite=True)
    build_store(GalaxySet.open(catalog, name=f"set {SCRIPT}"), tmp_path / "store", size=32, scheduler="synchronous")
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", str(tmp_path))
    viewer = OneShotViewer()
    viewer.activate()
    assert viewer.store is not None, viewer._error.object
    return viewer


def test_galaxy_ids_labels_and_set_names_are_text(oneshot_viewer):
    v = oneshot_viewer
    v.label, v.positive = "bpt_class", SCRIPT
    v.run_recursive()
    shown = shown_html(pn.Column(v.info_panel(), v.prototype_panel(), v.neighbours_panel(), v.statistics_panel(),
                                 v.browser.panel()))
    assert "<img" not in shown and "&lt;img src=x" in shown
    assert np.all([str(i).startswith("<img") for i in v.result["id"]])


def test_table_titles_are_text():
    """Tabulator renders column titles as HTML (cells it escapes); a catalogue names its columns."""
    import pandas as pd

    table = TextTable(pd.DataFrame({SCRIPT: ["x"], "n": [1]}))
    assert table.titles == {SCRIPT: html.escape(SCRIPT)}
    table.value = pd.DataFrame({"plain": [1]})
    assert table.titles == {}


def test_provenance_table_of_a_label_named_with_markup(oneshot_viewer):
    v = oneshot_viewer
    v.store.catalog.rename_column("bpt_class", SCRIPT)
    v.param.label.objects = [SCRIPT]
    v.label = SCRIPT
    v.run_recursive()
    tables = v.recursive_panel().select(TextTable)
    assert tables and tables[0].titles.get(SCRIPT) == html.escape(SCRIPT)
