"""Vetting the neighbours of a one-shot search: each card gets yes / no / unsure for a question the
reviewer names ("AGN candidate"), kept in the vetting store per galaxy set and question and shared
with everyone on the server (:mod:`pipeline.vetting.labels`). The team's verdicts are a label the
statistics can count and the export carries, and good and bad examples for re-ranking."""

from __future__ import annotations

import logging

import panel as pn
import param

from explorer.galaxy_browser import THUMB_PX
from explorer.text import Text
from pipeline.errors import InputError
from pipeline.vetting.labels import (
    PREFIX,
    check_question,
    column_name,
    feedback,
    label_collection,
    with_verdict_column,
)
from pipeline.vetting.store import LABEL_VERDICTS, VettingStore, summarise

log = logging.getLogger("explorer")
POLL_MS = 2000
CARD_WIDTH = THUMB_PX + 30  # the verdict list across a neighbour's card


class NeighbourVetting(param.Parameterized):
    """The vetting of a :class:`~explorer.oneshot_view.OneShotViewer`'s neighbours."""

    reviewer = param.String(default="", doc="Who is vetting: saved with each verdict")
    question = param.String(default="", doc="What the neighbours are vetted for, e.g. AGN candidate")
    message = param.String(default="")

    def __init__(self, viewer, store: VettingStore | None = None, **params):
        super().__init__(**params)
        self.viewer = viewer
        self.verdicts: dict[str, dict] = {}
        self._seen = 0
        self._question = ""  # the question, checked ("" while there is none, or it is refused)
        self._labelled = (None, None, None)  # (the table, (verdicts read, question), it with their column)
        try:
            self.store = store or VettingStore()
        except InputError as exc:
            self.store = None
            self.message = str(exc)
        self._message = Text("", wrap=True, css_classes=["neighbour-vetting-message"])
        self.param.watch(lambda _: self._changed(), ["question"])
        self._poll = None
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            self._poll = pn.state.add_periodic_callback(self.refresh, period=POLL_MS)

    @property
    def collection(self) -> str | None:
        """The store's collection for the open set and the question (None: no question yet)."""
        store = self.viewer.store
        if store is None or not self._question:
            return None
        return label_collection(store.meta["name"], self._question)

    @property
    def label_name(self) -> str | None:
        return column_name(self._question) if self._question else None

    def catalog(self, base):
        """``base`` (the set's catalogue) with the team's verdicts as a label column, when there is a
        question. Made once per table and state of the verdicts: each neighbour's card and each node of
        the provenance plot asks for its label, and a set may hold a million galaxies."""
        if not self._question:
            return base
        made_for, key, table = self._labelled
        if made_for is not base or key != (self._seen, self._question):
            table = with_verdict_column(base, self.verdicts, self._question)
            self._labelled = (base, (self._seen, self._question), table)
        return table

    def feedback(self) -> tuple[list[str], list[str]]:
        return feedback(self.verdicts) if self._question else ([], [])

    def refresh(self) -> None:
        """Read the team's verdicts again when they changed; the cards and statistics follow."""
        collection = self.collection
        if collection is None or self.store is None:
            return
        try:
            newest = self.store.last_id(collection)
            if newest == self._seen:
                return
            self.verdicts, self._seen = self.store.latest(collection), newest
        except InputError as exc:
            log.warning("neighbour vetting poll: %s", exc)
            return
        if is_vetted_label(self.viewer.label):  # its values (yes, no, ...) may be new
            self.viewer._update_positive_options()
        self.viewer.version += 1

    def _changed(self) -> None:
        self.verdicts, self._seen = {}, 0
        self.tell("")
        try:
            self._question = check_question(self.question) if self.question.strip() else ""
        except InputError as exc:  # too long: no question until it is mended
            self._question = ""
            self.tell(str(exc))
        self.viewer.labels_changed()
        self.refresh()

    def cast(self, galaxy_id: str, verdict: str) -> None:
        try:
            collection = self.collection
            if collection is None:
                raise InputError("Say what the neighbours are vetted for (e.g. AGN candidate) first.")
            if self.store is None:
                raise InputError(self.message)
            self.store.cast(collection, galaxy_id, self.reviewer, verdict)
            self.store.name_collection(collection, f"{self.viewer.store.meta['name']}: {self._question}")
        except InputError as exc:
            self.tell(str(exc))
            return
        self.tell("")
        self.refresh()

    def tell(self, text: str) -> None:
        self.message = text
        self._message.object = text

    def buttons(self, galaxy_id: str):
        """A card's verdict buttons and the team's verdict on it; nothing without a question."""
        if not self._question:
            return pn.Spacer(height=0)
        said = summarise(self.verdicts.get(galaxy_id, {}))
        votes = ", ".join(f"{v} {n}" for v, n in sorted(said["votes"].items()))
        mine = self.verdicts.get(galaxy_id, {}).get(" ".join(self.reviewer.split()), {}).get("verdict", "")
        choice = pn.widgets.Select(options={"your verdict...": "", **{v: v for v in LABEL_VERDICTS}}, value=mine,
                                   width=CARD_WIDTH, css_classes=["neighbour-verdict"])
        choice.param.watch(lambda e: e.new != mine and self.cast(galaxy_id, e.new), "value")
        return pn.Column(choice, Text(f"{self._question}: " + (votes or "not vetted")
                                            + (" (disputed)" if said["disagree"] else ""), wrap=True,
                                            css_classes=["neighbour-verdicts"]))

    def controls(self):
        return pn.Column(
            pn.pane.Markdown("**Vet the neighbours** (saved for everyone on this server):", margin=(10, 10, 0, 10)),
            pn.widgets.TextInput.from_param(self.param.question, name="Vetted for", placeholder="e.g. AGN candidate",
                                            css_classes=["neighbour-question"]),
            pn.widgets.TextInput.from_param(self.param.reviewer, name="Reviewer", placeholder="your name or initials",
                                            css_classes=["neighbour-reviewer"]),
            self._message, sizing_mode="stretch_width")

    def close(self) -> None:
        if self._poll is not None:
            self._poll.stop()
            self._poll = None


def is_vetted_label(label) -> bool:
    return isinstance(label, str) and label.startswith(PREFIX)
