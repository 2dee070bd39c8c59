"""Source finding scores: the deep pipeline vs DECORAS vs PyBDSF vs photutils.

On ``--n`` held-out simulated cubes (seeds far from anything training draws; the paper's setup,
256 x 256 x 128 at 0.1"/px with alma.cycle9.3, and the same number with the held-out alma.cycle11.5),
on CASA-made sets (``--casa DIR ...``: folders written by benchmarks/casa_cubes.py, whose
``.psf.fits`` and ``.pb.fits`` companions are handed to the detectors, as the simulated cubes'
PSF cubes are; ``--no-psf`` measures without them) and, when present, on the
CASA-made cubes of ../shared/data/casa_sample: both matching rules (strict one-to-one and the
paper's lenient one), precision, recall, F1 and mean IoU overall and in SNR bins, the
characterisation at truth SNR >= 10 (bias and scatter of the major and minor FWHM; scatter of the
angle of sources with axis ratio < 0.8; beside the FWHM scatter its noise floor, the rms of the
catalogue's own errors from the noise and the beam, which an unbiased measurement cannot beat on
average; the same for the sources the catalogue calls resolved, and how often the others' true
size is below the catalogue's upper limit), and seconds per cube. Detectors without trained weights
are skipped and say so.

Usage: python benchmarks/detection.py [--n 200] [--detectors pipeline,decoras,photutils,pybdsf]
                                      [--casa DIR [DIR ...]] [--no-psf]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline, not an installed one
sys.path.insert(0, str(Path(__file__).parent))
from _report import report

from pipeline.alma import detect as det
from pipeline.alma import networks
from pipeline.alma.companions import open_companion
from pipeline.alma.cube import open_cube
from pipeline.alma.evaluate import evaluate
from pipeline.alma.simulate import Observation, instrument_response, simulate_cube, write_cube, write_psf
from pipeline.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_SEED = 7_000_000
CASA_SAMPLE = ROOT.parent / "shared" / "data" / "casa_sample"


def simulated_set(folder: Path, n: int, config: str, size=256, channels=128, seed=HELD_OUT_SEED):
    """Write n held-out cubes (seeds (seed, i)), each with its PSF cube beside it as tclean
    writes one (the simulator's dirty beams; the same observation, so one file linked n times),
    and return (paths, truth)."""
    # about 5-7 px per beam minor axis in both (cycle 9.3: 0.57"; cycle 11.5: 0.23")
    obs = Observation(config=config, cell_arcsec=0.1 if config == "alma.cycle9.3" else 0.05)
    response = instrument_response(obs, size, channels)
    paths, truths = [], []
    for i in range(n):
        name = f"{config}_{i:04d}.fits"
        sim = simulate_cube((seed, i), size, channels, obs, name=name, response=response)
        paths.append(write_cube(folder / name, sim.dirty_cube, sim.frequency_hz, obs, sim.beams, name=name))
        if i == 0:
            first_psf = write_psf(folder / f"{config}_{i:04d}.psf.fits", response)
        else:
            os.link(first_psf, folder / f"{config}_{i:04d}.psf.fits")
        truths.append(sim.truth)
    return paths, vstack(truths)


def companions(path: Path, cube, use_psf: bool = True) -> dict:
    """The cube's .pb.fits / .psf.fits written beside it by casa_cubes.py, opened and checked."""
    found = {}
    for kind in ("pb", "psf") if use_psf else ("pb",):
        candidate = path.with_name(path.name.removesuffix(".fits") + f".{kind}.fits")
        if candidate.is_file():
            found[kind] = open_companion(candidate, cube, kind)
    return found


def run_detector(name, paths, options, use_psf=True):
    catalogs, seconds = [], []
    for path in paths:
        with open_cube(path) as cube:
            extra = companions(path, cube, use_psf)
            t0 = time.perf_counter()
            try:
                catalog = det.detect(cube, name, **extra, **options)
            except InputError as exc:
                print(f"  {name} on {path.name}: {exc}")
                continue
            finally:
                for companion in extra.values():
                    companion.close()
            seconds.append(time.perf_counter() - t0)
        catalog["cube"] = np.full(len(catalog), path.name, dtype="U64")
        catalogs.append(catalog)
    return (vstack(catalogs) if catalogs else Table()), float(np.median(seconds)) if seconds else float("nan")


def rows_for(dataset, detector, truth, catalog, seconds, image_size):
    out = []
    for rule in ("strict", "lenient"):
        r = evaluate(truth, catalog, rule=rule, image_size_px=image_size)
        o = r["overall"]
        # F1 per bin takes precision by the predictions' own SNR: undefined where a detector reports
        # nothing (the pipeline drops what its focused image puts below 5), so recall per true-SNR
        # bin is shown too
        bins = {**{f"F1 snr {b['label']}": b.get("f1") for b in r["snr_bins"]},
                **{f"R snr {b['label']}": b.get("recall") for b in r["snr_bins"]}}
        # bins are [low, high) and the first also takes everything below it: (0, 5, inf)[1] is SNR >= 5
        bright = evaluate(truth, catalog, rule=rule, snr_bins=(0.0, 5.0, np.inf),
                          image_size_px=image_size)["snr_bins"][1]
        bins = {"P snr>=5": bright.get("precision"), "R snr>=5": bright.get("recall"), **bins}
        res, ch = r["residuals"], r["characterisation"] or {}
        shape = {}
        for key, short in (("fwhm_major", "maj"), ("fwhm_minor", "min")):
            shape[f"bias {short} snr>=10"] = ch.get(key, {}).get("mean")
            shape[f"std {short} snr>=10"] = ch.get(key, {}).get("std")
            shape[f"floor {short}"] = ch.get(key, {}).get("noise_floor")
        shape["std pa q<0.8"] = ch.get("pa", {}).get("std")
        shape["n pa (round)"] = f"{ch.get('pa', {}).get('n', 0)} ({ch.get('pa', {}).get('n_undefined', 0)})"
        # what the catalogue calls resolved: sizes measured; the rest only bounded
        resolved, unresolved = ch.get("resolved", {}), ch.get("unresolved", {})
        shape["n resolved"] = resolved.get("n")
        for key, short in (("fwhm_major", "maj"), ("fwhm_minor", "min")):
            shape[f"bias {short} resolved"] = resolved.get(key, {}).get("mean")
            shape[f"std {short} resolved"] = resolved.get(key, {}).get("std")
        shape["std pa resolved"] = resolved.get("pa", {}).get("std")
        shape["unresolved below limit"] = unresolved.get("limit_holds")
        out.append({"dataset": dataset, "detector": detector, "rule": rule, "precision": o["precision"],
                    "recall": o["recall"], "f1": o["f1"], "mean_iou": o["mean_iou"], **bins,
                    "std_x": res["x"]["std"], **shape, "s_per_cube": seconds})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="held-out simulated cubes per configuration")
    parser.add_argument("--detectors", default="pipeline,decoras,photutils,pybdsf")
    parser.add_argument("--no-casa", action="store_true", help="skip ../shared/data/casa_sample")
    parser.add_argument("--casa", nargs="+", default=[], metavar="DIR",
                        help="CASA-made sets (folders from benchmarks/casa_cubes.py) to score as well")
    parser.add_argument("--no-psf", action="store_true", help="do not hand the sets' PSF cubes to the detectors")
    parser.add_argument("--models", default=str(networks.MODELS_DIR),
                        help="folder of trained networks (default: assets/models)")
    parser.add_argument("--configs", nargs="*", default=["alma.cycle9.3", "alma.cycle11.5"],
                        help="configurations of the held-out simulated sets (none: skip them)")
    args = parser.parse_args(argv)
    detectors = args.detectors.split(",")
    options = {}
    for name, tasks in (("pipeline", networks.PIPELINE_TASKS), ("decoras", networks.DECORAS_TASKS)):
        if name in detectors:
            try:
                networks.load_networks(args.models, tasks)  # loaded once here, then shared by every cube
                options[name] = {"models": args.models}
            except InputError as exc:
                print(f"skipping {name}: {exc}")
                detectors.remove(name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        datasets = []
        for config in args.configs:
            folder = Path(tmp) / config
            folder.mkdir()
            paths, truth = simulated_set(folder, args.n, config)
            datasets.append((f"sim {config} x{args.n}", paths, truth, 256))
        if CASA_SAMPLE.is_dir() and not args.no_casa:
            truth = Table.read(CASA_SAMPLE / "truth.csv", format="ascii.csv")
            paths = sorted(p for p in CASA_SAMPLE.glob("*.fits") if p.name in set(truth["cube"]))
            datasets.append(("casa_sample", paths, truth, 128))
        for folder in map(Path, args.casa):
            truth = Table.read(folder / "truth.csv", format="ascii.csv")
            paths = [folder / name for name in sorted(set(truth["cube"]))]
            size = fits.getval(paths[0], "NAXIS1")
            datasets.append((f"casa {folder.name} x{len(paths)}", paths, truth, size))
        for label, paths, truth, size in datasets:
            for name in detectors:
                catalog, seconds = run_detector(name, paths, options.get(name, {}), not args.no_psf)
                if len(catalog) == 0:
                    catalog = Table(names=["cube", "x", "y", "x0", "y0", "x1", "y1"])
                rows.extend(rows_for(label, name, truth, catalog, seconds, size))
                print(f"{label} {name}: done ({seconds:.2f} s/cube)")
    report("detection", rows, targets={"pipeline strict precision (CASA-made)": ">= 0.95",
                                       "pipeline strict recall, SNR >= 5 (CASA-made)": ">= 0.98",
                                       "pipeline strict F1 (CASA-made)": ">= 0.80",
                                       "pipeline s_per_cube (256x256x128, 2 cores)": "< 2",
                                       "FWHM at SNR >= 10 (both sets)": "std <= 0.5 px, |bias| <= 0.2 px",
                                       "PA at SNR >= 10, axis ratio < 0.8 (both sets)": "std <= 20 deg"})


if __name__ == "__main__":
    main()
