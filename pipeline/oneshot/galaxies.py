"""Galaxy sets: a folder of image cutouts and a catalogue that names them.

A set is ``catalog.csv`` (columns ``id`` and ``file``, the image path relative to the catalogue's
folder; optionally ``ra``, ``dec`` in degrees and any label columns such as ``bpt_class``) and
the images: PNG or JPEG (RGB or grey), or FITS with one band or several (a 3-D primary array,
bands first, named by ``BAND1``, ``BAND2``... keywords, bluest first).

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from pipeline.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".fits", ".fit", ".fits.gz", ".fts")
LUPTON_Q = 4.0  # asinh softening: 10% of the white level maps to 43% grey, 1% to 7%
STRETCH_PERCENTILE = 99.5  # of the brightest band above the sky: mapped to white
LABEL_EXCLUDED = {"id", "file", "ra", "dec", "x", "y"}
PREPROCESSING_NOTE = (
    "FITS bands: the three reddest to R, G, B, sky (median) to black, Lupton asinh stretch "
    f"(Q = {LUPTON_Q:g}) scaled at the {STRETCH_PERCENTILE:g}th percentile; PNG/JPEG as they are.")


@dataclass
class GalaxySet:
    """A galaxy set read from its catalogue (see the module docstring).

    ``catalog``: astropy Table, ``id`` as strings, one row per image; ``folder``: where ``file``
    paths start; ``size``: the common cutout side (px); ``notes``: what was changed on the way
    (resized cutouts, dropped rows), for the user to see; ``name``: shown in the UI.
    """

    catalog: Table
    folder: Path
    size: int
    name: str
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, catalog_csv, images_dir=None, name: str | None = None, check_images: bool = True) -> "GalaxySet":
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
        try:
            catalog = Table.read(path, format="ascii.csv")
        except Exception as exc:  # astropy raises several kinds for a malformed CSV
            raise InputError(f"{path} is not a readable CSV catalogue ({exc}). Save it as "
                             "comma-separated text with a header line.") from None
        missing = {"id", "file"} - set(catalog.colnames)
        if missing:
            raise InputError(f"{path.name} lacks the column(s) {', '.join(sorted(missing))}; a galaxy "
                             "catalogue needs id (unique) and file (image path relative to the CSV).")
        if not len(catalog):
            raise InputError(f"{path.name} has no rows: nothing to search.")
        catalog["id"] = [str(v) for v in catalog["id"]]
        catalog["file"] = [str(v) for v in catalog["file"]]
        counts = collections.Counter(catalog["id"])
        duplicates = sorted(i for i, c in counts.items() if c > 1)
        if duplicates:
            raise InputError(f"{path.name} repeats the id(s) {', '.join(duplicates[:5])}"
                             f"{' ...' if len(duplicates) > 5 else ''}: every galaxy needs its own id.")
        folder = Path(images_dir) if images_dir is not None else path.parent
        if not folder.is_dir():
            raise InputError(f"The images folder {folder} does not exist.")
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
        return cls(catalog, folder, size, name or folder.name, notes)

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
        return self.folder / self.catalog["file"][row]

    def rgb(self, row: int, size: int | None = None) -> np.ndarray:
        """The cutout of ``row`` as RGB uint8 (size, size, 3), ``size`` default the set's."""
        return to_rgb(read_image(self.path(row)), size or self.size or None)

    def rgb_batch(self, rows, size: int | None = None) -> np.ndarray:
        """Several cutouts as one uint8 array (n, size, size, 3)."""
        return np.stack([self.rgb(int(r), size) for r in rows])

    @property
    def label_columns(self) -> list[str]:
        """Columns that can be counted as labels: text columns with 2-20 distinct values, or
        boolean ones (not the id, file or coordinates)."""
        labels = []
        for name in self.catalog.colnames:
            column = self.catalog[name]
            if name in LABEL_EXCLUDED:
                continue
            if column.dtype.kind in "USOb" and 2 <= len(set(column.tolist())) <= 20:
                labels.append(name)
        return labels


def image_size(path: Path) -> int:
    """Side (px) of a cutout, from its header only; InputError when unreadable or not square
    enough to be a cutout of one galaxy (more than 2:1)."""
    try:
        if _is_fits(path):
            with fits.open(path) as hdul:
                shape = next(h.shape for h in hdul if h.shape)
            ny, nx = shape[-2:]
        else:
            from PIL import Image

            with Image.open(path) as im:
                nx, ny = im.size
    except Exception as exc:  # PIL and astropy raise many kinds for a broken file
        raise InputError(f"Cannot read the image {path} ({type(exc).__name__}: {exc}). Give PNG, "
                         "JPEG or FITS cutouts.") from None
    if max(nx, ny) > 2 * min(nx, ny):
        raise InputError(f"{path} is {nx} x {ny} px: not a cutout of one galaxy. Cut square images.")
    return int(max(nx, ny))


def read_image(path) -> np.ndarray:
    """An image as float32 (bands, ny, nx) for FITS or uint8 (ny, nx, 3) for PNG/JPEG."""
    path = Path(path)
    try:
        if _is_fits(path):
            with fits.open(path) as hdul:
                hdu = next(h for h in hdul if h.data is not None)
                data = np.asarray(hdu.data, np.float32)
            return data[None] if data.ndim == 2 else data.reshape(-1, *data.shape[-2:])
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except InputError:
        raise
    except Exception as exc:
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


def _is_fits(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".fits", ".fit", ".fts", ".fits.gz", ".fz"))
