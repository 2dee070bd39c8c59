"""Every command checks its arguments before any work: bad ones end with one line ``error: ...`` on
stderr and exit code 2, and nothing is written; no command ever writes over one of its inputs.

Run in-process (``run_cli`` in tests/conftest.py; the subprocess path is in test_cli.py). The
``no_work`` fixture makes the expensive steps fail loudly, so a refusal that came after work
started fails the test instead of passing it.
"""

import gzip

import numpy as np
import pytest
import torch
from astropy.io import fits

from tests.conftest import (
    cube_data,
    cube_header,
    one_line_error,
    run_cli,
    write_overpromising_cube,
)


def refused(*argv) -> str:
    """Run the command line; check it refused with exit code 2 and one line ``error: ...`` on
    stderr; return the line."""
    line = one_line_error(run_cli(*argv))
    assert line.startswith("error: "), line
    return line


def _forbidden(*args, **kwargs):
    raise AssertionError("work started before the arguments were checked")


@pytest.fixture
def no_work(monkeypatch):
    """Networks, detection, simulation, training, search and the atlas all refuse to run."""
    from pipeline.alma import detect, simulate, train
    from pipeline.oneshot import atlas, search

    monkeypatch.setattr(detect, "detect", _forbidden)
    monkeypatch.setattr(detect, "load_networks", _forbidden)
    monkeypatch.setattr(detect.SourceFinder, "load", staticmethod(_forbidden))
    monkeypatch.setattr(simulate, "instrument_response", _forbidden)
    monkeypatch.setattr(train, "validation_batches", _forbidden)
    monkeypatch.setattr(train.BatchMaker, "batch", _forbidden)
    for name in ("one_shot", "recursive"):
        monkeypatch.setattr(search, name, _forbidden)
    for name in ("rank_features", "write_top_activations", "feature_maps"):
        monkeypatch.setattr(atlas, name, _forbidden)


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


# ---- help -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in (
    "cube-info", "simulate", "train", "detect", "evaluate", "index", "search", "top-activations",
    "rank-features")])
def test_help_still_works(argv):
    result = run_cli(*argv)
    assert result.returncode == 0 and "usage:" in result.stdout


# ---- cubes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_cube_info_rest_frequency_must_be_positive(make_cube, value):
    assert "--rest-frequency" in refused("cube-info", make_cube(), "--rest-frequency", value)


def _damaged_gzip(tmp_path):
    fits.PrimaryHDU(cube_data(), cube_header(stokes=False, beam_keywords=True)).writeto(tmp_path / "ok.fits")
    packed = gzip.compress((tmp_path / "ok.fits").read_bytes())
    path = tmp_path / "bad.fits.gz"
    path.write_bytes(packed[:30] + bytes(200) + packed[230:])  # deflate data overwritten: zlib.error
    return path


def test_corrupt_gzip_cube(tmp_path, no_work):
    path = _damaged_gzip(tmp_path)
    assert "gzip" in refused("cube-info", path)
    line = refused("detect", path, "-o", tmp_path / "cat.csv")
    assert "bad.fits.gz" in line and not (tmp_path / "cat.csv").exists()


def test_header_promising_more_data_than_the_file_holds(tmp_path):
    path = write_overpromising_cube(tmp_path / "huge.fits")
    line = refused("cube-info", path)
    assert "promises" in line and "Errno" not in line


def _with_beam(make_cube, value, per_channel=False):
    """A cube whose header BMAJ (or, per channel, the BEAMS row of channel 3) is ``value``."""
    if per_channel:
        path = make_cube("beams.fits")
        with fits.open(path, mode="update") as hdul:
            hdul["BEAMS"].data["BMAJ"][3] = value
        return path
    path = make_cube("keywords.fits", layout="3d")
    fits.setval(path, "BMAJ", value=value if np.isfinite(value) else str(value))
    return path


@pytest.mark.parametrize("value", [0.0, -0.5 / 3600, float("nan"), float("inf")])
@pytest.mark.parametrize("per_channel", [False, True])
def test_detect_refuses_a_cube_without_a_valid_beam(make_cube, tmp_path, no_work, value, per_channel):
    path = _with_beam(make_cube, value, per_channel)
    line = refused("detect", path, "-o", tmp_path / "cat.csv", "--detector", "photutils")
    assert "no valid beam" in line and "BMAJ" in line
    assert not (tmp_path / "cat.csv").exists()


@pytest.mark.parametrize("option, name, message", [
    ("-o", "cat.txt", ".csv"), ("-o", "cat.fits", ".csv"), ("--regions", "cat.txt", ".reg")])
def test_detect_checks_output_names_before_any_work(make_cube, tmp_path, no_work, option, name, message):
    cube = make_cube()
    argv = ["detect", cube, "-o", tmp_path / "cat.csv"]
    argv += [option, tmp_path / name] if option == "--regions" else []
    if option == "-o":
        argv[3] = tmp_path / name
    assert message in refused(*argv)
    assert _files(tmp_path) == [cube.relative_to(tmp_path)]


@pytest.mark.parametrize("value, message", [
    ("lots", "a size such as 2GB"), ("3", "at least 0.5GB"), ("100MB", "at least 0.5GB"), ("2GiB", "a size")])
def test_detect_memory_must_be_a_size(make_cube, tmp_path, no_work, value, message):
    cube = make_cube()
    assert message in refused("detect", cube, "-o", tmp_path / "cat.csv", "--memory", value)
    assert _files(tmp_path) == [cube.relative_to(tmp_path)]


@pytest.mark.parametrize("name, option", [("cube.csv", "-o"), ("cube.reg", "--regions"), ("cube.vot", "-o")])
def test_detect_never_overwrites_its_cube(make_cube, tmp_path, no_work, name, option):
    cube = make_cube(name)  # a FITS file under a catalogue's or regions' name
    before = cube.read_bytes()
    argv = ["detect", cube, "-o", cube if option == "-o" else tmp_path / "cat.csv"]
    if option == "--regions":
        argv += ["--regions", cube]
    assert "input" in refused(*argv)
    assert cube.read_bytes() == before and not (tmp_path / "cat.csv").exists()


def test_detect_output_that_is_a_folder(make_cube, tmp_path, no_work):
    (tmp_path / "out.csv").mkdir()
    assert "folder" in refused("detect", make_cube(), "-o", tmp_path / "out.csv")


@pytest.mark.parametrize("option", ["--pb", "--psf"])
def test_detect_checks_the_primary_beam_and_psf_before_any_work(make_cube, tmp_path, no_work, option):
    cube, other = make_cube(), make_cube("other.fits", nchan=6)
    line = refused("detect", cube, "-o", tmp_path / "cat.csv", option, other)
    assert "has 6 channels but the cube has 12" in line and f".{option[2:]} cube tclean made" in line
    assert "no such file" in refused("detect", cube, "-o", tmp_path / "cat.csv", option, tmp_path / "x.fits")
    assert not (tmp_path / "cat.csv").exists()


@pytest.mark.parametrize("companion, option", [("--pb", "-o"), ("--psf", "-o"), ("--pb", "--regions")])
def test_detect_never_overwrites_its_primary_beam_or_psf(make_cube, tmp_path, no_work, companion, option):
    beam = make_cube("beam.reg" if option == "--regions" else "beam.csv")  # a FITS file under an output's name
    before = beam.read_bytes()
    argv = ["detect", make_cube(), "-o", beam if option == "-o" else tmp_path / "cat.csv", companion, beam]
    if option == "--regions":
        argv += ["--regions", beam]
    assert "is the input" in refused(*argv)
    assert beam.read_bytes() == before and not (tmp_path / "cat.csv").exists()


# ---- simulate -------------------------------------------------------------------------------------
def test_simulate_refuses_a_folder_holding_a_set(tmp_path, no_work):
    out = tmp_path / "set"
    out.mkdir()
    (out / "truth.csv").write_text("cube,source\nsim_0_0000.fits,0\n")
    before = _files(out)
    line = refused("simulate", "--n", 1, "--out", out, "--size", 32, "--channels", 4, "--quiet")
    assert "already holds a simulated set" in line and "truth.csv" in line
    assert _files(out) == before and (out / "truth.csv").read_text() == "cube,source\nsim_0_0000.fits,0\n"


@pytest.mark.parametrize("extra, message", [
    (("--seed", "-1"), "--seed"), (("--n", "0"), "--n"), (("--size", "8"), "--size"),
    (("--channels", "0"), "--channels")])
def test_simulate_numbers(tmp_path, no_work, extra, message):
    argv = {"--n": "1", "--size": "32", "--channels": "4", "--seed": "0"}
    argv.update(dict([extra]))
    assert message in refused("simulate", "--out", tmp_path / "set", "--quiet",
                              *[x for kv in argv.items() for x in kv])
    assert not (tmp_path / "set").exists()


def test_simulate_out_that_is_a_file(tmp_path, no_work):
    (tmp_path / "file").write_text("keep")
    assert "not a folder" in refused("simulate", "--n", 1, "--out", tmp_path / "file", "--quiet")
    assert (tmp_path / "file").read_text() == "keep"


# ---- train ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, message", [
    (("--steps", "0"), "--steps"), (("--steps", "-3"), "--steps"), (("--batch", "0"), "--batch"),
    (("--lr", "0"), "--lr"), (("--lr", "-0.001"), "--lr"), (("--lr", "nan"), "--lr"), (("--size", "8"), "--size"),
    (("--checkpoint-every", "0"), "--checkpoint-every"), (("--threads", "0"), "--threads"),
    (("--seed", "-2"), "--seed")])
def test_train_numbers(tmp_path, no_work, extra, message):
    argv = {"--steps": "2", "--size": "64"}
    argv.update(dict([extra]))
    assert message in refused("train", "deep_gru", "--out", tmp_path / "run", "--quiet",
                              *[x for kv in argv.items() for x in kv])
    assert not (tmp_path / "run").exists()


def test_train_unknown_task_and_out_that_is_a_file(tmp_path, no_work):
    assert "Unknown training task" in refused("train", "nope", "--out", tmp_path / "run", "--steps", 1)
    assert not (tmp_path / "run").exists()
    (tmp_path / "file").write_text("keep")
    assert "not a folder" in refused("train", "deep_gru", "--out", tmp_path / "file", "--steps", 1)
    assert (tmp_path / "file").read_text() == "keep"


class _Planted:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_train_refuses_a_planted_checkpoint(tmp_path, no_work):
    out, marker = tmp_path / "run", tmp_path / "marker"
    out.mkdir()
    torch.save({"task": "deep_gru", "step": 1, "log": _Planted(marker)}, out / "checkpoint.pt")
    line = refused("train", "deep_gru", "--out", out, "--steps", 2, "--size", 64, "--quiet")
    assert "not a plain weights file" in line and "--no-resume" in line
    assert not marker.exists()


# ---- evaluate -------------------------------------------------------------------------------------
def test_evaluate_unreadable_truth_and_bad_numbers(tmp_path):
    catalog = tmp_path / "cat.csv"
    catalog.write_text("id,x,y\n")
    truth = tmp_path / "truth.csv"
    truth.write_text("cube,source,x,y\nc.fits,0,1,1\n")
    assert "does not exist" in refused("evaluate", "--truth", tmp_path / "nope.csv", "--catalog", catalog)
    assert "folder" in refused("evaluate", "--truth", tmp_path, "--catalog", catalog)
    assert "--image-size" in refused("evaluate", "--truth", truth, "--catalog", catalog, "--image-size", 0)
    assert "--channel-width-kms" in refused("evaluate", "--truth", truth, "--catalog", catalog,
                                            "--channel-width-kms", -1)


# ---- the one-shot search --------------------------------------------------------------------------
@pytest.fixture
def index(tiny_index):
    """A feature store of the nine cutouts (ids G0..G8, column kind: disc, ring, noise)."""
    return tiny_index


@pytest.mark.parametrize("extra, message", [
    (("--n", "0"), "--n"), (("--n", "-4"), "--n"),
    (("--n", "9"), "8 other galaxies"),  # G0 and eight others: the 9th neighbour does not exist
    (("--iterations", "0"), "--iterations"), (("--iterations", "-1"), "--iterations"),
    (("--iterations", "21"), "--iterations"),
    (("--label", "colour", "--positive", "red"), "no column 'colour'"),
    (("--label", "kind", "--positive", "spiral"), "values are disc, noise, ring"),
    (("--label", "kind"), "go together"),
    (("--prototype", "G99"), "No galaxy with id 'G99'"),
])
def test_search_checks_before_searching_or_writing(index, tmp_path, no_work, extra, message):
    argv = {"--prototype": "G0", "--n": "2"}
    argv.update(dict(zip(extra[::2], extra[1::2], strict=True)))
    line = refused("search", index, "-o", tmp_path / "r.csv", *[x for kv in argv.items() for x in kv])
    assert message in line
    assert not (tmp_path / "r.csv").exists()


def test_search_checks_every_prototype_before_searching(index, tmp_path, no_work):
    listed = tmp_path / "list.txt"
    cases = [
        (("--prototype", "G0", "G99"), "No galaxy with id 'G99'"),
        (("--prototype", "G0", "G1", "G0"), "'G0' is given twice"),
        (("--prototype-image", tmp_path / "none.png"), "Cannot read the image"),
        (("--prototypes", tmp_path / "none.txt"), "Cannot read --prototypes"),
        (("--prototypes", listed, "--prototype", "G1"), "'G1' is given twice"),
        (("--prototypes", listed, "--n", "9"), "8 other galaxies"),
    ]
    listed.write_text("G1\n# a comment\n")
    for extra, message in cases:
        assert message in refused("search", index, "-o", tmp_path / "r.csv", *extra), extra
    listed.write_text("G1\nG77\n")
    assert "line 2: 'G77' is neither an id of the index" in refused("search", index, "--prototypes", listed,
                                                                      "-o", tmp_path / "r.csv")
    listed.write_text("# nothing\n\n")
    assert "lists no prototype" in refused("search", index, "--prototypes", listed, "-o", tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()


def test_search_never_writes_over_its_prototypes(index, tmp_path, no_work):
    listed = tmp_path / "list.csv"
    listed.write_text("G1\n")
    assert "is the input" in refused("search", index, "--prototypes", listed, "-o", listed)
    assert listed.read_text() == "G1\n"


def test_search_output_name_and_place(index, tmp_path, no_work):
    before = _files(index)
    assert ".csv" in refused("search", index, "--prototype", "G0", "-o", tmp_path / "r.txt")
    assert "index folder" in refused("search", index, "--prototype", "G0", "-o", index / "catalog.csv")
    assert "index folder" in refused("search", index, "--prototype", "G0", "-o", index / "new.csv")
    assert _files(index) == before and not (tmp_path / "r.txt").exists()


def test_search_n_of_every_other_galaxy_is_fine(index, tmp_path):
    assert run_cli("search", index, "--prototype", "G0", "--n", 8, "-o", tmp_path / "r.csv", "--quiet").returncode == 0
    rows = [line for line in (tmp_path / "r.csv").read_text().splitlines() if not line.startswith("#")]
    assert len(rows) == 9  # the header and every galaxy but the prototype


def test_rank_features_checks_before_ranking(index, tmp_path, no_work):
    assert ".csv" in refused("rank-features", index, "--label", "kind", "--positive", "disc",
                             "-o", tmp_path / "r.txt")
    assert "no column 'colour'" in refused("rank-features", index, "--label", "colour",
                                           "--positive", "red", "-o", tmp_path / "r.csv")
    assert "index folder" in refused("rank-features", index, "--label", "kind", "--positive", "disc",
                                     "-o", index / "catalog.csv")
    assert _files(tmp_path) == []


@pytest.mark.parametrize("extra, message", [
    (("--feature", "-1"), "0 to 1279"), (("--feature", "1280"), "0 to 1279"),
    (("--n", "0"), "--n"), (("--n", "10"), "9 images")])
def test_top_activations_checks_before_drawing(index, tmp_path, no_work, extra, message):
    argv = {"--feature": "5", "--n": "2"}
    argv.update(dict([extra]))
    assert message in refused("top-activations", index, "--out", tmp_path / "f",
                              *[x for kv in argv.items() for x in kv])
    assert not (tmp_path / "f").exists()


def test_top_activations_out_inside_the_index(index, no_work):
    before = _files(index)
    assert "index folder" in refused("top-activations", index, "--feature", 5, "--out", index)
    assert _files(index) == before
