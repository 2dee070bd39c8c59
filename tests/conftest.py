"""Fixtures shared by every test: tiny cubes with a full WCS, written the way CASA and Miriad do;
a tiny galaxy set and its feature store; the command line run in this process."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import threading
from typing import NamedTuple

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from PIL import Image

# One OpenMP thread in every process of the suite (the xdist workers, the served apps): on two
# cores shared by two workers, a second thread makes OpenMP's barriers dominate (10-30x slower).
# Set before torch is imported, and inherited by the processes the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REST_HZ = 230.538e9  # CO(2-1)


def cube_header(nx=24, ny=20, nchan=12, spectral="FREQ", stokes=True, beam_keywords=False):
    """A CASA-like header: RA---SIN/DEC--SIN at 0.1"/px, a FREQ (Hz) or VRAD (m/s) axis, Stokes last."""
    h = fits.Header()
    naxis = 4 if stokes else 3
    h["NAXIS"] = naxis
    for i, n in enumerate((nx, ny, nchan, 1)[:naxis], start=1):
        h[f"NAXIS{i}"] = n
    h["BUNIT"] = "Jy/beam"
    h["CTYPE1"], h["CRVAL1"], h["CDELT1"], h["CRPIX1"], h["CUNIT1"] = "RA---SIN", 150.0, -0.1 / 3600, nx / 2 + 1, "deg"
    h["CTYPE2"], h["CRVAL2"], h["CDELT2"], h["CRPIX2"], h["CUNIT2"] = "DEC--SIN", -30.0, 0.1 / 3600, ny / 2 + 1, "deg"
    if spectral == "FREQ":
        h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CRPIX3"], h["CUNIT3"] = "FREQ", 230.5e9, 10e6, 1.0, "Hz"
    else:
        h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CRPIX3"], h["CUNIT3"] = spectral, 1.0e5, 1.3e4, 1.0, "m/s"
    if stokes:
        h["CTYPE4"], h["CRVAL4"], h["CDELT4"], h["CRPIX4"] = "STOKES", 1.0, 1.0, 1.0
    h["RESTFRQ"] = REST_HZ
    h["SPECSYS"] = "LSRK"
    h["RADESYS"] = "ICRS"
    h["OBJECT"] = "test source"
    h["TELESCOP"] = "ALMA"
    if beam_keywords:
        h["BMAJ"], h["BMIN"], h["BPA"] = 0.5 / 3600, 0.4 / 3600, 30.0
    return h


def cube_data(nx=24, ny=20, nchan=12, seed=1):
    """Noise plus one Gaussian line source at (x, y, z) = (10, 8, 6); shape (nchan, ny, nx)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:nchan, 0:ny, 0:nx]
    source = np.exp(-((x - 10) ** 2 + (y - 8) ** 2) / (2 * 2.0**2) - (z - 6) ** 2 / (2 * 1.5**2))
    return (0.01 * rng.standard_normal((nchan, ny, nx)) + source).astype(np.float32)


def write_overpromising_cube(path):
    """A small cube whose header claims 100000 x 100000 x 100000 pixels (4 PB): for the reader's
    refusal of headers that promise more data than the file holds."""
    header = cube_header(stokes=False, beam_keywords=True)
    fits.PrimaryHDU(cube_data(), header).writeto(path)
    raw = path.read_bytes()
    for axis in (1, 2, 3):
        raw = raw.replace(f"NAXIS{axis}  = {header[f'NAXIS{axis}']:>20d}".encode(),
                          f"NAXIS{axis}  = {100000:>20d}".encode())
    path.write_bytes(raw)
    return path


@pytest.fixture
def make_cube(tmp_path):
    """Write a tiny cube and return its path.

    Options: ``layout`` "casa" (4-D, BEAMS table, NaN edge) or "3d" (BMAJ keywords);
    ``spectral`` FREQ, VRAD or VOPT; ``gz`` to gzip it; plus the sizes.
    """

    def make(name="cube.fits", layout="casa", spectral="FREQ", gz=False, nx=24, ny=20, nchan=12, data=None):
        casa = layout == "casa"
        header = cube_header(nx, ny, nchan, spectral, stokes=casa, beam_keywords=not casa)
        values = cube_data(nx, ny, nchan) if data is None else np.asarray(data, np.float32)
        if casa:
            values = values.copy()
            values[:, :, :2] = np.nan  # CASA blanks outside the primary-beam mask
            values = values[np.newaxis]
        hdus = [fits.PrimaryHDU(values, header)]
        if casa:
            header["CASAMBM"] = True
            chans = np.arange(nchan)
            cols = [fits.Column("BMAJ", "1E", "arcsec", array=0.5 + 0.01 * chans),
                    fits.Column("BMIN", "1E", "arcsec", array=np.full(nchan, 0.4)),
                    fits.Column("BPA", "1E", "deg", array=np.full(nchan, 30.0)),
                    fits.Column("CHAN", "1J", array=chans),
                    fits.Column("POL", "1J", array=np.zeros(nchan, int))]
            table = fits.BinTableHDU.from_columns(cols, name="BEAMS")
            table.header["NCHAN"], table.header["NPOL"] = nchan, 1
            hdus.append(table)
        path = tmp_path / name
        fits.HDUList(hdus).writeto(path, overwrite=True)
        if gz:
            gz_path = path.with_name(path.name + ".gz")
            with open(path, "rb") as src, gzip.open(gz_path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            path.unlink()
            return gz_path
        return path

    return make


def primary_beam(frequency_hz, size, cell_arcsec, dish_m=12.0, fwhm_scale=1.0):
    """An ALMA antenna's primary beam on the simulator's grid, (channels, size, size) float32: a
    Gaussian of FWHM 1.13 lambda / D (25" at 230 GHz for the 12 m dishes; ``fwhm_scale`` narrows
    it) centred where the simulator puts the pointing, pixel (size // 2, size // 2)."""
    from pipeline.alma.interferometer import ARCSEC_RAD, SPEED_OF_LIGHT_M_S

    wavelength_m = SPEED_OF_LIGHT_M_S / np.asarray(frequency_hz, float)
    fwhm_px = fwhm_scale * 1.13 * wavelength_m / dish_m / ARCSEC_RAD / cell_arcsec
    yy, xx = np.mgrid[0:size, 0:size] - size // 2
    r2 = (xx**2 + yy**2)[None]
    return np.exp(-4 * np.log(2) * r2 / fwhm_px[:, None, None] ** 2).astype(np.float32)


def write_simulated_with_companions(folder, name="sim.image.fits", size=96, channels=32, seed=11, pb_fwhm_scale=1.0):
    """A small simulated ALMA cube in ``folder`` as tclean's products exported to FITS: the dirty
    cube ``name``, its primary beam (``.pb.fits``, :func:`primary_beam`) and its PSF (``.psf.fits``,
    the simulator's own dirty beams), and ``truth.csv``. Returns {"cube", "pb", "psf": path, "sim": SimulatedCube}."""
    from pipeline.alma import interferometer
    from pipeline.alma.simulate import (
        Observation,
        instrument_response,
        simulate_cube,
        write_cube,
        write_truth,
    )

    obs = Observation(cell_arcsec=0.15, observation_s=1200, integration_s=60)
    response = instrument_response(obs, size, channels)
    sim = simulate_cube(seed, size=size, channels=channels, observation=obs, name=name, response=response)
    base = name.removesuffix(".fits").removesuffix(".image")
    paths = {"cube": write_cube(folder / name, sim.dirty_cube, sim.frequency_hz, obs, sim.beams),
             "pb": write_cube(folder / f"{base}.pb.fits", primary_beam(sim.frequency_hz, size, obs.cell_arcsec,
                                                                        fwhm_scale=pb_fwhm_scale),
                              sim.frequency_hz, obs, bunit=""),
             "psf": write_cube(folder / f"{base}.psf.fits", interferometer.psf_from_sampling(response.sampling, size),
                               sim.frequency_hz, obs, bunit="")}
    write_truth(folder / "truth.csv", sim.truth)
    return {**paths, "sim": sim}


@pytest.fixture
def sim_with_companions(tmp_path):
    """:func:`write_simulated_with_companions` in the test's own folder."""
    return write_simulated_with_companions(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Tests never read or write the user's cache (pipeline.cache) or vetting database
    (pipeline.vetting.store): one fresh folder per run."""
    path = tmp_path_factory.mktemp("cache")
    names = {"ALMA_ULISSE_CACHE": str(path), "ALMA_ULISSE_VETTING_DB": str(path / "vetting.sqlite")}
    old = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    yield path
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# ---- the command line -----------------------------------------------------------------------------
class CliResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args) -> CliResult:
    """``python -m pipeline ARGS`` run in this process (``pipeline.cli.main``), its output captured.
    tests/test_cli.py runs the real ``python -m pipeline`` once, in a subprocess."""
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return CliResult(code, out.getvalue(), err.getvalue())


def one_line_error(result: CliResult) -> str:
    """Check that a command was refused as every bad input is: exit code 2, one line on stderr and
    no traceback. Returns the line."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---- a tiny galaxy set ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory):
    """Nine 32-px cutouts (ids G0..G8, column kind): three families of looks (discs, rings, noise),
    three of each; a GalaxySet."""
    from pipeline.oneshot.galaxies import GalaxySet

    folder = tmp_path_factory.mktemp("set")
    (folder / "img").mkdir()
    yy, xx = np.mgrid[:32, :32] - 15.5
    r = np.hypot(xx, yy)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(9):
        kind = ["disc", "ring", "noise"][i % 3]
        if kind == "disc":
            grey = 255 * np.exp(-r**2 / (20 + 5 * i))
        elif kind == "ring":
            grey = 255 * np.exp(-(r - 9 - i / 9) ** 2 / 4)
        else:
            grey = rng.uniform(0, 255, r.shape)
        Image.fromarray(np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)).save(folder / "img" / f"{i}.png")
        rows.append((f"G{i}", f"img/{i}.png", kind))
    Table(rows=rows, names=["id", "file", "kind"]).write(folder / "catalog.csv", format="ascii.csv")
    return GalaxySet.open(folder / "catalog.csv")


@pytest.fixture(scope="session")
def tiny_index(tiny_set, tmp_path_factory):
    """The feature store folder of :func:`tiny_set` (64 px input, built in this process); read it,
    never write into it."""
    from pipeline.oneshot.store import build_store

    return build_store(tiny_set, tmp_path_factory.mktemp("tiny") / "idx", size=64, scheduler="synchronous").folder


# ---- the suite on two cores (pytest-xdist) ---------------------------------------------------
XDIST_WORKERS = 2


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config):
    """Two xdist workers by default; ``-n 0`` or ``-p no:xdist`` runs in one process (``-n`` in
    pyproject's addopts would make ``-p no:xdist`` an error, hence here)."""
    if (config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput")
            and config.option.numprocesses is None and not config.option.usepdb):
        config.option.numprocesses = XDIST_WORKERS
        if config.option.dist == "no":
            config.option.dist = "loadscope"
            config.option.loadscopereorder = False  # keep the collection's order: the longest groups come first
    return (yield)


BROWSER_GROUPS = {
    "ten sessions, lessons": ("test_sessions.py", "test_learn.py"),
    "served app": ("test_atlas.py", "test_cube_explorer.py", "test_untrusted_files.py", "test_oneshot.py",
                   "test_vetting.py", "test_learn_statistics.py"),
}


def xdist_scope(nodeid: str) -> str:
    """Tests that run on one worker, one after another: a module's (its module-scoped fixtures are
    built once; xdist's own loadscope would split a module's test classes), and the browser tests
    in two groups, one to each worker (tests/ui/conftest.py puts them first, so the other tests
    fill in around them); a worker serves the app once for its group's tests."""
    module = nodeid.split("::")[0]
    name = module.rsplit("/", 1)[-1]
    for group, files in BROWSER_GROUPS.items():
        if module.startswith("tests/ui/") and name in files:
            return f"tests/ui ({group})"
    return module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return xdist_scope(nodeid)

    return SuiteScheduling(config, log)


# ---- a SAMP hub on this machine, and a client standing in for TOPCAT ---------------------------------
@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A SAMP hub of this test's own (its lock file where ``$SAMP_HUB`` says), as TOPCAT starts one."""
    from pyvo.samp import SAMPHubServer

    lockfile = tmp_path / "samp.lock"
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{lockfile.as_uri()}")
    server = SAMPHubServer(web_profile=False, mode="multiple", lockfile=str(lockfile))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def topcat(hub):
    """A client like TOPCAT: takes tables (keeps the messages) and sends them."""
    from pyvo.samp import SAMPIntegratedClient

    client = SAMPIntegratedClient(name="topcat")
    client.connect()
    received, arrived = [], threading.Event()

    def take(private_key, sender_id, mtype, params, extra):
        received.append(params)
        arrived.set()

    client.bind_receive_notification("table.load.votable", take)
    client.received, client.arrived = received, arrived
    yield client
    client.disconnect()
