"""The project's simulator against CASA: the same observations made by both, measured alike.

For each case (antenna configuration, track length, declination) CASA observes an empty sky
(``simobserve``, ``tsys-atm`` noise, 30 s integrations, centred on transit; 16 channels of
10 MHz at 230 GHz) and images it twice with ``tclean`` (niter=0, standard gridder): Briggs
robust 0.5 and natural weighting, from the same noisy visibilities. ``pipeline.alma.simulate``
makes the same observation (``Observation`` with the same configuration, cell, declination,
track and integration; ``instrument_response`` + ``dirty_cube``). Images are 128 x 128 with a
cell of a fifth of the configuration's estimated beam. Measured on both, for each weighting:

- ``bmaj``, ``bmin`` (arcsec): ``interferometer.fit_beam`` on the PSF of the middle channel;
- ``far_max``: largest |PSF| more than 3 beam FWHMs (the fitted major axis) from the centre,
  within the image; ``far_max_in``: the same within the image's inscribed circle (without the
  corners, where gridding errors are largest); ``far_rms``: rms of the PSF beyond 3 FWHMs;
  ``far_corr``: correlation of the CASA and simulator PSFs there (1: the same pattern);
- ``acf_px``: FWHM of the noise autocorrelation (geometric mean of the axes fitted to it), in
  pixels, from the noise-only dirty cube; ``acf/psf``: that over the PSF's FWHM;
- ``rms/pred``: noise rms over the rms predicted by the simulator's weights for the visibility
  noise. For CASA the visibility noise is measured (noisy minus noiseless MS, Stokes I); the
  prediction is ``sigma sqrt(2 sum w^2) / sum w`` (``simulate.dirty_cube``'s formula) with the
  simulator's weights, so 1 means CASA weights and normalises as the simulator does;
- ``sum4``: rms of a sum of 4 adjacent channels over 2 x the one-channel rms (1: channels
  independent);
- ``br/nat``: on the Briggs rows, Briggs noise rms over natural noise rms (same visibilities);
- ``flagged``: fraction of CASA's visibilities flagged (shadowing); ``ha_offset_s``: how much
  later in hour angle CASA's "transit" track runs than the simulator's, fitted to its uvw.

Each case and weighting gives three rows: ``casa``, ``sim`` and ``sim/casa`` (the ratio, for
the quantities where a ratio means something).

CASA runs in a temporary folder (its logs stay there); ``--keep DIR`` keeps its exported
images and visibility statistics in DIR and reuses them on the next run, so the simulator can be
re-measured without CASA. Needs CASA (``pip install '.[casa]'``; see benchmarks/casa_cubes.py
for ``~/.casa/config.py``).

Usage: python benchmarks/simulator_vs_casa.py [--keep DIR] [--cases 0 2 ...]
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.fft
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import casa_cubes
from _report import report

from pipeline.alma import interferometer, simulate

SIZE = 128
CHANNELS = 16
FREQUENCY_GHZ = 230.0
PIXELS_PER_BEAM = 5.0
FAR_BEAMS = 3.0
SUM_CHANNELS = 4
SEED = 11
# (configuration, track in minutes, declination in degrees)
CASES = [("alma.cycle9.3", 10.0, -30.0), ("alma.cycle9.3", 60.0, -30.0),
         ("alma.cycle11.5", 10.0, -30.0), ("alma.cycle11.5", 60.0, -30.0),
         ("alma.cycle9.3", 10.0, 20.0), ("alma.cycle9.3", 60.0, 20.0)]
WEIGHTINGS = ("briggs", "natural")


def case_observation(config, track_min, declination_deg) -> dict:
    """The observation dict of ``casa_cubes`` (cell: the estimated beam / PIXELS_PER_BEAM)."""
    cfg = casa_cubes.config_path(config)
    beam = casa_cubes.estimated_beam_arcsec(cfg, FREQUENCY_GHZ * 1e9)
    return {"config": config, "cfg": cfg, "track_min": track_min,
            "declination_deg": declination_deg, "channels": CHANNELS,
            "frequency_ghz": FREQUENCY_GHZ, "cell_arcsec": float(f"{beam / PIXELS_PER_BEAM:.3g}")}


def case_name(obs) -> str:
    return (f"{obs['config'].removeprefix('alma.')}_{obs['track_min']:.0f}min_"
            f"dec{obs['declination_deg']:+.0f}")


# --- CASA -------------------------------------------------------------------------------------

def visibility_stats(obs, noisy_ms, clean_ms) -> dict:
    """From CASA's measurement sets: the Stokes I visibility noise (rms of the real and
    imaginary parts of (XX + YY) / 2, noisy minus noiseless), the fraction of flagged
    visibilities, whether the weights are all equal (natural weighting is then unit weights,
    as in the simulator) and ``ha_offset_s``, how much later in hour angle CASA's track runs
    than the simulator's (least-squares time shift between CASA's uvw and ``uv_tracks``)."""
    import casatools

    table = casatools.table()
    table.open(str(noisy_ms))
    noisy, flags, weights = table.getcol("DATA"), table.getcol("FLAG"), table.getcol("WEIGHT")
    uvw, times = table.getcol("UVW"), table.getcol("TIME")
    antennas = table.getcol("ANTENNA1"), table.getcol("ANTENNA2")
    table.close()
    table.open(str(clean_ms))
    clean = table.getcol("DATA")
    table.close()
    noise = (noisy - clean)[[0, -1]].mean(axis=0)  # (channels, rows)
    keep = ~flags[[0, -1]].any(axis=(0, 1))
    sigma = np.sqrt(0.5 * np.mean(np.abs(noise[:, keep]) ** 2))
    return {"sigma_stokes_i": float(sigma), "flagged": float(1.0 - keep.mean()),
            "equal_weights": bool(np.ptp(weights) == 0.0),
            "ha_offset_s": hour_angle_offset_s(obs, uvw, times, antennas)}


def hour_angle_offset_s(obs, uvw, times, antennas) -> float:
    """Time shift (s) that best maps the simulator's tracks (centred on transit) onto CASA's
    uvw (CASA's uvw are the simulator's (u, v) with the opposite sign)."""
    half_h = obs["track_min"] / 120.0
    n_antennas = interferometer.load_configuration(obs["config"]).n_antennas

    def tracks(shift_s):
        uv = interferometer.uv_tracks(obs["config"], obs["declination_deg"],
                                      -half_h + shift_s / 3600, half_h + shift_s / 3600,
                                      casa_cubes.INTEGRATION_S, shadowing=False)
        return uv[: len(uv) // 2].reshape(n_antennas * (n_antennas - 1) // 2, -1, 2)

    i, j = np.triu_indices(n_antennas, k=1)
    baseline = {(a, b): k for k, (a, b) in enumerate(zip(i, j, strict=True))}
    rows = np.array([baseline[a, b] for a, b in zip(*antennas, strict=True)])
    step = np.searchsorted(np.unique(times), times)
    casa = -uvw[:2].T
    ours, later = tracks(0.0)[rows, step], tracks(1.0)[rows, step]
    gradient = later - ours
    return float(np.sum((casa - ours) * gradient) / np.sum(gradient * gradient))


def casa_products(casa, work, obs) -> dict:
    """simobserve + tclean (Briggs via ``casa_cubes.observe``, then natural on the same MS);
    returns the noise cubes and PSFs (channels, y, x) and the visibility statistics."""
    _, _, tclean, _ = casa
    name = case_name(obs).replace(".", "_")
    sky = np.zeros((CHANNELS, SIZE, SIZE), np.float32)
    with casa_cubes.console_to(work / "casa_console.log"):
        images = {"briggs": casa_cubes.observe(casa, work, name, sky, obs, SIZE, SEED)}
        noisy = sorted((work / name).glob("*.noisy.ms"))[0]
        clean = noisy.with_name(noisy.name.replace(".noisy.ms", ".ms"))
        images["natural"] = work / f"{name}_natural"
        tclean(vis=str(noisy), imagename=str(images["natural"]), imsize=[SIZE, SIZE],
               cell=f"{obs['cell_arcsec']}arcsec", specmode="cube", start=0, width=1,
               nchan=CHANNELS, gridder="standard", weighting="natural", niter=0,
               pblimit=casa_cubes.PBLIMIT, stokes="I",
               restfreq=f"{FREQUENCY_GHZ * 1e9}Hz", interactive=False)
        products = {"vis": visibility_stats(obs, noisy, clean)}
        for weighting, image in images.items():
            for kind in ("image", "psf"):
                path = casa_cubes.export(casa, image, kind,
                                         work / f"{name}_{weighting}.{kind}.fits")
                products[weighting, kind] = np.asarray(fits.getdata(path), np.float64)[0]
    for path in work.glob(f"{name}*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return products


def save_products(folder, obs, products):
    folder.mkdir(parents=True, exist_ok=True)
    stem = case_name(obs)
    np.savez_compressed(folder / f"{stem}.npz",
                        **{f"{w}_{k}": products[w, k] for w in WEIGHTINGS
                           for k in ("image", "psf")})
    (folder / f"{stem}.json").write_text(json.dumps(products["vis"]))


def load_products(folder, obs):
    stem = case_name(obs)
    if folder is None or not (folder / f"{stem}.npz").is_file():
        return None
    with np.load(folder / f"{stem}.npz") as arrays:
        products = {(w, k): arrays[f"{w}_{k}"] for w in WEIGHTINGS for k in ("image", "psf")}
    products["vis"] = json.loads((folder / f"{stem}.json").read_text())
    return products


# --- the simulator ----------------------------------------------------------------------------

def simulator_products(obs, weighting):
    """The simulator's PSF of the middle channel, its noise cube (visibility noise 1 Jy per
    real and imaginary part) and its sampling."""
    observation = simulate.Observation(
        config=obs["config"], cell_arcsec=obs["cell_arcsec"],
        centre_frequency_hz=obs["frequency_ghz"] * 1e9,
        channel_width_hz=casa_cubes.CHANNEL_WIDTH_HZ, declination_deg=obs["declination_deg"],
        observation_s=obs["track_min"] * 60.0, integration_s=casa_cubes.INTEGRATION_S,
        weighting=weighting, robust=0.5)
    response = simulate.instrument_response(observation, SIZE, CHANNELS)
    sampling = response.sampling
    psf = interferometer.psf_from_sampling(sampling.channels(CHANNELS // 2), SIZE)[0]
    rms_per_sigma = np.sqrt(2.0 * sampling.weight2_sum) / sampling.weight_sum
    empty = np.zeros((1, SIZE, SIZE), np.float32)
    noise, _ = simulate.dirty_cube(empty, np.zeros((1, CHANNELS)), sampling,
                                   float(rms_per_sigma[CHANNELS // 2]),
                                   np.random.default_rng(SEED))
    return psf.astype(np.float64), noise.astype(np.float64), rms_per_sigma[CHANNELS // 2]


# --- measures ---------------------------------------------------------------------------------

def far_mask(bmaj_px, inscribed=False):
    """Pixels more than FAR_BEAMS beams from the centre (and, if ``inscribed``, within the
    image's inscribed circle)."""
    y, x = np.mgrid[:SIZE, :SIZE] - SIZE // 2
    radius = np.hypot(x, y)
    mask = radius > FAR_BEAMS * bmaj_px
    return mask & (radius < SIZE // 2) if inscribed else mask


def noise_autocorrelation(cube) -> np.ndarray:
    """Mean autocorrelation of the channels of ``cube`` (channels, n, n), unbiased (divided by
    the overlap at each lag), zero lag at (n // 2, n // 2), peak 1."""
    n = cube.shape[-1]
    centred = cube - cube.mean(axis=(1, 2), keepdims=True)
    power = np.abs(scipy.fft.rfft2(centred, s=(2 * n, 2 * n))) ** 2
    acf = np.fft.fftshift(scipy.fft.irfft2(power.mean(axis=0), s=(2 * n, 2 * n)))
    acf = acf[n - n // 2: n + n - n // 2, n - n // 2: n + n - n // 2]
    lag = np.arange(n) - n // 2
    acf /= np.outer(n - np.abs(lag), n - np.abs(lag))
    return acf / acf[n // 2, n // 2]


def measure(psf, noise, cell, predicted_rms) -> dict:
    """The figures of one (PSF, noise cube) pair; see the module docstring."""
    bmaj, bmin, bpa = interferometer.fit_beam(psf, cell)
    far = far_mask(bmaj / cell)
    acf_maj, acf_min, _ = interferometer.fit_beam(noise_autocorrelation(noise), cell)
    rms = noise.std()
    k = SUM_CHANNELS
    sums = noise[: len(noise) // k * k].reshape(-1, k, SIZE, SIZE).sum(axis=1)
    far_in = far_mask(bmaj / cell, inscribed=True)
    return {"bmaj": bmaj, "bmin": bmin, "bpa": bpa, "far_max": np.abs(psf[far]).max(),
            "far_max_in": np.abs(psf[far_in]).max(),
            "far_rms": np.sqrt(np.mean(psf[far] ** 2)), "acf_px": np.sqrt(acf_maj * acf_min) / cell,
            "acf/psf": np.sqrt(acf_maj * acf_min / (bmaj * bmin)), "rms": rms,
            "rms/pred": rms / predicted_rms, "sum4": sums.std() / (np.sqrt(k) * rms), "far": far}


QUANTITIES = ("bmaj", "bmin", "bpa", "far_max", "far_max_in", "far_rms", "far_corr", "acf_px",
              "acf/psf", "rms/pred", "sum4", "br/nat")
RATIOS = ("bmaj", "bmin", "far_max", "far_max_in", "far_rms", "acf_px", "acf/psf", "rms/pred",
          "sum4", "br/nat")


def compare(obs, products) -> list:
    """Rows of the table for one case: for each weighting, CASA, the simulator and their
    ratio (simulator / CASA, for the quantities where a ratio means something)."""
    cell = obs["cell_arcsec"]
    sigma = products["vis"]["sigma_stokes_i"]
    measured = {}
    for weighting in WEIGHTINGS:
        psf, noise, rms_per_sigma = simulator_products(obs, weighting)
        casa_psf = products[weighting, "psf"][CHANNELS // 2]
        casa = measure(casa_psf, products[weighting, "image"], cell, sigma * rms_per_sigma)
        sim = measure(psf, noise, cell, rms_per_sigma)
        far = casa.pop("far") & sim.pop("far")
        casa["far_corr"] = sim["far_corr"] = np.corrcoef(casa_psf[far], psf[far])[0, 1]
        measured[weighting] = {"casa": casa, "sim": sim}
    for by in ("casa", "sim"):
        measured["briggs"][by]["br/nat"] = (measured["briggs"][by]["rms"]
                                            / measured["natural"][by]["rms"])
    rows = []
    for weighting in WEIGHTINGS:
        for by in ("casa", "sim", "sim/casa"):
            row = {"case": case_name(obs), "weighting": weighting, "by": by}
            for q in QUANTITIES:
                if by == "sim/casa":
                    value = (measured[weighting]["sim"].get(q, np.nan)
                             / measured[weighting]["casa"].get(q, np.nan)) if q in RATIOS else None
                else:
                    value = measured[weighting][by].get(q)
                row[q] = None if value is None or not np.isfinite(value) else round(float(value), 4)
            row["flagged"] = round(products["vis"]["flagged"], 4)
            row["ha_offset_s"] = round(products["vis"].get("ha_offset_s", np.nan), 1)
            rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keep", type=Path, help="folder to keep (and reuse) CASA's products in")
    p.add_argument("--cases", type=int, nargs="+", help=f"case numbers (0-{len(CASES) - 1})")
    args = p.parse_args(argv)
    cases = [CASES[i] for i in args.cases] if args.cases else CASES
    start = time.perf_counter()
    casa = work = None
    rows = []
    try:
        for config, track_min, declination in cases:
            obs = case_observation(config, track_min, declination)
            products = load_products(args.keep, obs)
            t0 = time.perf_counter()
            if products is None:
                if casa is None:
                    work = Path(tempfile.mkdtemp(prefix="simulator_vs_casa_"))
                    try:
                        casa_cubes.ensure_casa_config()
                        casa = casa_cubes.import_casa(work)
                    except casa_cubes.CasaMissing as err:
                        print(err, file=sys.stderr)
                        return 2
                products = casa_products(casa, work, obs)
                if args.keep:
                    save_products(args.keep, obs, products)
            t1 = time.perf_counter()
            rows.extend(compare(obs, products))
            print(f"{case_name(obs)}: cell {obs['cell_arcsec']}\"  CASA {t1 - t0:.0f} s  "
                  f"simulator + measures {time.perf_counter() - t1:.1f} s", flush=True)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    targets = {"bmaj, bmin, far_max, far_rms, acf_px ratio": "within 10 % of CASA",
               "rms/pred, sum4": "CASA and simulator within 10 %"}
    report("simulator_vs_casa", rows, targets)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
