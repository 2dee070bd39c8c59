"""A tiny cube (one line source at x, y, z = 10, 8, 6; beam 0.5" x 0.4" at 0.1"/px), a fresh
vetting database, and catalogues of candidates on the cube."""

import pytest

from pipeline.alma.catalog import make_catalog
from pipeline.alma.cube import open_cube
from pipeline.vetting.store import VettingStore


def source(x, y, z, snr, score=None, **extra):
    """A catalogue row at (x, y, z) with a 7 x 7 x 5 box."""
    row = dict(x=x, y=y, z=z, x0=int(x) - 3, y0=int(y) - 3, x1=int(x) + 4, y1=int(y) + 4, z0=int(z) - 2,
               z1=int(z) + 3, fwhm_x=1.0, fwhm_y=0.8, pa=10.0, flux=0.1 * snr, snr=snr, **extra)
    if score is not None:
        row["score"] = score
    return row


@pytest.fixture
def cube(make_cube):
    with open_cube(make_cube(layout="3d")) as opened:
        yield opened


@pytest.fixture
def store(tmp_path):
    return VettingStore(tmp_path / "vetting.sqlite")


@pytest.fixture
def catalog(cube):
    """make_catalog(rows, detector) on the tiny cube."""
    def make(rows, detector="photutils"):
        return make_catalog(rows, cube, detector)
    return make
