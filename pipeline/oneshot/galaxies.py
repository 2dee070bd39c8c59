"""Galaxy sets: a folder of image cutouts and a catalogue that names them.

A set is ``catalog.csv`` (columns ``id`` and ``file``, the image path relative to the catalogue's
folder; optionally ``ra``, ``dec`` in degrees and any label columns such as ``bpt_class``) and
the images: PNG or JPEG (RGB or grey), or FITS with one band or several (a 3-D primary array,
bands first, named by ``BAND1``, ``BAND2``... keywords, bluest first).

Ids and file names are text exactly as written (``000005`` stays ``000005``). Every image must lie
inside the images folder (no ``..``, absolute paths or links leading out). Images are checked from
their headers before any pixel is decoded: at most ``MAX_IMAGE_PIXELS`` pixels (width x height)
and ``MAX_BANDS`` bands; a FITS with a spectral axis (a radio cube) or no finite pixel is refused.

Every image becomes an RGB uint8 array before the network sees it (:func:`to_rgb`):

- PNG / JPEG: used as they are (grey copied into the three channels).
- FITS, several bands: the three reddest go to R, G, B (e.g. i, r, g: the SDSS colour images'
  mapping) through astropy's Lupton asinh stretch (Lupton et al. 2004), the same stretch for all
  bands so colours are kept; each band's median (the sky) maps to black and ``STRETCH_PERCENTILE``
  of the brightest band to white, so faint and bright galaxies both fill the range.
- FITS, one band: the same stretch, grey.

Cutouts of a size different from the most common one are resized to it (bilinear) and the set
says so in ``notes``.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from pipeline.errors import InputError
from pipeline.tables import read_table

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".fits", ".fit", ".fits.gz", ".fts")
LUPTON_Q = 4.0  # asinh softening: 10% of the white level maps to 43% grey, 1% to 7%
STRETCH_PERCENTILE = 99.5  # of the brightest band above the sky: mapped to white
LABEL_EXCLUDED = {"id", "file", "ra", "dec", "x", "y"}
TEXT_COLUMNS = ("id", "file")  # read as written, never as numbers
# A galaxy cutout is tens to hundreds of pixels a side; 4096 x 4096 leaves room for hand-cut
# mosaics while one image stays small once decoded (50 MB as RGB, 335 MB as 5 float32 bands).
# Checked from the header, so a small file claiming a huge image is refused without decoding it.
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_BANDS = 5  # u, g, r, i, z: more planes than that is a cube, not a cutout
# FITS WCS spectral axis types (Greisen et al. 2006) and the older AIPS ones (FELO, VELO-...)
SPECTRAL_CTYPES = ("FREQ", "ENER", "WAVN", "VRAD", "WAVE", "VOPT", "ZOPT", "AWAV", "VELO", "BETA", "FELO")
PREPROCESSING_NOTE = (
    "FITS bands: the three reddest to R, G, B, sky (median) to black, Lupton asinh stretch "
    f"(Q = {LUPTON_Q:g}) scaled at the {STRETCH_PERCENTILE:g}th percentile; PNG/JPEG as they are.")


@dataclass
class GalaxySet:
    """A galaxy set read from its catalogue (see the module docstring).

    ``catalog``: astropy Table, ``id`` and ``file`` as strings, one row per image; ``folder``:
    where ``file`` paths start (reads never leave it); ``size``: the common cutout side (px);
    ``notes``: what was changed on the way (resized cutouts, dropped rows), for the user to see;
    ``name``: shown in the UI; ``source``: the catalogue file it was read from, if any.
    """

    catalog: Table
    folder: Path
    size: int
    name: str
    notes: list[str] = field(default_factory=list)
    source: Path | None = None

    @classmethod
    def open(cls, catalog_csv, images_dir=None, name: str | None = None, check_images: bool = True) -> GalaxySet:
        """Read ``catalog_csv`` and check it: required columns, unique ids, every file present
        (paths relative to ``images_dir``, default the catalogue's folder). With
        ``check_images`` each image's header is read (readable, its size) - cheap for PNG and
        FITS, no pixels are decoded."""
        path = Path(catalog_csv)
        if path.is_dir():
            path = path / "catalog.csv"
        if not path.is_file():
            raise InputError(f"No galaxy catalogue at {path}: give a CSV with columns id and file "
                             "(image paths relative to the CSV's folder).")
        catalog = read_catalog(path)
        folder = Path(images_dir) if images_dir is not None else path.parent
        if not folder.is_dir():
            raise InputError(f"The images folder {folder} does not exist.")
        root = os.path.realpath(folder)
        outside = [f for f in catalog["file"] if not _inside(root, folder / f)]
        if outside:
            raise InputError(f"{len(outside)} image path(s) in {path.name} lead outside the images folder "
                             f"{folder}, e.g. {outside[0]!r}. Give paths relative to that folder and inside "
                             "it (no '..', absolute paths or links leading out), or copy the images into it.")
        absent = [f for f in catalog["file"] if not (folder / f).is_file()]
        if absent:
            raise InputError(f"{len(absent)} image(s) named in {path.name} are missing, e.g. "
                             f"{folder / absent[0]}. Fix the file column (paths relative to {folder}) "
                             "or copy the images.")
        sizes = [image_size(folder / f) for f in catalog["file"]] if check_images else []
        size = collections.Counter(sizes).most_common(1)[0][0] if sizes else 0
        notes = []
        odd = sum(s != size for s in sizes)
        if odd:
            notes.append(f"{odd} of {len(sizes)} cutouts are not {size} x {size} px: resized to it.")
        return cls(catalog, folder, size, name or folder.name, notes, path)

    def __len__(self) -> int:
        return len(self.catalog)

    @property
    def ids(self) -> list[str]:
        return list(self.catalog["id"])

    def row_of(self, galaxy_id) -> int:
        """Row number of ``galaxy_id`` (InputError when absent)."""
        rows = np.flatnonzero(self.catalog["id"] == str(galaxy_id))
        if not len(rows):
            raise InputError(f"No galaxy with id {galaxy_id!r} in {self.name}; ids look like "
                             f"{str(self.catalog['id'][0])!r}.")
        return int(rows[0])

    def path(self, row: int) -> Path:
        """The image file of ``row``; InputError when its path leads outside ``folder``."""
        path = self.folder / str(self.catalog["file"][row])
        if not _inside(self._root, path):
            raise InputError(f"The image of {self.catalog['id'][row]} ({self.catalog['file'][row]}) lies outside "
                             f"the images folder {self.folder}: give paths inside that folder.")
        return path

    @functools.cached_property
    def _root(self) -> str:
        return os.path.realpath(self.folder)

    def rgb(self, row: int, size: int | None = None) -> np.ndarray:
        """The cutout of ``row`` as RGB uint8 (size, size, 3), ``size`` default the set's."""
        return to_rgb(read_image(self.path(row)), size or self.size or None)

    def rgb_batch(self, rows, size: int | None = None) -> np.ndarray:
        """Several cutouts as one uint8 array (n, size, size, 3)."""
        return np.stack([self.rgb(int(r), size) for r in rows])

    @property
    def label_columns(self) -> list[str]:
        """Columns that can be counted as labels (not the id, file or coordinates): text or
        boolean columns with 2-20 distinct values, and integer ones whose 2-20 values are class
        codes, each shared by two galaxies on average (a 0/1 flag such as Galaxy Zoo's ``ring``,
        Galaxy10's class numbers; not a count that differs from galaxy to galaxy)."""
        labels = []
        for name in self.catalog.colnames:
            column = self.catalog[name]
            if name in LABEL_EXCLUDED or column.dtype.kind not in "USObiu":
                continue
            distinct = len(set(column.tolist()))
            if 2 <= distinct <= 20 and (column.dtype.kind not in "iu" or distinct <= len(column) / 2):
                labels.append(name)
        return labels


def read_catalog(path) -> Table:
    """A galaxy catalogue (CSV or VOTable, read by :func:`pipeline.tables.read_table`) as a Table:
    ``id`` and ``file`` as text exactly as written (other columns typed as astropy reads them);
    InputError when it is unreadable, lacks those columns, has no rows, or has an empty or
    repeated id or an empty file."""
    path = Path(path)
    catalog = read_table(path, "galaxy catalogue", converters={name: str for name in TEXT_COLUMNS})
    for name in set(TEXT_COLUMNS) & set(catalog.colnames):
        if catalog[name].dtype.kind not in "US":  # a VOTable's integer ids
            catalog[name] = catalog[name].astype(str)
    missing = set(TEXT_COLUMNS) - set(catalog.colnames)
    if missing:
        raise InputError(f"{path.name} lacks the column(s) {', '.join(sorted(missing))}; a galaxy "
                         "catalogue needs id (unique) and file (image path relative to the CSV).")
    if not len(catalog):
        raise InputError(f"{path.name} has no rows: nothing to search.")
    for name in TEXT_COLUMNS:
        column = catalog[name]
        blank = np.flatnonzero(np.ma.getmaskarray(column) | (np.char.strip(np.asarray(column, str)) == ""))
        if len(blank):
            raise InputError(f"{path.name}: {len(blank)} row(s) have no {name}, e.g. data row {blank[0] + 1}: "
                             f"give every galaxy its {'own id' if name == 'id' else 'image file'}.")
        catalog[name] = np.asarray(column, str)
    counts = collections.Counter(catalog["id"])
    duplicates = sorted(i for i, c in counts.items() if c > 1)
    if duplicates:
        raise InputError(f"{path.name} repeats the id(s) {', '.join(duplicates[:5])}"
                         f"{' ...' if len(duplicates) > 5 else ''}: every galaxy needs its own id.")
    return catalog


def image_size(path: Path) -> int:
    """Side (px) of a cutout, from its header only; InputError when unreadable or not square
    enough to be a cutout of one galaxy (more than 2:1)."""
    try:
        if _is_fits(path):
            with fits.open(path) as hdul:
                _, ny, nx = _fits_image(hdul, path).shape
        else:
            with _open_picture(path) as im:
                nx, ny = im.size
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 -- PIL and astropy raise many kinds for a broken file
        raise InputError(f"Cannot read the image {path} ({type(exc).__name__}: {exc}). Give PNG, "
                         "JPEG or FITS cutouts.") from None
    if max(nx, ny) > 2 * min(nx, ny):
        raise InputError(f"{path} is {nx} x {ny} px: not a cutout of one galaxy. Cut square images.")
    return int(max(nx, ny))


def read_image(path) -> np.ndarray:
    """An image as float32 (bands, ny, nx) for FITS or uint8 (ny, nx, 3) for PNG/JPEG; InputError
    for an image that is not a galaxy cutout (see the module docstring), checked before decoding."""
    path = Path(path)
    try:
        if _is_fits(path):
            with fits.open(path) as hdul:
                image = _fits_image(hdul, path)
                data = np.asarray(image.hdu.data, np.float32).reshape(image.shape)
            if not np.isfinite(data).any():
                raise InputError(f"{path} holds no finite pixel value (all NaN or blank): give a cutout with data.")
            return data
        with _open_picture(path) as im:
            return np.asarray(im.convert("RGB"))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 -- PIL and astropy raise many kinds for a broken file
        raise InputError(f"Cannot read the image {path} ({type(exc).__name__}: {exc}). Give PNG, "
                         "JPEG or FITS cutouts.") from None


def to_rgb(image: np.ndarray, size: int | None = None) -> np.ndarray:
    """RGB uint8 (size, size, 3) from :func:`read_image`'s output (see the module docstring)."""
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        rgb = image
    else:
        bands = np.nan_to_num(np.asarray(image, np.float32))
        red, green, blue = (bands[-1], bands[-2], bands[-3]) if len(bands) >= 3 else (bands[0],) * 3
        rgb = lupton_rgb(red, green, blue)
    if size and rgb.shape[:2] != (size, size):
        from PIL import Image

        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))
    return rgb


def lupton_rgb(red, green, blue) -> np.ndarray:
    """astropy's Lupton asinh RGB with each band's median at black and the ``STRETCH_PERCENTILE``
    of the summed intensity at white (asinh(Q I / s) / Q = 1 at it: s = I Q / sinh Q)."""
    from astropy.visualization import LuptonAsinhStretch, ManualInterval, make_lupton_rgb

    planes = [np.asarray(p, np.float32) - np.median(p) for p in (red, green, blue)]
    white = max(float(np.percentile(np.mean(planes, axis=0), STRETCH_PERCENTILE)), 1e-12)
    scale = white * LUPTON_Q / np.sinh(LUPTON_Q)
    with np.errstate(invalid="ignore", divide="ignore"):  # blank images: 0 / 0 inside astropy
        return make_lupton_rgb(*planes, interval=ManualInterval(vmin=0.0),
                               stretch_object=LuptonAsinhStretch(stretch=scale, Q=LUPTON_Q))


@dataclass
class _FitsImage:
    hdu: object
    shape: tuple[int, int, int]  # bands, ny, nx


def _fits_image(hdul, path: Path) -> _FitsImage:
    """The first image HDU with at least two axes, checked from its header (no data read): size,
    bands, no spectral axis."""
    hdu = next((h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2), None)
    if hdu is None:
        raise InputError(f"{path} holds no image (no HDU with two or more axes). Give PNG, JPEG or FITS cutouts.")
    header = hdu.header
    naxis = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, header["NAXIS"] + 1)]
    for i, n in enumerate(naxis[2:], start=3):
        ctype = str(header.get(f"CTYPE{i}", "")).upper()
        if n > 1 and ctype[:4] in SPECTRAL_CTYPES:
            raise InputError(f"{path} is a spectral cube (axis {i} is {ctype.strip()}, {n} channels), not a galaxy "
                             "cutout: open it in the cube explorer, or give an image of one or a few bands.")
    nx, ny = naxis[:2]
    _check_pixels(path, nx, ny)
    bands = math.prod(naxis[2:])
    if bands > MAX_BANDS:
        raise InputError(f"{path} has {bands} bands (planes): a galaxy cutout has 1 to {MAX_BANDS}. Give the "
                         "cutout's bands only (e.g. g, r, i), bluest first.")
    return _FitsImage(hdu, (bands, ny, nx))


def _open_picture(path: Path):
    """A PNG/JPEG opened with PIL, its header read and its size checked; pixels not decoded yet."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            im = Image.open(path)
    except Image.DecompressionBombError:
        raise InputError(f"{path} is larger than {MAX_IMAGE_PIXELS:,} pixels: not a galaxy cutout. Cut the "
                         "galaxy out (a few hundred pixels a side) and give that.") from None
    try:
        _check_pixels(path, *im.size)
    except InputError:
        im.close()
        raise
    return im


def _check_pixels(path: Path, nx: int, ny: int) -> None:
    if nx * ny > MAX_IMAGE_PIXELS:
        raise InputError(f"{path} is {nx} x {ny} px: more than the {MAX_IMAGE_PIXELS:,} pixels a galaxy cutout "
                         "may have. Cut the galaxy out (a few hundred pixels a side) and give that.")


def _inside(root: str, path: Path) -> bool:
    """Whether ``path``, links followed, lies inside the folder ``root`` (a ``realpath``)."""
    real = os.path.realpath(path)
    return real != root and os.path.commonpath([root, real]) == root


def _is_fits(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".fits", ".fit", ".fts", ".fits.gz", ".fz"))
