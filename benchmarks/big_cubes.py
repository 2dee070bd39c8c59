"""Source finding at archive scale: seconds and peak memory against the cube's size (issue 12).

For each size (``--sizes``, side x channels; default 256x128 and 1024x512, the 2 GB cube of
issue 12), the project's simulator makes one cube with sources (as ``python -m pipeline simulate``:
alma.cycle9.3 at 0.1"/px, the paper's sky scaled to the size) and one of noise alone (the same
observation, no sky), unless they are already in ``--work``. Each detector then runs as a user
runs it, ``python -m pipeline detect CUBE -o CAT --memory M``, in a process of its own:

- seconds (wall), and nanoseconds per voxel;
- peak memory: the process's peak resident set (``ru_maxrss`` of the child: everything it
  held, its libraries and the pages of the cube mapped into it included);
- candidates, true and false positives against the truth (strict one-to-one matching within
  3 px) on the cube with sources, and the candidates on the noise-only cube (all false).

Then, on the largest size, the pipeline on a local Dask cluster of each of ``--workers`` workers
(``--scheduler`` its address; one thread each): seconds, the detect process's peak and the
workers' peak together, and whether the catalogue is the one found in the detect process.

Targets (issue 12, 2 cores): the 2 GB cube in under 60 s with peak memory under 2 GB; a 16 GB
cube within 2 GB, its time per voxel within 1.5x of the 2 GB cube's; at most 1 false positive per
noise-only cube at every size. The cubes are written a block of channels at a time
(:mod:`pipeline.alma.simulate_streamed`), so a 2048x1024 cube (16 GB, ``--sizes 2048x1024
--workers``) is made in little memory: about 34 GB of disk for the two.

Usage: python benchmarks/big_cubes.py [--sizes 256x128 1024x512] [--detectors pipeline,photutils]
                                      [--memory 2GB] [--workers 1 2 4] [--work DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline, not an installed one
sys.path.insert(0, str(Path(__file__).parent))
from _report import report

from pipeline.alma.catalog import read_catalog
from pipeline.alma.evaluate import evaluate
from pipeline.alma.simulate import Observation
from pipeline.alma.simulate_streamed import simulate_cube_file
from pipeline.alma.truth import read_truth

ROOT = Path(__file__).resolve().parents[1]
SEED = 12_000_000  # far from the seeds training draws
DEFAULT_SIZES = ["256x128", "1024x512"]


def make_cubes(work: Path, size: int, channels: int) -> tuple[Path, Path, Path]:
    """(cube with sources, its truth.csv, noise-only cube) of this size, made once in ``work`` by
    the simulator a block of channels at a time (the cube ``simulate_cube`` makes with the seed,
    in little memory whatever its size)."""
    folder = work / f"{size}x{channels}"
    cube, truth, noise = folder / "sources.fits", folder / "truth.csv", folder / "noise.fits"
    if cube.exists() and truth.exists() and noise.exists():
        return cube, truth, noise
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    simulate_cube_file(cube, SEED, size, channels, Observation(), name=cube.name).write(truth, overwrite=True)
    simulate_cube_file(noise, SEED + 1, size, channels, Observation(), sources=False)
    seconds = time.perf_counter() - started
    print(f"made {size}x{size}x{channels} (sources and noise-only) in {seconds:.0f} s", flush=True)
    return cube, truth, noise


def run_detect(cube: Path, out: Path, detector: str, memory: str, scheduler: str = "synchronous") -> dict:
    """``python -m pipeline detect`` in a process of its own: wall seconds, peak resident set (GB)."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "detect", str(cube), "-o", str(out),
                                "--detector", detector, "--memory", memory, "--scheduler", scheduler, "--quiet"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"detect failed on {cube}: {process.stderr.read().decode()[-2000:]}")
    return {"seconds": seconds, "peak_gb": usage.ru_maxrss * 1024 / 1e9}  # ru_maxrss: kB on Linux


def on_dask(cube: Path, out: Path, workers: int, memory: str) -> dict:
    """The pipeline on a local cluster of ``workers`` processes: :func:`run_detect`'s figures and
    the workers' peak resident set together (GB), sampled every 0.2 s."""
    import threading

    import dask
    import psutil
    from dask.distributed import LocalCluster

    no_pages = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
    with dask.config.set(no_pages), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                 dashboard_address=None) as cluster:
        pids = {w.process.pid for w in cluster.workers.values()}
        peak, done = [0], threading.Event()

        def sample():
            while not done.is_set():
                total = 0
                for pid in pids:
                    try:
                        total += psutil.Process(pid).memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                peak[0] = max(peak[0], total)
                time.sleep(0.2)

        watcher = threading.Thread(target=sample)
        watcher.start()
        try:
            figures = run_detect(cube, out, "pipeline", memory, cluster.scheduler_address)
        finally:
            done.set()
            watcher.join()
    return {**figures, "workers_peak_gb": peak[0] / 1e9}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="side x channels")
    parser.add_argument("--detectors", default="pipeline,photutils")
    parser.add_argument("--memory", default="2GB", help="detect's --memory")
    parser.add_argument("--workers", nargs="*", type=int, default=[1, 2, 4],
                        help="local Dask clusters to run the pipeline on, on the largest size")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "big_cubes",
                        help="where the cubes are made (and kept for the next run)")
    args = parser.parse_args(argv)
    rows = []
    for text in args.sizes:
        size, channels = (int(v) for v in text.lower().split("x"))
        # made in a process of its own: a child forked from a process that held the simulated cube
        # inherits its peak memory (ru_maxrss), which would then be the detector's
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            cube, truth_path, noise = pool.apply(make_cubes, (args.work, size, channels))
        truth = read_truth(truth_path)
        for detector in args.detectors.split(","):
            found = run_detect(cube, args.work / f"{cube.parent.name}-{detector}.csv", detector, args.memory)
            scores = evaluate(truth, read_catalog(args.work / f"{cube.parent.name}-{detector}.csv"),
                              image_size_px=size)["overall"]
            empty = run_detect(noise, args.work / f"{cube.parent.name}-{detector}-noise.csv", detector, args.memory)
            noise_candidates = len(read_catalog(args.work / f"{cube.parent.name}-{detector}-noise.csv"))
            voxels = size * size * channels
            rows.append({"cube": f"{size}x{size}x{channels}", "GB": voxels * 4 / 1e9, "detector": detector,
                         "seconds": round(found["seconds"], 1), "ns/voxel": round(found["seconds"] / voxels * 1e9, 1),
                         "peak GB": round(found["peak_gb"], 2), "true": scores["n_true"],
                         "candidates": scores["n_pred"],
                         "TP": scores["tp"], "FP": scores["fp"], "noise-only FP": noise_candidates,
                         "noise-only s": round(empty["seconds"], 1), "noise-only peak GB": round(empty["peak_gb"], 2)})
    largest = max(args.sizes, key=lambda t: int(t.lower().split("x")[0]))
    size, channels = (int(v) for v in largest.lower().split("x"))
    folder = args.work / f"{size}x{channels}"
    here = read_catalog(args.work / f"{folder.name}-pipeline.csv") if "pipeline" in args.detectors else None
    for workers in args.workers:
        out = args.work / f"{folder.name}-pipeline-dask{workers}.csv"
        figures = on_dask(folder / "sources.fits", out, workers, args.memory)
        there = read_catalog(out)
        same = here is not None and len(here) == len(there) and all(
            np.array_equal(here[c], there[c]) for c in ("x", "y", "z", "x0", "y0", "x1", "y1"))
        rows.append({"cube": f"{size}x{size}x{channels}", "GB": size * size * channels * 4 / 1e9,
                     "detector": f"pipeline, {workers} Dask worker{'s' if workers > 1 else ''}",
                     "seconds": round(figures["seconds"], 1),
                     "ns/voxel": round(figures["seconds"] / (size * size * channels) * 1e9, 1),
                     "peak GB": round(figures["peak_gb"], 2), "workers' peak GB": round(figures["workers_peak_gb"], 2),
                     "candidates": len(there), "same catalogue": same})
    columns = dict.fromkeys(k for row in rows for k in row)  # every row with every column
    rows = [{k: row.get(k) for k in columns} for row in rows]
    # the default sizes write big_cubes.json; others (a 16 GB run takes half an hour) a file of their own
    name = "big_cubes" + ("" if args.sizes == DEFAULT_SIZES else "_" + "_".join(args.sizes))
    report(name, rows, targets={
        "2 GB cube (pipeline)": "under 60 s, peak under 2 GB",
        "16 GB cube": "peak under 2 GB, ns/voxel within 1.5x of the 2 GB cube's",
        "noise-only cubes": "at most 1 false positive per cube at every size",
        "Dask": "the same catalogue with 1 or 4 workers",
    })


if __name__ == "__main__":
    main()
