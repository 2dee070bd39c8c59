"""The vetting tab: a cube's candidates in a queue, the current one's card, verdicts that last and
are shared by everyone vetting the same cube on this server.

Everything goes through :mod:`pipeline.vetting`: the store (SQLite, see
:mod:`pipeline.vetting.store`), the candidates of every run on the cube merged by position
(:mod:`~pipeline.vetting.candidates`), the reviewer's pass with undo (:class:`~pipeline.vetting.queue.Review`)
and the card (:mod:`~pipeline.vetting.card`). Others' verdicts are read every ``POLL_MS``.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from explorer import handouts
from explorer.shortcuts import Shortcuts
from explorer.text import Alert, Text, TextTable
from explorer.vetting_card import CardView
from explorer.vetting_exchange import ExchangePanel
from explorer.vetting_similar import SimilarPanel
from pipeline.alma.networks import SourceFinder
from pipeline.errors import InputError
from pipeline.vetting.candidates import add_candidates, cube_collection, stored_candidates
from pipeline.vetting.card import NEIGHBOUR_BEAMS, candidate_card
from pipeline.vetting.queue import FILTERS, ORDERS, Review
from pipeline.vetting.scoring import against_truth, format_against_truth
from pipeline.vetting.store import CUBE_VERDICTS, VettingStore, check_reviewer

log = logging.getLogger("explorer")

POLL_MS = 2000  # how often the others' verdicts are read
PAGE_SIZE = 10  # queue rows per page
QUEUE_WIDTHS = {"id": 48, "found by": 96, "snr": 56, "score": 68, "team": 108, "you": 74}
ORDER_LABELS = dict(zip(("score, highest first", "SNR, highest first", "position, east to west"), ORDERS,
                        strict=True))
FILTER_LABELS = dict(zip(("every candidate", "only unvetted", "only disagreements", "only probable sidelobes"),
                         FILTERS, strict=True))
SCOPES = {"every run on this cube": "stored", "the last run only": "run"}
#: keyboard shortcuts: key -> what it does
KEYS = {"r": "real", "s": "spurious", "u": "unsure", "j": "next", "ArrowRight": "next", "k": "previous",
        "ArrowLeft": "previous", "z": "undo", "f": "similar"}


def database_text(path: Path) -> str:
    """Where verdicts are kept, as a visitor may see it: the file's name and how it is chosen, not
    the server's folders."""
    if os.environ.get("ALMA_ULISSE_VETTING_DB"):
        return f"Verdicts are saved in {path.name} (set by ALMA_ULISSE_VETTING_DB), shared by everyone on this server."
    return (f"Verdicts are saved in {path.name} in the server's data folder ($XDG_DATA_HOME/alma-ulisse, by "
            "default ~/.local/share/alma-ulisse; ALMA_ULISSE_VETTING_DB sets another file), shared by everyone on "
            "this server.")


class VettingViewer(pn.viewable.Viewer):
    """Vetting the candidates of the cube of a :class:`~explorer.cube_view.CubeViewer`, found by its
    :class:`~explorer.detection_view.DetectionViewer` or imported."""

    reviewer = param.String(default="", doc="Who is vetting: saved with each verdict")
    order = param.Selector(default="score", objects=ORDER_LABELS, doc="The order of the queue")
    show = param.Selector(default="all", objects=FILTER_LABELS, doc="Which candidates the queue keeps")
    scope = param.Selector(default="stored", objects=SCOPES, doc="Candidates of every run on the cube, or the last")
    note = param.String(default="", doc="The reviewer's note on the current candidate")
    current = param.String(default="", doc="Source key of the candidate on show")
    status = param.String(default="", doc="How far the vetting is")
    show_truth = param.Boolean(default=False, doc="On a simulated cube: the verdicts against its truth, and the "
                               "detector's precision before and after vetting (off by default: it gives the answers)")
    message = param.String(default="", doc="The last problem to tell the user about")

    def __init__(self, cube_viewer, detection, store: VettingStore | None = None, models=None, **params):
        super().__init__(**params)
        self.cube = cube_viewer.cube
        self.detection = detection
        self.models = models
        self._alert = Alert("", alert_type="warning", visible=False, css_classes=["vetting-message"])
        self.card_view = CardView(cube_viewer.cmap)
        self._figures = self.card_view.layout()  # hidden while the queue is empty
        self._card = None  # the card on show (pipeline.vetting.card.Card)
        self._cmap = cube_viewer.cmap
        self._save = pn.widgets.FileDownload(callback=self.card_handout, filename="card.html", embed=False,
                                             label="Save this card (HTML)", css_classes=["vetting-save"], width=180)
        self._run_table = None  # the last run's candidates, with their source keys
        self.review: Review | None = None
        try:
            self.store = store or VettingStore()
        except InputError as exc:
            self.store = None
            self.tell(str(exc))
        self._where = Text(database_text(self.store.path) if self.store else "", wrap=True,
                           css_classes=["vetting-database"])
        self._status = Text("", wrap=True, css_classes=["vetting-status"])
        self._title = Text("", wrap=True, css_classes=["vetting-title"])
        self._scores = Text("", wrap=True, css_classes=["vetting-scores"])
        self._team = Text("", wrap=True, css_classes=["vetting-team"])
        self._neighbours = Text("", wrap=True, css_classes=["vetting-neighbours"])
        self._truth = Text("", wrap=True, css_classes=["vetting-truth"])
        self._buttons = {}
        for name, label, colour in (("real", "Real (r)", "success"), ("spurious", "Spurious (s)", "danger"),
                                    ("unsure", "Unsure (u)", "warning"), ("previous", "◀ Previous (k)", "default"),
                                    ("next", "Next (j) ▶", "default"), ("undo", "Undo (z)", "default"),
                                    ("similar", "Find similar (f)", "primary")):
            button = pn.widgets.Button(label=label, color=colour, css_classes=[f"vetting-{name}"], width=112)
            button.on_click(functools.partial(lambda action, _: self.act(action), name))
            self._buttons[name] = button
        self._queue = TextTable(pagination="remote", page_size=PAGE_SIZE, disabled=True, show_index=False,
                                selectable=1, sizing_mode="stretch_width", css_classes=["vetting-queue"],
                                widths=QUEUE_WIDTHS, configuration={"columnDefaults": {"headerSort": False}},
                                formatters={"snr": NumberFormatter(format="0.0"),
                                            "score": NumberFormatter(format="0.00")})
        self._queue.param.watch(self._on_queue_select, "selection")
        self.shortcuts = Shortcuts(self._on_key, keys=list(KEYS))
        self.similar = SimilarPanel(self)
        self.exchange = ExchangePanel(self)
        detection.param.watch(lambda e: e.new is not None and self.add_run(e.new), "found")
        self.param.watch(lambda _: self.load(), ["reviewer", "scope"])
        self.param.watch(lambda _: self.arrange(), ["order", "show"])
        self.param.watch(lambda _: self._show_truth(), "show_truth")
        if detection.found is not None:  # a run that ended before the tab was opened: stored and queued
            self.add_run(detection.found)
        else:
            self.load()
        self._poll = None
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            self._poll = pn.state.add_periodic_callback(self.refresh, period=POLL_MS)
            # the poll, a SAMP listener and a find-similar worker end with the session, through a weak
            # reference: the session must not keep every viewer it showed
            viewer = weakref.ref(self)
            pn.state.on_session_destroyed(lambda ctx: viewer() is not None and viewer().close())

    # --- candidates ----------------------------------------------------------------------------

    def add_run(self, catalog) -> None:
        """A detector run's candidates (probable sidelobes included): stored, and queued."""
        if self.store is None:
            return
        try:
            self._run_table = add_candidates(self.store, self.cube, catalog,
                                             catalog.meta.get("detector") or self.detection.detector)
        except InputError as exc:
            self.tell(str(exc))
            return
        self.load()

    def load(self) -> None:
        """(Re)start the reviewer's pass over the candidates in scope, on the current one if kept."""
        if self.store is None:
            return
        refused = ""
        try:
            table = self._run_table if self.scope == "run" and self._run_table is not None else \
                stored_candidates(self.store, self.cube)
            try:
                check_reviewer(self.reviewer) if self.reviewer.strip() else None
                name = self.reviewer
            except InputError as exc:  # the queue stays, and takes no verdict until the name is mended
                refused, name = str(exc), ""
            self.review = Review(self.store, cube_collection(self.cube), table, name, by=self.order, only=self.show)
        except InputError as exc:
            self.tell(str(exc))
            return
        if self.current and self.review.place(self.current) is not None:
            self.review.go_to(self.current)
        self.tell(refused)
        self._show_queue()
        self.show_card()

    def arrange(self) -> None:
        if self.review is not None:
            self.review.arrange(self.order, self.show)
            self._show_queue()
            self.show_card()

    # --- acting ----------------------------------------------------------------------------------

    def act(self, action: str) -> None:
        """A verdict (real, spurious, unsure) on the current candidate, then the next; or next,
        previous, undo."""
        review = self.review
        if review is None or review.current is None:
            self.tell("No candidates to vet yet: run a detector on the Cube explorer tab, or import a catalogue.")
            return
        if action == "similar":
            self.similar.find(review.current)
            return
        before = review.current
        try:
            if action in CUBE_VERDICTS:
                review.cast(action, self.note)
            elif action == "undo":
                if review.undo() is None:
                    self.tell("Nothing to undo: no verdict given in this session yet.")
                    return
            else:
                review.step(1 if action == "next" else -1)
        except InputError as exc:
            self.tell(str(exc))
            return
        self.tell("")
        if action in (*CUBE_VERDICTS, "undo"):
            self.after_verdicts({before, review.current})
        self.show_card()

    def after_verdicts(self, sources) -> None:
        """Show the verdicts now in force on ``sources``: their queue rows, the status, the card's."""
        self._update_rows(sources)
        if self.review.current in sources:
            self._show_team()

    def _on_key(self, key: str) -> None:
        self.act(KEYS[key])

    def _on_queue_select(self, event):
        if event.new and self.review is not None and event.new[0] < len(self.review.queue):
            source = self.review.sources[event.new[0]]
            if source != self.review.current:
                self.review.go_to(source)
                self.show_card()

    def refresh(self) -> None:
        """Read the others' verdicts; show what changed."""
        if self.review is None:
            return
        try:
            changed = self.review.refresh()
        except InputError as exc:  # locked for longer than the retries: the next poll tries again
            log.warning("vetting poll: %s", exc)
            return
        if changed:
            self._update_rows(changed)
            if self.review.current in changed:
                self._show_team()

    # --- showing ---------------------------------------------------------------------------------

    def tell(self, text: str, kind: str = "warning") -> None:
        self.message = text
        self._alert.alert_type = kind
        self._alert.object = text
        self._alert.visible = bool(text)

    def _frame(self) -> pd.DataFrame:
        review = self.review
        table = review.table
        rows = review.queue
        frame = pd.DataFrame({
            "id": np.asarray(table["id"])[rows] if len(rows) else [],
            "found by": np.asarray(table["detectors"]).astype(str)[rows] if len(rows) else [],
            "snr": np.asarray(table["snr"], float)[rows] if len(rows) else [],
            "score": np.asarray(table["score"], float)[rows] if len(rows) else []})
        frame["team"] = [self._team_cell(s) for s in review.sources]
        frame["you"] = [review.mine(s)["verdict"] for s in review.sources]
        return frame

    def _team_cell(self, source: str) -> str:
        summary = self.review.summary(source)
        if summary["disagree"]:
            return "DISPUTED"  # who said what: on the card
        return f"{summary['verdict']} x{sum(summary['votes'].values())}" if summary["votes"] else ""

    def _show_queue(self) -> None:
        self._queue.value = self._frame()
        self._show_status()

    def _update_rows(self, sources) -> None:
        """The queue's verdict cells of ``sources`` (others' verdicts, or this reviewer's)."""
        rows = [(self.review.place(s), s) for s in sources if self.review.place(s) is not None]
        if rows:
            # the frame changed in place, then sent again: with remote pagination that is its page alone.
            # (Tabulator.patch sends a patch's rows by their place in the whole table, not in the page,
            # which fails beyond the first page: Panel 1.9.)
            frame = self._queue.value
            for i, s in rows:
                frame.iat[i, frame.columns.get_loc("team")] = self._team_cell(s)
                frame.iat[i, frame.columns.get_loc("you")] = self.review.mine(s)["verdict"]
            self._queue.param.trigger("value")
        self._show_status()

    def _show_status(self) -> None:
        p = self.review.progress()
        who = f"{p['mine']} by you, " if self.review.reviewer else ""
        self.status = "; ".join([f"{p['candidates']} candidates", f"{p['vetted']} vetted ({who}{p['disputed']} "
                                 "disputed)"] + ([", ".join(f"{v} {n}" for v, n in sorted(p["verdicts"].items()))]
                                                 if p["verdicts"] else []))
        self._status.object = self.status
        self._show_truth()

    def _show_truth(self) -> None:
        """The verdicts against the cube's truth, when it has one and it is asked for."""
        truth = self.detection.truth
        if not self.show_truth or truth is None or self.review is None:
            self._truth.object = ""
            return
        score = against_truth(self.review.table, self.review.verdicts, truth, self.cube.path.name,
                              max(self.cube.nx, self.cube.ny))
        self._truth.object = "Against the truth of this simulated cube:\n" + format_against_truth(score)

    def card_handout(self) -> io.BytesIO:
        """The card on show as a standalone HTML page: its title, scores, the team's verdicts, the two
        images and the spectra, the neighbours."""
        if self._card is None or not self.current:
            raise InputError("No candidate on show: nothing to save.")
        view = CardView(self._cmap)  # figures of its own: the page's belong to this session's document
        view.show(self._card)
        texts = [Text(text.object, wrap=True) for text in (self._title, self._scores, self._team, self._neighbours)]
        return handouts.html_page(self._title.object, *texts[:3], view.layout(), texts[3])

    def show_card(self) -> None:
        """The current candidate's card, its place in the queue selected."""
        review = self.review
        self.current = review.current or ""
        enabled = bool(self.current)
        for button in (*self._buttons.values(), self._save):
            button.disabled = not enabled
        self._figures.visible = enabled
        if not enabled:
            self._title.object = ("No candidates in the queue. Run a detector on the Cube explorer tab, import a "
                                  "catalogue, or show every candidate.")
            self._scores.object = self._team.object = self._neighbours.object = ""
            return
        index = int(review.queue[review.position])
        try:
            card = candidate_card(self.cube, review.table, index, self._finder())
        except InputError as exc:
            self.tell(str(exc))
            return
        except Exception:  # a candidate no one foresaw: the card says so, the log has the details
            log.exception("the card of %s could not be drawn", self.current)
            self.tell(f"The card of {self.current} could not be drawn (the details are in the server log); its "
                      "verdict buttons still work, and the next candidate's card may.")
            return
        self.card_view.show(card)
        self._card = card
        self._save.filename = f"{self.cube.path.stem}-candidate-{card.row['id']}.html"
        row = card.row
        self._title.object = (f"Candidate {review.position + 1} of {len(review.queue)}: id {row['id']} "
                              f"({row['detectors']}), source {self.current}")
        freq = f"{row['freq'] / 1e9:.6f} GHz, " if np.isfinite(row["freq"]) else ""
        sidelobe = (f"; probable sidelobe of id {row['sidelobe_of']} (p = {row['sidelobe_p']:.2f})"
                    if row["sidelobe"] else (f"; sidelobe p = {row['sidelobe_p']:.2f}"
                                             if np.isfinite(row["sidelobe_p"]) else ""))
        p_false = f"; p_false {row['p_false']:.2f}" if np.isfinite(row["p_false"]) else ""
        self._scores.object = (f"RA {row['ra']:.6f} deg, Dec {row['dec']:.6f} deg; {freq}channel {int(row['z'])} "
                               f"(line {int(row['z0'])}-{int(row['z1']) - 1})\n"
                               f"SNR {row['snr']:.1f}, score {row['score']:.2f}, flux {row['flux']:.4g} Jy km/s"
                               f"{sidelobe}{p_false}")
        self._neighbours.object = self._neighbour_text(card)
        self.note = review.mine()["note"]
        self._show_team()
        position = review.position
        page = position // PAGE_SIZE + 1
        if self._queue.page != page:
            self._queue.page = page
        if self._queue.selection != [position]:
            self._queue.selection = [position]

    def _show_team(self) -> None:
        verdicts = self.review.verdicts.get(self.current, {})
        summary = self.review.summary()
        lines = [f"{who}: {v['verdict']}" + (f" ({v['note']})" if v["note"] else "") for who, v in
                 sorted(verdicts.items())]
        head = "Reviewers DISAGREE: " if summary["disagree"] else ("Verdicts: " if lines else "No verdict yet.")
        self._team.object = head + ("; ".join(lines) if lines else "")

    @staticmethod
    def _neighbour_text(card) -> str:
        def listed(table):
            return ", ".join(f"id {r['id']} at {r['distance']:.1f} beams (SNR {r['snr']:.1f})" for r in table)
        text = (f"In the same channels within {NEIGHBOUR_BEAMS:.0f} beams: {listed(card.neighbours)}"
                if len(card.neighbours) else f"No other candidate in the same channels within {NEIGHBOUR_BEAMS:.0f} "
                "beams.")
        if len(card.brighter):
            text += f"\nBrighter in the same channels (its sidelobes could fall here): {listed(card.brighter)}"
        return text

    def _finder(self):
        """The pipeline's networks for the Deep GRU spectrum (loaded once per process); None when
        they are missing: the card goes without it."""
        try:
            return SourceFinder.load(self.models)
        except InputError as exc:
            log.warning("vetting card without the Deep GRU: %s", exc)
            return None

    def close(self) -> None:
        self.similar.job.stop()
        self.exchange.close()
        if self._poll is not None:
            self._poll.stop()
            self._poll = None

    def _truth_controls(self) -> list:
        if self.detection.truth is None:
            return []
        return [pn.widgets.Checkbox.from_param(self.param.show_truth, name="Compare with the truth (simulated cube)",
                                               css_classes=["vetting-show-truth"]), self._truth]

    def __panel__(self):
        queue = pn.Column(
            pn.Row(pn.widgets.TextInput.from_param(self.param.reviewer, name="Reviewer",
                                                   placeholder="your name or initials",
                                                   css_classes=["vetting-reviewer"]),
                   pn.widgets.Select.from_param(self.param.scope, name="Candidates")),
            pn.Row(pn.widgets.Select.from_param(self.param.order, name="Order"),
                   pn.widgets.Select.from_param(self.param.show, name="Show")),
            self._status, self._queue, self.exchange.area, self._where, *self._truth_controls(), width=470)
        # the verdicts first: with a card's figures below them, they stay in view on a laptop's screen
        buttons = pn.FlexBox(*self._buttons.values(), self._save, css_classes=["vetting-buttons"])
        note = pn.widgets.TextInput.from_param(self.param.note, name="Note (saved with your next verdict on it)",
                                               css_classes=["vetting-note"])
        card = pn.Column(self._title, buttons, note, self._team, self._scores, self._figures,
                         self._neighbours, self.similar.area, sizing_mode="stretch_width", css_classes=["vetting-card"])
        return pn.Column(self._alert, pn.Row(queue, card, sizing_mode="stretch_width"), self.shortcuts,
                         sizing_mode="stretch_width")
