"""Galaxy sets: reading PNG/JPEG/FITS cutouts, the RGB mapping, and clear messages."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from PIL import Image

from pipeline.errors import InputError
from pipeline.oneshot.galaxies import GalaxySet, to_rgb


def write_set(folder, rows, images):
    (folder / "img").mkdir(exist_ok=True)
    for name, data in images.items():
        path = folder / "img" / name
        if name.endswith(".fits"):
            fits.PrimaryHDU(data).writeto(path)
        else:
            Image.fromarray(data).save(path)
    Table(rows=rows, names=list(rows[0].keys()) if isinstance(rows[0], dict) else None).write(
        folder / "catalog.csv", format="ascii.csv")
    return folder / "catalog.csv"


def galaxy(size=32, bands=3, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    blob = np.exp(-(xx**2 + yy**2) / 20)
    return np.stack([blob * (1 + b) + 0.01 * rng.normal(size=(size, size)) for b in range(bands)]).astype(np.float32)


def test_mixed_formats_become_rgb_of_one_size(tmp_path):
    rgb = (np.random.default_rng(0).uniform(0, 255, (32, 32, 3))).astype(np.uint8)
    images = {"a.png": rgb, "b.fits": galaxy(), "c.fits": galaxy(bands=1)[0], "d.png": rgb[:, :, 0],
              "e.jpg": np.zeros((48, 48, 3), np.uint8)}
    rows = [{"id": k.split(".")[0], "file": f"img/{k}", "bpt_class": c, "ring": int(c == "A"), "n_pix": 100 + i}
            for i, (k, c) in enumerate(zip(images, "ABABA", strict=True))]
    gs = GalaxySet.open(write_set(tmp_path, rows, images))
    assert len(gs) == 5 and gs.size == 32 and "1 of 5 cutouts" in gs.notes[0]
    batch = gs.rgb_batch(range(5))
    assert batch.shape == (5, 32, 32, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], rgb)
    assert (batch[2][..., 0] == batch[2][..., 1]).all()  # one band: grey
    # three bands: the reddest (last, brightest here) to red; the centre is bright, the sky dark
    assert batch[1][16, 16, 0] > batch[1][16, 16, 2] and batch[1][16, 16].max() > 200 and batch[1][0, 0].max() < 60
    # a 0/1 integer flag is a label; an integer that differs from galaxy to galaxy is not
    assert gs.label_columns == ["bpt_class", "ring"] and gs.row_of("c") == 2 and gs.ids[0] == "a"
    with pytest.raises(InputError, match="No galaxy with id 'zz'"):
        gs.row_of("zz")


@pytest.mark.parametrize("problem, message", [
    ("columns", "lacks the column"), ("duplicate", "repeats the id"), ("missing", "are missing"),
    ("broken", "Cannot read the image"), ("strip", "not a cutout"), ("empty", "no rows")])
def test_clear_messages(tmp_path, problem, message):
    images = {"a.fits": galaxy(), "b.fits": galaxy(seed=1)}
    rows = [{"id": "a", "file": "img/a.fits"}, {"id": "b", "file": "img/b.fits"}]
    if problem == "columns":
        rows = [{"name": "a", "file": "img/a.fits"}]
    elif problem == "duplicate":
        rows[1]["id"] = "a"
    elif problem == "missing":
        rows[1]["file"] = "img/nope.fits"
    elif problem == "strip":
        images["b.fits"] = np.zeros((10, 40), np.float32)
    path = write_set(tmp_path, rows, images)
    if problem == "broken":
        (tmp_path / "img" / "b.fits").write_text("not an image")
    if problem == "empty":
        path.write_text("id,file\n")
    with pytest.raises(InputError, match=message):
        GalaxySet.open(path)


def test_no_catalogue_says_what_to_give(tmp_path):
    with pytest.raises(InputError, match="columns id and file"):
        GalaxySet.open(tmp_path)
    assert to_rgb(np.zeros((2, 8, 8), np.float32)).shape == (8, 8, 3)  # blank bands do not divide by 0


def test_catalogue_with_comment_lines_or_as_votable(tmp_path):
    """Catalogues go through the one table reader: `# key: value` lines above the header (as this
    project's exports write them) are read as provenance, and a VOTable's integer ids become text."""
    images = {"a.fits": galaxy(), "b.fits": galaxy(seed=1)}
    path = write_set(tmp_path, [{"id": "007", "file": "img/a.fits"}, {"id": "008", "file": "img/b.fits"}], images)
    path.write_text("# made by: hand\n" + path.read_text())
    gs = GalaxySet.open(path)
    assert gs.ids == ["007", "008"]
    Table({"id": [7, 8], "file": ["img/a.fits", "img/b.fits"]}).write(tmp_path / "catalog.vot", format="votable")
    assert GalaxySet.open(tmp_path / "catalog.vot").ids == ["7", "8"]
