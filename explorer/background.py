"""Long work off the server's event loop: a progress bar, a Cancel button, and the result handed
back on the UI thread, so the page stays responsive and never freezes on an exception.

CPU-bound work (source finding above all: PyBDSF and the networks hold the GIL for seconds at a
time) runs in a worker process of its own, so that neither this session nor any other waits for
it, and Cancel stops it at once: the worker is asked to stop, and ended if it has not within
``CANCEL_GRACE_S``. Such work is a picklable callable, a top-level function of
:mod:`explorer.jobs` (bound to its arguments with ``functools.partial``). Workers are forked
from a server process started once, which has imported :mod:`explorer.jobs` (and so the
scientific stack): a worker starts in milliseconds, not the seconds an import takes. Short,
I/O-bound work may run in a thread instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
import weakref

import panel as pn

from pipeline.errors import Cancelled, InputError

CANCEL_GRACE_S = 1.0  # after Cancel, how long a worker may take to stop by itself before it is ended
POLL_MS = 200
_PROCESSES = multiprocessing.get_context("forkserver")
_PROCESSES.set_forkserver_preload(["explorer.background", "explorer.jobs"])


class _Flag:
    """A cancel flag shared with a worker process without a lock (a byte of shared memory): a
    worker ended while reading it can leave nothing locked (a multiprocessing Event could)."""

    def __init__(self):
        self._value = _PROCESSES.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


def _served() -> bool:
    """Whether this runs in a served page (a Bokeh server session)."""
    return pn.state.curdoc is not None and pn.state.curdoc.session_context is not None


def _failure(what: str) -> str:
    return (f"{what.rstrip('. ')} failed because of an error in the explorer; "
            "the details are in the server log. Try again, or tell the operator.")


def _outcome(work, progress, cancel, share, what: str) -> tuple[str, object]:
    """("result", value) or ("error", message for the visitor) of ``work(progress, cancel, share)``."""
    try:
        return "result", work(progress, cancel, share)
    except Cancelled as exc:
        return "error", f"{exc}" or "Cancelled."
    except InputError as exc:
        return "error", str(exc)
    except Exception:  # a bug must not freeze the page: say what failed, details in the log
        logging.getLogger("explorer").exception("%s failed", what)
        return "error", _failure(what)


def _in_worker(work, messages, cancel, what: str) -> None:
    """The worker process: run ``work``, sending its progress, partial results and outcome."""
    logging.basicConfig()  # a bug's traceback goes to the server's own log (the inherited stderr)
    outcome = _outcome(work, lambda done, total, stage="": messages.put(("progress", done, total, stage)),
                       cancel, lambda value: messages.put(("partial", value)), what)
    messages.put(outcome)


class BackgroundJob:
    """Runs ``work(progress, cancel, share)``, ``progress`` and ``cancel`` as every long function of
    ``pipeline`` takes them (:mod:`pipeline.progress`), in a worker process (``in_process=True``)
    or a thread.

    ``progress(done, total, stage)`` may be called by the work; a periodic callback (every 200 ms,
    in a served page) copies ``done / total`` to ``bar`` and ``stage`` (or, when it is empty, what
    the job is) to ``on_status``. The work may hand partial results to ``share(value)``; the latest
    reaches ``on_partial(value)`` on the UI thread while it runs. When the work ends,
    ``on_done(result)`` or ``on_error(message)`` runs on the UI thread; ``InputError`` and
    ``Cancelled`` give their own message; any other exception is a bug, whose traceback goes to
    the server log while the visitor reads that ``what`` failed. Without a server (tests,
    notebooks) :meth:`start` waits for the work to end. A served job ends with its session.

    ``processes``: whether work started ``in_process`` really goes to a worker process; by default
    only in a served page, where the event loop and other sessions must not wait. Elsewhere (tests,
    notebooks, scripts, which wait for the result anyway) it runs in a thread of this process, so a
    script needs no ``if __name__ == "__main__"`` guard for the worker's sake.
    """

    def __init__(self, on_done, on_error, on_status=None, on_partial=None, processes: bool | None = None):
        self.on_done, self.on_error, self.on_status = on_done, on_error, on_status or (lambda text: None)
        self.on_partial = on_partial or (lambda value: None)
        self.cancel = threading.Event()
        self.bar = pn.indicators.Progress(value=0, max=100, visible=False, sizing_mode="stretch_width")
        self.cancel_button = pn.widgets.Button(label="Cancel", color="warning", disabled=True, width=90)
        self.cancel_button.on_click(lambda _: self.request_cancel())
        self._thread = None
        self._process = None
        self._messages = None
        self._state = {}
        self._poll = None
        served = _served()
        self.processes = served if processes is None else processes
        if served:  # through a weak reference: the session must not keep every viewer it ever showed
            job = weakref.ref(self)
            pn.state.on_session_destroyed(lambda ctx: job() is not None and job().stop())

    def controls(self) -> pn.Row:
        """The progress bar and the Cancel button, both shown only while a job runs (call once)."""
        self.cancel_button.visible = self.bar.visible
        self.bar.param.watch(lambda event: setattr(self.cancel_button, "visible", event.new), "visible")
        return pn.Row(self.bar, self.cancel_button, sizing_mode="stretch_width")

    @property
    def busy(self) -> bool:
        """A job runs, or has ended and its result is not handed over yet."""
        return self.running or self._poll is not None

    @property
    def running(self) -> bool:
        if self._process is not None:
            if "outcome" not in self._state and not self._process.is_alive():
                self._settle()
            return "outcome" not in self._state
        return self._thread is not None and self._thread.is_alive()

    def start(self, work, what: str, in_process: bool = False) -> bool:
        """Start ``work`` unless a job is running (then False); in a worker process when
        ``in_process`` (``work`` picklable, see the module docstring)."""
        if self.busy:
            return False
        self._state = {"text": what, "fraction": 0.0, "what": what}
        self.bar.visible, self.bar.value, self.cancel_button.disabled = True, 0, False
        self.on_status(what)
        if in_process and self.processes:
            self.cancel = _Flag()
            self._messages = _PROCESSES.Queue()
            self._thread = None
            self._process = _PROCESSES.Process(target=_in_worker, args=(work, self._messages, self.cancel, what),
                                               daemon=True, name=f"explorer job: {what}")
            self._process.start()
        else:
            self.cancel = threading.Event()
            self._process = None

            def run():
                kind, value = _outcome(work, self._progress, self.cancel, self.share, what)
                self._state["outcome"] = (kind, value)

            self._thread = threading.Thread(target=run, daemon=True)
            self._thread.start()
        if _served():
            self._poll = pn.state.add_periodic_callback(self._follow, period=POLL_MS)
        else:
            self._wait()
            self._follow()
        return True

    def request_cancel(self) -> None:
        """Ask the work to stop; a worker process that has not stopped ``CANCEL_GRACE_S`` later is ended."""
        if "cancelled_at" not in self._state and self.running:
            self.cancel.set()
            self._state["cancelled_at"] = time.monotonic()
            self._state["text"] = f"cancelling {self._state.get('what', '')}".rstrip()

    @property
    def cancelled(self) -> bool:
        """Whether the last job was asked to stop (Cancel, or its session ended)."""
        return "cancelled_at" in self._state

    def stop(self) -> None:
        """End the work now (its session is gone, or its viewer closed): a worker process is
        ended, a thread asked to stop; no result is handed over."""
        self._state.setdefault("cancelled_at", time.monotonic())
        self.cancel.set()
        if self._process is not None and self._process.is_alive():
            self._kill()
        if self._poll is not None:
            self._poll.stop()
            self._poll = None

    def _kill(self) -> None:
        """End the worker and never read its queue again (it may have died mid-message)."""
        self._process.kill()
        self._process.join(1)
        self._state.setdefault("outcome", self._cancelled())

    def share(self, value) -> None:
        """Called by the work: ``value`` (a partial result) goes to ``on_partial`` at the next poll."""
        self._state["partial"] = value

    def _progress(self, done: int, total: int, stage: str = "") -> None:
        self._state.update(text=stage or self._state["what"], fraction=done / total if total else 0.0)

    def _drain(self, block: bool = False) -> None:
        """Take the worker's messages: progress, partial results, its outcome."""
        while "outcome" not in self._state:
            try:
                message = self._messages.get(timeout=0.5) if block else self._messages.get_nowait()
            except queue.Empty:
                return
            if message[0] == "progress":
                self._progress(*message[1:])
            elif message[0] == "partial":
                self.share(message[1])
            else:
                self._state["outcome"] = message

    def _settle(self) -> None:
        """For a worker that has exited: its last messages taken, and an outcome in any case."""
        self._drain()
        if "outcome" in self._state:
            return
        if self.cancelled:
            self._state["outcome"] = self._cancelled()
            return
        what = self._state.get("what", "the work").rstrip(". ")
        self._state["outcome"] = ("error", f"{what} stopped unexpectedly (the server may be short of memory); "
                                           "try again, or on a smaller cube.")
        logging.getLogger("explorer").error("%s: worker process ended with exit code %s", what,
                                            self._process.exitcode)

    def _cancelled(self) -> tuple[str, str]:
        return "error", f"Cancelled ({self._state.get('what', 'the work').rstrip('. ')})."

    def _wait(self) -> None:
        """Without a server: wait for the work to end."""
        if self._process is None:
            self._thread.join()
            return
        while self.running:
            self._drain(block=True)
            self._end_if_cancelled()

    def _end_if_cancelled(self) -> None:
        """End a worker that has not stopped ``CANCEL_GRACE_S`` after Cancel."""
        started = self._state.get("cancelled_at")
        if started is not None and self._process.is_alive() and time.monotonic() - started > CANCEL_GRACE_S:
            self._kill()

    def _follow(self) -> None:
        if self._process is not None:
            self._drain()
            self._end_if_cancelled()
        self.bar.value = int(100 * min(max(self._state.get("fraction", 0.0), 0.0), 1.0))
        if "partial" in self._state:
            partial = self._state.pop("partial")
            if self.running:
                self.on_partial(partial)
        if self.running:
            self.on_status(self._state.get("text", ""))
            return
        if self._poll is not None:
            self._poll.stop()
            self._poll = None
        if self._process is not None:
            self._process.join(0.2)  # it has sent its outcome: it is exiting
            if self._process.is_alive():
                self._process.kill()
            self._messages.close()
        self.bar.visible, self.cancel_button.disabled = False, True
        kind, value = self._state["outcome"]
        if kind == "error":
            self.on_error(value)
        else:
            self.on_done(value)
