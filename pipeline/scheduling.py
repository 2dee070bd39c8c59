"""Independent pieces of work run in this process (one after another, or in a pool of one thread per
core) or on Dask: a local cluster (one process per core, one thread each, no dashboard) or a
running scheduler by its address (``tcp://host:8786``).
Feature extraction (:mod:`pipeline.oneshot.extraction`) and source finding on many or large cubes
(:mod:`pipeline.alma.batch`) both go through :func:`run_tasks`."""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager

from pipeline.errors import InputError
from pipeline.progress import check_cancel

SCHEDULER_TIMEOUT = "10s"
_TASK = threading.local()  # ``threads``: set in the threads of a "threads" pool


def task_threads(default: int) -> int:
    """Threads a piece of work may use for itself: 1 in a "threads" pool (the pool already keeps
    every core busy), else ``default``."""
    return getattr(_TASK, "threads", default)


def run_tasks(function, jobs: dict, scheduler: str, cancel=None, what: str = "the work", then: str = ""):
    """Yield ``(key, function(*args))`` for each ``key: args`` of ``jobs`` as it finishes: one
    after another in this process (``scheduler="synchronous"``), in this process by a pool of one
    thread per core (``"threads"``: for work that spends its time outside the GIL, in a network's
    runtime or an image decoder; each piece gets one thread, :func:`task_threads`), on a local
    cluster of up to one worker per core (``"local"``), or on the running scheduler at
    ``scheduler``. ``cancel`` (a threading.Event) stops between results with
    :class:`~pipeline.errors.Cancelled` naming ``what`` (and ``then``: what is kept); pieces not
    yet started are dropped."""
    if not jobs:
        return
    if scheduler == "synchronous":
        for key, args in jobs.items():
            check_cancel(cancel, what, then=then)
            yield key, function(*args)
        return
    if scheduler == "threads":
        yield from _in_threads(function, jobs, cancel, what, then)
        return
    from dask.distributed import as_completed

    with dask_client(scheduler, min(len(jobs), os.cpu_count() or 1)) as client:
        futures = {client.submit(function, *args, pure=False): key for key, args in jobs.items()}
        for future in as_completed(futures):
            check_cancel(cancel, what, then=then)
            yield futures[future], future.result()


@contextmanager
def dask_client(scheduler: str, workers: int | None = None):
    """A Dask client of a new local cluster of ``workers`` worker processes (default one per
    core), one thread each and no dashboard (``scheduler="local"``), or of the running scheduler
    at ``scheduler`` (``tcp://host:8786``); closed (and the local cluster stopped) on leaving."""
    from dask.distributed import Client, LocalCluster

    if scheduler == "local":
        import dask

        # No dashboard. In distributed 2026.8 the scheduler always starts an HTTP server (status
        # pages, metrics, a proxy to the workers) and dashboard_address=None puts it on :8787;
        # so: no bokeh dashboard, no pages on any server, and the scheduler's on a free local port.
        with dask.config.set({"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}):
            cluster = LocalCluster(n_workers=max(1, workers or os.cpu_count() or 1), threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
    else:
        try:
            client, cluster = Client(scheduler, timeout=SCHEDULER_TIMEOUT), None
        except OSError as exc:
            raise InputError(f"Cannot reach the Dask scheduler at {scheduler} ({exc}). Start it "
                             "(`dask scheduler`) or use --scheduler local.") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _in_threads(function, jobs: dict, cancel, what: str, then: str):
    """:func:`run_tasks` in a pool of one thread per core, at most two pieces queued per thread
    (so that a cancel drops the rest at once and results do not pile up)."""
    cores = min(len(jobs), os.cpu_count() or 1)

    def single_threaded():
        _TASK.threads = 1

    pending, queue = {}, iter(jobs.items())
    with ThreadPoolExecutor(cores, thread_name_prefix="task", initializer=single_threaded) as pool:
        try:
            while True:
                for key, args in queue:
                    pending[pool.submit(function, *args)] = key
                    if len(pending) >= 2 * cores:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    check_cancel(cancel, what, then=then)
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:
                future.cancel()
