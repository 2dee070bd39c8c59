"""Long work in a worker process (issue 13, item 2): progress, partial results and the outcome come
back; Cancel ends even work that never looks at its cancel flag; a worker that dies is reported."""

import functools
import os
import threading
import time

from explorer.background import CANCEL_GRACE_S, BackgroundJob
from pipeline.errors import InputError


def counting(n, progress, cancel, share):
    for i in range(n):
        progress(i, n, f"step {i}")
        share([i])
    return os.getpid()


def refusing(progress, cancel, share):
    raise InputError("the cube has no spectral axis: use a cube")


def stubborn(progress, cancel, share):
    """Holds the CPU and never checks ``cancel``, as PyBDSF does."""
    while True:
        sum(range(10_000))


def dying(progress, cancel, share):
    os._exit(3)


def _job(seen):
    return BackgroundJob(on_done=lambda result: seen.append(("done", result)),
                         on_error=lambda message: seen.append(("error", message)),
                         on_partial=lambda value: seen.append(("partial", value)), processes=True)


def test_work_runs_in_another_process_and_its_result_comes_back():
    seen = []
    job = _job(seen)
    job.start(functools.partial(counting, 5), "counting", in_process=True)
    assert seen[-1][0] == "done" and seen[-1][1] != os.getpid()
    assert job._state["text"] == "step 4" and not job.running


def test_a_refusal_in_the_worker_reaches_the_page_as_its_message():
    seen = []
    _job(seen).start(refusing, "counting", in_process=True)
    assert seen == [("error", "the cube has no spectral axis: use a cube")]


def _stubborn_worker(seen):
    """A job running ``stubborn`` in a worker process, started by a thread (``start`` waits for
    the work outside a server); (job, that thread) once the worker is alive."""
    job = _job(seen)
    runner = threading.Thread(target=job.start, args=(stubborn, "running pybdsf...", True))
    runner.start()
    deadline = time.monotonic() + 30
    while job._process is None or not job._process.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return job, runner


def test_cancel_ends_work_that_never_checks_it():
    seen = []
    job, runner = _stubborn_worker(seen)
    asked = time.monotonic()
    job.request_cancel()
    runner.join(30)
    assert not runner.is_alive() and not job._process.is_alive()
    assert time.monotonic() - asked < CANCEL_GRACE_S + 5
    assert seen == [("error", "Cancelled (running pybdsf).")]


def test_a_worker_that_dies_is_reported_not_awaited(caplog):
    seen = []
    _job(seen).start(dying, "running pipeline...", in_process=True)
    assert seen[0][0] == "error" and "stopped unexpectedly" in seen[0][1]
    assert "exit code 3" in caplog.text


def test_outside_a_server_the_work_stays_in_this_process_unless_asked():
    seen = []
    BackgroundJob(on_done=lambda result: seen.append(result), on_error=seen.append).start(
        functools.partial(counting, 2), "counting", in_process=True)
    assert seen == [os.getpid()]


def test_no_second_job_while_a_result_waits_to_be_handed_over():
    """A job that has ended but whose result the page's poll has not taken yet still counts:
    a second start then would leave the first poll running for ever."""
    job = BackgroundJob(on_done=lambda result: None, on_error=lambda message: None)
    job._poll = object()  # as in a served page, between the work's end and the next poll
    assert job.busy and not job.running
    assert job.start(functools.partial(counting, 1), "counting") is False


def test_stop_ends_a_worker_and_its_queue_is_not_read_again():
    seen = []
    job, runner = _stubborn_worker(seen)
    job.stop()  # the viewer closed, or the session ended
    runner.join(30)
    assert not job._process.is_alive() and job.cancelled
    assert seen == [("error", "Cancelled (running pybdsf).")]
