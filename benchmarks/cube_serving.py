"""How fast the explorer serves a channel, and how little memory slicing a huge cube takes.

1. Serve a channel: read it from a memory-mapped FITS cube, find its colour limits, rasterize it with
   Datashader to an 800x800 plot (what the explorer does when the slider moves), for 512^2 and
   2048^2 channels. Median and p95 over repeats, cold pages dropped first where the OS allows it.
2. Slice a cube four times larger than the memory it may use: a child process is limited to
   ``--budget-gb`` of private memory (RLIMIT_DATA: heap and anonymous mappings; a read-only memory
   map of the file does not count) and opens a cube of 4x that size, reads channels, spectra, a
   beam-aperture spectrum and a 16-channel moment 0. Loading the cube would fail there with a
   MemoryError. Reports time per operation and the peak anonymous memory (VmHWM minus file pages).

Usage: python benchmarks/cube_serving.py [--budget-gb 1.0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from _report import report

from tests.conftest import cube_header  # the same CASA-like header the tests use


def write_cube(path: Path, n: int, nchan: int, seed: int = 0) -> Path:
    """Write an n x n x nchan float32 CASA-like cube channel by channel (never whole in memory)."""
    header = fits.Header([("SIMPLE", True), ("BITPIX", -32)])
    header.extend(cube_header(nx=n, ny=n, nchan=nchan), strip=False)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(header.tostring().encode("ascii"))
        for _ in range(nchan):
            f.write((0.01 * rng.standard_normal((n, n), dtype=np.float32)).astype(">f4").tobytes())
        pad = (-f.tell()) % 2880
        f.write(b"\0" * pad)
    return path


def serve_channel_times(path: Path, repeats: int = 10) -> dict:
    import holoviews as hv
    from holoviews.operation.datashader import rasterize

    from explorer.cube_view import clip_limits
    from pipeline.alma.cube import open_cube

    cube = open_cube(path)
    times = []
    for k in range(repeats + 1):  # the first call also compiles Datashader's kernels: reported apart
        t0 = time.perf_counter()
        image = cube.channel(k % cube.nchan)
        clip_limits(image, 99.5)
        element = hv.Image(image, bounds=(-0.5, -0.5, cube.nx - 0.5, cube.ny - 0.5))
        raster = rasterize(element, width=800, height=800, dynamic=False)
        raster.data  # noqa: B018 -- the attribute access forces the aggregation
        times.append(time.perf_counter() - t0)
    cube.close()
    first, warm = times[0], times[1:]
    return {"p50_ms": 1e3 * float(np.median(warm)), "p95_ms": 1e3 * float(np.percentile(warm, 95)),
            "first_ms": 1e3 * first}


CHILD = r"""
import json, resource, sys, time
budget = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_DATA, (budget, budget))
sys.path.insert(0, sys.argv[3])
from pipeline.alma.cube import open_cube

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    kb = lambda k: int(fields[k].split()[0]) * 1024
    return kb("VmHWM"), kb("RssFile"), kb("RssAnon")

out = {}
def timed(name, fn):
    t0 = time.perf_counter(); fn(); out[name + "_s"] = time.perf_counter() - t0

t0 = time.perf_counter(); cube = open_cube(sys.argv[1]); out["open_s"] = time.perf_counter() - t0
timed("channel_x8", lambda: [cube.channel(k) for k in range(0, cube.nchan, max(1, cube.nchan // 8))])
timed("spectrum_x8", lambda: [cube.spectrum(100 * i, 50 * i) for i in range(8)])
timed("beam_spectrum", lambda: cube.spectrum(1000, 1000, 3.0))
timed("moment0_16ch", lambda: cube.moment0(0, 15))
try:
    cube.data.astype("float32")  # what a loader that reads everything would do
    out["full_load"] = "succeeded (budget not enforced)"
except MemoryError:
    out["full_load"] = "MemoryError (budget enforced)"
hwm, rss_file, rss_anon = status()
out.update(peak_total_bytes=hwm, file_pages_bytes=rss_file, anon_bytes=rss_anon, lazy=cube.lazy)
print(json.dumps(out))
"""


def big_cube_slicing(budget_gb: float, folder: Path) -> dict:
    budget = int(budget_gb * 2**30)
    n = 2048
    nchan = int(np.ceil(4 * budget / (n * n * 4)))
    path = folder / "big_cube.fits"
    t0 = time.perf_counter()
    write_cube(path, n, nchan)
    write_s = time.perf_counter() - t0
    root = str(Path(__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, "-c", CHILD, str(path), str(budget), root],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    child = json.loads(result.stdout.strip().splitlines()[-1])
    return {"cube_gb": path.stat().st_size / 2**30, "shape": f"{n}x{n}x{nchan}", "write_s": write_s, **child}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-gb", type=float, default=1.0, help="memory the slicing may use (default 1)")
    parser.add_argument("--keep", help="folder for the test cubes (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        folder = Path(tmp)
        rows = []
        for n in (512, 2048):
            path = write_cube(folder / f"cube_{n}.fits", n, 16)
            rows.append({"channel": f"{n}x{n}", "plot": "800x800", **serve_channel_times(path)})
            path.unlink()
        report("cube_serving", rows, targets={"2048x2048 p50_ms": "< 500 (interactive)"})

        big = big_cube_slicing(args.budget_gb, folder)
        budget = int(args.budget_gb * 2**30)
        rows = [{"cube": big["shape"], "cube_gb": big["cube_gb"], "budget_gb": args.budget_gb,
                 "peak_anon_gb_approx": (big["peak_total_bytes"] - big["file_pages_bytes"]) / 2**30,
                 "peak_total_gb": big["peak_total_bytes"] / 2**30,
                 "open_s": big["open_s"], "channel_x8_s": big["channel_x8_s"], "spectrum_x8_s": big["spectrum_x8_s"],
                 "beam_spectrum_s": big["beam_spectrum_s"], "moment0_16ch_s": big["moment0_16ch_s"],
                 "full_load": big["full_load"]}]
        report("cube_big_slicing", rows, targets={"peak_anon_gb_approx": f"< budget ({args.budget_gb} GB)",
                                                  "cube_gb": f"4 x budget ({4 * budget / 2**30:.1f} GB)"})


if __name__ == "__main__":
    main()
