"""A cube's candidates in the vetting store: merged across runs by position, imported from
catalogues and regions made elsewhere, refused with a reason when they cannot be used."""

import numpy as np
import pytest
from astropy.table import Table

from pipeline.alma.catalog import write_regions
from pipeline.errors import InputError
from pipeline.vetting.candidates import (
    add_candidates,
    cube_collection,
    import_candidates,
    match_tolerance,
    read_candidates,
    stored_candidates,
)
from tests.vetting.conftest import source


def test_a_source_found_again_keeps_its_key_and_gains_the_detector(store, cube, catalog):
    first = add_candidates(store, cube, catalog([source(10.2, 8.1, 6, 20), source(3, 15, 2, 4)], "photutils"))
    assert list(first["source"]) == ["x10-y8-z6", "x3-y15-z2"]
    # the pipeline finds the first again 0.7 px and half a channel away, and a new one
    second = add_candidates(store, cube, catalog([source(10.8, 8.4, 6.5, 25), source(20, 4, 9, 6)], "pipeline"))
    assert list(second["source"]) == ["x10-y8-z6", "x20-y4-z9"]
    assert list(second["detectors"]) == ["photutils,pipeline", "pipeline"]
    stored = stored_candidates(store, cube)
    assert list(stored["source"]) == ["x10-y8-z6", "x3-y15-z2", "x20-y4-z9"]
    assert stored["snr"][0] == 25 and stored["detector"][0] == "pipeline"  # the latest run's row
    assert stored["x"].unit == "pix" and stored["ra"][0] == pytest.approx(second["ra"][0])


def test_two_sources_close_together_stay_two(store, cube, catalog):
    """One to one: a new pair near one stored source gives it to the nearer and keys the other anew."""
    radius, channels = match_tolerance(cube)
    assert radius == pytest.approx(cube.beam_radius_pixels()) and channels == 2
    add_candidates(store, cube, catalog([source(10, 8, 6, 20)]))
    again = add_candidates(store, cube, catalog([source(11, 8, 6, 9), source(10.2, 8, 6, 20)]))
    assert list(again["source"]) == ["x11-y8-z6", "x10-y8-z6"]
    close = add_candidates(store, cube, catalog([source(10.4, 8, 6.4, 5)], "decoras"))
    assert close["source"][0] == "x10-y8-z6"  # close: the same source
    assert len(stored_candidates(store, cube)) == 2
    # a new source whose rounded position names a key already taken gets a key of its own: here a
    # third candidate there when both stored sources nearby are claimed by nearer ones
    three = add_candidates(store, cube, catalog([source(10.1, 8.1, 6.1, 20), source(10.9, 8, 6, 9),
                                                 source(9.8, 7.9, 5.9, 3)]))
    assert list(three["source"]) == ["x10-y8-z6", "x11-y8-z6", "x10-y8-z6-2"]
    assert len(stored_candidates(store, cube)) == 3


def test_the_collection_is_the_cubes_content(cube, make_cube, tmp_path):
    from pipeline.alma.cube import open_cube

    copy = tmp_path / "renamed.fits"
    copy.write_bytes(cube.path.read_bytes())
    with open_cube(copy) as renamed:
        assert cube_collection(renamed) == cube_collection(cube)
    with open_cube(make_cube("other.fits", layout="3d", nchan=13)) as other:
        assert cube_collection(other) != cube_collection(cube)


def test_a_catalogue_in_sky_coordinates_from_elsewhere(cube, tmp_path):
    """TOPCAT-like columns: RAJ2000 / DEJ2000 in degrees and a frequency; the box is drawn a beam
    across and the line's channels around the peak; the channel of a row without frequency is the
    spectrum's peak there."""
    sky = cube.sky(10, 8)
    table = Table({"Name": ["a", "b", "c"], "RAJ2000": [sky.ra.deg] * 3, "DEJ2000": [sky.dec.deg] * 3,
                   "Freq": [cube.frequency_hz[6], cube.frequency_hz[2], np.nan]})
    table.write(tmp_path / "topcat.csv")
    read = read_candidates(tmp_path / "topcat.csv", cube)
    assert read.skipped == []
    assert np.allclose(read.table["x"], 10, atol=1e-6) and np.allclose(read.table["y"], 8, atol=1e-6)
    assert list(read.table["z"]) == [6, 2, 6]  # the third from the spectrum: the line peaks at 6
    assert read.table["z0"][0] < 6 < read.table["z1"][0]
    half = int(np.ceil(2 * cube.beam_radius_pixels()))
    assert (read.table["x0"][0], read.table["x1"][0]) == (10 - half, 10 + half + 1)
    assert list(read.table["id"]) == [1, 2, 3] and set(read.table["detector"]) == {"imported"}


def test_positions_outside_the_cube_are_left_out_and_named(cube, tmp_path):
    Table({"id": [1, 2, 3], "x": [5.0, 500.0, 7.0], "y": [5.0, 5.0, 5.0], "z": [3.0, 3.0, 40.0]}).write(
        tmp_path / "c.csv")
    read = read_candidates(tmp_path / "c.csv", cube)
    assert list(read.table["id"]) == [1]
    assert read.skipped == ["2 of 3 rows lie outside the cube and were left out (id 2, 3)"]
    assert read.message == "1 candidate read; 2 of 3 rows lie outside the cube and were left out (id 2, 3)"
    Table({"x": [500.0], "y": [5.0]}).write(tmp_path / "far.csv")
    with pytest.raises(InputError, match=r"None of the 1 positions in far.csv lies inside the cube cube.fits "
                                         r"\(24 x 20 pixels, 12 channels\)"):
        read_candidates(tmp_path / "far.csv", cube)


def test_catalogues_that_cannot_be_used_say_why(cube, tmp_path):
    Table({"alpha": [1.0], "beta": [2.0]}).write(tmp_path / "named.csv")
    with pytest.raises(InputError, match="no positions: it needs columns ra and dec .* Its columns are: alpha, beta"):
        read_candidates(tmp_path / "named.csv", cube)
    Table({"x": ["left"], "y": ["top"]}).write(tmp_path / "words.csv")
    with pytest.raises(InputError, match="Column x of words.csv must hold numbers"):
        read_candidates(tmp_path / "words.csv", cube)
    with pytest.raises(InputError, match="does not exist"):
        read_candidates(tmp_path / "missing.vot", cube)
    (tmp_path / "junk.reg").write_text("this is not a region file\ncircle(\n")
    with pytest.raises(InputError, match="junk.reg"):
        read_candidates(tmp_path / "junk.reg", cube)
    Table({"x": [5.0], "y": [5.0], "cube": ["another.fits"]}).write(tmp_path / "theirs.csv")
    with pytest.raises(InputError, match="other cubes only"):
        read_candidates(tmp_path / "theirs.csv", cube)


def test_regions_round_trip_to_candidates(cube, catalog, tmp_path):
    """The project's own DS9 and CRTF regions read back as candidates at the same places."""
    table = catalog([source(10.2, 8.1, 6, 20), source(17, 12, 3, 5)])
    for name in ("c.reg", "c.crtf"):
        write_regions(table, cube, tmp_path / name)  # ellipses at the centroids
        read = read_candidates(tmp_path / name, cube)
        # CRTF keeps 6 decimals of a degree: 3.6 mas, 0.04 of these 0.1" pixels
        assert np.allclose(read.table["x"], table["x"], atol=0.05)
        assert np.allclose(read.table["y"], table["y"], atol=0.05)
        assert list(read.table["id"]) == [1, 2]
        write_regions(table, cube, tmp_path / name, shape="box")
        read = read_candidates(tmp_path / name, cube)
        for edge in ("x0", "x1", "y0", "y1"):
            assert list(read.table[edge]) == list(table[edge])


def test_a_vetted_catalogue_brings_its_verdicts(store, cube, tmp_path):
    Table({"x": [10.0, 3.0, 5.0], "y": [8.0, 15.0, 5.0], "z": [6.0, 2.0, 3.0],
           "verdict": ["real", "spurious", ""], "note": ["clean", "", ""]}).write(tmp_path / "vetted.vot",
                                                                                   format="votable")
    stored, read, cast = import_candidates(store, cube, tmp_path / "vetted.vot", reviewer="eve")
    assert cast == 2 and len(stored) == 3
    latest = store.latest(cube_collection(cube))
    assert latest[stored["source"][0]] == {"eve": {**latest[stored["source"][0]]["eve"], "verdict": "real",
                                                   "note": "clean"}}
    assert latest[stored["source"][1]]["eve"]["verdict"] == "spurious"
    # brought by someone else (an upload): the names are the file's word, and say so; a verdict that
    # eve has in force already is not cast again under the other name
    Table({"x": [10.0, 3.0], "y": [8.0, 15.0], "z": [6.0, 2.0], "verdict": ["real", "unsure"], "note": ["clean", ""]}
          ).write(tmp_path / "again.vot", format="votable")
    _, _, cast = import_candidates(store, cube, tmp_path / "again.vot", reviewer="eve", via="bob")
    latest = store.latest(cube_collection(cube))
    assert cast == 1 and set(latest[stored["source"][0]]) == {"eve"}
    assert latest[stored["source"][1]]["eve via bob"]["verdict"] == "unsure"
    # bob's own verdicts brought by bob keep his name
    Table({"x": [5.0], "y": [5.0], "z": [3.0], "verdict": ["spurious"], "reviewer": ["bob"]}).write(
        tmp_path / "bob.csv")
    import_candidates(store, cube, tmp_path / "bob.csv", via="bob")
    assert "bob" in store.latest(cube_collection(cube))[stored["source"][2]]


def test_a_disputed_source_comes_back_with_each_reviewers_verdict(store, cube, tmp_path):
    from pipeline.vetting.export import vetted_catalog, write_vetted
    from pipeline.vetting.store import VettingStore

    Table({"x": [10.0], "y": [8.0], "z": [6.0]}).write(tmp_path / "one.csv")
    stored, _, _ = import_candidates(store, cube, tmp_path / "one.csv")
    collection = cube_collection(cube)
    store.cast(collection, stored["source"][0], "ann", "real", "a clean line")
    store.cast(collection, stored["source"][0], "bob", "spurious", "a sidelobe")
    write_vetted(vetted_catalog(stored_candidates(store, cube), store.latest(collection)), tmp_path / "v.csv")
    other = VettingStore(tmp_path / "elsewhere.sqlite")  # another team's database
    _, _, cast = import_candidates(other, cube, tmp_path / "v.csv")
    said = other.latest(collection)[stored["source"][0]]
    assert cast == 2 and {w: (v["verdict"], v["note"]) for w, v in said.items()} == {
        "ann": ("real", "a clean line"), "bob": ("spurious", "a sidelobe")}


def test_a_verdict_column_of_other_words_is_refused_before_anything_is_stored(store, cube, tmp_path):
    Table({"x": [10.0, 3.0], "y": [8.0, 15.0], "verdict": ["real", "maybe"]}).write(tmp_path / "v.csv")
    with pytest.raises(InputError, match="Row 2 of v.csv has the verdict 'maybe'.*Nothing was imported"):
        import_candidates(store, cube, tmp_path / "v.csv", reviewer="eve")
    assert len(stored_candidates(store, cube)) == 0


def test_boxes_and_channels_from_a_file_are_checked_against_the_cube(cube, tmp_path):
    """A file's box or channels outside the cube are clipped; an empty or reversed range, or blanks,
    are found again from the spectrum: every card can be drawn."""
    from pipeline.vetting.card import candidate_card

    Table({"x": [10.0, 10.0, 10.0, 10.0], "y": [8.0, 8.0, 8.0, 8.0], "z": [6.0, 6.0, np.nan, 6.0],
           "x0": [-5.0, 12.0, 7.0, np.nan], "x1": [400.0, 9.0, 14.0, np.nan], "y0": [5.0, 5.0, 5.0, 5.0],
           "y1": [12.0, 12.0, 12.0, 12.0], "z0": [-4.0, 6.0, 3.0, np.nan], "z1": [400.0, 6.0, 10.0, np.nan]}
          ).write(tmp_path / "odd.csv")
    table = read_candidates(tmp_path / "odd.csv", cube).table
    assert list(table["x0"])[0] == 0 and list(table["x1"])[0] == cube.nx  # clipped
    assert table["x0"][1] < table["x1"][1]  # a reversed box: drawn a beam across instead
    assert (table["z0"][0], table["z1"][0]) == (0, cube.nchan)
    assert table["z0"][1] < 6 < table["z1"][1]  # an empty range: the line around channel 6
    assert table["z"][2] == 6 and (table["z0"][2], table["z1"][2]) == (3, 10)  # the peak within the range given
    assert all(table["z0"] < table["z1"]) and all(table["x0"] < table["x1"])
    table["source"] = [f"s{i}" for i in range(len(table))]
    for i in range(len(table)):
        assert candidate_card(cube, table, i).channel_map.size > 0
