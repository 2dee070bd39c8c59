"""Candidates like this one: sidelobe-like copies of a bright line find each other first."""

import numpy as np

from pipeline.alma.catalog import make_catalog
from pipeline.alma.cube import open_cube
from pipeline.vetting.similar import SimilarCandidates, embed_candidates
from tests.vetting.conftest import source


def line_source(shape, x, y, z, peak, sigma_px=2.0, sigma_z=2.0):
    nchan, ny, nx = shape
    zz, yy, xx = np.mgrid[0:nchan, 0:ny, 0:nx]
    return peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_px**2) - (zz - z) ** 2 / (2 * sigma_z**2))


def test_copies_of_a_bright_line_are_each_others_nearest(make_cube):
    shape = (32, 64, 64)
    rng = np.random.default_rng(3)
    data = 0.05 * rng.standard_normal(shape)
    data += line_source(shape, 32, 32, 16, 5.0)  # the bright source
    for x, y in ((12, 12), (52, 14), (14, 50)):  # three faint copies of its line: sidelobe-like
        data += line_source(shape, x, y, 16, 0.6)
    data += line_source(shape, 50, 50, 6, 0.8, sigma_px=3.5, sigma_z=1.0)  # a real, different line
    with open_cube(make_cube(layout="3d", data=data, nx=64, ny=64, nchan=32)) as cube:
        rows = [source(32, 32, 16, 80), source(12, 12, 16, 9), source(52, 14, 16, 9), source(14, 50, 16, 9),
                source(50, 50, 6, 12), source(40, 8, 27, 4), source(6, 36, 3, 4)]  # the last two: noise
        candidates = make_catalog(rows, cube, "pipeline")
        done = []
        embeddings = embed_candidates(cube, candidates, progress=lambda d, t, s: done.append((d, t)))
    assert embeddings.shape[0] == 7 and np.isfinite(embeddings).all() and done[-1] == (7, 7)
    similar = SimilarCandidates(embeddings, [f"s{i}" for i in range(7)])
    nearest = similar.like("s1", k=3)
    assert {s for s, _ in nearest[:2]} == {"s2", "s3"}  # the other copies first
    cosines = dict(similar.like("s1", k=6))
    assert min(cosines["s2"], cosines["s3"]) > max(cosines["s4"], cosines["s5"], cosines["s6"]) + 0.2
    assert all(s != "s1" for s, _ in similar.like("s1", k=6))  # never itself
    assert [s for s, _ in similar.like("s2", k=2)] in (["s1", "s3"], ["s3", "s1"])
