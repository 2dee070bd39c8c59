"""The source catalogue (pipeline.alma.catalog): schema, sky/frequency fill, files, regions."""

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from regions import EllipseSkyRegion, RectangleSkyRegion, Regions

from pipeline.alma.catalog import (
    CATALOG_COLUMNS,
    COLUMN_NAMES,
    canonical_ellipse,
    catalog_regions,
    empty_catalog,
    make_catalog,
    read_catalog,
    write_catalog,
    write_regions,
)
from pipeline.alma.cube import open_cube
from pipeline.errors import InputError

NX, NY = 24, 20
# the conftest header: reference pixel (1-based) nx/2 + 1, ny/2 + 1 at RA 150, Dec -30 (ICRS);
# channel 0 at 230.5 GHz, 10 MHz per channel
REF_X, REF_Y = NX / 2, NY / 2


def rows():
    names = ("x", "y", "z", "x0", "y0", "x1", "y1", "z0", "z1", "fwhm_x", "fwhm_y", "pa", "flux", "snr")
    first = dict(zip(names, (REF_X, REF_Y, 6.0, 8, 6, 17, 15, 3, 10, 3.0, 2.0, 120.0, 1.5, 40.0), strict=True))
    second = dict(zip(names, (4.0, 15.5, 2.5, 2, 13, 7, 19, 1, 5, 0.0, 0.0, 0.0, 0.1, 6.0), strict=True))
    return [{**first, "blended": True}, second]


@pytest.fixture
def cube(make_cube):
    with open_cube(make_cube(layout="3d", nx=NX, ny=NY)) as c:
        yield c


@pytest.fixture
def catalog(cube):
    return make_catalog(rows(), cube, "photutils")


def test_empty_catalog_has_the_schema():
    table = empty_catalog()
    assert len(table) == 0
    assert tuple(table.colnames) == COLUMN_NAMES
    for name, dtype, unit, _ in CATALOG_COLUMNS:
        assert (table[name].unit is None) == (unit is None), name
        if dtype != "str":
            assert table[name].dtype == np.dtype(dtype), name


def test_make_catalog_fills_sky_and_frequency_from_the_wcs(catalog, cube):
    assert tuple(catalog.colnames) == COLUMN_NAMES
    assert list(catalog["id"]) == [1, 2]
    assert list(catalog["detector"]) == ["photutils", "photutils"]
    # the reference pixel is exactly at the reference coordinates
    assert catalog["ra"][0] == pytest.approx(150.0, abs=1e-9)
    assert catalog["dec"][0] == pytest.approx(-30.0, abs=1e-9)
    expected = cube.sky(4.0, 15.5).icrs
    got = SkyCoord(catalog["ra"][1], catalog["dec"][1], unit="deg")
    assert got.separation(expected).to_value("arcsec") < 1e-6
    # 4 px east (x decreasing is east for CDELT1 < 0): RA grows
    assert catalog["ra"][1] > 150.0 and catalog["dec"][1] > -30.0
    # channel 6 and the fractional channel 2.5, linear between channels
    assert catalog["freq"][0] == pytest.approx(230.5e9 + 6 * 10e6)
    assert catalog["freq"][1] == pytest.approx(230.5e9 + 2.5 * 10e6)
    assert str(catalog["freq"].unit) == "Hz" and str(catalog["ra"].unit) == "deg"
    assert catalog["flux"].unit.is_equivalent("Jy km / s")


def test_make_catalog_defaults_and_ellipse_form(catalog):
    assert list(catalog["blended"]) == [True, False]
    assert list(catalog["score"]) == [40.0, 6.0]  # score defaults to snr
    # pa 120 is the other axis at 30: the axes swap
    assert (catalog["fwhm_x"][0], catalog["fwhm_y"][0], catalog["pa"][0]) == (2.0, 3.0, 30.0)
    a, b, pa = canonical_ellipse([3.0, 3.0], [2.0, 2.0], [-10.0, 270.0])
    assert list(pa) == [80.0, 0.0] and list(a) == [2.0, 2.0] and list(b) == [3.0, 3.0]


def test_make_catalog_takes_columns_and_needs_the_required_ones(cube):
    columns = {k: [r[k] for r in rows()] for k in rows()[1]}
    table = make_catalog(columns, cube, "pybdsf")
    assert len(table) == 2 and table["detector"][0] == "pybdsf"
    assert len(make_catalog([], cube, "x")) == 0
    del columns["flux"]
    with pytest.raises(InputError, match="flux"):
        make_catalog(columns, cube, "pybdsf")


@pytest.mark.parametrize("suffix", [".csv", ".vot", ".xml", ".votable"])
def test_catalog_round_trip(catalog, tmp_path, suffix):
    path = write_catalog(catalog, tmp_path / f"sources{suffix}")
    back = read_catalog(path)
    assert tuple(back.colnames) == COLUMN_NAMES
    for name, dtype, _unit, _ in CATALOG_COLUMNS:
        if dtype == "str":
            assert list(back[name]) == list(catalog[name])
        else:
            assert back[name].dtype == np.dtype(dtype), name
            assert np.array_equal(back[name], catalog[name], equal_nan=dtype.startswith("float")), name
        assert str(back[name].unit or "") == str(catalog[name].unit or ""), name
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


@pytest.mark.parametrize("suffix", [".csv", ".vot"])
def test_empty_catalog_round_trip(tmp_path, suffix):
    back = read_catalog(write_catalog(empty_catalog(), tmp_path / f"none{suffix}"))
    assert len(back) == 0 and tuple(back.colnames) == COLUMN_NAMES
    assert back["x0"].dtype == np.int64 and back["blended"].dtype == bool


def test_catalog_files_errors(catalog, tmp_path):
    with pytest.raises(InputError, match=r"\.csv or"):
        write_catalog(catalog, tmp_path / "sources.txt")
    with pytest.raises(InputError, match="does not exist: check the path"):
        read_catalog(tmp_path / "missing.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="lacks the column"):
        read_catalog(tmp_path / "other.csv")
    (tmp_path / "broken.vot").write_text("not xml at all")
    with pytest.raises(InputError, match="not a readable VOTable"):
        read_catalog(tmp_path / "broken.vot")
    with pytest.raises(InputError, match="lacks the column"):
        write_catalog(catalog[["x", "y"]], tmp_path / "partial.csv")


@pytest.mark.parametrize("suffix", [".reg", ".crtf"])
def test_region_files_parse_back(catalog, cube, tmp_path, suffix):
    path = write_regions(catalog, cube, tmp_path / f"sources{suffix}")
    regions = Regions.read(str(path))
    assert len(regions) == len(catalog)
    # resolved source: an ellipse of its FWHMs; unresolved (FWHM 0): its box
    assert isinstance(regions[0], EllipseSkyRegion)
    assert isinstance(regions[1], RectangleSkyRegion)
    for region, row in zip(regions, catalog, strict=True):
        centre = region.center.icrs
        expected = SkyCoord(row["ra"], row["dec"], unit="deg")
        if isinstance(region, RectangleSkyRegion):  # the box centre, not the centroid
            expected = cube.sky((row["x0"] + row["x1"] - 1) / 2, (row["y0"] + row["y1"] - 1) / 2).icrs
        assert centre.separation(expected).to_value("arcsec") < 0.01
    ellipse = regions[0]
    assert sorted([ellipse.width.to_value("arcsec"), ellipse.height.to_value("arcsec")]) == \
        pytest.approx([0.2, 0.3], abs=4e-3)  # 0.1"/px; CRTF keeps 1e-6 deg
    if suffix == ".reg":
        assert [r.meta.get("text") for r in regions] == ["1 photutils", "2 photutils"]
    else:
        assert [r.meta.get("label") for r in regions] == ["1 photutils", "2 photutils"]


def test_region_angle_follows_the_pixel_angle(catalog, cube):
    """pa is counter-clockwise from +x; back on the pixel grid the ellipse has that angle."""
    ellipse = catalog_regions(catalog, cube)[0].to_pixel(cube.celestial_wcs)
    assert ellipse.angle.to_value("deg") % 180 == pytest.approx(30.0, abs=0.01)
    assert (ellipse.width, ellipse.height) == pytest.approx((2.0, 3.0), abs=1e-3)
    boxes = catalog_regions(catalog, cube, shape="box")
    assert all(isinstance(r, RectangleSkyRegion) for r in boxes)
    box = boxes[0].to_pixel(cube.celestial_wcs)
    assert (box.width, box.height) == pytest.approx((9.0, 9.0), abs=1e-3)
    assert (box.center.x, box.center.y) == pytest.approx((12.0, 10.0), abs=1e-3)


def test_region_errors(catalog, cube, tmp_path):
    with pytest.raises(InputError, match=r"\.reg \(DS9\)"):
        write_regions(catalog, cube, tmp_path / "sources.txt")
    with pytest.raises(InputError, match="ellipse"):
        catalog_regions(catalog, cube, shape="circle")
    path = write_regions(catalog, cube, tmp_path / "sources.txt", format="crtf")
    assert path.read_text().startswith("#CRTF")
