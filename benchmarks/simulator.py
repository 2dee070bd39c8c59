"""Seconds to simulate an ALMA-like dirty cube (pipeline.alma.simulate), by stage and size.

The paper's setup: alma.cycle9.3, 2400 s in 10 s integrations (216,720 visibilities), Briggs 0.5,
0.1"/px, 10 MHz channels at 230 GHz. For each size the stages are timed separately, several
times; the table shows the median and the best. Target: a 256 x 256 x 128 dirty cube (uv tracks,
per-channel weighting and gridding, convolution with the per-channel PSF, noise) in < 2 s.
simulate_cube adds the beam fits, the sky-model cube and the truth; cube_in_set is its cost when
the instrument response is shared, as simulate_set does; write_fits is one CASA-layout file.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import report

from pipeline.alma import interferometer, simulate

SIZES = [(128, 64), (256, 128), (512, 128)]
REPEATS = 5
TARGET_S = 2.0
OBSERVATION = simulate.Observation()  # the default observation


def dirty_cube_stages(size, channels, seed, obs=OBSERVATION):
    """Run the dirty-cube path once; return the seconds spent in each stage."""
    t0 = time.perf_counter()
    uv_m = obs.uv_m()
    uv_m = uv_m[: len(uv_m) // 2]
    t1 = time.perf_counter()
    frequency_hz = obs.frequency_hz(channels)
    sampling = interferometer.uv_sampling(uv_m, frequency_hz, size, obs.cell_arcsec,
                                          obs.weighting, obs.robust)
    t2 = time.perf_counter()
    rng = np.random.default_rng(seed)
    sources = simulate.draw_sources(rng, size, channels, (0.7, 0.6, 85.0), obs.cell_arcsec,
                                    obs.noise_jy_per_beam)
    images = simulate.gaussian_images(sources, size)
    spectra = simulate.source_spectra(sources, frequency_hz)
    simulate.dirty_cube(images, spectra, sampling, obs.noise_jy_per_beam, rng)
    t3 = time.perf_counter()
    return {"uv_tracks": t1 - t0, "weight_grid": t2 - t1, "convolve_noise": t3 - t2,
            "dirty_cube": t3 - t0}


def main():
    rows = []
    n_vis = len(simulate.Observation().uv_m()) // 2
    for size, channels in SIZES:
        dirty_cube_stages(size, channels, 0)  # warm-up (imports, FFT plans)
        stages = [dirty_cube_stages(size, channels, seed) for seed in range(REPEATS)]
        full, in_set, write = [], [], []
        response = simulate.instrument_response(simulate.Observation(), size, channels)
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(REPEATS):
                t0 = time.perf_counter()
                cube = simulate.simulate_cube(seed, size, channels)
                t1 = time.perf_counter()
                simulate.write_cube(Path(tmp) / "cube.fits", cube.dirty_cube, cube.frequency_hz,
                                    cube.observation, cube.beams)
                t2 = time.perf_counter()
                simulate.simulate_cube(seed, size, channels, response=response)
                t3 = time.perf_counter()
                full.append(t1 - t0)
                write.append(t2 - t1)
                in_set.append(t3 - t2)
        row = {"size": f"{size}x{size}x{channels}", "visibilities": n_vis}
        for stage in ("uv_tracks", "weight_grid", "convolve_noise", "dirty_cube"):
            row[f"{stage}_s"] = statistics.median(s[stage] for s in stages)
        row["dirty_cube_best_s"] = min(s["dirty_cube"] for s in stages)
        row["simulate_cube_s"] = statistics.median(full)
        row["cube_in_set_s"] = statistics.median(in_set)
        row["write_fits_s"] = statistics.median(write)
        row["repeats"] = REPEATS
        rows.append(row)
    targets = {"dirty_cube_s (256x256x128, median)": TARGET_S}
    report("simulator", rows, targets)
    main_row = next(r for r in rows if r["size"] == "256x256x128")
    verdict = "meets" if main_row["dirty_cube_s"] < TARGET_S else "MISSES"
    print(f"256x256x128 dirty cube: {main_row['dirty_cube_s']:.2f} s median "
          f"({verdict} the {TARGET_S} s target)")


if __name__ == "__main__":
    main()
