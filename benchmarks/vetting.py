"""Vetting at scale: a cube with 20,000 candidates (issue 14's target: the queue and the box overlay
stay usable, the current channel's overlay drawn in under 1 s, the next card in under 300 ms).

On a 2048 x 2048 x 64 noise cube (float32, 1 GB, memory-mapped; the beam of the tests' header)
with 20,000 random candidates (7 x 7 pixel boxes, 5 channels, SNR 4-50):

- storing them as candidates (matched against what is stored, in one transaction), and again (all
  matched: a second detector finding the same sources);
- reading them back, starting a reviewer's pass (ordering by score, the "unvetted" filter);
- the vetting tab's server time for a verdict then the next card (median and p95), and for the
  card alone; the queue's table page;
- the cube tab's box overlay of one channel: the catalogue set in the detection view, the boxes of
  a channel built and rendered to Bokeh (what is sent to the browser);
- find similar: embedding every candidate (the work of the worker process), the faiss index, one query.

The browser's own time for the next card (key press to the new card on screen) is
``benchmarks/browser.py``'s "vetting next card" row.

Usage: python benchmarks/vetting.py [--candidates 20000] [--size 2048] [--channels 64] [--skip-embedding]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from _report import report
from cube_serving import write_cube

TARGETS = {"overlay_of_a_channel_s": 1.0, "next_card_server_ms": 300}


def candidates_on(cube, n: int, seed: int = 0):
    from pipeline.alma.catalog import make_catalog

    rng = np.random.default_rng(seed)
    x = rng.uniform(5, cube.nx - 6, n)
    y = rng.uniform(5, cube.ny - 6, n)
    z = rng.integers(2, cube.nchan - 3, n).astype(float)
    snr = rng.uniform(4, 50, n)
    rows = {"x": x, "y": y, "z": z, "x0": x.astype(int) - 3, "y0": y.astype(int) - 3, "x1": x.astype(int) + 4,
            "y1": y.astype(int) + 4, "z0": z.astype(int) - 2, "z1": z.astype(int) + 3,
            "fwhm_x": np.full(n, 1.0), "fwhm_y": np.full(n, 0.8), "pa": np.full(n, 10.0), "flux": snr / 10,
            "snr": snr, "score": rng.uniform(0, 1, n)}
    return make_catalog(rows, cube, "pipeline")


def timed(work, repeats=1):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return result, times


def row(what, times, unit="ms", note=""):
    scale = 1000 if unit == "ms" else 1
    med = statistics.median(times) * scale
    p95 = sorted(times)[max(0, int(round(0.95 * len(times))) - 1)] * scale
    digits = 3 if unit == "s" else 1
    return {"measure": what, "median": round(med, digits), "p95": round(p95, digits), "unit": unit, "runs": len(times),
            "note": note}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--skip-embedding", action="store_true", help="skip find similar's embedding (minutes)")
    args = parser.parse_args(argv)

    import holoviews as hv

    from explorer.cube_view import CubeViewer
    from explorer.detection_view import DetectionViewer
    from explorer.vetting_view import VettingViewer
    from pipeline.alma.cube import open_cube
    from pipeline.vetting.candidates import add_candidates, cube_collection, stored_candidates
    from pipeline.vetting.queue import Review
    from pipeline.vetting.similar import SimilarCandidates, embed_candidates
    from pipeline.vetting.store import VettingStore

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = write_cube(tmp / "big.fits", args.size, args.channels)
        cube = open_cube(path)
        catalog = candidates_on(cube, args.candidates)
        store = VettingStore(tmp / "vetting.sqlite")
        n = args.candidates
        _, t = timed(lambda: add_candidates(store, cube, catalog))
        rows.append(row(f"store {n} new candidates", t, "s"))
        _, t = timed(lambda: add_candidates(store, cube, catalog, "photutils"))
        rows.append(row("store them again (all matched)", t, "s"))
        table, t = timed(lambda: stored_candidates(store, cube), 3)
        rows.append(row("read the stored candidates", t, "s"))
        review, t = timed(lambda: Review(store, cube_collection(cube), table, "bench"), 3)
        rows.append(row("start a reviewer's pass (ordered by score)", t, "s"))
        _, t = timed(lambda: review.arrange(only="unvetted"), 3)
        rows.append(row("filter: only unvetted", t, "s"))

        detection = DetectionViewer(CubeViewer(cube))
        viewer = VettingViewer(detection.cube_viewer, detection, store=store, reviewer="bench")
        viewer.show_card()
        _, t = timed(lambda: viewer.act("next"), 30)
        rows.append(row("next card (server)", t, note="card: cutouts, spectra, Deep GRU, neighbours"))
        _, t = timed(lambda: viewer.act("real"), 30)
        rows.append(row("verdict then next card (server)", t))
        _, t = timed(viewer._show_queue, 5)
        rows.append(row("queue table rebuilt (filter or order changed)", t))

        # the cube tab: the catalogue in the detection view, one channel's boxes built and rendered
        _, t = timed(lambda: detection.set_catalog(catalog))
        rows.append(row(f"detection view shows a {n}-source catalogue", t, "s"))
        renderer = hv.renderer("bokeh")

        def overlay(channel):
            element = detection.boxes(channel, False, detection.version, detection.selected, "channel")
            return renderer.get_plot(element)

        times = []
        for channel in range(5, 15):
            _, t = timed(lambda c=channel: overlay(c))
            times += t
        per_channel = int(np.median([((catalog["z0"] <= c) & (catalog["z1"] > c)).sum() for c in range(5, 15)]))
        rows.append(row("box overlay of one channel, built and rendered", times, "s",
                        note=f"about {per_channel} boxes in a channel"))

        if not args.skip_embedding:
            embeddings, t = timed(lambda: embed_candidates(cube, table))
            rows.append(row(f"find similar: embed {n} candidates", t, "s", note="once per queue, in a worker"))
            similar, t = timed(lambda: SimilarCandidates(embeddings, table["source"]))
            rows.append(row("find similar: faiss index", t))
            _, t = timed(lambda: similar.like(str(table["source"][0]), 12), 20)
            rows.append(row("find similar: 12 most alike", t))
        viewer.close()
        cube.close()
    report("vetting", rows, targets=TARGETS)


if __name__ == "__main__":
    main()
