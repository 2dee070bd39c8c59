"""Feature stores and galaxy sets with damaged, crafted or changing inputs (issue 9): builds
swapped in whole, inputs never overwritten, ids kept as text, stale features recomputed, damaged
files named, no Dask dashboard, oversized or non-cutout images and paths leading out refused."""

import os
import shutil
import socket
import struct
import threading
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from pipeline.errors import Cancelled, InputError
from pipeline.oneshot import features as feat
from pipeline.oneshot import store
from pipeline.oneshot.galaxies import GalaxySet, image_size, read_image

REBUILD = "python -m pipeline index"
# 32 px input, whole cutouts, no head: fast, still real features (views and head: test_views.py)
FAST = {"size": 32, "scheduler": "synchronous", "engine": "torch", "chunk": 2, "crop": "frame", "invariance": "none"}
STORE_FILES = ["features.npy", "catalog.csv", "index.faiss", "index.json", "top_rows.npy", "top_values.npy",
               "store.json"]


def cutout(seed: int, size: int = 16) -> np.ndarray:
    """An RGB uint8 cutout with its own look: a blob at a seed-dependent place and width."""
    yy, xx = np.mgrid[:size, :size]
    cx, cy, w = 3 + seed * 5 % (size - 6), 3 + seed * 3 % (size - 6), 2 + seed % 4
    grey = 255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * w**2))
    return np.stack([grey, grey * (seed % 3) / 2, grey[::-1]], axis=-1).astype(np.uint8)


def write_set(root, ids, seed=0, images="img", catalog_dir=None, lines=None):
    """Cutouts ``images/<k>.png`` and a catalogue (in ``catalog_dir``, default ``root``) naming
    them relative to the images folder when it is not the catalogue's, else to the catalogue's
    folder. ``lines``: the catalogue's text as given (ids exactly as written)."""
    (root / images).mkdir(parents=True, exist_ok=True)
    catalog_dir = root if catalog_dir is None else root / catalog_dir
    catalog_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"{images}/" if catalog_dir == root else ""
    for k in range(len(ids)):
        Image.fromarray(cutout(seed + k)).save(root / images / f"{k}.png")
    text = lines or "id,file,kind\n" + "".join(f"{i},{prefix}{k}.png,{'AB'[k % 2]}\n" for k, i in enumerate(ids))
    (catalog_dir / "catalog.csv").write_text(text)
    return catalog_dir / "catalog.csv"


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory):
    """Two stores of four galaxies each, from different images and ids (so every count agrees)."""
    root = tmp_path_factory.mktemp("stores")
    a = store.build_store(GalaxySet.open(write_set(root / "a", ["A0", "A1", "A2", "A3"])), root / "a-index", **FAST)
    b = store.build_store(GalaxySet.open(write_set(root / "b", ["B0", "B1", "B2", "B3"], seed=7)),
                          root / "b-index", **FAST)
    return a.folder, b.folder


def siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


# ---- 6: a build is swapped in whole ---------------------------------------------------------

def test_a_failed_rebuild_leaves_the_old_store_whole(tmp_path, monkeypatch):
    out = tmp_path / "idx"
    store.build_store(GalaxySet.open(write_set(tmp_path / "a", ["A0", "A1", "A2", "A3"])), out, **FAST)
    bigger = GalaxySet.open(write_set(tmp_path / "b", [f"B{k}" for k in range(6)], seed=5))
    from pipeline.oneshot import atlas

    def killed(*args, **kwargs):
        raise RuntimeError("killed while writing the top activations")

    monkeypatch.setattr(atlas, "top_activations", killed)
    with pytest.raises(RuntimeError, match="killed"):
        store.build_store(bigger, out, **FAST)
    old = store.FeatureStore.open(out)  # still the first build, whole
    assert list(old.catalog["id"]) == ["A0", "A1", "A2", "A3"]
    assert old.features.shape[0] == old.index.info.n == old.index.index.ntotal == 4
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    new = store.build_store(bigger, out, **FAST)  # resumes from the kept chunks, then swaps in
    assert list(new.catalog["id"]) == [f"B{k}" for k in range(6)] and new.index.info.n == 6
    assert siblings(out) == []  # no staging, parts or old folder left


@pytest.mark.parametrize("name", STORE_FILES)
def test_a_part_of_another_build_is_refused(two_stores, tmp_path, name):
    a, b = two_stores
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    shutil.copy(b / name, mixed / name)
    with pytest.raises(InputError, match=name.replace(".", r"\.")) as error:
        store.FeatureStore.open(mixed)
    assert REBUILD in str(error.value) and "Traceback" not in str(error.value)


def test_leftovers_of_a_killed_build_are_cleaned(two_stores, tmp_path):
    a, _ = two_stores
    out = tmp_path / "idx"
    shutil.copytree(a, out)
    (out / ".index.faiss.k3j2h1.tmp").write_bytes(b"half an index")
    (tmp_path / ".idx.old-dead").mkdir()
    (tmp_path / ".idx.build-dead").mkdir()
    (tmp_path / ".idx.build-dead" / "features.npy").write_bytes(b"half")
    store.FeatureStore.open(out)
    assert not (out / ".index.faiss.k3j2h1.tmp").exists() and not (tmp_path / ".idx.old-dead").exists()
    store.build_store(GalaxySet.open(a.parent / "a" / "catalog.csv"), out, **FAST)
    assert siblings(out) == []


# ---- 7: inputs are never written over; ids are text -------------------------------------------

@pytest.mark.parametrize("case", ["images folder", "holds the images", "holds the catalogue", "holds an image"])
def test_out_may_not_replace_an_input(tmp_path, case):
    if case == "images folder":  # the catalogue beside its images, --out that folder
        catalog = write_set(tmp_path, ["000005", "000006"], catalog_dir="img")
        galaxies, out = GalaxySet.open(catalog), tmp_path / "img"
    elif case == "holds the images":
        catalog = write_set(tmp_path / "set", ["000005", "000006"])
        galaxies, out = GalaxySet.open(catalog), tmp_path / "set"
    elif case == "holds the catalogue":
        catalog = write_set(tmp_path / "set", ["000005", "000006"], catalog_dir="cat")
        galaxies, out = GalaxySet.open(catalog, images_dir=tmp_path / "set" / "img"), tmp_path / "set" / "cat"
    else:  # --out inside the images folder, where some images are
        catalog = write_set(tmp_path / "set", ["000005", "000006"])
        (tmp_path / "set" / "img" / "sub").mkdir()
        shutil.move(tmp_path / "set" / "img" / "1.png", tmp_path / "set" / "img" / "sub" / "1.png")
        catalog.write_text(catalog.read_text().replace("img/1.png", "img/sub/1.png"))
        galaxies, out = GalaxySet.open(catalog), tmp_path / "set" / "img" / "sub"
    before = catalog.read_bytes()
    images = sorted(p for p in (tmp_path).rglob("*.png"))
    with pytest.raises(InputError, match="--out") as error:
        store.build_store(galaxies, out, **FAST)
    assert "new folder" in str(error.value)
    assert catalog.read_bytes() == before and sorted(tmp_path.rglob("*.png")) == images


def test_out_holding_other_files_is_kept(tmp_path):
    galaxies = GalaxySet.open(write_set(tmp_path / "set", ["a", "b"]))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    with pytest.raises(InputError, match="not a feature store"):
        store.build_store(galaxies, tmp_path / "mine", **FAST)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_ids_and_files_stay_text(tmp_path):
    text = "id,file,kind,z\n000005,img/0.png,AGN,0.25\n1.0,img/1.png,SF,0.5\n7,img/2.png,AGN,\n"
    galaxies = GalaxySet.open(write_set(tmp_path / "set", ["x", "y", "z"], lines=text))
    assert galaxies.ids == ["000005", "1.0", "7"] and galaxies.label_columns == ["kind"]
    assert galaxies.catalog["z"].dtype.kind == "f"  # other columns keep their types
    built = store.build_store(galaxies, tmp_path / "idx", **FAST)
    again = store.FeatureStore.open(tmp_path / "idx")
    assert list(built.catalog["id"]) == list(again.catalog["id"]) == ["000005", "1.0", "7"]
    assert again.row_of("000005") == 0 and again.row_of("1.0") == 1 and again.catalog["z"].dtype.kind == "f"
    assert list(again.galaxies.label_columns) == ["kind"]


def test_a_catalogue_without_an_id_is_refused(tmp_path):
    text = "id,file\n000005,img/0.png\n,img/1.png\n"
    with pytest.raises(InputError, match="no id"):
        GalaxySet.open(write_set(tmp_path / "set", ["x", "y"], lines=text))


# ---- 8: resume recomputes chunks whose images changed ------------------------------------------

def test_a_replaced_image_is_extracted_again_on_resume(tmp_path):
    galaxies = GalaxySet.open(write_set(tmp_path / "set", ["a", "b", "c", "d"]))
    stop = threading.Event()
    with pytest.raises(Cancelled):
        store.build_store(galaxies, tmp_path / "idx", progress=lambda d, t, stage: d >= 2 and stop.set(),
                          cancel=stop, **FAST)
    image = tmp_path / "set" / "img" / "0.png"
    Image.fromarray(cutout(11)).save(image)  # another galaxy under the same name
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    built = store.build_store(galaxies, tmp_path / "idx", **FAST)
    old, fresh = feat.extract(feat.load_backbone(), np.stack([cutout(0), cutout(11)]), size=32)
    assert not np.allclose(old, fresh, atol=1e-2)
    np.testing.assert_allclose(built.features[0], fresh, atol=1e-4)


# ---- 10: damaged files are named ----------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "garbled"])
@pytest.mark.parametrize("name", STORE_FILES)
def test_a_damaged_store_file_is_named(two_stores, tmp_path, name, damage):
    a, _ = two_stores
    damaged = tmp_path / "damaged"
    shutil.copytree(a, damaged)
    data = (damaged / name).read_bytes()
    if damage == "truncated":
        (damaged / name).write_bytes(data[:len(data) // 2])
    else:
        (damaged / name).write_bytes((b"\x00garbage\xff" * 5)[:40] + data[40:])
    with pytest.raises(InputError, match=name.replace(".", r"\.")) as error:
        store.FeatureStore.open(damaged)
    assert REBUILD in str(error.value)


def test_a_store_without_its_index_is_named(two_stores, tmp_path):
    a, _ = two_stores
    shutil.copytree(a, tmp_path / "idx")
    (tmp_path / "idx" / "index.faiss").unlink()
    with pytest.raises(InputError, match=r"index\.faiss"):
        store.FeatureStore.open(tmp_path / "idx")


def test_a_store_of_another_version_is_refused(two_stores, tmp_path):
    a, _ = two_stores
    shutil.copytree(a, tmp_path / "idx")
    meta = (tmp_path / "idx" / "store.json").read_text()
    (tmp_path / "idx" / "store.json").write_text(meta.replace(f'"version": {store.STORE_VERSION}', '"version": 1'))
    with pytest.raises(InputError, match="another version") as error:
        store.FeatureStore.open(tmp_path / "idx")
    assert REBUILD in str(error.value)


def test_the_cache_builds_a_store_again_when_it_cannot_open_it(two_stores, monkeypatch):
    a, _ = two_stores
    calls = []

    def copying(galaxies, folder, **options):  # a "build": the finished store copied in
        calls.append(folder)
        shutil.copytree(a, folder, dirs_exist_ok=True)
        return store.FeatureStore.open(folder)

    monkeypatch.setattr(store, "build_store", copying)
    galaxies = GalaxySet.open(a.parent / "a" / "catalog.csv")
    store.cached_store(galaxies, size=32)
    (calls[0] / "features.npy").write_bytes(b"")
    again = store.cached_store(galaxies, size=32)
    assert calls == [calls[0]] * 2 and again.features.shape[0] == 4


# ---- 13: no Dask dashboard --------------------------------------------------------------------

def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_local_build_starts_no_dashboard(tmp_path, monkeypatch):
    import dask.distributed

    galaxies = GalaxySet.open(write_set(tmp_path / "set", ["a", "b"]))
    busy_before = listening(8787)
    real, seen = dask.distributed.LocalCluster, {}

    class Seen(Exception):
        pass

    def watched(*args, **kwargs):  # the build's cluster, looked at as soon as it runs
        cluster = real(*args, **{**kwargs, "n_workers": 0})  # the dashboard is the scheduler's: no worker needed
        try:
            port = cluster.scheduler.http_server.port
            seen["8787"] = listening(8787)
            for page in ("/status", "/info/main/workers.html", "/json/identity.json", "/metrics", "/health"):
                try:
                    seen[page] = urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5).status
                except urllib.error.HTTPError as exc:
                    seen[page] = exc.code
        finally:
            cluster.close()
        raise Seen  # no need to extract anything: stop the build here

    monkeypatch.setattr(dask.distributed, "LocalCluster", watched)
    with pytest.raises(Seen):
        store.build_store(galaxies, tmp_path / "idx", size=32, engine="torch", scheduler="local", chunk=8)
    assert seen and (busy_before or not seen.pop("8787"))
    assert set(seen.values()) == {404}, seen  # the scheduler serves no page at all


# ---- images that are not galaxy cutouts -------------------------------------------------------

def png_header(path, width: int, height: int) -> None:
    """A PNG whose header claims width x height RGB pixels, followed by a few bytes of data: read
    only the header and it is an image of that size; decode it and it is truncated."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4000))
                     + chunk(b"IEND", b""))


def test_a_huge_png_is_refused_before_decoding(tmp_path):
    (tmp_path / "img").mkdir()
    png_header(tmp_path / "img" / "0.png", 12000, 12000)
    for read in (read_image, image_size):
        with pytest.raises(InputError, match="12000 x 12000 px.*pixels"):
            read(tmp_path / "img" / "0.png")
    (tmp_path / "catalog.csv").write_text("id,file\na,img/0.png\n")
    with pytest.raises(InputError, match="12000 x 12000"):
        GalaxySet.open(tmp_path / "catalog.csv")


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_a_huge_fits_is_refused_from_its_header(tmp_path):
    header = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", 100000), ("NAXIS2", 100000)])
    (tmp_path / "big.fits").write_bytes(header.tostring().encode())  # 2880 bytes claiming 40 GB
    for read in (read_image, image_size):
        with pytest.raises(InputError, match="100000 x 100000 px.*pixels"):
            read(tmp_path / "big.fits")


@pytest.mark.parametrize("case, message", [("all NaN", "no finite"), ("radio cube", "spectral"),
                                           ("eight bands", "8 bands")])
def test_a_fits_that_is_not_a_galaxy_cutout_is_refused(tmp_path, make_cube, case, message):
    path = tmp_path / "x.fits"
    if case == "all NaN":
        fits.PrimaryHDU(np.full((16, 16), np.nan, np.float32)).writeto(path)
    elif case == "radio cube":
        path = make_cube(layout="3d", nx=16, ny=16, nchan=12)
    else:
        fits.PrimaryHDU(np.ones((8, 16, 16), np.float32)).writeto(path)
    with pytest.raises(InputError, match=message):
        read_image(path)
    if case != "all NaN":  # the header tells: the set refuses it at once
        with pytest.raises(InputError, match=message):
            image_size(path)
    ugriz = np.random.default_rng(0).normal(size=(5, 16, 16)).astype(np.float32)
    fits.PrimaryHDU(ugriz).writeto(tmp_path / "ugriz.fits")
    assert read_image(tmp_path / "ugriz.fits").shape == (5, 16, 16)  # five bands: a cutout


# ---- paths lead nowhere outside the images folder ----------------------------------------------

@pytest.mark.parametrize("case", ["dot-dot", "absolute", "symlink"])
def test_image_paths_stay_inside_the_images_folder(tmp_path, case):
    catalog = write_set(tmp_path / "set", ["a", "b"])
    Image.fromarray(cutout(3)).save(tmp_path / "secret.png")
    if case == "dot-dot":
        file = "img/../../secret.png"
    elif case == "absolute":
        file = str(tmp_path / "secret.png")
    else:
        os.symlink(tmp_path / "secret.png", tmp_path / "set" / "img" / "link.png")
        file = "img/link.png"
    catalog.write_text(catalog.read_text().replace("img/1.png", file))
    with pytest.raises(InputError, match="outside"):
        GalaxySet.open(catalog)
    fine = GalaxySet.open(write_set(tmp_path / "other", ["a", "b"]))
    files = list(fine.catalog["file"])
    files[1] = file if case != "symlink" else "../set/img/link.png"
    fine.catalog["file"] = files
    with pytest.raises(InputError, match="outside"):
        fine.path(1)
    assert fine.path(0) == fine.folder / "img" / "0.png"
