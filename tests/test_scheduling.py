"""Pieces of work run in this process: one after another, or in a pool of one thread per core."""

import threading
import time

import pytest

from pipeline.errors import Cancelled
from pipeline.scheduling import run_tasks, task_threads


def twice(x):
    time.sleep(0.05)
    return 2 * x, task_threads(8), threading.current_thread().name


def test_threads_give_every_result_with_one_thread_each(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    results = dict(run_tasks(twice, {i: (i,) for i in range(6)}, "threads"))
    assert {k: v[0] for k, v in results.items()} == {i: 2 * i for i in range(6)}
    assert {v[1] for v in results.values()} == {1} and {v[2] for v in results.values()} == {"task_0", "task_1"}
    assert dict(run_tasks(twice, {0: (1,)}, "synchronous"))[0][1:] == (8, "MainThread")  # not in the pool


def test_cancelling_a_pool_drops_the_pieces_not_started(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    started, stop = [], threading.Event()

    def piece(x):
        started.append(x)
        time.sleep(0.05)
        return x

    with pytest.raises(Cancelled, match="the work cancelled"):
        for _ in run_tasks(piece, {i: (i,) for i in range(40)}, "threads", cancel=stop):
            stop.set()
    time.sleep(0.2)
    assert len(started) <= 6  # two running and two queued per thread at most, not the 40


def test_an_error_in_a_piece_reaches_the_caller():
    def broken(x):
        raise ValueError(f"piece {x} is broken")

    with pytest.raises(ValueError, match="piece 0 is broken"):
        list(run_tasks(broken, {0: (0,)}, "threads"))
