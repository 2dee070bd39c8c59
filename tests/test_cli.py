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
