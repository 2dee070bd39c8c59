"""The command line, run as a user runs it: ``python -m pipeline ...`` in a subprocess."""

import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_help_lists_subcommands():
    result = run("--help")
    assert result.returncode == 0
    assert "cube-info" in result.stdout and "simulate" in result.stdout


@pytest.mark.parametrize("command", ["cube-info", "simulate"])
def test_subcommand_help(command):
    result = run(command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout


def test_cube_info_text(make_cube):
    result = run("cube-info", make_cube())
    assert result.returncode == 0, result.stderr
    assert "24 x 20 pixels x 12 channels" in result.stdout
    assert "230.500000 - 230.610000 GHz, channel 10 MHz" in result.stdout
    assert "median of per-channel beams" in result.stdout


def test_cube_info_json(make_cube):
    result = run("cube-info", make_cube(layout="3d", spectral="VRAD"), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["shape"] == {"nx": 24, "ny": 20, "nchan": 12}
    assert info["spectral_axis"] == "VRAD"
    assert info["beam"]["major_arcsec"] == pytest.approx(0.5)
    assert info["beam"]["per_channel"] is False
    assert info["pixel_scale_arcsec"] == pytest.approx([0.1, 0.1])
    assert info["nan_fraction"] == 0.0


def test_cube_info_rest_frequency_override(make_cube):
    path = make_cube()
    a = json.loads(run("cube-info", path, "--json").stdout)
    b = json.loads(run("cube-info", path, "--json", "--rest-frequency", "230.6e9").stdout)
    assert b["rest_frequency_hz"] == 230.6e9
    assert b["frequency_hz"] == a["frequency_hz"]
    assert b["velocity_kms"][0] > a["velocity_kms"][0]


def _one_line_error(result):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_input_is_one_line_exit_2(tmp_path):
    junk = tmp_path / "junk.fits"
    junk.write_text("hello")
    assert "not a FITS file" in _one_line_error(run("cube-info", junk))
    assert "no such file" in _one_line_error(run("cube-info", tmp_path / "nope.fits"))


def test_usage_errors_are_one_line_exit_2():
    assert "required" in _one_line_error(run("cube-info"))
    assert "invalid choice" in _one_line_error(run("frobnicate"))
    assert "--n" in _one_line_error(run("simulate", "--out", "x"))


def test_simulate_writes_cubes_the_reader_opens(tmp_path):
    out = tmp_path / "sims"
    result = run("simulate", "--n", 2, "--out", out, "--seed", 3, "--size", 64, "--channels", 16, "--quiet")
    assert result.returncode == 0, result.stderr
    cubes = sorted(p.name for p in out.glob("sim_*.fits") if not p.name.endswith("_sky.fits"))
    assert cubes == ["sim_3_0000.fits", "sim_3_0001.fits"]
    truth = (out / "truth.csv").read_text().splitlines()
    assert truth[0] == "cube,source,x,y,fwhm_x,fwhm_y,pa,z,fwhm_z,peak_jy_per_pix,snr_peak"
    assert {line.split(",")[0] for line in truth[1:]} == set(cubes)
    info = json.loads(run("cube-info", out / cubes[0], "--json").stdout)
    assert info["shape"] == {"nx": 64, "ny": 64, "nchan": 16}
    assert info["beam"]["per_channel"] is True
    assert info["unit"] == "Jy/beam"


def test_simulate_bad_configuration_is_one_line(tmp_path):
    line = _one_line_error(run("simulate", "--n", 1, "--out", tmp_path, "--config", "alma.cycle99"))
    assert "alma.cycle9.3" in line  # the message lists what is available


def test_detect_with_primary_beam_and_psf(sim_with_companions, tmp_path):
    paths = sim_with_companions
    out = tmp_path / "cat.vot"
    result = run("detect", paths["cube"], "--pb", paths["pb"], "--psf", paths["psf"], "-o", out,
                 "--detector", "photutils", "--quiet")
    assert result.returncode == 0, result.stderr
    from pipeline.alma.catalog import read_catalog

    catalog = read_catalog(out)
    assert len(catalog) >= 1 and catalog.meta["pb_corrected"]
    assert ((catalog["pb"] > 0.5) & (catalog["pb"] <= 1)).all()  # ALMA's 25" beam over a 14" image
    result = run("detect", paths["cube"], "-o", tmp_path / "plain.csv", "--detector", "photutils")
    assert result.returncode == 0 and "fluxes uncorrected for the primary beam" in result.stdout
    assert "a fitted ratio up to 0.2 (no PSF cube)" in result.stdout and "dropped" in result.stdout
    result = run("detect", paths["cube"], "-o", tmp_path / "kept.csv", "--detector", "photutils",
                 "--psf", paths["psf"], "--keep-sidelobes")
    assert result.returncode == 0 and "tested with the PSF cube; probable sidelobes kept" in result.stdout
    header = next(line for line in (tmp_path / "kept.csv").read_text().splitlines() if not line.startswith("#"))
    assert "sidelobe_p" in header
