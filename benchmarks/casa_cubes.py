"""A CASA-made validation set of ALMA dirty cubes: simobserve + tclean (niter=0), for benchmarks.

Never used by the app, the tests or CI, and never for training: an independent check of the
detectors on cubes made by CASA's own simulator rather than by ``pipeline.alma.simulate``.

Each cube draws its own observation: an ALMA configuration (default: only those in
``assets/alma_configs``; keep the other cycles unseen), a track of 10 min to 2 h centred on
transit in 30 s integrations, a declination, a channel count (64-256 channels of 10 MHz around
~230 GHz) and a cell size (default: the configuration's beam, estimated as 0.574 lambda / L80,
over 4-7 pixels). Thermal noise is CASA's ``tsys-atm``; imaging is tclean, Briggs robust 0.5,
``niter=0``, standard gridder, no primary-beam mask (``pblimit`` negative).

Sources are drawn exactly as the project's simulator draws them
(``pipeline.alma.simulate.draw_sources``, ``gaussian_images``, ``source_spectra``, ``sky_model``),
their brightness set from the signal-to-noise drawn there. For that, each cube starts with a
short noise-only pass (the same observation, 3 channels) that measures CASA's noise rms and beam;
the sky model (Jy/pixel, written with ``simulate.write_cube``) is then handed to simobserve as
``skymodel``.

Written into ``--out`` (built in a temporary sibling folder, then renamed into place; a folder
that already holds a set, or anything else, is refused):

- ``casa_{seed}_{i:04d}.fits``: the dirty cube as CASA's exportfits writes it (4-D RA, Dec, FREQ,
  STOKES, Jy/beam, per-channel beams in a BEAMS table);
- ``casa_{seed}_{i:04d}.psf.fits`` and ``.pb.fits``: tclean's PSF and primary-beam cubes;
- ``truth.csv``: the columns of the simulator's truth (``simulate.TRUTH_COLUMNS``; ``cube`` = file
  name; ``snr_peak`` = dirty-cube value at the source's centre / the cube's own noise rms, the
  median over channels of 1.4826 MAD) plus ``config``, ``track_min``, ``declination_deg``,
  ``cell_arcsec``, ``frequency_ghz``, ``channels``, ``noise_jy_per_beam`` (that rms),
  ``bmaj_arcsec``, ``bmin_arcsec`` (beam at the middle channel).
  Sources are attenuated by the primary beam in the dirty cube (``peak_jy_per_pix`` is the sky
  model's), as in a real ALMA image.

CASA configuration. CASA (``pip install '.[casa]'``: casatools, casatasks, casadata, ~1.9 GB)
reads ``~/.casa/config.py`` when it is imported. This script never downloads anything: if that
file does not exist it writes::

    measurespath = '<site-packages>/casadata/__data__'
    measures_auto_update = False
    data_auto_update = False

and if it exists without those settings it stops and says what to add.

Usage::

    python benchmarks/casa_cubes.py --out DIR --n 20 --seed 0
    python benchmarks/casa_cubes.py --out DIR --n 2 --size 128 --channels 64 64 --track-min 10 30
"""

import argparse
import csv
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline, not an installed one

from pipeline.alma import simulate
from pipeline.atomic import replace_folder

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "assets" / "alma_configs"
CASA_CONFIG = Path.home() / ".casa" / "config.py"
INSTALL_HINT = ("CASA is not installed. It is an optional extra, for this benchmark only:\n"
                "    pip install '.[casa]'      (or: pip install casatools casatasks casadata)\n"
                "about 1.9 GB; see the docstring of benchmarks/casa_cubes.py for "
                "~/.casa/config.py.")
EXTRA_COLUMNS = ("config", "track_min", "declination_deg", "cell_arcsec", "frequency_ghz",
                 "channels", "noise_jy_per_beam", "bmaj_arcsec", "bmin_arcsec")
INTEGRATION_S = 30
CHANNEL_WIDTH_HZ = 10e6
PBLIMIT = -0.05  # negative: the primary-beam level where tclean stops, without masking the image


class CasaMissing(Exception):
    """CASA cannot be used: not installed, or its configuration file needs the user's hand."""


# --- CASA set-up ------------------------------------------------------------------------------

def casa_data_path() -> Path:
    """The data folder of the installed casadata package (without importing CASA)."""
    spec = importlib.util.find_spec("casadata")
    if spec is None or importlib.util.find_spec("casatasks") is None:
        raise CasaMissing(INSTALL_HINT)
    return Path(spec.origin).parent / "__data__"


def ensure_casa_config(config=CASA_CONFIG) -> None:
    """Make sure ``~/.casa/config.py`` points CASA at casadata with auto-updates off: write it
    if missing; if it exists but lacks a setting, raise ``CasaMissing`` saying what to add
    (the user's own file is never changed)."""
    data = casa_data_path()
    wanted = {"measurespath": f"measurespath = {str(data)!r}",
              "measures_auto_update": "measures_auto_update = False",
              "data_auto_update": "data_auto_update = False"}
    config = Path(config)
    if not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text("\n".join(wanted.values()) + "\n")
        print(f"wrote {config} (CASA data from {data}, no auto-updates)")
        return
    text = config.read_text()
    settings = {}
    for line in text.splitlines():
        name, eq, value = line.partition("=")
        if eq and not name.strip().startswith("#"):
            settings[name.strip()] = value.strip()
    missing = [wanted[k] for k in ("measures_auto_update", "data_auto_update")
               if settings.get(k) != "False"]
    if "measurespath" not in settings:
        missing.insert(0, wanted["measurespath"])
    if missing:
        raise CasaMissing(f"{config} exists but CASA would try to download data. Add:\n    "
                          + "\n    ".join(missing))


def import_casa(work):
    """Import the CASA tasks (after ``ensure_casa_config``), logging to ``work/casa.log``, not to
    the console nor to a casa-*.log in the current folder."""
    argv, sys.argv = sys.argv, sys.argv[:1]  # casatools parses sys.argv when imported
    cwd = os.getcwd()
    os.chdir(work)  # where casatools opens its first log file
    try:
        from casatasks import casalog, exportfits, simobserve, tclean
    except ImportError as err:
        raise CasaMissing(f"{INSTALL_HINT}\n({err})") from err
    finally:
        sys.argv = argv
        os.chdir(cwd)
    casalog.setlogfile(str(work / "casa.log"))
    casalog.showconsole(False)
    return casalog, simobserve, tclean, exportfits


@contextmanager
def console_to(log):
    """Send what CASA's C++ code prints (progress bars, the leap-second table warning) to ``log``
    instead of the terminal: file descriptors 1 and 2 are redirected while the block runs."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "ab") as target:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


# --- one observation --------------------------------------------------------------------------

def config_path(name) -> Path:
    """An antenna configuration: a .cfg path, or a name in assets/alma_configs."""
    path = Path(name)
    if path.suffix == ".cfg" and path.exists():
        return path.resolve()
    path = CONFIG_DIR / (name if name.endswith(".cfg") else f"{name}.cfg")
    if not path.exists():
        raise SystemExit(f"no antenna configuration {name!r} (see {CONFIG_DIR})")
    return path


def estimated_beam_arcsec(cfg, frequency_hz) -> float:
    """ALMA's rule of thumb for the beam FWHM: 0.574 lambda / L80 (L80: the 80th percentile of
    the baseline lengths of the configuration)."""
    xyz = np.loadtxt(cfg, comments="#", usecols=(0, 1, 2))
    baselines = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)[np.triu_indices(len(xyz), 1)]
    wavelength = simulate.interferometer.SPEED_OF_LIGHT_M_S / frequency_hz
    return float(np.degrees(0.574 * wavelength / np.percentile(baselines, 80)) * 3600.0)


def draw_observation(rng, args) -> dict:
    """Draw one cube's observation from the ranges in ``args``."""
    cfg = config_path(str(rng.choice(args.configs)))
    frequency_hz = rng.uniform(*args.frequency_ghz) * 1e9
    if args.cell:
        cell = args.cell
    else:
        cell = estimated_beam_arcsec(cfg, frequency_hz) / rng.uniform(*args.pixels_per_beam)
        cell = float(f"{cell:.3g}")
    return {"config": cfg.stem, "cfg": cfg,
            "track_min": round(float(rng.uniform(*args.track_min)), 1),
            "declination_deg": float(rng.choice(args.declinations)),
            "channels": int(rng.integers(args.channels[0], args.channels[1] + 1)),
            "frequency_ghz": round(frequency_hz / 1e9, 4), "cell_arcsec": cell}


def observation_of(obs) -> simulate.Observation:
    """The ``simulate.Observation`` that writes the sky-model header for ``obs``."""
    return simulate.Observation(config=obs["config"], cell_arcsec=obs["cell_arcsec"],
                                centre_frequency_hz=obs["frequency_ghz"] * 1e9,
                                channel_width_hz=CHANNEL_WIDTH_HZ,
                                declination_deg=obs["declination_deg"],
                                observation_s=obs["track_min"] * 60.0,
                                integration_s=INTEGRATION_S, noise_jy_per_beam=1.0)


def observe(casa, work, name, sky, obs, size, seed) -> Path:
    """simobserve the sky model cube ``sky`` (channels, size, size) Jy/pixel as ``obs`` says and
    image it with tclean (niter=0, Briggs 0.5); returns the image name (no extension)."""
    _, simobserve, tclean, _ = casa
    observation = observation_of(obs)
    channels = len(sky)
    frequency_hz = observation.frequency_hz(channels)
    sky_fits = work / f"{name}_sky.fits"
    simulate.write_cube(sky_fits, sky, frequency_hz, observation, bunit="Jy/pixel", name=name)
    cwd = os.getcwd()
    os.chdir(work)  # simobserve writes its project folder into the working directory
    try:
        # one pointing at the model's centre, however large the field (mapsize "" would cover the
        # model with a mosaic once it is wider than the primary beam, and tclean images one field)
        simobserve(project=name, skymodel=sky_fits.name, setpointings=True, mapsize=["1arcsec", "1arcsec"],
                   obsmode="int",
                   integration=f"{INTEGRATION_S}s", totaltime=f"{obs['track_min'] * 60:.0f}s",
                   hourangle="transit", antennalist=str(obs["cfg"]), thermalnoise="tsys-atm",
                   seed=int(seed), graphics="none", verbose=False, overwrite=True)
        noisy = sorted((work / name).glob("*.noisy.ms"))
        if not noisy:
            raise RuntimeError(f"simobserve wrote no noisy MS for {name} (see {work}/casa.log)")
        image = work / f"{name}_img"
        tclean(vis=str(noisy[0]), imagename=str(image), imsize=[size, size],
               cell=f"{obs['cell_arcsec']}arcsec", specmode="cube", start=0, width=1,
               nchan=channels, gridder="standard", weighting="briggs", robust=0.5, niter=0,
               pblimit=PBLIMIT, stokes="I", restfreq=f"{observation.centre_frequency_hz}Hz",
               interactive=False)
    finally:
        os.chdir(cwd)
    return image


def export(casa, image, suffix, fits_path) -> Path:
    """exportfits ``image.suffix`` to ``fits_path`` (4-D, BEAMS table for per-channel beams)."""
    casa[3](imagename=f"{image}.{suffix}", fitsimage=str(fits_path), dropdeg=False,
            velocity=False, overwrite=True)
    return fits_path


def noise_and_beam(casa, work, name, obs, size, seed):
    """Noise-only pass: the observation with an empty sky over 3 channels at the centre. Returns
    (noise rms in Jy/beam, (bmaj_arcsec, bmin_arcsec, bpa_deg) of the middle channel): they set
    the sources' brightness from the signal-to-noise drawn by ``simulate.draw_sources``."""
    sky = np.zeros((3, size, size), np.float32)
    image = observe(casa, work, f"{name}_noise", sky, obs, size, seed)
    path = export(casa, image, "image", work / f"{name}_noise.fits")
    with fits.open(path) as hdul:
        data = np.asarray(hdul[0].data, np.float64)
        beams = hdul["BEAMS"].data
        beam = (float(beams["BMAJ"][1]), float(beams["BMIN"][1]), float(beams["BPA"][1]))
    rms = float(np.sqrt(np.nanmean(data ** 2)))
    return rms, beam


def robust_rms(cube) -> float:
    """Noise rms of a dirty cube (channels, y, x): the median over channels of each channel's
    1.4826 x median absolute deviation (sources and their sidelobes barely move it)."""
    cube = np.asarray(cube, np.float64)
    centred = np.abs(cube - np.nanmedian(cube, axis=(1, 2), keepdims=True))
    return float(np.median(1.4826 * np.nanmedian(centred, axis=(1, 2))))


def make_cube(casa, work, out, name, obs, size, rng, seed, fwhm_px=None):
    """Make one cube, its PSF and primary beam in ``out``; return its truth rows (a Table).
    ``fwhm_px`` (min, max): source FWHM per axis in pixels; default the simulator's, which
    shrinks them for images smaller than the paper's 256 px."""
    noise, beam = noise_and_beam(casa, work, name, obs, size, seed + 1)
    channels = obs["channels"]
    observation = observation_of(obs)
    frequency_hz = observation.frequency_hz(channels)
    params = (simulate.SkyParameters() if fwhm_px is None
              else simulate.SkyParameters(fwhm_px=tuple(fwhm_px), scale_sizes=False))
    sources = simulate.draw_sources(rng, size, channels, beam, obs["cell_arcsec"], noise, params)
    images = simulate.gaussian_images(sources, size)
    sky = simulate.sky_model(images, simulate.source_spectra(sources, frequency_hz))
    image = observe(casa, work, name, sky, obs, size, seed)
    cube_path = export(casa, image, "image", out / f"{name}.fits")
    export(casa, image, "psf", out / f"{name}.psf.fits")
    export(casa, image, "pb", out / f"{name}.pb.fits")

    with fits.open(cube_path) as hdul:
        dirty = np.asarray(hdul[0].data)[0]  # (channels, y, x)
        mid = hdul["BEAMS"].data[channels // 2]
    zi = np.clip(np.rint(sources["z"]).astype(int), 0, channels - 1)
    yi = np.clip(np.rint(sources["y"]).astype(int), 0, size - 1)
    xi = np.clip(np.rint(sources["x"]).astype(int), 0, size - 1)
    truth = sources[list(simulate.TRUTH_COLUMNS[1:-1])]
    truth.add_column([cube_path.name] * len(sources), name="cube", index=0)
    cube_noise = robust_rms(dirty)
    truth["snr_peak"] = dirty[zi, yi, xi] / cube_noise
    extra = dict(obs, noise_jy_per_beam=cube_noise, bmaj_arcsec=float(mid["BMAJ"]),
                 bmin_arcsec=float(mid["BMIN"]))
    for column in EXTRA_COLUMNS:
        truth[column] = [extra[column]] * len(truth)
    for path in work.glob(f"{name}*"):  # measurement sets, images, sky models: GBs over a set
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return truth


def write_truth(path, tables) -> Path:
    """One truth.csv: ``simulate.TRUTH_COLUMNS`` as the simulator writes them, then
    ``EXTRA_COLUMNS``."""
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(simulate.TRUTH_COLUMNS + EXTRA_COLUMNS)
        for table in tables:
            for row in table:
                writer.writerow([row["cube"], int(row["source"])]
                                + [f"{float(row[c]):.6g}" for c in simulate.TRUTH_COLUMNS[2:]]
                                + [row[c] if isinstance(row[c], str) else f"{float(row[c]):.6g}"
                                   for c in EXTRA_COLUMNS])
    return path


# --- the set ----------------------------------------------------------------------------------

def parse_args(argv=None):
    """Command-line options."""
    default_configs = sorted(p.stem for p in CONFIG_DIR.glob("*.cfg"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="new folder for the set (refused if not empty)")
    p.add_argument("--n", type=int, default=10, help="number of cubes (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--configs", nargs="+", default=default_configs,
                   help="ALMA configurations: names in assets/alma_configs or .cfg paths "
                        "(default: all of assets/alma_configs)")
    p.add_argument("--track-min", type=float, nargs=2, default=(10.0, 120.0),
                   metavar=("MIN", "MAX"),
                   help="track length range in minutes, uniform (default 10 120)")
    p.add_argument("--declinations", type=float, nargs="+",
                   default=(-60.0, -40.0, -23.0, 0.0, 20.0),
                   help="declinations to choose from, degrees (default -60 -40 -23 0 20)")
    p.add_argument("--channels", type=int, nargs=2, default=(64, 256), metavar=("MIN", "MAX"),
                   help="channel count range (default 64 256)")
    p.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    p.add_argument("--cell", type=float, help="cell in arcsec (default: beam / pixels-per-beam)")
    p.add_argument("--pixels-per-beam", type=float, nargs=2, default=(4.0, 7.0),
                   metavar=("MIN", "MAX"), help="beam FWHM in pixels when --cell is not given "
                                                 "(default 4 7)")
    p.add_argument("--frequency-ghz", type=float, nargs=2, default=(230.0, 230.0),
                   metavar=("MIN", "MAX"), help="centre frequency range, GHz (default 230 230)")
    p.add_argument("--fwhm-px", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="source FWHM per axis in pixels, uniform (default: the simulator's 2-8 px "
                        "times size / 256, so 1-4 px, at least 2, in 128 px images)")
    args = p.parse_args(argv)
    if args.n < 1 or args.size < 16 or args.channels[0] < 3 or args.channels[0] > args.channels[1]:
        p.error("need --n >= 1, --size >= 16 and 3 <= channels MIN <= MAX")
    if args.fwhm_px and not 0 < args.fwhm_px[0] <= args.fwhm_px[1]:
        p.error("need 0 < --fwhm-px MIN <= MAX")
    for name in args.configs:
        config_path(name)
    return args


def main(argv=None) -> int:
    """Make the set; exit code 2 if CASA is missing or needs configuring, 1 if --out is taken."""
    args = parse_args(argv)
    out = Path(args.out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        print(f"{out} exists and is not an empty folder (a set is never overwritten): choose a "
              "new folder.", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="casa_cubes_work_"))
    try:
        ensure_casa_config()
        casa = import_casa(work)
    except CasaMissing as err:
        shutil.rmtree(work, ignore_errors=True)
        print(err, file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    rng = np.random.default_rng(args.seed)
    truths = []
    try:
        for i in range(args.n):
            name = f"casa_{args.seed}_{i:04d}"
            obs = draw_observation(rng, args)
            start = time.perf_counter()
            with console_to(work / "casa_console.log"):
                truths.append(make_cube(casa, work, built, name, obs, args.size, rng,
                                        seed=int(rng.integers(1, 2**31 - 2)), fwhm_px=args.fwhm_px))
            t = truths[-1]
            print(f"[{i + 1}/{args.n}] {name}.fits  {obs['config']}  {obs['track_min']} min  "
                  f"dec {obs['declination_deg']:+.0f}  {args.size}x{args.size}x{obs['channels']}  "
                  f"cell {obs['cell_arcsec']}\"  beam {t['bmaj_arcsec'][0]:.3f}\"  "
                  f"noise {1e3 * t['noise_jy_per_beam'][0]:.3g} mJy/beam  {len(t)} sources  "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
        write_truth(built / "truth.csv", truths)
        replace_folder(built, out)  # the project's one folder swap; out is empty or absent here
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        print(f"failed; CASA's log and console output kept in {work}", file=sys.stderr)
        raise
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.n} cubes and truth.csv to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
