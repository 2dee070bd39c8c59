"""What lessons 2 and 3 share: a lesson whose widgets start pipeline work in a worker process (a
progress bar and Cancel, the page live meanwhile) and whose plots are DynamicMaps over the result.

A subclass says what to run (:meth:`RunningLesson.work`), takes the result (:meth:`take`), lists each
step's plots (:meth:`plots`: name and a function of the result; the plots keep their layers whatever
the result, as a DynamicMap must) and its numbers (:meth:`numbers`). A change that comes while a run
goes is run when it ends."""

from __future__ import annotations

import holoviews as hv
import panel as pn
import param

from explorer.background import BackgroundJob
from explorer.text import Alert, Text


class RunningLesson(pn.viewable.Viewer):
    """The running, the redrawing and the parts every lesson gives the Learn tab."""

    result = param.Parameter(default=None, doc="The last run's result")
    scale = param.Number(default=1.0, bounds=(0.5, 3.0), doc="Plot size, relative (presenter mode: larger)")

    #: parameters besides ``result`` whose change redraws the plots
    redraw_on: tuple = ()

    def __init__(self, **params):
        super().__init__(**params)
        self._panes = {}  # plot name -> its pane, made when first shown (again at a new scale)
        self._again = False  # a change came while a run was going: run again when it ends
        self._step = 0
        self._error = Alert("", alert_type="danger", visible=False, css_classes=["lesson-error"])
        self._status = Text("", wrap=True, css_classes=["lesson-status"])
        self._numbers = Text("", wrap=True, css_classes=["lesson-numbers"])
        self.job = BackgroundJob(self._on_done, self._on_error, lambda text: setattr(self._status, "object", text))
        self._progress = self.job.controls()
        self.param.watch(self._on_scale, "scale")

    # ---- what a lesson says ---------------------------------------------------------------
    def work(self) -> tuple:
        """(a picklable ``work(progress, cancel, share)`` of :mod:`explorer.jobs`, what it does)."""
        raise NotImplementedError

    def take(self, value) -> None:
        """The run's result arrived: show it."""
        raise NotImplementedError

    def failed(self) -> None:
        """The run failed or was cancelled: tidy what it left."""

    def plots(self, step: int) -> list:
        """(name, function of the result) of each plot of step ``step``."""
        raise NotImplementedError

    def numbers(self, step: int) -> str:
        raise NotImplementedError

    # ---- running --------------------------------------------------------------------------
    def start(self) -> None:
        """The first run, when the lesson is first shown."""
        if self.result is None and not self.job.busy:
            self.run()

    def run(self) -> None:
        """Run with the widgets' values (after the run going, if one is)."""
        if self.job.busy:
            self._again = True
            return
        self._error.visible = False
        self.job.start(*self.work(), in_process=True)

    def _on_done(self, value) -> None:
        self._status.object = ""
        self.take(value)
        self._show_numbers()
        self._next_run()

    def _on_error(self, message: str) -> None:
        self.failed()
        self._status.object = ""
        self._error.object, self._error.visible = message, True
        self._next_run()

    def _next_run(self) -> None:
        if self._again:
            self._again = False
            self.run()

    def _on_scale(self, event) -> None:
        self._panes.clear()
        self._numbers.scale_font(event.new)

    def _show_numbers(self) -> None:
        self._numbers.object = self.numbers(self._step)

    # ---- the parts the Learn tab shows ----------------------------------------------------
    def _pane(self, name: str, plot):
        """The plot ``name``, a DynamicMap made once: a change sends new data to the plot on the page."""
        if name not in self._panes:
            dynamic = hv.DynamicMap(lambda **_: plot(self.result),
                                    streams=[hv.streams.Params(self, ["result", *self.redraw_on])])
            self._panes[name] = pn.pane.HoloViews(dynamic, css_classes=[f"lesson-{name}"])
        return self._panes[name]

    def handout(self, step: int) -> list:
        """Step ``step``'s plots as they are now, and its numbers: for a page that keeps without a server."""
        shown = [pn.pane.HoloViews(plot(self.result)) for _, plot in self.plots(step)]
        return [pn.Row(*shown), Text(self.numbers(step), wrap=True)]

    def panel(self, step: int):
        """What step ``step`` shows beside its text: the run's progress, its plots and numbers."""
        self._step = step
        self._show_numbers()
        self.start()
        return pn.Column(self._error, self._progress, self._status,
                         pn.Row(*(self._pane(name, plot) for name, plot in self.plots(step))), self._numbers,
                         sizing_mode="stretch_width")

