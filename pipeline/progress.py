"""Long work says how far it is and stops when asked, the same way everywhere.

The contract every long function of ``pipeline`` follows (detection, training, feature
extraction, index builds, simulations, recursive searches):

- ``progress``: None, or a callable ``progress(done, total, stage)``: ``done`` of ``total`` units
  (stages, windows, images, cubes, steps, iterations) and ``stage``, a short text saying what is
  being done ("Blobs Finder, channels 0-7", "loss 0.0812"), possibly "". Called from the worker
  thread; the explorer's :class:`explorer.background.BackgroundJob` and the command line's tqdm
  bars take it as it is.
- ``cancel``: None, or anything with ``is_set()`` (a ``threading.Event``). Work checks it between
  units with :func:`check_cancel`, which raises :class:`~pipeline.errors.Cancelled`; what was
  finished is either kept for the next run or never written, as each function documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pipeline.errors import Cancelled

Progress = Callable[[int, int, str], None]


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


def report(progress: Progress | None, done: int, total: int, stage: str = "") -> None:
    """Call ``progress(done, total, stage)`` if there is one."""
    if progress is not None:
        progress(int(done), int(total), stage)


def check_cancel(cancel: CancelFlag | None, what: str = "work", then: str = "") -> None:
    """Raise :class:`Cancelled` ("<what> cancelled[: <then>]", ``then`` saying what became of
    the work done) when ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled" + (f": {then}" if then else ""))


class Steps:
    """Counts the stages of one piece of work: ``steps(stage)`` checks ``cancel``, then reports
    ``stage`` as step ``done`` of ``total`` and counts it."""

    def __init__(self, progress: Progress | None, cancel: CancelFlag | None, total: int, what: str = "work"):
        self.progress, self.cancel, self.total, self.what = progress, cancel, int(total), what
        self.done = 0

    def __call__(self, stage: str) -> None:
        check_cancel(self.cancel, self.what)
        report(self.progress, self.done, self.total, stage)
        self.done += 1
