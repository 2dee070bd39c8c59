"""Vetting in bulk: the candidates most like the current one (:mod:`pipeline.vetting.similar`),
each shown (its focused image as the search sees it, its id, similarity and verdicts) and ticked,
then marked with one verdict in one step.

The embeddings of a queue's candidates are computed once, in a worker process with a progress bar
and a Cancel button (:class:`explorer.background.BackgroundJob`); the search itself takes
milliseconds.
"""

from __future__ import annotations

import functools

import numpy as np
import panel as pn

from explorer import jobs
from explorer.background import BackgroundJob
from explorer.cube_view import stretched_palette
from explorer.galaxy_browser import png_bytes
from explorer.image_layer import colour
from explorer.text import Text, for_visitor
from pipeline.errors import InputError
from pipeline.vetting.similar import IMAGE_PX, SimilarCandidates

SHOWN = 12  # candidates listed
THUMB_SCALE = 6  # screen pixels per pixel of the search's IMAGE_PX x IMAGE_PX image


def thumbnail(embedding: np.ndarray, palette) -> bytes:
    """The focused image as the search compares it (the embedding's image part), as a PNG with
    north up (row 0 of the image at the bottom)."""
    image = np.asarray(embedding[:IMAGE_PX**2], np.float32).reshape(IMAGE_PX, IMAGE_PX)
    low, high = float(image.min()), float(image.max())
    rgba = colour(image[::-1], (low, high if high > low else low + 1), palette)
    return png_bytes(rgba.view(np.uint8).reshape(IMAGE_PX, IMAGE_PX, 4), IMAGE_PX * THUMB_SCALE)


class SimilarPanel:
    """The "find similar" part of a :class:`~explorer.vetting_view.VettingViewer`."""

    def __init__(self, vetting):
        self.vetting = vetting
        self.palette = stretched_palette("inferno", "linear")
        self.job = BackgroundJob(self._on_embedded, self._on_error, self._on_status)
        self.similar: SimilarCandidates | None = None
        self._built_for = None  # the queue's sources the index holds
        self._wanted = None  # the source whose likes are asked for while the embeddings are made
        self._shown: list[str] = []
        self._reference = None  # the candidate the list is of
        self._status = Text("", wrap=True, css_classes=["similar-status"])
        self._cards = pn.FlexBox(css_classes=["similar-cards"])
        self._ticks: dict[str, pn.widgets.Checkbox] = {}
        self._marks = [pn.widgets.Button(label=f"Mark the ticked {verdict}", color=colour_,
                                         css_classes=[f"similar-mark-{verdict}"], disabled=True)
                       for verdict, colour_ in (("real", "success"), ("spurious", "danger"), ("unsure", "warning"))]
        for button, verdict in zip(self._marks, ("real", "spurious", "unsure"), strict=True):
            button.on_click(functools.partial(lambda v, _: self.mark(v), verdict))
        self.job.cancel_button.visible = False  # shown while the embeddings are made
        for button in self._marks:  # shown with a list to mark
            button.visible = False
        self.area = pn.Column(self._status, pn.Row(self.job.bar, self.job.cancel_button), self._cards,
                              pn.Row(*self._marks), sizing_mode="stretch_width", css_classes=["similar-area"])

    def find(self, source: str) -> None:
        """List the candidates most like ``source``; the first time for this queue, after its
        candidates are embedded (in the background)."""
        review = self.vetting.review
        sources = tuple(str(s) for s in review.table["source"])
        if self.similar is not None and self._built_for == sources:
            self._show(source)
            return
        self._wanted = source
        if not self.job.busy:
            self.similar, self._built_for = None, sources  # the old queue's index answers no more
            self.job.cancel_button.visible = True
            self.job.start(functools.partial(jobs.embed_candidates, self.vetting.cube.path, review.table),
                           f"embedding {len(sources)} candidates to compare them", in_process=True)

    def _on_status(self, text: str) -> None:
        self._status.object = text

    def _on_error(self, message: str) -> None:
        self.job.bar.visible = self.job.cancel_button.visible = False
        self._built_for = None
        self._status.object = f"No similar candidates: {for_visitor(message)}"

    def _on_embedded(self, embeddings) -> None:
        self.job.bar.visible = self.job.cancel_button.visible = False
        queue = tuple(str(s) for s in self.vetting.review.table["source"])
        if queue != self._built_for:  # the queue changed meanwhile (an import, another scope): again, for it
            self.similar = self._built_for = None
            if self._wanted in queue:
                self.find(self._wanted)
            return
        self.similar = SimilarCandidates(embeddings, self._built_for)
        if self._wanted is not None:
            self._show(self._wanted)

    def _show(self, source: str) -> None:
        review = self.vetting.review
        self._reference = source
        like = self.similar.like(source, SHOWN)
        self._shown = [s for s, _ in like]
        row = review.row(source)
        self._status.object = (f"The {len(like)} candidates most like id {row['id']} ({source}), most alike first "
                               "(cosine similarity of focused image, spectrum and context). Untick those that "
                               "differ, then mark the rest." if like else
                               f"No other candidate in this queue to compare id {row['id']} with.")
        self._ticks = {s: pn.widgets.Checkbox(value=True, label="include", css_classes=["similar-tick"])
                       for s in self._shown}
        self._cards.objects = [self._card(source, None, reference=True)] + [self._card(s, c) for s, c in like]
        for button in self._marks:
            button.disabled, button.visible = not self._shown, True

    def _card(self, source: str, cosine: float | None, reference: bool = False):
        review = self.vetting.review
        row = review.row(source)
        mine = review.mine(source)["verdict"]
        team = review.summary(source)["verdict"]
        caption = (f"id {row['id']}" + (" (this one)" if reference else f", {cosine:.2f}") + f"\nSNR {row['snr']:.1f}"
                   + (f"\nteam: {team}" if team else "") + (f"\nyou: {mine}" if mine else ""))
        picture = pn.pane.PNG(thumbnail(self.similar.embedding(source), self.palette),
                              width=IMAGE_PX * THUMB_SCALE, height=IMAGE_PX * THUMB_SCALE)
        parts = [picture, Text(caption)] + ([] if reference else [self._ticks[source]])
        return pn.Column(*parts, width=IMAGE_PX * THUMB_SCALE + 20, css_classes=["similar-card"])

    def mark(self, verdict: str) -> int:
        """Cast ``verdict`` on every ticked candidate shown; returns how many."""
        ticked = [s for s in self._shown if self._ticks[s].value]
        if not ticked:
            return 0
        try:
            n = self.vetting.review.cast_many(ticked, verdict)
        except InputError as exc:  # no name yet, or the database locked: nothing is lost, the page says so
            self.vetting.tell(str(exc))
            return 0
        self.vetting.after_verdicts(set(ticked))
        self._show(self._reference)
        return n
