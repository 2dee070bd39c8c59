"""The command line, run as a user runs it: ``python -m pipeline ...``.

One test starts the real ``python -m pipeline`` in a subprocess; the others run the same
``main`` in this process (``run_cli`` in tests/conftest.py), which is several times faster.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from tests.conftest import one_line_error, run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_python_m_pipeline_searches_without_torch(tiny_index, tmp_path):
    """The real entry point, in its own process: a search of stored vectors, with statistics,
    reads no network library (torch takes seconds to import) and no scipy.stats."""
    out = tmp_path / "r.csv"
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline", "search", str(tiny_index),
                             "--prototype", "G0", "--n", "2", "--label", "kind", "--positive", "disc", "-o", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "2 galaxies ->" in result.stdout and "kind = disc: 2/2" in result.stdout
    assert list(Table.read(out, format="ascii.csv", comment="#")["kind"]) == ["disc", "disc"]
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "pipeline.cli" in imported and "faiss" in imported  # the log is what it seems
    assert not imported & {"torch", "timm", "onnxruntime", "scipy.stats"}


def test_help_lists_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "cube-info" in result.stdout and "simulate" in result.stdout


def test_cube_info_text(make_cube):
    result = run_cli("cube-info", make_cube())
    assert result.returncode == 0, result.stderr
    assert "24 x 20 pixels x 12 channels" in result.stdout
    assert "230.500000 - 230.610000 GHz, channel 10 MHz" in result.stdout
    assert "median of per-channel beams" in result.stdout


def test_cube_info_json(make_cube):
    result = run_cli("cube-info", make_cube(layout="3d", spectral="VRAD"), "--json")
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
    a = json.loads(run_cli("cube-info", path, "--json").stdout)
    b = json.loads(run_cli("cube-info", path, "--json", "--rest-frequency", "230.6e9").stdout)
    assert b["rest_frequency_hz"] == 230.6e9
    assert b["frequency_hz"] == a["frequency_hz"]
    assert b["velocity_kms"][0] > a["velocity_kms"][0]


def test_bad_input_is_one_line_exit_2(tmp_path):
    junk = tmp_path / "junk.fits"
    junk.write_text("hello")
    assert "not a FITS file" in one_line_error(run_cli("cube-info", junk))
    assert "no such file" in one_line_error(run_cli("cube-info", tmp_path / "nope.fits"))


def test_usage_errors_are_one_line_exit_2():
    assert "required" in one_line_error(run_cli("cube-info"))
    assert "invalid choice" in one_line_error(run_cli("frobnicate"))
    assert "--n" in one_line_error(run_cli("simulate", "--out", "x"))


def test_simulate_writes_cubes_the_reader_opens(tmp_path):
    out = tmp_path / "sims"
    result = run_cli("simulate", "--n", 2, "--out", out, "--seed", 3, "--size", 64, "--channels", 16, "--quiet")
    assert result.returncode == 0, result.stderr
    cubes = sorted(p.name for p in out.glob("sim_*.fits") if not p.name.endswith("_sky.fits"))
    assert cubes == ["sim_3_0000.fits", "sim_3_0001.fits"]
    truth = (out / "truth.csv").read_text().splitlines()
    assert truth[0] == "cube,source,x,y,fwhm_x,fwhm_y,pa,z,fwhm_z,peak_jy_per_pix,snr_peak"
    assert {line.split(",")[0] for line in truth[1:]} == set(cubes)
    info = json.loads(run_cli("cube-info", out / cubes[0], "--json").stdout)
    assert info["shape"] == {"nx": 64, "ny": 64, "nchan": 16}
    assert info["beam"]["per_channel"] is True
    assert info["unit"] == "Jy/beam"


def test_simulate_bad_configuration_is_one_line(tmp_path):
    line = one_line_error(run_cli("simulate", "--n", 1, "--out", tmp_path, "--config", "alma.cycle99"))
    assert "alma.cycle9.3" in line  # the message lists what is available


def test_detect_with_primary_beam_and_psf(sim_with_companions, tmp_path):
    paths = sim_with_companions
    out = tmp_path / "cat.vot"
    result = run_cli("detect", paths["cube"], "--pb", paths["pb"], "--psf", paths["psf"], "-o", out,
                     "--detector", "photutils", "--quiet")
    assert result.returncode == 0, result.stderr
    from pipeline.alma.catalog import read_catalog

    catalog = read_catalog(out)
    assert len(catalog) >= 1 and catalog.meta["pb_corrected"]
    assert ((catalog["pb"] > 0.5) & (catalog["pb"] <= 1)).all()  # ALMA's 25" beam over a 14" image
    result = run_cli("detect", paths["cube"], "-o", tmp_path / "plain.csv", "--detector", "photutils")
    assert result.returncode == 0 and "fluxes uncorrected for the primary beam" in result.stdout
    assert "a fitted ratio up to 0.2 (no PSF cube)" in result.stdout and "dropped" in result.stdout
    result = run_cli("detect", paths["cube"], "-o", tmp_path / "kept.csv", "--detector", "photutils",
                     "--psf", paths["psf"], "--keep-sidelobes")
    assert result.returncode == 0 and "tested with the PSF cube; probable sidelobes kept" in result.stdout
    header = next(line for line in (tmp_path / "kept.csv").read_text().splitlines() if not line.startswith("#"))
    assert "sidelobe_p" in header


# ---- the one-shot search --------------------------------------------------------------------------
def test_index_and_search(tiny_set, tmp_path):
    out = tmp_path / "idx"
    result = run_cli("index", tiny_set.folder, "--catalog", tiny_set.folder / "catalog.csv", "--out", out,
                     "--size", "64", "--scheduler", "synchronous", "--quiet")
    assert result.returncode == 0, result.stderr
    result = run_cli("search", out, "--prototype", "G0", "--n", "2", "--iterations", "2", "--label", "kind",
                     "--positive", "disc", "-o", tmp_path / "r.csv")
    assert result.returncode == 0, result.stderr
    found = Table.read(tmp_path / "r.csv", format="ascii.csv", comment="#")
    assert found.colnames[:6] == ["prototype", "id", "distance", "iteration", "parent", "file"]
    assert set(found["prototype"]) == {"G0"}
    assert "iteration 1 (2 found): kind = disc: 2/2" in result.stdout and "direct query of" in result.stdout
    # an image as prototype: the cutout of G3 finds G3 itself first, at distance ~0
    image = tiny_set.folder / "img" / "3.png"
    result = run_cli("search", out, "--prototype-image", image, "--n", "1", "-o", tmp_path / "v.vot", "--quiet")
    assert result.returncode == 0, result.stderr
    found = Table.read(tmp_path / "v.vot")
    assert str(found["id"][0]) == "G3" and str(found["prototype"][0]) == str(image)
    for args, message in [(("--prototype", "nope"), "No galaxy with id 'nope'"),
                          (("--prototype", "G0", "--label", "kind"), "--label and --positive go together"),
                          (("--prototype", "G0", "--label", "kind", "--positive", "spiral"),
                           "values are disc, noise, ring"),
                          ((), "Give the prototype")]:
        assert message in one_line_error(run_cli("search", out, *args, "-o", tmp_path / "x.csv"))
    result = run_cli("index", tiny_set.folder, "--catalog", tmp_path / "none.csv", "--out", out)
    assert "No galaxy catalogue" in one_line_error(result)


def test_sharded_index_on_a_local_cluster(tiny_set, tmp_path):
    out = tmp_path / "sharded"
    result = run_cli("index", tiny_set.folder, "--catalog", tiny_set.folder / "catalog.csv", "--out", out,
                     "--size", "64", "--scheduler", "synchronous", "--shards", "2")
    assert result.returncode == 0, result.stderr
    assert "compressed cosine index of 9 vectors" in result.stdout and "in 2 shards" in result.stdout
    result = run_cli("search", out, "--prototype", "G0", "--n", "2", "--label", "kind", "--positive", "disc",
                     "-o", tmp_path / "r.csv", "--scheduler", "local")
    assert result.returncode == 0, result.stderr
    assert "kind = disc: 2/2" in result.stdout and "in 2 shards" in result.stdout
    assert "--scheduler must be" in one_line_error(run_cli("search", out, "--prototype", "G0", "-o",
                                                           tmp_path / "x.csv", "--scheduler", "nowhere"))
    assert "--shards must be at least 1" in one_line_error(run_cli(
        "index", tiny_set.folder, "--catalog", tiny_set.folder / "catalog.csv", "--out", out, "--shards", "0"))


def test_search_with_feedback(tiny_index, tmp_path):
    out = tmp_path / "fed.csv"
    result = run_cli("search", tiny_index, "--prototype", "G0", "--n", "3", "--good", "G3", "--bad", "G1",
                     "--feedback", "rocchio", "-o", out)
    assert result.returncode == 0, result.stderr
    found = Table.read(out, format="ascii.csv", comment="#")
    assert not {"G0", "G1", "G3"} & set(found["id"]) and len(found) == 3
    assert "feedback (Rocchio)" in out.read_text()
    for args, message in [(("--good", "G3", "--bad", "G3"), "marked both --good and --bad"),
                          (("--good", "G3", "--iterations", "2"), "re-rank a direct search"),
                          (("--good", "nope"), "No galaxy with id 'nope'")]:
        assert message in one_line_error(run_cli("search", tiny_index, "--prototype", "G0", "--n", "3", *args,
                                                 "-o", tmp_path / "x.csv"))


def test_index_help_says_what_auto_picks():
    text = " ".join(run_cli("index", "--help").stdout.split())
    assert "'auto' (default: 'threads' on several cores)" in text and "'onnx-int8'" in text


def _search(index, out, *args):
    result = run_cli("search", index, "--n", 3, "--label", "kind", "--positive", "disc", "-o", out, *args)
    assert result.returncode == 0, result.stderr
    return Table.read(out, format="ascii.csv", comment="#"), result.stdout


def test_several_prototypes_in_one_file(tiny_index, tiny_set, tmp_path):
    single = {prototype: _search(tiny_index, tmp_path / f"{prototype}.csv", "--prototype", prototype)
              for prototype in ("G0", "G4")}
    both, printed = _search(tiny_index, tmp_path / "both.csv", "--prototype", "G0", "G4")
    assert list(both["prototype"]) == ["G0"] * 3 + ["G4"] * 3  # in the order given, a block each
    assert printed.startswith("6 galaxies from 2 prototypes ->")
    for prototype, (alone, alone_printed) in single.items():
        block = both[both["prototype"] == prototype]
        assert block.colnames == alone.colnames
        for name in alone.colnames:
            assert list(block[name]) == list(alone[name]), name
        statistics = alone_printed.splitlines()[1]  # after "3 galaxies -> ..."
        assert statistics.startswith("kind = disc: ") and f"{prototype}: {statistics}\n" in printed


def test_prototypes_from_a_file(tiny_index, tiny_set, tmp_path):
    listed = tmp_path / "prototypes.txt"
    (tmp_path / "cutouts").mkdir()
    (tmp_path / "cutouts" / "three.png").write_bytes((tiny_set.folder / "img" / "3.png").read_bytes())
    listed.write_text("# two discs and a cutout\nG0\n\n  G6  \ncutouts/three.png\n")
    found, printed = _search(tiny_index, tmp_path / "r.csv", "--prototypes", listed, "--iterations", 2)
    assert list(dict.fromkeys(found["prototype"])) == ["G0", "G6", "cutouts/three.png"]
    from_image = found[found["prototype"] == "cutouts/three.png"]
    assert from_image["id"][0] == "G3"  # the cutout finds its own galaxy first
    assert np.ma.is_masked(from_image["parent"][0])  # empty: an image is no galaxy of the index
    assert "G6: iteration 1 (3 found): kind = disc" in printed and "cutouts/three.png:   direct query of" in printed
