"""Source finding over many cubes: which files are cubes, one catalogue with a cube column, and a
rerun after an interruption that searches only the cubes not done."""

import threading

import numpy as np
import pytest

from pipeline.alma import batch
from pipeline.alma.catalog import read_catalog, write_catalog
from pipeline.errors import Cancelled, InputError
from tests.conftest import run_cli


def _set_of_cubes(make_cube, n=3):
    """n small cubes with their sources in other places, plus files that are not cubes to search."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:20, 0:24]
    paths = []
    for i in range(n):
        data = 0.01 * rng.standard_normal((12, 20, 24)).astype(np.float32)
        blob = np.exp(-((xx - 8 - 3 * i) ** 2 + (yy - 10) ** 2) / 4.0)
        data[5:8] += blob
        paths.append(make_cube(name=f"field{i}.fits", layout="3d", data=data))
    folder = paths[0].parent
    for name in ("elsewhere.pb.fits", "elsewhere.image.psf.fits", "sim_0_sky.fits", "notes.txt"):
        (folder / name).write_bytes(b"not searched")
    return folder, paths


def test_cubes_of_a_folder_or_a_pattern_without_companions(make_cube):
    folder, paths = _set_of_cubes(make_cube)
    assert batch.find_cubes(folder) == paths
    assert batch.find_cubes(f"{folder}/field*.fits") == paths
    assert batch.find_cubes(paths[1]) == [paths[1]]
    with pytest.raises(InputError, match=r"No FITS cubes in .*quoted pattern"):
        batch.find_cubes(f"{folder}/*.fits.gz")


def test_one_catalogue_with_a_cube_column_and_a_rerun_that_resumes(make_cube, tmp_path, monkeypatch):
    from pipeline.alma import detect as det

    folder, paths = _set_of_cubes(make_cube)
    out = tmp_path / "all.csv"
    searched = []
    real = det.detect

    def counting(cube, *args, **kwargs):
        searched.append(cube.path.name)
        return real(cube, *args, **kwargs)

    monkeypatch.setattr(det, "detect", counting)
    cancel = threading.Event()

    def stop_after_one(done, total, stage):
        if done == 1:
            cancel.set()

    with pytest.raises(Cancelled, match="finished cubes are kept"):
        batch.detect_cubes(paths, out, "photutils", progress=stop_after_one, cancel=cancel)
    assert searched == ["field0.fits"] and len(list(batch.parts_folder(out).glob("*.csv"))) == 1
    catalog = batch.detect_cubes(paths, out, "photutils")
    assert searched == ["field0.fits", "field1.fits", "field2.fits"]  # the first cube was not searched again
    assert list(catalog["cube"]) == ["field0.fits", "field1.fits", "field2.fits"]
    assert list(catalog["id"]) == [1, 2, 3] and catalog["x"] == pytest.approx([8, 11, 14], abs=0.5)
    write_catalog(catalog, out)
    again = read_catalog(out)
    assert list(again["cube"]) == list(catalog["cube"]) and again.meta["provenance"]["cubes"] == "3"


def test_detect_a_folder_on_the_command_line(make_cube, tmp_path):
    folder, _ = _set_of_cubes(make_cube)
    out = tmp_path / "out" / "all.vot"
    out.parent.mkdir()
    result = run_cli("detect", folder, "-o", out, "--detector", "photutils")
    assert result.returncode == 0, result.stderr
    assert "3 sources in 3 cubes" in result.stdout
    assert sorted(read_catalog(out)["cube"]) == ["field0.fits", "field1.fits", "field2.fits"]
    assert not batch.parts_folder(out).exists()  # the parts go once the catalogue is written
    refused = run_cli("detect", folder, "-o", tmp_path / "x.csv", "--psf", folder / "elsewhere.image.psf.fits")
    assert refused.returncode == 2 and "--psf is for one cube" in refused.stderr
