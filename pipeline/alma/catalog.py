"""The source catalogue every finder writes: one row per source, its files and its regions.

Columns (:data:`CATALOG_COLUMNS`, in this order):

- ``id``: 1, 2, ... in the order the finder gave the sources;
- ``x, y``: centroid in pixels (0-based, the centre of the first pixel is 0); ``z``: channel of the
  line peak (0-based; may be fractional);
- ``x0, y0, x1, y1, z0, z1``: the box in pixels and channels, inclusive-exclusive
  (``data[z0:z1, y0:y1, x0:x1]`` is the source);
- ``ra, dec``: ICRS degrees at (x, y); ``freq``: Hz at channel z (NaN for a velocity cube without
  a rest frequency);
- ``fwhm_x, fwhm_y``: intrinsic FWHM in pixels along the source's own axes (deconvolved from the
  beam; 0 along an unresolved axis); ``pa``: angle of the source's x axis in degrees,
  counter-clockwise from the +x pixel axis, in [0, 90) (the ellipse (a, b, pa) is also
  (b, a, pa + 90); the catalogue keeps the one with pa in [0, 90), as the simulator's truth does);
  NaN for a round source (axis ratio >= ``ROUND_AXIS_RATIO``), whose angle means nothing (then
  fwhm_x is the major axis); ``fwhm_x_err, fwhm_y_err, pa_err``: their 1-sigma errors from the
  noise, and ``resolved``: whether the source is wider than the beam by more than those errors (if
  not, its sizes are upper limits, fwhm + 2 err), both from :mod:`pipeline.alma.uncertainties`;
- ``flux``: integrated line flux in Jy km/s, primary-beam corrected when the table says so (see
  below); ``pb``: the primary-beam response at the source, which the flux was divided by (0 outside
  the mapped area; NaN when no primary beam was given); ``snr``: peak signal-to-noise (the same
  either way: signal and noise scale alike); ``score``: the finder's confidence, higher is surer
  (ranks detections for precision-recall curves);
- ``blended``: the finder split this source from a neighbour it overlaps; ``sidelobe``,
  ``sidelobe_p``, ``sidelobe_of``: the sidelobe check (:mod:`pipeline.alma.sidelobes`): probably a
  sidelobe of detection ``sidelobe_of``, with that probability (such rows are dropped unless asked
  for; NaN: not checked); ``detector``: the finder's name.

Whether fluxes are primary-beam corrected is in the table's meta (``pb_corrected``; ``description``,
which a VOTable keeps as its own description) and in the flux column's description; a file without
meta tells by its ``pb`` column (finite: corrected). See :func:`set_flux_scale` and
:func:`pipeline.alma.companions.correct_fluxes`.

Files: CSV (values only; units are those of :data:`CATALOG_COLUMNS`) or VOTable (units and
descriptions kept), chosen by suffix. Files written before the ``pb`` column existed are read with
``pb`` NaN (uncorrected). Regions: DS9 or CASA CRTF through astropy ``regions``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from pipeline.alma.cube import Cube
from pipeline.atomic import atomic_write
from pipeline.errors import InputError
from pipeline.provenance import PROVENANCE
from pipeline.tables import read_table, table_format, write_table

#: (name, numpy dtype, unit, description) of every catalogue column, in file order
CATALOG_COLUMNS = (
    ("id", "int64", None, "source number, 1-based"),
    ("x", "float64", "pix", "centroid x, 0-based pixel"),
    ("y", "float64", "pix", "centroid y, 0-based pixel"),
    ("z", "float64", "chan", "channel of the line peak, 0-based"),
    ("x0", "int64", "pix", "box first x (inclusive)"),
    ("y0", "int64", "pix", "box first y (inclusive)"),
    ("x1", "int64", "pix", "box end x (exclusive)"),
    ("y1", "int64", "pix", "box end y (exclusive)"),
    ("z0", "int64", "chan", "first channel of the emission (inclusive)"),
    ("z1", "int64", "chan", "end channel of the emission (exclusive)"),
    ("ra", "float64", "deg", "right ascension (ICRS) at (x, y)"),
    ("dec", "float64", "deg", "declination (ICRS) at (x, y)"),
    ("freq", "float64", "Hz", "frequency at channel z"),
    ("fwhm_x", "float64", "pix", "intrinsic FWHM along the source's x axis (beam deconvolved)"),
    ("fwhm_y", "float64", "pix", "intrinsic FWHM along the source's y axis (beam deconvolved)"),
    ("pa", "float64", "deg",
     "source x axis, counter-clockwise from +x pixel axis, [0, 90); NaN: round, angle undefined"),
    ("fwhm_x_err", "float64", "pix", "1-sigma error of fwhm_x from the noise (Condon 1997); NaN: not estimated"),
    ("fwhm_y_err", "float64", "pix", "1-sigma error of fwhm_y from the noise (Condon 1997); NaN: not estimated"),
    ("pa_err", "float64", "deg", "1-sigma error of pa from the noise (Condon 1997); NaN: not estimated"),
    ("resolved", "bool", None, "observed major axis wider than the beam's by 2 errors; if not, sizes are "
                               "upper limits (fwhm + 2 err)"),
    ("flux", "float64", "Jy km / s", "integrated line flux"),
    ("pb", "float64", None, "primary-beam response at the source; 0 outside the mapped area; NaN: none given"),
    ("snr", "float64", None, "peak signal-to-noise"),
    ("score", "float64", None, "detector confidence, higher is surer"),
    ("blended", "bool", None, "split from an overlapping neighbour"),
    ("sidelobe", "bool", None, "probably a sidelobe of a brighter detection (kept only on request)"),
    ("sidelobe_p", "float64", None, "probability that it is a sidelobe; NaN: not checked"),
    ("sidelobe_of", "int64", None, "id of the brighter detection it would be a sidelobe of; 0: none"),
    ("p_false", "float64", None, "the share of the candidates at least this significant that the same search "
                                 "finds in the negated cube (detect --reliability); NaN: not measured"),
    ("detector", "str", None, "name of the finder"),
)
COLUMN_NAMES = tuple(c[0] for c in CATALOG_COLUMNS)
#: what a finder must give make_catalog; the rest is derived or has a default
REQUIRED_INPUT = ("x", "y", "z", "x0", "y0", "x1", "y1", "z0", "z1", "fwhm_x", "fwhm_y", "pa",
                  "flux", "snr")
_DERIVED = ("id", "ra", "dec", "freq", "detector")
#: columns a table may lack (older files, hand-made tables), with the value they are filled with
_OPTIONAL = {"pb": np.nan, "sidelobe": False, "sidelobe_p": np.nan, "sidelobe_of": 0, "fwhm_x_err": np.nan,
             "fwhm_y_err": np.nan, "pa_err": np.nan, "resolved": True, "p_false": np.nan}
#: how the flux column is described, by whether it is corrected for the primary beam
FLUX_UNCORRECTED = "flux: uncorrected for the primary beam (no primary-beam cube given; pb is NaN)"
FLUX_CORRECTED = "flux: primary-beam corrected (divided by pb, the primary-beam response at the source)"
_REGION_FORMATS = {".reg": "ds9", ".crtf": "crtf"}
#: a source whose minor / major axis ratio is at least this is round: its angle is undefined
#: (pa NaN); 0.9 is an ellipticity (major - minor) / (major + minor) of 0.05, which no finder
#: measures reliably at the signal-to-noise ratios of a detection
ROUND_AXIS_RATIO = 0.9


def empty_catalog() -> Table:
    """A catalogue with every column (dtype, unit, description) and no rows."""
    table = Table()
    for name, dtype, unit, description in CATALOG_COLUMNS:
        table[name] = np.zeros(0, dtype="U1" if dtype == "str" else dtype)
        table[name].unit = unit
        table[name].description = description
    return set_flux_scale(table, corrected=False)


def make_catalog(rows_or_columns, cube: Cube, detector: str) -> Table:
    """Build the catalogue of one finder's sources on ``cube`` (a :class:`~pipeline.alma.cube.Cube`).

    ``rows_or_columns``: a list of dicts (one per source), a dict of columns, or a Table, holding
    at least :data:`REQUIRED_INPUT`; ``score`` defaults to ``snr`` and ``blended`` to False.
    Fills ``ra, dec`` (ICRS) from the cube's celestial WCS at (x, y) and ``freq`` from its
    spectral axis at z (linear between channels), sets ``id`` 1..n in the given order and
    ``detector``, puts (fwhm_x, fwhm_y, pa) in the [0, 90) form and applies the units.
    """
    columns = _as_columns(rows_or_columns)
    missing = [c for c in REQUIRED_INPUT if c not in columns]
    if missing:
        raise InputError(f"Catalogue rows lack {', '.join(missing)}; a finder must give "
                         f"{', '.join(REQUIRED_INPUT)}.")
    n = len(np.atleast_1d(columns["x"]))
    table = empty_catalog()
    if n == 0:
        return table
    values = {name: np.broadcast_to(np.asarray(columns[name]), (n,)) for name in columns}
    values.setdefault("score", values["snr"])
    values.setdefault("blended", np.zeros(n, bool))
    values.setdefault("pb", np.full(n, np.nan))  # a finder measures on the image as it is
    for name in ("sidelobe", "sidelobe_p", "sidelobe_of", "p_false",  # until the sidelobe and reliability checks
                 "fwhm_x_err", "fwhm_y_err", "pa_err", "resolved"):  # until the errors (uncertainties.py)
        values.setdefault(name, np.full(n, _OPTIONAL[name]))
    x, y, z = (np.asarray(values[c], float) for c in ("x", "y", "z"))
    sky = SkyCoord.from_pixel(x, y, cube.celestial_wcs, origin=0).icrs
    values["ra"], values["dec"] = sky.ra.deg, sky.dec.deg
    values["freq"] = _frequency_at(cube, z)
    values["fwhm_x"], values["fwhm_y"], values["pa"] = canonical_ellipse(
        values["fwhm_x"], values["fwhm_y"], values["pa"])
    values["id"] = np.arange(1, n + 1)
    values["detector"] = np.full(n, str(detector))
    out = Table()
    for name, dtype, unit, description in CATALOG_COLUMNS:
        data = np.asarray(values[name])
        if dtype != "str":
            data = np.round(data) if dtype == "int64" and data.dtype.kind == "f" else data
            data = data.astype(dtype)
        out[name] = data
        out[name].unit = unit
        out[name].description = description
    return set_flux_scale(out, corrected=bool(np.isfinite(out["pb"]).any()))


def set_flux_scale(table: Table, corrected: bool, pb_limit: float | None = None) -> Table:
    """Record on ``table`` (in place; returned) whether its fluxes are primary-beam corrected:
    meta ``pb_corrected`` (and ``pb_limit``, the response below which a corrected flux is NaN),
    meta ``description`` (what a VOTable shows as its description) and the flux column's
    description, :data:`FLUX_CORRECTED` or :data:`FLUX_UNCORRECTED`."""
    note = FLUX_UNCORRECTED
    table.meta.pop("pb_limit", None)
    if corrected:
        note = FLUX_CORRECTED
        if pb_limit is not None:
            note += f"; NaN where pb < {pb_limit:g}, too weak a response to correct"
            table.meta["pb_limit"] = float(pb_limit)
    table.meta["pb_corrected"] = bool(corrected)
    table.meta["description"] = note
    if "flux" in table.colnames:
        table["flux"].description = "integrated line " + note
    return table


def canonical_ellipse(fwhm_x, fwhm_y, pa):
    """(fwhm_x, fwhm_y, pa) arrays in the form with pa in [0, 90) degrees, describing the same
    ellipse: an axis at pa >= 90 is the other axis turned by 90 degrees. A round source (minor
    / major axis at least ``ROUND_AXIS_RATIO``, or no size at all) has no angle: pa NaN, the
    major axis first."""
    fwhm_x, fwhm_y = np.array(fwhm_x, float), np.array(fwhm_y, float)
    pa = np.mod(np.asarray(pa, float), 180.0)
    turn = pa >= 90.0
    fwhm_x[turn], fwhm_y[turn] = fwhm_y[turn], fwhm_x[turn].copy()
    pa = np.where(turn, pa - 90.0, pa)
    major, minor = np.fmax(fwhm_x, fwhm_y), np.fmin(fwhm_x, fwhm_y)
    round_ = minor >= ROUND_AXIS_RATIO * major
    return np.where(round_, major, fwhm_x), np.where(round_, minor, fwhm_y), np.where(round_, np.nan, pa)


def write_catalog(table: Table, path) -> Path:
    """Write the catalogue atomically: CSV for ``.csv``, VOTable for ``.vot``, ``.xml``, ``.votable``;
    the catalogue's columns, and the ``cube`` column of a catalogue of several cubes."""
    path = Path(path)
    table_format(path)  # a wrong suffix is reported before the columns
    _check_columns(table, path.name)
    return write_table(with_optional_columns(table)[list(COLUMN_NAMES) + [c for c in ("cube",) if c in table.colnames]],
                       path)


def read_catalog(path) -> Table:
    """Read a catalogue written by :func:`write_catalog` (or by hand in its columns), CSV or VOTable.

    Returns the columns in :data:`CATALOG_COLUMNS` order with their dtypes and units, and the
    file's provenance in ``meta["provenance"]``. Raises :class:`InputError` when the file is
    missing, unreadable or lacks columns.
    """
    path = Path(path)
    # a CSV's columns are read as text first, so that an empty catalogue keeps its dtypes
    table = read_table(path, "catalogue", converters={
        name: [_converter(dtype)] for name, dtype, _, _ in CATALOG_COLUMNS})
    _check_columns(table, path.name)
    table = with_optional_columns(table)
    out = Table()
    for name, dtype, unit, description in CATALOG_COLUMNS:
        column = table[name]
        if hasattr(column, "filled"):  # a VOTable masks its NaNs: they are NaN again, not the fill value 1e20
            column = column.filled(np.nan) if dtype.startswith("float") else column.filled()
        data = np.asarray(column)
        if dtype == "bool" and data.dtype.kind in "US":
            data = np.char.lower(np.char.strip(data.astype(str))) == "true"
        out[name] = data.astype(str) if dtype == "str" else data.astype(dtype)
        out[name].unit = unit
        out[name].description = description
    if "cube" in table.colnames:  # a catalogue of several cubes
        out["cube"] = np.asarray(table["cube"]).astype(str)
        out["cube"].description = "the cube's file name"
    # a CSV keeps no meta: its pb column tells; a VOTable's description also holds the cutoff
    noted = " ".join(str(table.meta.get("description", "")).split())  # a VOTable wraps its lines
    limit = re.search(r"NaN where pb < ([0-9.eE+-]+)", noted)
    out = set_flux_scale(out, corrected=bool(np.isfinite(out["pb"]).any()) or noted.startswith(FLUX_CORRECTED),
                         pb_limit=float(limit.group(1)) if limit else None)
    if PROVENANCE in table.meta:
        out.meta[PROVENANCE] = table.meta[PROVENANCE]
    return out


def catalog_regions(table: Table, cube: Cube, shape: str = "ellipse"):
    """One sky region per source, as an astropy ``regions.Regions``.

    ``shape="ellipse"``: an EllipseSkyRegion at (x, y) whose axes are the intrinsic FWHMs
    (fwhm_x, fwhm_y) turned by pa; sources with a FWHM that is 0 (unresolved) or not finite
    get their box instead. ``shape="box"``: the box (x0..x1, y0..y1) as a RectangleSkyRegion.
    Shapes are made in pixels and mapped to the sky with the cube's celestial WCS, so the
    region's angle follows the ``regions`` convention (DS9's: counter-clockwise from the
    longitude axis); for an image with north up and east left the source's position angle
    east of north is ``pa + 90`` (mod 180). Each region's ``meta["text"]`` (DS9) and
    ``meta["label"]`` (CRTF) is ``"<id> <detector>"``.
    """
    from regions import EllipsePixelRegion, PixCoord, RectanglePixelRegion, Regions

    if shape not in {"ellipse", "box"}:
        raise InputError(f"Region shape must be 'ellipse' or 'box', not {shape!r}.")
    _check_columns(table, "the catalogue")
    wcs = cube.celestial_wcs
    out = []
    for row in table:
        text = f"{int(row['id'])} {row['detector']}"
        meta = {"text": text, "label": text}
        fwhm = np.array([row["fwhm_x"], row["fwhm_y"]], float)
        if shape == "ellipse" and np.all(np.isfinite(fwhm)) and np.all(fwhm > 0):
            region = EllipsePixelRegion(PixCoord(float(row["x"]), float(row["y"])),
                                        width=fwhm[0], height=fwhm[1],
                                        angle=float(np.nan_to_num(row["pa"])) * u.deg)  # NaN: round
        else:
            # the box covers pixels x0..x1-1, i.e. the edges x0 - 0.5 .. x1 - 0.5
            x0, x1, y0, y1 = (float(row[c]) for c in ("x0", "x1", "y0", "y1"))
            region = RectanglePixelRegion(PixCoord((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2),
                                          width=max(x1 - x0, 1.0), height=max(y1 - y0, 1.0))
        sky_region = region.to_sky(wcs)
        sky_region.meta.update(meta)
        out.append(sky_region)
    return Regions(out)


def write_regions(table: Table, cube: Cube, path, format: str | None = None, shape: str = "ellipse") -> Path:
    """Write the catalogue's regions (see :func:`catalog_regions`) atomically as a DS9 (``.reg``)
    or CASA CRTF (``.crtf``) file; ``format`` ("ds9" or "crtf") overrides the suffix."""
    path = Path(path)
    fmt = region_format(path, format)
    regions = catalog_regions(table, cube, shape)
    with atomic_write(path) as tmp:
        regions.write(str(tmp), format=fmt, overwrite=True)
    return path


def region_format(path, format: str | None = None) -> str:
    """The regions format of ``path``: "ds9" for ``.reg``, "crtf" for ``.crtf`` (``format``
    overrides the suffix). Refuses another name or a folder, so it can be checked before any work."""
    path = Path(path)
    fmt = format or _REGION_FORMATS.get(path.suffix.lower())
    if fmt not in {"ds9", "crtf"}:
        raise InputError(f"Cannot tell the region format of {path.name}: name it .reg (DS9) or "
                         ".crtf (CASA), or pass format='ds9' or 'crtf'.")
    if path.is_dir():
        raise InputError(f"{path} is a folder: give a file name for the regions (.reg or .crtf).")
    return fmt


def with_optional_columns(table: Table) -> Table:
    """``table``, or a copy with the optional columns it lacks (a table made by hand, or read from
    a file written before they existed) filled in with their defaults."""
    lacking = [c for c in _OPTIONAL if c not in table.colnames]
    if not lacking:
        return table
    table = table.copy(copy_data=False)
    for name in lacking:
        table[name] = np.full(len(table), _OPTIONAL[name])
    return table


# --- helpers ----------------------------------------------------------------------------------

def _as_columns(rows_or_columns) -> dict:
    if isinstance(rows_or_columns, Table):
        return {name: np.asarray(rows_or_columns[name]) for name in rows_or_columns.colnames}
    if isinstance(rows_or_columns, Mapping):
        return dict(rows_or_columns)
    rows = list(rows_or_columns)
    if not rows:
        return {name: np.zeros(0) for name in REQUIRED_INPUT}
    defaults = {"blended": lambda row: False, "score": lambda row: row.get("snr", np.nan)}
    names = set().union(*(row.keys() for row in rows)) - set(_DERIVED)
    # a column some rows lack is missing altogether, unless it has a per-row default
    names = {n for n in names if n in defaults or all(n in row for row in rows)}
    return {n: np.array([row[n] if n in row else defaults[n](row) for row in rows]) for n in names}


def _frequency_at(cube, z: np.ndarray) -> np.ndarray:
    freq = cube.frequency_hz
    if freq is None:
        return np.full(len(z), np.nan)
    if len(freq) == 1:
        return np.full(len(z), float(freq[0]))
    channels = np.arange(len(freq))
    # linear in the channel index, extrapolated from the end channels for z outside the band
    inside = np.interp(z, channels, freq)
    below = freq[0] + (z - 0) * (freq[1] - freq[0])
    above = freq[-1] + (z - channels[-1]) * (freq[-1] - freq[-2])
    return np.where(z < 0, below, np.where(z > channels[-1], above, inside))


def _check_columns(table: Table, name: str) -> None:
    missing = [c for c in COLUMN_NAMES if c not in table.colnames and c not in _OPTIONAL]
    if missing:
        raise InputError(f"{name} is not a source catalogue: it lacks the column(s) "
                         f"{', '.join(missing)}. A catalogue has {', '.join(COLUMN_NAMES)}.")


def _converter(dtype: str):
    from astropy.io.ascii import convert_numpy

    if dtype == "str" or dtype == "bool":
        return convert_numpy(str)
    return convert_numpy(np.dtype(dtype).type)
