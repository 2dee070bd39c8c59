"""Long work off the UI thread: a worker thread, a progress bar, a Cancel button, and the result
handed back on the UI thread, so the page stays responsive and never freezes on an exception.
"""

from __future__ import annotations

import logging
import threading

import panel as pn

from pipeline.errors import Cancelled, InputError


class BackgroundJob:
    """Runs ``work(progress, cancel)`` in a thread, ``progress`` and ``cancel`` as every long
    function of ``pipeline`` takes them (:mod:`pipeline.progress`).

    ``progress(done, total, stage)`` may be called from the worker; a periodic callback (every
    200 ms, in a served page) copies ``done / total`` to ``bar`` and ``stage`` (or, when it is
    empty, what the job is) to ``on_status``. When the work ends,
    ``on_done(result)`` or ``on_error(message)`` runs on the UI thread; ``InputError`` and
    ``Cancelled`` give their own message; any other exception is a bug, whose traceback goes to
    the server log while the visitor reads that ``what`` failed. Without a server (tests,
    notebooks) :meth:`start` waits for the work to end. The work may hand partial results to
    :meth:`share`; the latest reaches ``on_partial(value)`` on the UI thread while it runs.
    """

    def __init__(self, on_done, on_error, on_status=None, on_partial=None):
        self.on_done, self.on_error, self.on_status = on_done, on_error, on_status or (lambda text: None)
        self.on_partial = on_partial or (lambda value: None)
        self.cancel = threading.Event()
        self.bar = pn.indicators.Progress(value=0, max=100, visible=False, sizing_mode="stretch_width")
        self.cancel_button = pn.widgets.Button(label="Cancel", color="warning", disabled=True, width=90)
        self.cancel_button.on_click(lambda _: self.cancel.set())
        self._thread = None
        self._state = {}
        self._poll = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, work, what: str) -> bool:
        """Start ``work`` unless a job is running (then False)."""
        if self.running:
            return False
        self.cancel.clear()
        self._state = {"text": what, "fraction": 0.0, "what": what}
        self.bar.visible, self.bar.value, self.cancel_button.disabled = True, 0, False
        self.on_status(what)

        def run():
            try:
                self._state["result"] = work(self._progress, self.cancel)
            except Cancelled as exc:
                self._state["error"] = f"{exc}" or "Cancelled."
            except InputError as exc:
                self._state["error"] = str(exc)
            except Exception:  # a bug must not freeze the page: say what failed, details in the log
                logging.getLogger("explorer").exception("%s failed", what)
                self._state["error"] = (f"{what.rstrip('. ')} failed because of an error in the explorer; "
                                        "the details are in the server log. Try again, or tell the operator.")

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            self._poll = pn.state.add_periodic_callback(self._follow, period=200)
        else:
            self._thread.join()
            self._follow()
        return True

    def share(self, value) -> None:
        """Called by the work: ``value`` (a partial result) goes to ``on_partial`` at the next poll."""
        self._state["partial"] = value

    def _progress(self, done: int, total: int, stage: str = "") -> None:
        self._state.update(text=stage or self._state["what"], fraction=done / total if total else 0.0)

    def _follow(self) -> None:
        self.bar.value = int(100 * min(max(self._state.get("fraction", 0.0), 0.0), 1.0))
        if self.running:
            if "partial" in self._state:
                self.on_partial(self._state.pop("partial"))
            self.on_status(self._state.get("text", ""))
            return
        if self._poll is not None:
            self._poll.stop()
            self._poll = None
        self.bar.visible, self.cancel_button.disabled = False, True
        if "error" in self._state:
            self.on_error(self._state["error"])
        else:
            self.on_done(self._state.get("result"))
