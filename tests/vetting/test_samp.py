"""Tables to and from TOPCAT through a real SAMP hub (pyvo's, on this machine), with a client
standing in for TOPCAT; and the message when no hub runs."""

import threading
import time

import pytest
from astropy.table import Table

from pipeline.errors import InputError
from pipeline.vetting import samp


def test_a_table_goes_to_the_programs_that_take_tables(topcat):
    assert "topcat" in samp.table_receivers().values()
    sent_to = samp.send_table(Table({"ra": [150.0], "dec": [-30.0], "verdict": ["real"]}), "vetted sim cube")
    assert sent_to == ["topcat"]
    assert topcat.arrived.wait(10)
    params = topcat.received[0]
    assert params["name"] == "vetted sim cube" and params["url"].startswith("file://")
    table = Table.read(params["url"].removeprefix("file://"), format="votable")
    assert list(table["verdict"]) == ["real"]


def test_a_table_sent_by_topcat_is_fetched_and_handed_over(topcat, tmp_path):
    got, errors, done = [], [], threading.Event()
    inbox = samp.TableInbox(tmp_path / "inbox", lambda path, name: (got.append((path, name)), done.set()),
                            lambda message: (errors.append(message), done.set()))
    inbox.start()
    try:
        assert inbox.listening
        Table({"RAJ2000": [150.0], "DEJ2000": [-30.0]}).write(tmp_path / "t.vot", format="votable")
        explorer = next(cid for cid in topcat.get_subscribed_clients(samp.MTYPE)
                        if topcat.get_metadata(cid).get("samp.name") == samp.CLIENT_NAME)
        topcat.notify(explorer, {"samp.mtype": samp.MTYPE,
                                 "samp.params": {"url": (tmp_path / "t.vot").as_uri(), "name": "my list"}})
        assert done.wait(10) and not errors
        path, name = got[0]
        assert name == "my list" and path.parent == tmp_path / "inbox"
        assert list(Table.read(path)["RAJ2000"]) == [150.0]
        done.clear()
        topcat.notify(explorer, {"samp.mtype": samp.MTYPE,
                                 "samp.params": {"url": "http://example.org/big.vot", "name": "far"}})
        assert done.wait(10)
        assert errors[0].startswith("far sent through SAMP could not be used: only tables on this machine")
    finally:
        inbox.stop()
    assert not inbox.listening


def test_without_a_hub_the_message_says_how_to_start_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'none.lock').as_uri()}")
    start = time.monotonic()
    with pytest.raises(samp.NoHub, match="No SAMP hub is running on this machine: start TOPCAT or Aladin"):
        samp.send_table(Table({"a": [1]}), "t")
    assert time.monotonic() - start < 10


def test_fetching_refuses_what_is_not_a_local_votable(tmp_path):
    (tmp_path / "notes.vot").write_text("not xml at all")
    with pytest.raises(InputError, match="not a VOTable"):
        samp.fetch_table((tmp_path / "notes.vot").as_uri(), tmp_path / "in")
    assert list((tmp_path / "in").iterdir()) == []  # nothing left behind
    with pytest.raises(InputError, match=r"could not be read \(it may have been removed"):
        samp.fetch_table((tmp_path / "missing.vot").as_uri(), tmp_path / "in")
    with pytest.raises(InputError, match="only files in the temporary folder or the home folder"):
        samp.fetch_table("file:///etc/hostname", tmp_path / "in")
