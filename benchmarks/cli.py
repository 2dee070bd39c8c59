"""The command line's speed as a user meets it: ``--help``, a search in an existing index, and
``index`` with each Dask scheduler. Every figure is the wall time of a fresh
``python -m pipeline ...`` process (imports included), run from this checkout.

One table, printed and written to ``benchmarks/results/cli.json``:

``help``
    ``python -m pipeline --help`` and each subcommand's ``--help``: median and best of
    ``--repeat`` runs. Target: under 1 s (no torch, no astropy to read the options).

``search``
    ``search INDEX --prototype ID --n 10 --label ring --positive 1 -o result.csv`` on an index of
    the real cutouts (built first, not timed): median and best of ``--repeat`` runs; and the same
    with three prototypes in one call. Target: under 1.5 s (stored vectors are searched without
    torch or scipy.stats).

``index``
    ``index`` of N real JPEG cutouts (``--sizes``) with each ``--scheduler`` of
    ``--schedulers`` (``synchronous``: this process; ``threads``: this process, a thread per
    core; ``local``: a local Dask cluster; ``auto``, the default: which it picks is in the
    ``picked`` column) and each ``--engine`` of ``--engines``, each into a new folder (nothing
    resumed; removed after), with ``images_per_s`` = N / wall time, the head's sample included. The 320 cutouts
    of ``--images`` (default ../shared/data/galaxies/zoobot_rings, read in place and never
    copied) are listed again under new ids up to N: the same files, so the operating system's
    file cache serves repeats. A warm-up run exports the ONNX network once before any timing.

Each row records the machine's one-minute load average when it started: on a shared machine the
figures move with it.

Usage: python benchmarks/cli.py [--images DIR] [--sizes 320,1000] [--repeat 5] [--skip-index | --only-index]
       [--schedulers synchronous,threads,local,auto] [--engines onnx,onnx-int8]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline, not an installed one
sys.path.insert(0, str(Path(__file__).parent))
from _report import report

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "galaxies" / "zoobot_rings"
COMMANDS = ("cube-info", "simulate", "train", "detect", "evaluate", "index", "search", "top-activations",
            "rank-features")
TARGETS = {"help_s": 1.0, "search_s": 1.5}


def wall(*args) -> float:
    """Seconds one ``python -m pipeline ARGS`` takes, from this checkout; fails loudly."""
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"python -m pipeline {' '.join(map(str, args))} failed:\n{result.stderr}")
    return seconds


def timed_row(what: str, repeat: int, *args) -> dict:
    load = os.getloadavg()[0]
    times = [wall(*args) for _ in range(repeat)]
    return {"what": what, "runs": repeat, "median_s": statistics.median(times), "best_s": min(times),
            "load": load, "picked": "", "images_per_s": None}


def write_catalog(images: Path, n: int, path: Path) -> Path:
    """A catalogue of ``n`` rows over the cutouts of ``images`` (listed again under new ids
    when n is larger than the set)."""
    with open(images / "catalog.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=["id", "file", "ring"])
        out.writeheader()
        for i in range(n):
            row = rows[i % len(rows)]
            out.writerow({"id": f"{row['id']}-{i // len(rows)}", "file": row["file"], "ring": row["ring"]})
    return path


def help_rows(repeat: int) -> list[dict]:
    rows = [timed_row("--help", repeat, "--help")]
    rows += [timed_row(f"{command} --help", repeat, command, "--help") for command in COMMANDS]
    return rows


def search_rows(images: Path, work: Path, repeat: int) -> list[dict]:
    catalog = write_catalog(images, 320, work / "search.csv")
    wall("index", images, "--catalog", catalog, "--out", work / "index", "--scheduler", "synchronous", "--quiet")
    with open(catalog, newline="") as f:
        ids = [row["id"] for row in csv.DictReader(f)][:3]
    common = ["--n", 10, "--label", "ring", "--positive", 1, "-o", work / "result.csv", "--quiet"]
    return [timed_row("search, 1 prototype", repeat, "search", work / "index", "--prototype", ids[0], *common),
            timed_row("search, 3 prototypes", repeat, "search", work / "index", "--prototype", *ids, *common)]


def index_rows(images: Path, work: Path, sizes, schedulers, engines) -> list[dict]:
    from pipeline.oneshot.extraction import pick_scheduler

    warm = write_catalog(images, 8, work / "warm.csv")
    for engine in engines:  # the networks are exported (and quantised) once, before any timing
        wall("index", images, "--catalog", warm, "--out", work / f"warm-{engine}", "--scheduler", "synchronous",
             "--engine", engine, "--quiet")
    rows = []
    for n in sizes:
        catalog = write_catalog(images, n, work / f"set{n}.csv")
        for engine in engines:
            for scheduler in schedulers:
                folder = work / f"index-{n}-{scheduler}-{engine}"
                row = timed_row(f"index {n} images, {scheduler}, {engine}", 1, "index", images, "--catalog", catalog,
                                "--out", folder, "--scheduler", scheduler, "--engine", engine, "--quiet")
                row["picked"] = pick_scheduler(scheduler, n)
                row["images_per_s"] = n / row["median_s"]
                rows.append(row)
                shutil.rmtree(folder)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=IMAGES, help="folder with catalog.csv and the cutouts")
    parser.add_argument("--sizes", default="320,1000", help="numbers of images to index (default 320,1000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per --help and search figure (default 5)")
    parser.add_argument("--skip-index", action="store_true", help="time --help and search only")
    parser.add_argument("--schedulers", default="synchronous,threads,local,auto",
                        help="index: the --scheduler values timed (default synchronous,threads,local,auto)")
    parser.add_argument("--engines", default="onnx", help="index: the --engine values timed (e.g. onnx,onnx-int8)")
    parser.add_argument("--only-index", action="store_true", help="time index only")
    args = parser.parse_args(argv)
    if not (args.images / "catalog.csv").is_file():
        raise SystemExit(f"{args.images} holds no catalog.csv: give --images a galaxy set (see docs/DATA.md).")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [] if args.only_index else help_rows(args.repeat) + search_rows(args.images, work, args.repeat)
        if not args.skip_index:
            rows += index_rows(args.images, work, [int(s) for s in args.sizes.split(",")], args.schedulers.split(","),
                               args.engines.split(","))
    report("cli", rows, targets=TARGETS)


if __name__ == "__main__":
    main()
