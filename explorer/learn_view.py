"""The "Learn" tab: lessons, each a few steps of text beside live widgets that go through the same
pipeline calls as the rest of the explorer. A student goes back and forth (the buttons, the arrow
keys or a clicker's page keys) and changes every parameter at every step; presenter mode makes text
and plots larger for a lecture room."""

from __future__ import annotations

import io

import panel as pn
import param

from explorer import (
    handouts,
    lesson_dirty_cubes,
    lesson_features,
    lesson_interferometer,
    lesson_pipeline,
    lesson_statistics,
)
from explorer.shortcuts import Shortcuts
from explorer.text import Prose, Text

#: lesson title -> (its steps: (heading, text) pairs, a function of the LearnViewer making its live part)
LESSONS = {
    "How an interferometer sees": (lesson_interferometer.STEPS, lambda _: lesson_interferometer.InterferometerLesson()),
    "Why dirty cubes are hard": (lesson_dirty_cubes.STEPS, lambda _: lesson_dirty_cubes.DirtyCubesLesson()),
    "Inside the pipeline": (lesson_pipeline.STEPS, lambda _: lesson_pipeline.PipelineLesson()),
    "One-shot search and statistics": (lesson_statistics.STEPS,
                                       lambda learn: lesson_statistics.StatisticsLesson(learn.oneshot_viewer())),
    "What does a feature see?": (lesson_features.STEPS,
                                 lambda learn: lesson_features.FeaturesLesson(learn.oneshot_viewer())),
}


BACK_KEYS, NEXT_KEYS = ("ArrowLeft", "PageUp"), ("ArrowRight", "PageDown")
PRESENTER_SCALE = 1.5  # text and plots in presenter mode
GUIDE_PX = 340  # the column of text and widgets


class LearnViewer(pn.viewable.Viewer):
    """The lessons; ``oneshot``: the app's one-shot tab (an OneShotViewer), whose set and counted
    label the statistics lesson uses (one of its own when None, e.g. in a notebook)."""

    lesson = param.Selector(default=next(iter(LESSONS)), objects=list(LESSONS), doc="Lesson")
    step = param.Integer(default=0, bounds=(0, None), doc="Step (0-based)")
    presenter = param.Boolean(default=False, doc="Presenter mode: large text and plots, for a lecture room")

    def __init__(self, oneshot=None, **params):
        super().__init__(**params)
        self._oneshot = oneshot
        self._live = {}  # lesson title -> its live part, made when first shown
        self._back = pn.widgets.Button(label="◀ Back", width=90, css_classes=["lesson-back"])
        self._next = pn.widgets.Button(label="Next ▶", width=90, color="primary", css_classes=["lesson-next"])
        self._back.on_click(lambda _: self.go(-1))
        self._next.on_click(lambda _: self.go(+1))
        self._heading, self._text = self._usual_texts = self._texts(1.0)
        # a presentation clicker sends PageDown and PageUp
        self._keys = Shortcuts(lambda key: self.go(-1 if key in BACK_KEYS else +1), keys=[*BACK_KEYS, *NEXT_KEYS])
        self._picker = pn.widgets.Select.from_param(self.param.lesson, name="Lesson", width=300)
        self._presenter_toggle = pn.widgets.Toggle.from_param(self.param.presenter, name="Presenter mode",
                                                             css_classes=["presenter-toggle"], width=150)
        self._save = pn.widgets.FileDownload(callback=self.handout, filename="lesson.html", embed=False,
                                             label="Save this step (HTML)", css_classes=["lesson-save"])
        # the buttons and the lesson's widgets are zoomed in presenter mode (their labels and inputs larger);
        # the texts are swapped for larger ones instead, so that they wrap to the wider guide
        self._buttons = pn.Column(pn.Row(self._back, self._next), pn.Row(self._presenter_toggle, self._save),
                                  sizing_mode="stretch_width")
        # the lesson's widgets, filled when the tab is first shown (a bound function is called when made)
        self._controls = pn.Column(sizing_mode="stretch_width", css_classes=["lesson-widgets"])
        self._guide = pn.Column(self._picker, self._heading, self._text, self._buttons, self._keys,
                                sizing_mode="stretch_width")
        self._frame = None  # the guide beside the lesson's widgets, made when the tab is first shown
        self.param.watch(lambda *_: self._present(), "presenter")
        self.param.step.bounds = (0, len(self.steps) - 1)
        self.param.watch(self._on_lesson, "lesson")
        self._show()
        self.param.watch(lambda *_: self._show(), ["lesson", "step"])

    @property
    def steps(self):
        return LESSONS[self.lesson][0]

    @property
    def live(self):
        """The current lesson's live part (made once per lesson and session)."""
        if self.lesson not in self._live:
            self._live[self.lesson] = LESSONS[self.lesson][1](self)
            self._live[self.lesson].scale = PRESENTER_SCALE if self.presenter else 1.0
        return self._live[self.lesson]

    def _present(self) -> None:
        """Presenter mode on or off: text and plots larger, the lesson picker out of the way."""
        scale = PRESENTER_SCALE if self.presenter else 1.0
        self._picker.visible = not self.presenter
        if self._frame is not None:
            self._frame.width = int(GUIDE_PX * scale)
        # new panes: a text pane's stylesheets changed on a page already drawn are not applied
        shown = self._heading.object, self._text.object
        self._heading, self._text = self._texts(scale) if self.presenter else self._usual_texts
        self._heading.object, self._text.object = shown
        self._guide[1:3] = [self._heading, self._text]
        zoom = {"zoom": str(scale)}  # 1 when off: a style left out would stay as it was
        self._buttons.styles, self._controls.styles = zoom, zoom
        for lesson in self._live.values():
            lesson.scale = scale

    @staticmethod
    def _texts(scale: float) -> tuple[Text, Prose]:
        """The step's heading and text, ``scale`` times the usual size."""
        heading = Text("", wrap=True, css_classes=["lesson-heading"],
                       stylesheets=["pre {font-size: 1.2em; font-weight: 600;}"])
        text = Prose("", css_classes=["lesson-text"], sizing_mode="stretch_width")
        heading.scale_font(scale)
        text.scale_font(scale)
        return heading, text

    def oneshot_viewer(self):
        if self._oneshot is None:
            from explorer.oneshot_view import OneShotViewer

            self._oneshot = OneShotViewer()
        return self._oneshot

    def _on_lesson(self, _) -> None:
        """Another lesson starts at its first step."""
        self.param.step.bounds = (0, None)
        self.step = 0
        self.param.step.bounds = (0, len(self.steps) - 1)

    def go(self, by: int) -> None:
        """Move ``by`` steps, staying within the lesson."""
        self.step = min(max(self.step + by, 0), len(self.steps) - 1)

    def handout(self) -> io.BytesIO:
        """The step shown, as a standalone HTML page (text, plots as they are now, numbers; Bokeh's
        scripts inline, so it opens without the server or a network)."""
        heading, text = self.steps[self.step]
        return handouts.html_page(f"{self.lesson}, step {self.step + 1}: {heading}",
                                  Text(f"{self.lesson}. {self._heading.object}", css_classes=["lesson-heading"]),
                                  Prose(text), *self.live.handout(self.step))

    def _show(self) -> None:
        heading, text = self.steps[self.step]
        self._save.filename = f"{self.lesson.lower().replace(' ', '-')}-step-{self.step + 1}.html"
        self._heading.object = f"Step {self.step + 1} of {len(self.steps)}: {heading}"
        self._text.object = text
        self._back.disabled = self.step == 0
        self._next.disabled = self.step == len(self.steps) - 1

    def __panel__(self):
        """Laid out when first shown: making a lesson observes (the first one) or opens a galaxy set."""
        if self._frame is None:
            self._controls.objects = [pn.bind(lambda *_: self.live.controls(), self.param.lesson)]
            self._frame = pn.Column(self._guide, self._controls,
                                    width=int(GUIDE_PX * (PRESENTER_SCALE if self.presenter else 1.0)),
                                    sizing_mode="fixed", css_classes=["lesson-guide"])
        return pn.Row(self._frame, pn.bind(lambda *_: self.live.panel(self.step), self.param.lesson, self.param.step,
                                     self.param.presenter), sizing_mode="stretch_width")
