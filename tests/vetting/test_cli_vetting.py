"""``python -m pipeline vetting import / export / status``, as a user runs them."""

import json

from astropy.table import Table

from tests.conftest import one_line_error, run_cli


def test_import_then_export_round_trip(make_cube, tmp_path):
    cube = make_cube(layout="3d")
    db = tmp_path / "team.sqlite"
    Table({"id": [1, 2, 9], "x": [10.0, 3.0, 400.0], "y": [8.0, 15.0, 1.0], "z": [6.0, 2.0, 1.0],
           "verdict": ["real", "spurious", "real"], "reviewer": ["ann", "bob", "ann"],
           "note": ["clean", "", ""]}).write(tmp_path / "mine.csv")
    result = run_cli("vetting", "import", cube, tmp_path / "mine.csv", "--db", db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 candidates read; 1 of 3 rows lie outside the cube and were left out (id 9); "
                                    "2 stored as candidates of cube.fits, 2 verdicts cast")
    result = run_cli("vetting", "status", cube, "--db", db, "--json")
    assert json.loads(result.stdout)["verdicts"] == {"real": 1, "spurious": 1}
    out = tmp_path / "vetted.vot"
    result = run_cli("vetting", "export", cube, "-o", out, "--regions", tmp_path / "vetted.crtf", "--db", db)
    assert result.returncode == 0, result.stderr
    assert "2 candidates, 2 vetted" in result.stdout
    table = Table.read(out)
    assert list(table["verdict"]) == ["real", "spurious"] and list(table["note"]) == ["ann: clean", ""]
    assert "color=green" in (tmp_path / "vetted.crtf").read_text()
    # the same file imported again changes nothing: same sources, the same verdicts not cast twice
    result = run_cli("vetting", "import", cube, out, "--db", db)
    assert "2 stored as candidates of cube.fits, 0 verdicts cast" in result.stdout
    result = run_cli("vetting", "status", cube, "--db", db)
    assert result.stdout.startswith("cube.fits: 2 candidates; real 1, spurious 1")


def test_the_database_defaults_to_the_environment_variable(make_cube, tmp_path, monkeypatch):
    cube = make_cube(layout="3d")
    monkeypatch.setenv("ALMA_ULISSE_VETTING_DB", str(tmp_path / "env.sqlite"))
    Table({"x": [10.0], "y": [8.0]}).write(tmp_path / "one.csv")
    assert run_cli("vetting", "import", cube, tmp_path / "one.csv").returncode == 0
    assert (tmp_path / "env.sqlite").is_file()
    result = run_cli("vetting", "export", cube, "-o", tmp_path / "none.csv")
    assert "1 candidates, 0 vetted" in result.stdout


def test_bad_input_is_one_line_and_never_overwrites(make_cube, tmp_path):
    cube = make_cube(layout="3d")
    db = tmp_path / "team.sqlite"
    assert "is the input" in one_line_error(run_cli("vetting", "export", cube, "-o", db.with_suffix(".csv"),
                                                    "--db", db.with_suffix(".csv")))
    Table({"name": ["a"]}).write(tmp_path / "names.csv")
    assert "has no positions" in one_line_error(run_cli("vetting", "import", cube, tmp_path / "names.csv",
                                                        "--db", db))
    notes = tmp_path / "notes.sqlite"
    notes.write_text("not a database")
    assert "cannot be used" in one_line_error(run_cli("vetting", "status", cube, "--db", notes))
    assert notes.read_text() == "not a database"
    assert "Cannot tell the table format" in one_line_error(run_cli("vetting", "export", cube, "-o",
                                                                    tmp_path / "out.txt", "--db", db))
    empty = run_cli("vetting", "export", cube, "-o", tmp_path / "empty.csv", "--db", db)
    assert empty.returncode == 0 and "no candidates are stored for cube.fits" in empty.stdout


def test_similar_across_cubes(make_cube, tmp_path):
    """The candidates most like one, across two cubes: the same source's copy in the other cube first."""
    one = make_cube("one.fits", layout="3d")
    two = make_cube("two.fits", layout="3d", nchan=13)  # other bytes: a cube of its own
    db = tmp_path / "team.sqlite"
    # the line source of both cubes (x, y, z = 10, 8, 6) and two noise positions in each
    Table({"x": [10.0, 3.0, 20.0], "y": [8.0, 15.0, 3.0], "z": [6.0, 2.0, 9.0]}).write(tmp_path / "c.csv")
    for cube in (one, two):
        assert run_cli("vetting", "import", cube, tmp_path / "c.csv", "--db", db).returncode == 0
    out = tmp_path / "similar.csv"
    result = run_cli("vetting", "similar", one, two, "--like", "x10-y8-z6", "-k", "3", "--db", db, "-o", out,
                     "--quiet")
    assert result.returncode == 0, result.stderr
    listed = Table.read(out, format="ascii.csv", comment="#")
    assert (listed["cube"][0], listed["source"][0]) == ("two.fits", "x10-y8-z6")
    assert list(listed["similarity"]) == sorted(listed["similarity"], reverse=True)
    assert "no stored candidate" in one_line_error(
        run_cli("vetting", "similar", one, "--like", "x99-y99-z1", "--db", db, "--quiet")).lower()
