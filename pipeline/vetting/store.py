"""Verdicts that last and are shared: an embedded SQLite database, one file for a team on one server.

What is kept (schema :data:`SCHEMA_VERSION`, in SQLite's ``user_version``):

- ``sources``: the things to vet, by *collection* and *source* key. A collection is what the keys
  are unique in: a cube (``cube:<sha256 of its file>``) or a galaxy set and label
  (``galaxies:<set>:<label>``). Each source keeps its candidate row (JSON), where it is and which
  detectors found it.
- ``verdicts``: every verdict ever cast, never changed or deleted: collection, source, reviewer,
  verdict ("" clears one), note, UTC time. A reviewer's verdict on a source is their latest row;
  undo casts the one before again. Each row carries a token made by the caller, unique in the
  table, so a write retried after a lock is stored once.

The file is opened in WAL mode (readers never wait for a writer), with a busy timeout and a few
retries before :class:`StoreBusy` says the file is locked. A file that is not such a database, or
one written by a newer version of the schema, is refused with a message and never written to;
an older schema is migrated forward (:data:`MIGRATIONS`).

Where: ``$ALMA_ULISSE_VETTING_DB``, else ``vetting.sqlite`` in the user's data folder
(``$XDG_DATA_HOME/alma-ulisse``, by default ``~/.local/share/alma-ulisse``).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from pipeline.errors import InputError, short_reason

SCHEMA_VERSION = 1
#: what a verdict may say: on a cube's candidates, and on a galaxy set's label; "" clears a verdict
CUBE_VERDICTS = ("real", "spurious", "unsure")
LABEL_VERDICTS = ("yes", "no", "unsure")
VERDICTS = (*CUBE_VERDICTS, "yes", "no", "")
BUSY_TIMEOUT_S = 2.0  # SQLite waits this long for a lock (a writer holds one for milliseconds) ...
RETRIES = 3  # ... this many times, before StoreBusy
NOTE_CHARS = 2000
NAME_CHARS = 80
NAME_SEPARATORS = (",", ";", "=", "|")

_SCHEMA_1 = """
CREATE TABLE sources (
    collection TEXT NOT NULL,
    source TEXT NOT NULL,
    x REAL, y REAL, z REAL,
    detectors TEXT NOT NULL DEFAULT '',
    row TEXT NOT NULL DEFAULT '{}',
    added TEXT NOT NULL,
    PRIMARY KEY (collection, source)
);
CREATE TABLE verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    source TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    verdict TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    time TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE
);
CREATE INDEX verdicts_by_source ON verdicts (collection, source, reviewer, id);
CREATE TABLE collections (
    collection TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
);
"""
#: schema version -> the SQL that takes a database from the version before to it
MIGRATIONS = {1: _SCHEMA_1}


class StoreBusy(InputError):
    """The database file stayed locked by another process through every retry."""


def default_path() -> Path:
    """``$ALMA_ULISSE_VETTING_DB``, else ``vetting.sqlite`` in the user's data folder."""
    if os.environ.get("ALMA_ULISSE_VETTING_DB"):
        return Path(os.environ["ALMA_ULISSE_VETTING_DB"]).expanduser()
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "alma-ulisse" / "vetting.sqlite"


def now() -> str:
    """The time of a verdict: UTC, ISO 8601 to the millisecond."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def new_token() -> str:
    return uuid.uuid4().hex


def one_line(text, limit: int, what: str, missing: str) -> str:
    """``text`` on one line (runs of spaces and line breaks made one space), stripped, of 1 to
    ``limit`` characters; else InputError: ``missing`` when empty, else what is too long."""
    text = " ".join(str(text or "").split())
    if not text:
        raise InputError(missing)
    if len(text) > limit:
        raise InputError(f"A {what} has at most {limit} characters; this one has {len(text)}.")
    return text


def check_reviewer(name: str) -> str:
    """A reviewer's name: see :func:`one_line` (at most :data:`NAME_CHARS` characters), without the
    characters that separate names and verdicts in a vetted catalogue (``NAME_SEPARATORS``)."""
    name = one_line(name, NAME_CHARS, "reviewer name", "Give a reviewer name (who cast this verdict), e.g. your "
                    "initials.")
    if any(c in name for c in NAME_SEPARATORS):
        raise InputError(f"A reviewer name cannot hold {' '.join(NAME_SEPARATORS)} (they separate names in a "
                         f"vetted catalogue): {name!r}.")
    return name


def allowed_verdicts(collection: str) -> tuple[str, ...]:
    """What a verdict may say in ``collection``: real / spurious / unsure on a cube's candidates,
    yes / no / unsure on a galaxy set's question (and "" everywhere: cleared)."""
    if collection.startswith("cube:"):
        return (*CUBE_VERDICTS, "")
    if collection.startswith("galaxies:"):
        return (*LABEL_VERDICTS, "")
    return VERDICTS


def check_verdict(collection: str, verdict: str, note: str = "") -> str:
    """``note`` (checked: at most NOTE_CHARS characters) if ``verdict`` may be said in ``collection``."""
    allowed = allowed_verdicts(collection)
    if verdict not in allowed:
        raise InputError(f"A verdict is one of {', '.join(repr(v) for v in allowed if v)}, not {verdict!r}.")
    note = str(note or "")
    if len(note) > NOTE_CHARS:
        raise InputError(f"A note has at most {NOTE_CHARS} characters; this one has {len(note)}.")
    return note


class VettingStore:
    """The verdict database at ``path`` (default :func:`default_path`), created on first use.

    Each call opens its own connection, so one store serves many threads and sessions; the
    processes of a team share the file.
    """

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else default_path()
        if self.path.is_dir():
            raise InputError(f"The vetting database {self.path} is a folder: give a file name "
                             "(set ALMA_ULISSE_VETTING_DB).")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"The folder of the vetting database {self.path.name} cannot be made "
                             f"({short_reason(exc)}): set ALMA_ULISSE_VETTING_DB to a file in a folder this "
                             "server may write to.") from exc
        self._retry(self._open_schema)

    # --- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _retry(self, work):
        """Run ``work()`` again while the file is locked, then raise StoreBusy; a file that is not a
        database raises InputError."""
        for attempt in range(RETRIES):
            try:
                return work()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise self._unusable(exc) from exc
                if attempt == RETRIES - 1:
                    raise StoreBusy(f"The vetting database {self.path.name} stayed locked by another program for "
                                    f"{RETRIES * BUSY_TIMEOUT_S:.0f} s; nothing was saved. Try again, or close "
                                    "what holds it (another tool writing to it).") from exc
                time.sleep(0.2 * (attempt + 1))
            except sqlite3.DatabaseError as exc:
                raise self._unusable(exc) from exc

    def _unusable(self, exc) -> InputError:
        return InputError(f"The vetting database {self.path.name} cannot be used ({short_reason(exc)}); it was "
                          "left as it is. Point ALMA_ULISSE_VETTING_DB at another file, or restore this one.")

    def _open_schema(self) -> None:
        with contextlib.closing(self._connect()) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise InputError(f"The vetting database {self.path.name} was written by a newer version of this "
                                 f"tool (schema {version}; this one knows up to {SCHEMA_VERSION}). It was left as "
                                 "it is: upgrade alma-ulisse-explorer, or use another file.")
            if version < SCHEMA_VERSION:
                db.execute("BEGIN IMMEDIATE")
                version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
                if version == 0 and db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                    db.execute("ROLLBACK")
                    raise InputError(f"{self.path.name} is another program's SQLite database (it holds tables this "
                                     "tool did not make); it was left as it is. Point ALMA_ULISSE_VETTING_DB at "
                                     "another file.")
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[step].split(";"):
                        if statement.strip():
                            db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")

    def reading(self, work):
        """``work(db)`` on a connection for reads (WAL: never blocked by a writer), retried while
        the file is locked (it is, briefly, while a crashed writer's journal is recovered)."""
        def attempt():
            with contextlib.closing(self._connect()) as db:
                return work(db)
        return self._retry(attempt)

    def writing(self, work):
        """Run ``work(db)`` in one write transaction (taken at once, so that what it reads stays
        true until it commits), retried while the file is locked; returns what ``work`` returns."""
        def attempt():
            with contextlib.closing(self._connect()) as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
        return self._retry(attempt)

    # --- collections and sources ---------------------------------------------------------------

    def name_collection(self, collection: str, name: str, **meta) -> None:
        """Remember what ``collection`` is (a cube's file name, a set and label) for listings."""
        self.writing(lambda db: db.execute(
            "INSERT INTO collections (collection, name, meta) VALUES (?, ?, ?) ON CONFLICT (collection) "
            "DO UPDATE SET name = excluded.name, meta = excluded.meta",
            (collection, str(name), json.dumps(meta, default=str))))

    def collections(self) -> list[dict]:
        """Every collection with its name, number of sources and of verdicts."""
        rows = self.reading(lambda db: db.execute(
            "SELECT c.collection, c.name, c.meta, "
            "(SELECT COUNT(*) FROM sources s WHERE s.collection = c.collection) AS sources, "
            "(SELECT COUNT(*) FROM verdicts v WHERE v.collection = c.collection) AS verdicts "
            "FROM collections c ORDER BY c.name").fetchall())
        return [{**dict(r), "meta": json.loads(r["meta"])} for r in rows]

    def sources(self, collection: str, db: sqlite3.Connection | None = None) -> list[dict]:
        """The sources of ``collection`` in the order they were added: source, x, y, z, detectors
        (a list) and row (the candidate's columns)."""
        def read(db):
            rows = db.execute("SELECT source, x, y, z, detectors, row FROM sources WHERE collection = ? "
                              "ORDER BY rowid", (collection,)).fetchall()
            return [{"source": r["source"], "x": r["x"], "y": r["y"], "z": r["z"],
                     "detectors": [d for d in r["detectors"].split(",") if d], "row": json.loads(r["row"])}
                    for r in rows]
        return read(db) if db is not None else self.reading(read)

    @staticmethod
    def put_source(db: sqlite3.Connection, collection: str, source: str, x=None, y=None, z=None,
                   detectors: Iterable[str] = (), row: dict | None = None) -> None:
        """Add a source; or, for one already stored, add ``detectors`` to it and merge ``row`` into
        its row (a value given replaces the stored one, a blank never does: a catalogue of positions
        only leaves a detector's measurements as they were). The position it was first stored at
        stays: it is what later candidates are matched against. Inside :meth:`writing`."""
        old = db.execute("SELECT detectors, row FROM sources WHERE collection = ? AND source = ?",
                         (collection, source)).fetchone()
        found = [d for d in (old["detectors"].split(",") if old else []) if d]
        found += [d for d in detectors if d and d not in found]
        merged = json.loads(old["row"]) if old else {}
        merged.update({k: v for k, v in _plain(row or {}).items() if v is not None and v != ""})
        db.execute("INSERT INTO sources (collection, source, x, y, z, detectors, row, added) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (collection, source) DO UPDATE SET "
                   "detectors = excluded.detectors, row = excluded.row",
                   (collection, source, _real(x), _real(y), _real(z), ",".join(found),
                    json.dumps(merged, allow_nan=False), now()))

    # --- verdicts ------------------------------------------------------------------------------

    def cast(self, collection: str, source: str, reviewer: str, verdict: str, note: str = "",
             token: str | None = None) -> bool:
        """Record ``reviewer``'s ``verdict`` (one of :data:`VERDICTS`; "" clears it) and ``note``
        on a source. ``token``: the caller's unique id of this verdict (made if not given); a
        verdict whose token is already stored is not stored again. Returns whether it was stored."""
        return self.cast_many(collection, [(source, reviewer, verdict, note, token or new_token())]) == 1

    def cast_many(self, collection: str, verdicts) -> int:
        """Record several verdicts, (source, reviewer, verdict, note, token) each, all or none (one
        transaction; every one checked first). Returns how many were stored (a token stored before
        is not stored again)."""
        rows = [(collection, source, check_reviewer(reviewer), verdict, check_verdict(collection, verdict, note),
                 token or new_token()) for source, reviewer, verdict, note, token in verdicts]

        def work(db):
            stamp = now()
            return sum(db.execute("INSERT OR IGNORE INTO verdicts (collection, source, reviewer, verdict, note, time, "
                                  "token) VALUES (?, ?, ?, ?, ?, ?, ?)", (*row[:5], stamp, row[5])).rowcount
                       for row in rows)
        return self.writing(work) if rows else 0

    def latest(self, collection: str, since_id: int = 0) -> dict[str, dict[str, dict]]:
        """Each source's verdicts in force, by reviewer: {source: {reviewer: {verdict, note, time, id}}}
        (cleared verdicts left out). ``since_id``: only sources with a verdict row after that id (for
        polling); their full state is returned."""
        def read(db):
            changed = [r[0] for r in db.execute("SELECT DISTINCT source FROM verdicts WHERE collection = ? "
                                                "AND id > ?", (collection, since_id))] if since_id else None
            if changed == []:
                return [], []
            return changed, db.execute(
                "SELECT source, reviewer, verdict, note, time, MAX(id) AS id FROM verdicts "
                "WHERE collection = ? GROUP BY source, reviewer", (collection,)).fetchall()
        changed, rows = self.reading(read)
        if since_id and not changed:
            return {}
        out: dict[str, dict[str, dict]] = {}
        wanted = set(changed) if since_id else None
        for r in rows:
            if wanted is not None and r["source"] not in wanted:
                continue
            entry = out.setdefault(r["source"], {})
            if r["verdict"]:
                entry[r["reviewer"]] = {"verdict": r["verdict"], "note": r["note"], "time": r["time"], "id": r["id"]}
        return out

    def said(self, collection: str, source: str, reviewer: str) -> dict:
        """``reviewer``'s verdict in force on ``source``, {verdict, note} ("" when none), read now."""
        row = self.reading(lambda db: db.execute(
            "SELECT verdict, note FROM verdicts WHERE collection = ? AND source = ? AND reviewer = ? ORDER BY id DESC "
            "LIMIT 1", (collection, source, reviewer)).fetchone())
        return {"verdict": row["verdict"], "note": row["note"]} if row else {"verdict": "", "note": ""}

    def last_id(self, collection: str | None = None) -> int:
        """The id of the newest verdict row (of ``collection``): what a poll compares."""
        if collection is None:
            return self.reading(lambda db: db.execute("SELECT COALESCE(MAX(id), 0) FROM verdicts").fetchone()[0])
        return self.reading(lambda db: db.execute("SELECT COALESCE(MAX(id), 0) FROM verdicts WHERE collection = ?",
                                                  (collection,)).fetchone()[0])

    def history(self, collection: str, source: str | None = None) -> list[dict]:
        """Every verdict row of a collection (or of one source), oldest first."""
        query = "SELECT id, source, reviewer, verdict, note, time, token FROM verdicts WHERE collection = ?"
        args: tuple = (collection,)
        if source is not None:
            query, args = query + " AND source = ?", (collection, source)
        return self.reading(lambda db: [dict(r) for r in db.execute(query + " ORDER BY id", args)])


def summarise(verdicts: dict[str, dict]) -> dict:
    """One source's verdicts in force ({reviewer: {verdict, note, ...}}) summed up: ``votes``
    {verdict: count}, ``verdict`` (what all reviewers say; "disputed" when they differ; "" when no
    one has said), ``disagree`` and ``reviewers``."""
    votes: dict[str, int] = {}
    for v in verdicts.values():
        votes[v["verdict"]] = votes.get(v["verdict"], 0) + 1
    verdict = "" if not votes else next(iter(votes)) if len(votes) == 1 else "disputed"
    return {"votes": votes, "verdict": verdict, "disagree": len(votes) > 1, "reviewers": sorted(verdicts)}


def _real(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(row: dict) -> dict:
    """A candidate row as JSON can hold it: numpy scalars as Python ones, NaN and inf as None."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, bytes):
            value = value.decode(errors="replace")
        out[str(key)] = value
    return out
