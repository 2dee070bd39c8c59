"""A cube's candidates to vet: from detector runs (merged, with the detectors that found each) or
from a catalogue made elsewhere (CSV, VOTable, DS9 or CRTF regions), kept in the vetting store.

A candidate is known by its *source key*, given the first time it is stored: ``x<px>-y<px>-z<chan>``
of its position then. A later run, of the same detector or another, that finds a source within
:func:`match_tolerance` of a stored one (half the beam across, two channels along) gets that key,
so verdicts follow the source and not the run that found it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from pipeline.alma.catalog import CATALOG_COLUMNS, COLUMN_NAMES, empty_catalog, region_format, with_optional_columns
from pipeline.alma.cube import Cube
from pipeline.alma.measure import emission_range
from pipeline.errors import InputError, short_reason
from pipeline.provenance import file_sha256
from pipeline.tables import read_table
from pipeline.vetting.export import split_notes
from pipeline.vetting.store import CUBE_VERDICTS, VettingStore, check_reviewer, check_verdict

MATCH_CHANNELS = 2.0  # a stored source and a new candidate this many channels apart are one source
MIN_MATCH_PX = 1.5  # ... and this many pixels apart at least, however small the beam
#: names a catalogue made elsewhere may give its positions (lower case); the first found is used
RA_NAMES = ("ra", "raj2000", "ra_icrs", "ra_deg", "_raj2000", "alpha_j2000")
DEC_NAMES = ("dec", "dej2000", "decj2000", "de_icrs", "dec_deg", "_dej2000", "delta_j2000")
FREQ_NAMES = ("freq", "frequency", "freq_hz")
#: columns of a vetted catalogue that are read back with its candidates
VERDICT_COLUMNS = ("verdict", "verdicts", "reviewer", "note")
NOT_STORED = ("source", "detectors", *VERDICT_COLUMNS)  # columns a candidate's stored row leaves out
SHOWN_ROWS = 8  # rows named in a message about skipped rows
EDGE_SLACK_PX = 0.01  # a box edge this close to a pixel's edge is on it
MIN_REGION_BOX_PX = 3  # a region narrower than this gets a box a beam across


def cube_collection(cube: Cube) -> str:
    """The store's collection of ``cube``'s candidates: ``cube:`` and the SHA-256 of its file, so
    verdicts follow the data, whatever the file is called or wherever it lies."""
    return f"cube:{file_sha256(cube.path)}"


def match_tolerance(cube: Cube) -> tuple[float, float]:
    """(pixels, channels) within which a candidate is a source already stored: half the beam's
    FWHM (at least :data:`MIN_MATCH_PX`) and :data:`MATCH_CHANNELS`."""
    return max(MIN_MATCH_PX, cube.beam_radius_pixels()), MATCH_CHANNELS


def add_candidates(store: VettingStore, cube: Cube, catalog: Table, detector: str | None = None) -> Table:
    """Store ``catalog``'s rows as candidates of ``cube`` and return a copy with their ``source``
    keys and ``detectors`` (who found each, this run's ``detector`` or the row's added to what was
    stored). A row is matched one to one with the nearest stored source within
    :func:`match_tolerance`; an unmatched row becomes a new source."""
    collection = cube_collection(cube)
    store.name_collection(collection, cube.path.name, shape=list(cube.shape))
    table = with_optional_columns(catalog).copy()
    radius, channels = match_tolerance(cube)
    xyz = np.column_stack([np.asarray(table[c], float) for c in ("x", "y", "z")]) if len(table) else np.zeros((0, 3))

    def work(db):
        stored = store.sources(collection, db)
        keys = _assign(xyz, stored, radius, channels)
        found = []
        for row, key, (x, y, z) in zip(table, keys, xyz, strict=True):
            name = detector or str(row["detector"])
            store.put_source(db, collection, key, x, y, z, detectors=[name],
                             row={c: row[c] for c in table.colnames if c not in NOT_STORED})
            found.append(db.execute("SELECT detectors FROM sources WHERE collection = ? AND source = ?",
                                    (collection, key)).fetchone()[0])
        return keys, found

    keys, found = store.writing(work)
    table["source"] = np.array(keys, dtype=str) if keys else np.zeros(0, "U1")
    table["detectors"] = np.array(found, dtype=str) if found else np.zeros(0, "U1")
    table["source"].description = "the candidate's key in the vetting store"
    table["detectors"].description = "the detectors that found it"
    return table


def stored_candidates(store: VettingStore, cube: Cube) -> Table:
    """Every candidate stored for ``cube``, in the catalogue's columns plus ``source`` and
    ``detectors``, in the order they were first stored."""
    rows = store.sources(cube_collection(cube))
    table = empty_catalog()
    if rows:
        table = _catalog_from_columns({name: [r["row"].get(name) for r in rows] for name in COLUMN_NAMES}, len(rows))
    table["source"] = np.array([r["source"] for r in rows], dtype=str) if rows else np.zeros(0, "U1")
    table["detectors"] = np.array([",".join(r["detectors"]) for r in rows], dtype=str) if rows else np.zeros(0, "U1")
    return table


@dataclass
class Imported:
    """What :func:`read_candidates` made of a file: the candidates, and what it left out and why."""

    table: Table
    skipped: list[str] = field(default_factory=list)  # one line per reason

    @property
    def message(self) -> str:
        n = len(self.table)
        return f"{n} candidate{'s' if n != 1 else ''} read" + ("; " + "; ".join(self.skipped) if self.skipped else "")


def read_candidates(path, cube: Cube, detector: str = "imported") -> Imported:
    """Read a catalogue made elsewhere as candidates of ``cube``: a CSV or VOTable (by suffix),
    or DS9 (``.reg``) or CASA CRTF (``.crtf``) regions.

    Positions from ``x, y`` (0-based pixels of this cube) or from ``ra, dec`` in degrees (ICRS;
    also RAJ2000/DEJ2000 and the like). The channel from ``z``, else from ``freq`` (Hz), else
    the peak of the spectrum at the position (beam-sized aperture). A box (``x0 .. z1``) is
    kept when given, else drawn: a beam across the position and the channels of the line around
    its peak (:func:`pipeline.alma.measure.emission_range`). Other catalogue columns (flux,
    snr, score, ...) are kept; so are ``verdict``, ``reviewer`` and ``note`` of a vetted catalogue.
    Rows outside the cube, or for another cube (a ``cube`` column), are left out and said so.
    """
    path = Path(path)
    if path.suffix.lower() in (".reg", ".crtf"):
        columns, names = _columns_from_regions(path, cube), path.name
    else:
        raw = read_table(path, "catalogue")
        columns, names = {c: np.asarray(_filled(raw[c])) for c in raw.colnames}, path.name
        columns = {**columns, **_units_to_degrees(raw)}
    return _candidates(columns, cube, names, detector)


def import_candidates(store: VettingStore, cube: Cube, path, reviewer: str | None = None,
                      detector: str = "imported", via: str | None = None) -> tuple[Table, Imported, int]:
    """:func:`read_candidates`, stored with :func:`add_candidates`, and the verdicts of a vetted
    catalogue cast: each reviewer's from its ``verdicts`` column (``ann=real; bob=spurious``, as
    :func:`~pipeline.vetting.export.vetted_catalog` writes it), else its ``verdict`` column as its
    ``reviewer`` column (or ``reviewer``) says. With ``via`` (who brought the file, when its names
    cannot be taken on trust: an upload) another's name becomes "NAME via VIA".

    Every verdict, name and note is checked before anything is stored, and the verdicts are cast
    in one transaction. A verdict already in force (the same reviewer, verdict and note; for a name
    brought ``via`` someone, its own as well) is not cast again, so a file imported twice changes
    nothing. Returns the stored candidates, what was read, and the number of verdicts cast."""
    imported = read_candidates(path, cube, detector)
    wanted = _verdicts_in(imported.table, Path(path).name, reviewer, via)
    collection = cube_collection(cube)
    for _, name, verdict, note in wanted:
        check_reviewer(name)
        check_verdict(collection, verdict, note)
    stored = add_candidates(store, cube, imported.table, detector)
    in_force = store.latest(collection)
    casts = []
    for row, name, verdict, note in wanted:
        source = str(stored["source"][row])
        said = in_force.get(source, {})
        own = name.split(" via ")[0] if via else name
        if any((said.get(who, {}).get("verdict"), said.get(who, {}).get("note")) == (verdict, note)
               for who in (name, own)):
            continue  # a repeat, not a change
        casts.append((source, name, verdict, note, None))
    return stored, imported, store.cast_many(collection, casts)


def _verdicts_in(table: Table, name: str, reviewer: str | None, via: str | None) -> list[tuple]:
    """(row, reviewer, verdict, note) of each verdict a catalogue holds."""
    out = []
    columns = table.colnames
    if "verdicts" not in columns and "verdict" not in columns:
        return out
    for i, row in enumerate(table):
        note = str(row["note"]) if "note" in columns else ""
        note = "" if note in ("--", "nan") else note
        if "verdicts" in columns and str(row["verdicts"]).strip() not in NOT_A_VERDICT:
            pairs = [part.split("=", 1) for part in str(row["verdicts"]).split(";") if "=" in part]
            said = {who.strip(): verdict.strip().lower() for who, verdict in pairs if who.strip()}
        else:
            verdict = str(row["verdict"]).strip().lower() if "verdict" in columns else ""
            who = str(row["reviewer"]).strip() if "reviewer" in columns else ""
            names = [n.strip() for n in (who if who not in NOT_A_VERDICT else reviewer or "").split(",") if n.strip()]
            said = {} if verdict in NOT_A_VERDICT else dict.fromkeys(names, verdict)
        bad = sorted({v for v in said.values() if v not in CUBE_VERDICTS})
        if bad:
            raise InputError(f"Row {i + 1} of {name} has the verdict {bad[0]!r}: a verdict is one of "
                             f"{', '.join(CUBE_VERDICTS)} (or empty). Nothing was imported.")
        notes = split_notes(note, list(said))
        for who, verdict in said.items():
            out.append((i, f"{who} via {via}" if via and who != via else who, verdict, notes[who]))
    return out


NOT_A_VERDICT = ("", "disputed", "--", "nan")  # verdict cells an import passes over


# --- helpers ----------------------------------------------------------------------------------

def _assign(xyz: np.ndarray, stored: list[dict], radius: float, channels: float) -> list[str]:
    """One key per row of ``xyz``: the nearest unclaimed stored source within the tolerance (in
    order of distance), else a new key from the row's rounded position."""
    keys: list[str | None] = [None] * len(xyz)
    taken = {s["source"] for s in stored}
    if stored and len(xyz):
        old = np.array([[np.nan if s[c] is None else s[c] for c in ("x", "y", "z")] for s in stored], float)
        pairs = []
        for i, j in _close_pairs(xyz, old, radius, channels):
            d_xy = float(np.hypot(*(xyz[i, :2] - old[j, :2])))
            pairs.append((d_xy, abs(float(xyz[i, 2] - old[j, 2])), i, j))
        claimed = set()
        for _, _, i, j in sorted(pairs):
            if keys[i] is None and j not in claimed:
                keys[i] = stored[j]["source"]
                claimed.add(j)
    for i, (x, y, z) in enumerate(xyz):
        if keys[i] is None:
            base = f"x{_rounded(x)}-y{_rounded(y)}-z{_rounded(z)}"
            key, n = base, 1
            while key in taken:
                n += 1
                key = f"{base}-{n}"
            keys[i] = key
        taken.add(keys[i])
    return keys


def _close_pairs(new: np.ndarray, old: np.ndarray, radius: float, channels: float):
    """(i, j) of every new row i and stored row j within ``radius`` pixels and ``channels``
    channels: a k-d tree over positions (in units of the tolerance, so one ball of radius sqrt(2)
    holds every such pair), then each pair checked; 20,000 x 20,000 rows in well under a second."""
    from scipy.spatial import cKDTree

    scale = np.array([radius, radius, channels], float)
    finite_new, finite_old = np.isfinite(new).all(axis=1), np.isfinite(old).all(axis=1)
    new_rows, old_rows = np.flatnonzero(finite_new), np.flatnonzero(finite_old)
    if not len(new_rows) or not len(old_rows):
        return
    tree = cKDTree(old[old_rows] / scale)
    for a, near in enumerate(tree.query_ball_point(new[new_rows] / scale, r=np.sqrt(2.0) + 1e-9)):
        i = new_rows[a]
        for b in near:
            j = old_rows[b]
            if np.hypot(*(new[i, :2] - old[j, :2])) <= radius and abs(new[i, 2] - old[j, 2]) <= channels:
                yield i, j


def _rounded(value) -> str:
    return str(int(round(value))) if np.isfinite(value) else "nan"


def _filled(column):
    """A VOTable's masked column as plain values: NaN for numbers, "" for text."""
    if hasattr(column, "filled"):
        return column.filled(np.nan) if column.dtype.kind == "f" else column.filled("" if column.dtype.kind in "US"
                                                                                     else 0)
    return column


def _units_to_degrees(raw: Table) -> dict:
    """Position columns with an angle unit other than degrees (a VOTable's hours), in degrees."""
    out = {}
    for name in raw.colnames:
        unit = getattr(raw[name], "unit", None)
        if name.lower() in RA_NAMES + DEC_NAMES and unit is not None and unit.physical_type == "angle":
            out[name] = (np.asarray(_filled(raw[name]), float) * unit).to_value(u.deg)
    return out


def _find(columns: dict, names) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def _candidates(columns: dict, cube: Cube, name: str, detector: str) -> Imported:
    n = len(next(iter(columns.values()))) if columns else 0
    skipped: list[str] = []
    if "cube" in columns and n:  # a catalogue of several cubes: this cube's rows
        mine = np.char.strip(np.asarray(columns["cube"]).astype(str)) == cube.path.name
        if not mine.any():
            raise InputError(f"{name} lists sources of other cubes only (its cube column never says "
                             f"{cube.path.name}): import it on the cube it was made from.")
        if not mine.all():
            skipped.append(f"{int((~mine).sum())} rows of other cubes left out")
        columns = {k: np.asarray(v)[mine] for k, v in columns.items()}
        n = int(mine.sum())
    x, y = _positions(columns, cube, name)
    z = _channels(columns, cube)
    inside = (np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x < cube.nx - 0.5) & (y >= -0.5) & (y < cube.ny - 0.5)
              & (~np.isfinite(z) | ((z >= -0.5) & (z < cube.nchan - 0.5))))
    ids = np.asarray(columns["id"]) if "id" in columns else np.arange(1, n + 1)
    if not inside.any() and n:
        raise InputError(f"None of the {n} positions in {name} lies inside the cube {cube.path.name} "
                         f"({cube.nx} x {cube.ny} pixels, {cube.nchan} channels): is it the catalogue of another "
                         "field, or are its pixel positions 1-based or its coordinates not ICRS degrees?")
    if not inside.all():
        outside = [str(i) for i in ids[~inside][:SHOWN_ROWS]]
        more = ", ..." if (~inside).sum() > SHOWN_ROWS else ""
        skipped.append(f"{int((~inside).sum())} of {n} rows lie outside the cube and were left out "
                       f"(id {', '.join(outside)}{more})")
    columns = {k: np.asarray(v)[inside] for k, v in columns.items()}
    x, y, z = x[inside], y[inside], z[inside]
    columns["x"], columns["y"] = x, y
    missing_z = ~np.isfinite(z)
    half = max(2, math.ceil(2 * cube.beam_radius_pixels()))  # a beam FWHM across
    xi, yi = np.round(x).astype(int), np.round(y).astype(int)
    beam_box = {"x0": np.clip(xi - half, 0, cube.nx), "x1": np.clip(xi + half + 1, 0, cube.nx),
                "y0": np.clip(yi - half, 0, cube.ny), "y1": np.clip(yi + half + 1, 0, cube.ny)}
    # a box given is clipped to the cube; one not given (a point region), or empty once clipped, is
    # drawn a beam across
    given = {key: np.clip(_numbers(columns[key], key, name), 0, size) if key in columns else np.full(len(x), np.nan)
             for key, size in (("x0", cube.nx), ("x1", cube.nx), ("y0", cube.ny), ("y1", cube.ny))}
    usable = (np.isfinite(given["x0"]) & np.isfinite(given["x1"]) & np.isfinite(given["y0"]) & np.isfinite(given["y1"])
              & (given["x0"] < given["x1"]) & (given["y0"] < given["y1"]))
    for key, drawn in beam_box.items():
        columns[key] = np.where(usable, np.floor(given[key]) if key.endswith("0") else np.ceil(given[key]), drawn)
    # the channels of the line: as given (clipped) when they make a range, else found in the spectrum
    z0, z1 = (np.clip(_numbers(columns[key], key, name), 0, cube.nchan) if key in columns
              else np.full(len(x), np.nan) for key in ("z0", "z1"))
    has_range = np.isfinite(z0) & np.isfinite(z1) & (np.floor(z0) < np.ceil(z1))
    z0, z1 = np.where(has_range, np.floor(z0), 0), np.where(has_range, np.ceil(z1), cube.nchan)
    z = np.where(np.isfinite(z), np.clip(z, 0, cube.nchan - 1), np.nan)
    for i in np.flatnonzero(missing_z | ~has_range):
        spectrum = cube.spectrum(int(round(x[i])), int(round(y[i])), max(1.0, cube.beam_radius_pixels()))
        if not missing_z[i]:  # the line around the channel given
            z[i], z0[i], z1[i] = emission_range(spectrum, int(round(z[i])), int(round(z[i])))
        elif has_range[i]:  # the peak within the channels given
            z[i] = emission_range(spectrum, int(z0[i]), int(z1[i]) - 1)[0]
        else:
            z[i], z0[i], z1[i] = emission_range(spectrum, 0, cube.nchan - 1)
    columns["z"], columns["z0"], columns["z1"] = z, z0, z1
    columns["detector"] = np.asarray(columns["detector"]).astype(str) if "detector" in columns else \
        np.full(len(x), detector)
    columns["id"] = ids[inside] if np.issubdtype(np.asarray(ids).dtype, np.integer) else np.arange(1, len(x) + 1)
    table = _catalog_from_columns(columns, len(x))
    sky = SkyCoord.from_pixel(x, y, cube.celestial_wcs, origin=0).icrs if len(x) else None
    if sky is not None:
        table["ra"], table["dec"] = sky.ra.deg, sky.dec.deg
    if "freq" not in columns and cube.frequency_hz is not None and len(x):
        table["freq"] = np.interp(z, np.arange(cube.nchan), cube.frequency_hz)
    for extra in VERDICT_COLUMNS:
        if extra in columns:
            table[extra] = np.char.strip(np.asarray(columns[extra]).astype(str))
    return Imported(table, skipped)


def _positions(columns: dict, cube: Cube, name: str) -> tuple[np.ndarray, np.ndarray]:
    if "x" in columns and "y" in columns:
        return _numbers(columns["x"], "x", name), _numbers(columns["y"], "y", name)
    ra, dec = _find(columns, RA_NAMES), _find(columns, DEC_NAMES)
    if ra is None or dec is None:
        raise InputError(f"{name} has no positions: it needs columns ra and dec (ICRS degrees; RAJ2000 and "
                         f"DEJ2000 also do) or x and y (0-based pixels of this cube). Its columns are: "
                         f"{', '.join(list(columns)[:20]) or 'none'}.")
    ra_deg, dec_deg = _numbers(columns[ra], ra, name), _numbers(columns[dec], dec, name)
    ok = np.isfinite(ra_deg) & np.isfinite(dec_deg)
    x, y = np.full(len(ra_deg), np.nan), np.full(len(ra_deg), np.nan)
    if ok.any():
        sky = SkyCoord(ra_deg[ok] * u.deg, dec_deg[ok] * u.deg, frame="icrs")
        x[ok], y[ok] = cube.celestial_wcs.world_to_pixel(sky)
    return x, y


def _channels(columns: dict, cube: Cube) -> np.ndarray:
    n = len(next(iter(columns.values())))
    if "z" in columns:
        return _numbers(columns["z"], "z", "the catalogue")
    freq = _find(columns, FREQ_NAMES)
    if freq is not None and cube.frequency_hz is not None and cube.nchan > 1:
        hz = _numbers(columns[freq], freq, "the catalogue")
        channels = np.arange(cube.nchan, dtype=float)
        order = np.argsort(cube.frequency_hz)
        z = np.interp(hz, cube.frequency_hz[order], channels[order], left=np.nan, right=np.nan)
        # a frequency half a channel beyond either end is still that end channel's
        half = abs(cube.frequency_hz[1] - cube.frequency_hz[0]) / 2
        low, high = cube.frequency_hz.min() - half, cube.frequency_hz.max() + half
        edge = ~np.isfinite(z) & (hz >= low) & (hz <= high)
        z[edge] = np.where(np.abs(hz[edge] - cube.frequency_hz[0]) < np.abs(hz[edge] - cube.frequency_hz[-1]),
                           0, cube.nchan - 1)
        z[np.isfinite(hz) & ~np.isfinite(z)] = -1  # outside the band: outside the cube
        return z
    return np.full(n, np.nan)


def _numbers(values, column: str, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"Column {column} of {name} must hold numbers ({short_reason(exc)}).") from exc


def _catalog_from_columns(columns: dict, n: int) -> Table:
    """A catalogue Table of ``n`` rows from the ``columns`` given (None or missing: the column's
    blank: NaN, 0, False or "")."""
    table = empty_catalog()
    out = Table(meta=table.meta)
    for name, dtype, unit, description in CATALOG_COLUMNS:
        values = columns.get(name)
        blank = {"str": "", "bool": False}.get(dtype, np.nan if dtype.startswith("float") else 0)
        if name == "resolved":
            blank = True
        if values is None:
            data = np.full(n, blank, dtype="U1" if dtype == "str" else dtype)
        else:
            values = [blank if v is None else v for v in values]
            if dtype == "str":
                data = np.asarray(values).astype(str)
            elif dtype == "bool":
                data = np.array([str(v).strip().lower() in ("true", "1") if isinstance(v, str | np.str_) else bool(v)
                                 for v in values], bool)
            else:
                data = np.asarray(values, dtype=float)
                if dtype == "int64":
                    data = np.round(np.nan_to_num(data)).astype("int64")
        out[name] = data
        out[name].unit = unit
        out[name].description = description
    return out


def _columns_from_regions(path: Path, cube: Cube) -> dict:
    """Columns (x, y, x0, y0, x1, y1, id) of the regions in a DS9 or CRTF file: each region's
    centre and the box round it on this cube's pixels."""
    from regions import Regions, SkyRegion

    fmt = region_format(path)
    if not path.is_file():
        raise InputError(f"The regions file {path} does not exist: check the path.")
    try:
        with warnings.catch_warnings():  # a line it skips: what is left is checked below
            warnings.simplefilter("ignore")
            regions = Regions.read(str(path), format=fmt)
    except Exception as exc:  # the regions parser's own errors say which line
        raise InputError(f"{path.name} could not be read as {fmt.upper()} regions ({short_reason(exc)}).") from exc
    if not len(regions):
        raise InputError(f"{path.name} holds no regions: nothing to import.")
    columns: dict[str, list] = {c: [] for c in ("x", "y", "x0", "y0", "x1", "y1", "id")}
    wcs = cube.celestial_wcs
    for number, region in enumerate(regions, start=1):
        pixel = region.to_pixel(wcs) if isinstance(region, SkyRegion) else region
        centre = getattr(pixel, "center", None)
        edges = _pixel_edges(pixel)
        if centre is None and edges is not None:
            cx, cy = (edges[0] + edges[2] - 1) / 2, (edges[1] + edges[3] - 1) / 2
        elif centre is not None:
            cx, cy = float(centre.x), float(centre.y)
        else:
            cx = cy = np.nan
        if edges is None or min(edges[2] - edges[0], edges[3] - edges[1]) < MIN_REGION_BOX_PX:
            edges = (np.nan,) * 4  # a point, or a region smaller than a box can show: drawn a beam across
        columns["x"].append(cx)
        columns["y"].append(cy)
        for key, value in zip(("x0", "y0", "x1", "y1"), edges, strict=True):
            columns[key].append(value)
        text = str(region.meta.get("text") or region.meta.get("label") or "").split()
        columns["id"].append(int(text[0]) if text and text[0].isdigit() else number)
    out = {k: np.asarray(v, float) for k, v in columns.items()}
    out["id"] = np.asarray(columns["id"], int)
    for key, size in (("x0", cube.nx), ("x1", cube.nx), ("y0", cube.ny), ("y1", cube.ny)):
        out[key] = np.clip(out[key], 0, size)  # NaN stays NaN
    return out


def _pixel_edges(pixel) -> tuple | None:
    """(x0, y0, x1, y1) of the pixels a pixel region covers (ends exclusive). A rectangle's own
    corners are used, with a little slack, so that a box written by ``catalog_regions`` (sky
    coordinates rounded to 1e-8 degrees) reads back as the same pixels; else the region's
    bounding box; None when it has none (a point)."""
    corners = getattr(pixel, "corners", None)
    if corners is not None:
        xs, ys = zip(*corners, strict=True)
        return (math.floor(min(xs) + 0.5 + EDGE_SLACK_PX), math.floor(min(ys) + 0.5 + EDGE_SLACK_PX),
                math.ceil(max(xs) + 0.5 - EDGE_SLACK_PX), math.ceil(max(ys) + 0.5 - EDGE_SLACK_PX))
    try:
        box = pixel.bounding_box
    except (AttributeError, ValueError, NotImplementedError):
        return None
    return box.ixmin, box.iymin, box.ixmax, box.iymax
