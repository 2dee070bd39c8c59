"""The verdict database: history kept, a verdict stored once, WAL, schema versions, bad files."""

import sqlite3

import pytest

from pipeline.errors import InputError
from pipeline.vetting import store as store_module
from pipeline.vetting.store import SCHEMA_VERSION, StoreBusy, VettingStore, default_path, summarise


def test_every_verdict_is_kept_and_the_latest_is_in_force(store):
    store.cast("c", "s1", "ann", "real", "bright, clean line")
    store.cast("c", "s1", "ann", "spurious", "a sidelobe after all")
    store.cast("c", "s1", "bob", "real")
    store.cast("c", "s2", "bob", "unsure")
    store.cast("c", "s2", "bob", "")  # cleared
    latest = store.latest("c")
    assert latest["s1"]["ann"]["verdict"] == "spurious" and latest["s1"]["ann"]["note"] == "a sidelobe after all"
    assert latest["s1"]["bob"]["verdict"] == "real"
    assert latest["s2"] == {}
    history = store.history("c", "s1")
    assert [(h["reviewer"], h["verdict"]) for h in history] == [("ann", "real"), ("ann", "spurious"), ("bob", "real")]
    assert all(h["time"].endswith("+00:00") for h in history)
    assert summarise(latest["s1"]) == {"votes": {"spurious": 1, "real": 1}, "verdict": "disputed", "disagree": True,
                                       "reviewers": ["ann", "bob"]}
    assert summarise({})["verdict"] == ""


def test_a_verdict_retried_with_its_token_is_stored_once(store):
    assert store.cast("c", "s1", "ann", "real", token="t-1")
    assert not store.cast("c", "s1", "ann", "real", token="t-1")
    assert len(store.history("c")) == 1


def test_polling_returns_only_what_changed(store):
    store.cast("c", "s1", "ann", "real")
    seen = store.last_id("c")
    assert store.latest("c", since_id=seen) == {}
    store.cast("c", "s2", "bob", "spurious")
    store.cast("other", "s9", "bob", "spurious")
    assert set(store.latest("c", since_id=seen)) == {"s2"}
    assert store.last_id("c") == seen + 1 and store.last_id() == seen + 2


def test_verdicts_and_names_are_checked(store):
    with pytest.raises(InputError, match="reviewer name"):
        store.cast("c", "s1", "  ", "real")
    with pytest.raises(InputError, match="'real', 'spurious', 'unsure', 'yes', 'no', not 'maybe'"):
        store.cast("c", "s1", "ann", "maybe")
    with pytest.raises(InputError, match="at most 2000 characters"):
        store.cast("c", "s1", "ann", "real", "x" * 2001)
    store.cast("c", "s1", "ann\nsmith", "real")  # a line break in a name is a space
    assert list(store.latest("c")["s1"]) == ["ann smith"]


def test_the_file_is_in_wal_mode_and_versioned(store):
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_schema_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "v.sqlite"
    VettingStore(path).cast("c", "s1", "ann", "real")
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"newer version of this tool \(schema 2; this one knows up to 1\)"):
        VettingStore(path)
    assert path.read_bytes() == before


def test_an_older_schema_is_migrated(tmp_path, monkeypatch):
    """A database of schema 1 opened by a version with a schema 2 gains what 2 adds, verdicts kept."""
    path = tmp_path / "v.sqlite"
    VettingStore(path).cast("c", "s1", "ann", "real")
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(store_module.MIGRATIONS, 2, "ALTER TABLE verdicts ADD COLUMN tag TEXT NOT NULL DEFAULT ''")
    migrated = VettingStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "tag" in [r[1] for r in db.execute("PRAGMA table_info(verdicts)")]
    assert migrated.latest("c")["s1"]["ann"]["verdict"] == "real"


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "v.sqlite"
    path.write_bytes(b"these are someone's notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(InputError, match="cannot be used .*left as it is"):
        VettingStore(path)
    assert path.read_bytes() == before
    with pytest.raises(InputError, match="is a folder"):
        VettingStore(tmp_path)
    other = tmp_path / "notes.sqlite"  # another program's database
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    before = other.read_bytes()
    with pytest.raises(InputError, match="another program's SQLite database"):
        VettingStore(other)
    assert other.read_bytes() == before


def test_a_locked_file_is_retried_then_reported(store, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.05)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreBusy, match="stayed locked by another program .* nothing was saved"):
            store.cast("c", "s1", "ann", "real")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.cast("c", "s1", "ann", "real")  # free again: it goes through


def test_a_lock_released_during_the_retries_loses_nothing(store, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.05)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    sleep = store_module.time.sleep

    def release_then_sleep(seconds):  # the other program finishes during the first pause
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        sleep(seconds)

    monkeypatch.setattr(store_module.time, "sleep", release_then_sleep)
    assert store.cast("c", "s1", "ann", "real")
    holder.close()
    assert store.latest("c")["s1"]["ann"]["verdict"] == "real"


def test_the_default_path_is_the_environment_variable_else_the_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("ALMA_ULISSE_VETTING_DB", str(tmp_path / "team.sqlite"))
    assert default_path() == tmp_path / "team.sqlite"
    monkeypatch.delenv("ALMA_ULISSE_VETTING_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_path() == tmp_path / "data" / "alma-ulisse" / "vetting.sqlite"


def test_sources_keep_their_detectors_and_rows(store):
    def add(db):
        store.put_source(db, "c", "s1", 1.0, 2.0, float("nan"), ["pipeline"], {"snr": float("nan"), "id": 1})
        store.put_source(db, "c", "s1", 1.5, 2.0, 3.0, ["photutils", "pipeline"], {"snr": 7.5, "id": 4})
    store.writing(add)
    (source,) = store.sources("c")
    assert source["detectors"] == ["pipeline", "photutils"]
    assert source["row"] == {"snr": 7.5, "id": 4} and source["x"] == 1.0  # matched against where it was first
    store.writing(lambda db: store.put_source(db, "c", "s1", 9.0, 9.0, 9.0, ["imported"],
                                              {"snr": float("nan"), "id": 9, "note": ""}))
    (source,) = store.sources("c")
    assert source["row"] == {"snr": 7.5, "id": 9}  # a blank never replaces a measurement
    store.name_collection("c", "cube.fits", shape=[3, 4, 5])
    assert store.collections() == [{"collection": "c", "name": "cube.fits", "meta": {"shape": [3, 4, 5]},
                                     "sources": 1, "verdicts": 0}]
