"""The vetting queue: candidates in the order a reviewer goes through them, filtered, with the
team's verdicts beside them; and one reviewer's pass through it (:class:`Review`), with undo.

Everything here is plain Python over a :class:`~pipeline.vetting.store.VettingStore`: the
explorer's vetting view and a notebook drive the same object.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from pipeline.errors import InputError
from pipeline.vetting.store import VettingStore, check_reviewer, new_token, summarise

#: how the queue can be ordered: by score and by SNR highest first, by position east to west
ORDERS = ("score", "snr", "position")
#: which candidates the queue can keep
FILTERS = ("all", "unvetted", "disagreements", "sidelobes")
SIDELOBE_P = 0.5  # a candidate at least this probably a sidelobe is a "probable sidelobe"


def order(table: Table, by: str = "score") -> np.ndarray:
    """Row indices of ``table`` in the order ``by`` (one of :data:`ORDERS`); NaN scores last,
    ties by position so the order is the same for everyone."""
    if by not in ORDERS:
        raise InputError(f"The queue is ordered by one of {', '.join(ORDERS)}, not {by!r}.")
    n = len(table)
    if not n:
        return np.zeros(0, int)
    ra = np.nan_to_num(np.asarray(table["ra"], float)) if "ra" in table.colnames else np.zeros(n)
    dec = np.nan_to_num(np.asarray(table["dec"], float)) if "dec" in table.colnames else np.zeros(n)
    if by == "position":
        return np.lexsort((dec, -ra))  # lexsort: last key first; RA descending (east first), then Dec
    values = np.asarray(table[by], float)
    return np.lexsort((dec, -ra, np.nan_to_num(-values, nan=np.inf)))


def probable_sidelobes(table: Table) -> np.ndarray:
    """Rows flagged by the sidelobe check, or at least :data:`SIDELOBE_P` likely sidelobes."""
    n = len(table)
    flagged = np.asarray(table["sidelobe"], bool) if "sidelobe" in table.colnames else np.zeros(n, bool)
    p = np.asarray(table["sidelobe_p"], float) if "sidelobe_p" in table.colnames else np.full(n, np.nan)
    return flagged | (np.nan_to_num(p) >= SIDELOBE_P)


def keep(table: Table, verdicts: dict[str, dict], only: str = "all") -> np.ndarray:
    """Which rows of ``table`` (with a ``source`` column) the filter ``only`` (one of
    :data:`FILTERS`) keeps, given the verdicts in force ({source: {reviewer: {...}}})."""
    if only not in FILTERS:
        raise InputError(f"The queue keeps one of {', '.join(FILTERS)}, not {only!r}.")
    sources = np.asarray(table["source"]).astype(str) if len(table) else np.zeros(0, str)
    if only == "all":
        return np.ones(len(table), bool)
    if only == "sidelobes":
        return probable_sidelobes(table)
    summaries = [summarise(verdicts.get(s, {})) for s in sources]
    if only == "unvetted":
        return np.array([not s["votes"] for s in summaries], bool)
    return np.array([s["disagree"] for s in summaries], bool)


@dataclass
class Review:
    """One reviewer's pass through a collection's candidates (``table`` with a ``source`` column):
    the queue as ordered and filtered, the current candidate, verdicts cast through the store,
    and an undo of this pass's verdicts, newest first.

    ``verdicts`` is the team's state as last read (:meth:`refresh`), so the queue shows what the
    others said within a poll. Without a ``reviewer`` (""), the queue can be looked through but a
    verdict is refused, asking for a name.
    """

    store: VettingStore
    collection: str
    table: Table
    reviewer: str
    by: str = "score"
    only: str = "all"
    verdicts: dict = field(default_factory=dict)
    queue: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    position: int = 0
    _undo: list = field(default_factory=list)
    _seen: int = 0  # the newest verdict row read

    def __post_init__(self):
        self.reviewer = check_reviewer(self.reviewer) if str(self.reviewer or "").strip() else ""
        self._all = np.asarray(self.table["source"]).astype(str) if len(self.table) else np.zeros(0, str)
        self._rows = {s: i for i, s in enumerate(self._all)}  # source -> table row
        self.refresh(full=True)
        self.arrange()

    # --- the queue -----------------------------------------------------------------------------

    def arrange(self, by: str | None = None, only: str | None = None) -> None:
        """Order and filter the queue again (keeping the current candidate when it stays in it)."""
        self.by, self.only = by or self.by, only or self.only
        current = self.current
        ordered = order(self.table, self.by)
        self.queue = ordered[keep(self.table, self.verdicts, self.only)[ordered]]
        self._sources = [str(s) for s in self._all[self.queue]]
        self._place = {s: i for i, s in enumerate(self._sources)}  # source -> place in the queue
        self.position = self._place.get(current, min(self.position, max(len(self._sources) - 1, 0)))

    @property
    def sources(self) -> list[str]:
        """The queue's source keys, in its order (do not change the list)."""
        return self._sources

    def place(self, source: str) -> int | None:
        """Where ``source`` is in the queue (None: not in it)."""
        return self._place.get(source)

    @property
    def current(self) -> str | None:
        """The source key of the candidate on show (None: the queue is empty)."""
        return self._sources[self.position] if len(self.queue) else None

    def row(self, source: str | None = None):
        """The table row of ``source`` (default: the current one)."""
        source = source or self.current
        if source not in self._rows:
            raise InputError(f"No candidate {source!r} in this queue.")
        return self.table[self._rows[source]]

    def step(self, by: int = 1) -> str | None:
        """Go ``by`` candidates along the queue (negative: back), stopping at its ends."""
        if len(self.queue):
            self.position = int(np.clip(self.position + by, 0, len(self.queue) - 1))
        return self.current

    def go_to(self, source: str) -> None:
        """Show ``source``; if the filter hides it, the queue shows every candidate again."""
        if source not in self._place:
            self.arrange(only="all")
        self.position = self._place[source]

    # --- verdicts ------------------------------------------------------------------------------

    def mine(self, source: str | None = None) -> dict:
        """This reviewer's verdict in force on ``source`` ({verdict, note}; "" when none)."""
        entry = self.verdicts.get(source or self.current, {}).get(self.reviewer)
        return {"verdict": entry["verdict"], "note": entry["note"]} if entry else {"verdict": "", "note": ""}

    def cast(self, verdict: str, note: str | None = None, source: str | None = None, advance: bool = True,
             token: str | None = None) -> bool:
        """Record this reviewer's ``verdict`` on ``source`` (default: the current candidate), with
        ``note`` (None: keep their note); then show the next candidate if ``advance``. Returns
        whether the store took it (False: the same ``token`` was stored before)."""
        source = source or self.current
        if source is None:
            raise InputError("The queue is empty: nothing to give a verdict on.")
        before = self.store.said(self.collection, source, self.reviewer) if self.reviewer else self.mine(source)
        note = before["note"] if note is None else note
        stored = self.store.cast(self.collection, source, self.reviewer, verdict, note, token or new_token())
        self._undo.append((source, before, {"verdict": verdict, "note": note}))
        self._remember(source, verdict, note)
        if advance and source == self.current:
            self.step(1)
        return stored

    def cast_many(self, sources, verdict: str, note: str | None = None) -> int:
        """The same verdict on several candidates (those shown to the reviewer as alike); one undo
        step each. Returns how many were stored."""
        return sum(self.cast(verdict, note, source=s, advance=False) for s in sources)

    def undo(self) -> str | None:
        """Put back this reviewer's verdict from before their last one in this pass (history keeps
        both) and show that candidate. Returns its source, None when there is nothing to undo. When
        the verdict was changed since (by this reviewer in another window), nothing is undone and
        InputError says so: undo never puts back what someone has changed since."""
        if not self._undo:
            return None
        source, before, cast = self._undo[-1]
        now = self.store.said(self.collection, source, self.reviewer)
        if now != cast:
            self._undo.pop()
            raise InputError(f"Your verdict on {source} was changed elsewhere since ({now['verdict'] or 'cleared'}); "
                             "nothing was undone.")
        self._undo.pop()
        self.store.cast(self.collection, source, self.reviewer, before["verdict"], before["note"])
        self._remember(source, before["verdict"], before["note"])
        if source in self._place:
            self.position = self._place[source]
        return source

    def refresh(self, full: bool = False) -> set[str]:
        """Read the team's verdicts made since the last read. Returns the sources that changed."""
        newest = self.store.last_id(self.collection)
        if not full and newest == self._seen:
            return set()
        changed = self.store.latest(self.collection, since_id=0 if full else self._seen)
        if full:
            self.verdicts = changed
        else:
            self.verdicts.update(changed)
        self._seen = newest
        return set(changed)

    def summary(self, source: str | None = None) -> dict:
        """The team's verdicts on ``source`` summed up (:func:`pipeline.vetting.store.summarise`)."""
        return summarise(self.verdicts.get(source or self.current, {}))

    def progress(self) -> dict:
        """How far the team is: candidates, vetted (by anyone), by me, disputed; counts of each
        verdict in force."""
        said = [summarise(v) for s, v in self.verdicts.items() if v and s in self._rows]  # the vetted only
        counts = Counter(s["verdict"] for s in said)
        if len(self._all) > len(said):
            counts["unvetted"] = len(self._all) - len(said)
        return {"candidates": len(self._all), "vetted": len(said),
                "mine": sum(self.reviewer in v for s, v in self.verdicts.items() if s in self._rows),
                "disputed": sum(s["disagree"] for s in said), "verdicts": dict(counts)}

    def _remember(self, source: str, verdict: str, note: str) -> None:
        entry = self.verdicts.setdefault(source, {})
        if verdict:
            entry[self.reviewer] = {"verdict": verdict, "note": note, "time": "", "id": 0}
        else:
            entry.pop(self.reviewer, None)
