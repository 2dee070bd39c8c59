"""The vetting tab without a server: a run's candidates queued, verdicts by buttons and keys,
undo, a second reviewer's verdicts and the disagreement, import, export."""

import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from explorer.cube_view import CubeViewer
from explorer.detection_view import DetectionViewer
from explorer.vetting_view import KEYS, VettingViewer
from pipeline.alma.cube import open_cube
from pipeline.vetting.store import VettingStore

SIM_CUBE = Path(__file__).resolve().parents[2] / "assets" / "cubes" / "sim_7_0000.fits"  # the pipeline finds 4


@pytest.fixture
def vetting(tmp_path):
    """A pipeline run on the bundled simulated cube, and the vetting view of it."""
    detection = DetectionViewer(CubeViewer(open_cube(SIM_CUBE)))
    detection.detector = "pipeline"
    viewer = VettingViewer(detection.cube_viewer, detection, store=VettingStore(tmp_path / "v.sqlite"))
    detection.start()
    return viewer


def test_a_run_is_queued_and_a_name_is_asked_before_a_verdict(vetting):
    assert vetting.review is not None and len(vetting.review.queue) == len(vetting.detection.found) >= 2
    assert vetting.status.startswith(f"{len(vetting.detection.found)} candidates; 0 vetted")
    assert vetting.current == vetting.review.sources[0]
    assert vetting._title.object.startswith("Candidate 1 of")
    assert "SNR" in vetting._scores.object and vetting.card_view.channel.image.data["dw"][0] > 0
    assert np.isfinite(vetting.card_view.spectra.data["gru"]).all()  # the Deep GRU's spectrum, for any detector
    vetting.act("real")
    assert "Give a reviewer name" in vetting.message
    assert vetting.current == vetting.review.sources[0]  # nothing happened


def test_verdicts_keys_and_undo(vetting):
    vetting.reviewer = "ann"
    first, second = vetting.review.sources[:2]
    vetting.note = "clean line"
    vetting._on_key("r")
    assert vetting.current == second and vetting.review.mine(first) == {"verdict": "real", "note": "clean line"}
    assert vetting.note == ""  # the next candidate's own note
    assert list(vetting._queue.value["you"][:2]) == ["real", ""]
    vetting._on_key("s")
    vetting._on_key("z")
    assert vetting.current == second and vetting.review.mine(second)["verdict"] == ""
    vetting._on_key("ArrowLeft")
    assert vetting.current == first and vetting.note == "clean line"
    assert set(KEYS.values()) == {"real", "spurious", "unsure", "next", "previous", "undo", "similar"}


def test_another_reviewer_is_seen_and_a_disagreement_marked(vetting):
    vetting.reviewer = "ann"
    first = vetting.current
    vetting.act("real")
    other = VettingViewer(vetting.detection.cube_viewer, vetting.detection, store=VettingStore(vetting.store.path),
                          reviewer="bob")
    assert other.review.summary(first)["votes"] == {"real": 1}  # bob sees ann's verdict at once
    other.review.go_to(first)
    other.show_card()
    other.act("spurious")
    vetting.refresh()
    assert vetting._queue.value["team"][0].startswith("DISPUTED")
    vetting.act("previous")
    assert vetting._team.object.startswith("Reviewers DISAGREE: ann: real; bob: spurious")
    vetting.show = "disagreements"
    assert vetting.review.sources == [first]


def test_the_vetted_catalogue_downloads(vetting, tmp_path):
    vetting.reviewer = "ann"
    vetting.act("spurious")
    (tmp_path / "v.vot").write_bytes(vetting.exchange.export(".vot").getvalue())
    table = Table.read(tmp_path / "v.vot")
    assert len(table) == len(vetting.review.table) and list(table["verdict"]).count("spurious") == 1
    assert "color=red" in vetting.exchange.export(".reg").getvalue().decode()


def test_an_imported_catalogue_joins_the_queue(vetting, tmp_path):
    cube = vetting.cube
    sky = cube.sky(5, 90)
    Table({"RAJ2000": [sky.ra.deg], "DEJ2000": [sky.dec.deg]}).write(tmp_path / "mine.csv")
    before = len(vetting.review.table)
    vetting.exchange._upload.filename = "mine.csv"
    vetting.exchange._upload.value = (tmp_path / "mine.csv").read_bytes()
    assert vetting.message.startswith("Imported mine.csv: 1 candidate read; 0 verdicts cast")
    assert len(vetting.review.table) == before + 1
    vetting.exchange._upload.filename = "notes.txt"
    vetting.exchange._upload.value = b"hello"
    assert "import a catalogue as CSV, VOTable" in vetting.message
    vetting.exchange._upload.filename = "bad.csv"
    vetting.exchange._upload.value = b"a,b\n1,2\n"
    assert "has no positions" in vetting.message


def test_the_truth_of_a_simulated_cube_on_request(vetting):
    assert vetting.detection.truth is not None and vetting._truth.object == ""  # off: it gives the answers
    vetting.reviewer = "ann"
    vetting.act("spurious")
    vetting.show_truth = True
    text = vetting._truth.object
    assert text.startswith("Against the truth of this simulated cube:\n4 candidates, ")
    assert "Precision before vetting 1.00" in text and "true sources judged spurious: 1" in text


def test_find_similar_then_mark_the_ticked_in_one_step(vetting):
    vetting.reviewer = "ann"
    first = vetting.current
    vetting._on_key("f")
    panel = vetting.similar
    assert panel.similar is not None and len(panel._shown) == 3  # the other three candidates, most alike first
    assert len(panel._cards.objects) == 4 and "(this one)" in panel._cards.objects[0].objects[1].object
    panel._ticks[panel._shown[0]].value = False  # shown, judged different: left out
    assert panel.mark("spurious") == 2
    marked = [s for s in panel._shown[1:]]
    assert all(vetting.review.mine(s)["verdict"] == "spurious" for s in marked)
    assert vetting.review.mine(panel._shown[0])["verdict"] == "" and vetting.current == first
    vetting.act("undo")
    assert sum(vetting.review.mine(s)["verdict"] == "spurious" for s in marked) == 1


def test_samp_sends_the_vetted_catalogue_and_takes_a_table_from_topcat(vetting, topcat, tmp_path):
    exchange = vetting.exchange
    exchange.send()
    assert vetting.message == "Sent 'sim_7_0000 vetted' to topcat."
    assert topcat.arrived.wait(10)
    sent = Table.read(topcat.received[0]["url"].removeprefix("file://"), format="votable")
    assert len(sent) == len(vetting.review.table) and "verdict" in sent.colnames
    exchange._receive.value = True
    assert exchange.inbox is not None and exchange.inbox.listening
    sky = vetting.cube.sky(100, 20)
    Table({"RAJ2000": [sky.ra.deg], "DEJ2000": [sky.dec.deg]}).write(tmp_path / "t.vot", format="votable")
    explorer = next(cid for cid in topcat.get_subscribed_clients("table.load.votable")
                    if topcat.get_metadata(cid).get("samp.name") == "ALMA & ULISSE explorer")
    before = len(vetting.review.table)
    topcat.notify(explorer, {"samp.mtype": "table.load.votable",
                             "samp.params": {"url": (tmp_path / "t.vot").as_uri(), "name": "from topcat"}})
    deadline = time.time() + 10  # the queue grows, then the message is set: wait for both
    while ((len(vetting.review.table) == before or "Imported from" not in vetting.message)
           and time.time() < deadline):
        time.sleep(0.1)
    assert len(vetting.review.table) == before + 1
    assert "Imported from topcat: 1 candidate read" in vetting.message
    exchange._receive.value = False
    assert exchange.inbox is None


def test_samp_without_a_hub_says_so(vetting, tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'none.lock').as_uri()}")
    vetting.exchange.send()
    assert vetting.message.startswith("No SAMP hub is running on this machine")
    vetting.exchange._receive.value = True
    assert vetting.exchange._receive.value is False and "No SAMP hub" in vetting.message


def test_verdicts_beyond_the_first_page_of_the_queue(tmp_path, monkeypatch):
    """The queue's cells change on any page (Tabulator.patch sent a row's place in the whole table to a
    page of rows, which failed beyond the first: Panel 1.9); rendered as in a browser session."""
    import explorer.vetting_view as vetting_view

    monkeypatch.setattr(vetting_view, "PAGE_SIZE", 2)
    detection = DetectionViewer(CubeViewer(open_cube(SIM_CUBE)))
    detection.detector = "pipeline"
    viewer = VettingViewer(detection.cube_viewer, detection, store=VettingStore(tmp_path / "v.sqlite"),
                           reviewer="ann")
    detection.start()
    viewer.__panel__().get_root()  # the Bokeh models, as a served page has them
    for _ in range(3):
        viewer.act("real")
    assert viewer._queue.page == 2 and list(viewer._queue.value["you"]) == ["real", "real", "real", ""]
    assert viewer.message == ""


def test_a_restarted_server_restores_the_verdicts(vetting):
    """A new store on the same file and a newly opened cube (what a restarted server has) restore the
    queue and the verdicts, the undo of the old session excepted."""
    vetting.reviewer = "ann"
    first = vetting.current
    vetting.act("spurious")
    path = vetting.store.path
    cube = open_cube(SIM_CUBE)
    again = VettingViewer(CubeViewer(cube), DetectionViewer(CubeViewer(cube)), store=VettingStore(path),
                          reviewer="ann")
    assert len(again.review.table) == len(vetting.review.table)
    assert again.review.mine(first)["verdict"] == "spurious" and again.current == first
    assert list(again._queue.value["you"])[0] == "spurious"
    again.act("undo")
    assert "Nothing to undo" in again.message


def test_the_card_saves_as_a_standalone_page(vetting):
    page = vetting.card_handout().getvalue().decode()
    row = vetting._card.row
    assert vetting._save.filename == f"sim_7_0000-candidate-{row['id']}.html"
    assert "<script" in page and "cdn.bokeh.org" not in page  # Bokeh inline: it opens offline
    assert f"id {row['id']}" in page and "SNR" in page
    assert page.count('"name":"Figure"') == 3  # the two images and the spectra
    vetting.review.queue = np.array([], int)
    vetting.show_card()
    with pytest.raises(Exception, match="nothing to save"):
        vetting.card_handout()
