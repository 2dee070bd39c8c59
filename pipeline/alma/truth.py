"""The truth of simulated cubes: reading it, the paper's truth boxes, blends and line fluxes.

Conventions (those of ``pipeline.alma.simulate``): pixels and channels 0-based; boxes
``x0, y0, x1, y1, z0, z1`` inclusive-exclusive; sizes are FWHM in pixels along the source's own
axes; ``pa`` degrees counter-clockwise from +x.

- truth box (``truth_boxes``): the paper's rule computed analytically. The source's own
  integrated image (a unit-peak elliptical Gaussian in a square image of ``image_size_px``
  pixels) is thresholded at 3 standard deviations of that image; the box is the ellipse where
  the Gaussian exceeds that level, rounded to the pixel centres it covers. For 256 px and FWHM
  2-8 px the level is 2-7 % of the peak, i.e. the ellipse at 2.3-2.8 sigma (about 1.0-1.2 FWHM
  from the centre). Channels: ``z +- fwhm_z`` (the paper's emission range, peak +- FWHM).
- blended (``blended_flags``): a source is blended when another source of the same cube
  overlaps it on the sky (the distance between centres is less than the sum of the two
  half-power radii along the line joining them, i.e. their half-power ellipses overlap along
  that line) and in frequency (``|z_a - z_b| < (fwhm_z_a + fwhm_z_b) / 2``: their lines
  overlap above half power). Intrinsic sizes, not convolved with the beam.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from pipeline.alma.gaussian import FWHM_PER_SIGMA
from pipeline.errors import InputError
from pipeline.tables import float_column, read_table, require_columns

BOX_COLUMNS = ("x0", "y0", "x1", "y1", "z0", "z1")
TRUTH_COLUMNS = ("x", "y", "fwhm_x", "fwhm_y", "pa", "z", "fwhm_z")
PAPER_THRESHOLD_STD = 3.0  # the paper's truth box: integrated image above 3 std of itself


def read_truth(path) -> Table:
    """A truth table (CSV or VOTable): ``simulate``'s truth.csv, one row per true source with at
    least x, y and either the sizes (fwhm_x, fwhm_y, pa, z, fwhm_z) or the boxes."""
    return read_table(path, "truth")


def truth_for_cube(cube_path) -> Table | None:
    """The truth of one simulated cube, or None: ``<stem>_truth.csv`` beside it, or the rows of
    ``truth.csv`` in its folder whose ``cube`` is its file name (what ``simulate`` writes)."""
    cube_path = Path(cube_path)
    for candidate in (cube_path.with_name(cube_path.stem + "_truth.csv"), cube_path.parent / "truth.csv"):
        if candidate.is_file():
            table = read_truth(candidate)
            if "cube" in table.colnames:
                table = table[np.array([Path(str(name)).name == cube_path.name for name in table["cube"]], bool)]
            if len(table):
                return table
    return None


def truth_boxes(truth, image_size_px: int = 256) -> Table:
    """A copy of ``truth`` with integer box columns ``x0, y0, x1, y1, z0, z1`` (inclusive-exclusive).

    Needs x, y, fwhm_x, fwhm_y (FWHM, px), pa (deg), z, fwhm_z (channels). On the sky: the
    ellipse where the source's unit-peak Gaussian exceeds ``3 * std`` of its own image of
    ``image_size_px`` x ``image_size_px`` pixels (the paper's min-max normalised integrated image
    thresholded at 3 std; the std is the analytic one of an untruncated Gaussian), as the range
    of pixel centres its bounding box covers. In frequency: the channels within ``fwhm_z`` of
    ``z``. A box always holds the pixel and channel nearest the centre; boxes are clipped at 0
    but not at the far edges (the image size is not in the truth).
    """
    require_columns(truth, TRUTH_COLUMNS, "truth")
    if not image_size_px or image_size_px < 1:
        raise InputError(f"image_size_px must be a positive number of pixels, got {image_size_px!r}.")
    x, y, fx, fy, pa, z, fz = (float_column(truth, c, "truth") for c in TRUTH_COLUMNS)
    sig_a, sig_b = np.abs(fx) / FWHM_PER_SIGMA, np.abs(fy) / FWHM_PER_SIGMA
    pixels = float(image_size_px) ** 2
    mean = 2.0 * np.pi * sig_a * sig_b / pixels
    mean_square = np.pi * sig_a * sig_b / pixels
    level = PAPER_THRESHOLD_STD * np.sqrt(np.maximum(mean_square - mean**2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Gaussian >= level inside (along/sig_a)^2 + (across/sig_b)^2 <= k^2
        k = np.sqrt(2.0 * np.log(1.0 / np.clip(level, 1e-300, 1.0)))
    theta = np.radians(pa)
    half_x = k * np.hypot(sig_a * np.cos(theta), sig_b * np.sin(theta))
    half_y = k * np.hypot(sig_a * np.sin(theta), sig_b * np.cos(theta))

    out = Table(truth, copy=True)
    for axis, centre, half in (("x", x, half_x), ("y", y, half_y), ("z", z, np.abs(fz))):
        nearest = np.rint(centre)
        lo = np.maximum(np.minimum(np.ceil(centre - half), nearest), 0)
        hi = np.maximum(np.floor(centre + half) + 1, nearest + 1)
        out[f"{axis}0"] = _as_int(lo)
        out[f"{axis}1"] = _as_int(np.maximum(hi, lo + 1))
    return out


def truth_line_flux(truth, channel_width_kms: float) -> np.ndarray:
    """Integrated line flux (Jy km/s, the catalogue's ``flux``) of each simulated source:
    ``peak_jy_per_pix`` times the volume of its 3-D Gaussian,
    ``(pi / (4 ln 2))^1.5 * fwhm_x * fwhm_y * fwhm_z``, in pixels x channels, times the channel
    width in km/s (10 MHz at 230 GHz is 13.03 km/s). For line-only sources (the simulator's
    default); with a continuum, ``peak_jy_per_pix`` includes it and this is not the line's flux.
    """
    require_columns(truth, ("peak_jy_per_pix", "fwhm_x", "fwhm_y", "fwhm_z"), "truth")
    if not (channel_width_kms and np.isfinite(channel_width_kms) and channel_width_kms > 0):
        raise InputError(f"channel_width_kms must be a positive width in km/s, got "
                         f"{channel_width_kms!r}.")
    peak, fx, fy, fz = (float_column(truth, c, "truth")
                        for c in ("peak_jy_per_pix", "fwhm_x", "fwhm_y", "fwhm_z"))
    # a 3-D Gaussian's volume: gaussian.gaussian_area in x, y times its 1-D counterpart in z
    return (peak * (np.pi / (4.0 * np.log(2.0))) ** 1.5 * np.abs(fx * fy * fz)
            * channel_width_kms)


def blended_flags(truth) -> np.ndarray:
    """Boolean per row of ``truth``: True where another source of the same cube overlaps it on the
    sky and in frequency.

    Sky: centres closer than the sum of the two half-power radii along the line joining them
    (the half-power radius of an ellipse with FWHM a, b at angle t from its own x axis is
    ``1 / sqrt((2 cos t / a)^2 + (2 sin t / b)^2)``). Frequency: ``|z_a - z_b| < (fwhm_z_a +
    fwhm_z_b) / 2``. Sources that overlap on the sky but not in frequency count as isolated:
    focusing on each line's channels separates them.
    """
    require_columns(truth, TRUTH_COLUMNS, "truth")
    x, y, fx, fy, pa, z, fz = (float_column(truth, c, "truth") for c in TRUTH_COLUMNS)
    cubes = cube_names(truth, "truth") if "cube" in truth.colnames else np.full(len(truth), "")
    flags = np.zeros(len(truth), bool)
    for cube in np.unique(cubes):
        rows = np.flatnonzero(cubes == cube)
        if len(rows) < 2:
            continue
        dx = x[rows][None, :] - x[rows][:, None]  # [i, j]: from source i towards source j
        dy = y[rows][None, :] - y[rows][:, None]
        towards = np.arctan2(dy, dx)
        radius_i = _half_power_radius(fx[rows][:, None], fy[rows][:, None],
                                      towards - np.radians(pa[rows])[:, None])
        radius_j = _half_power_radius(fx[rows][None, :], fy[rows][None, :],
                                      towards - np.radians(pa[rows])[None, :])
        on_sky = np.hypot(dx, dy) < radius_i + radius_j
        in_frequency = np.abs(z[rows][:, None] - z[rows][None, :]) < (
            fz[rows][:, None] + fz[rows][None, :]) / 2.0
        overlap = on_sky & in_frequency
        np.fill_diagonal(overlap, False)
        flags[rows] = overlap.any(axis=1)
    return flags


def _half_power_radius(fwhm_a, fwhm_b, angle_rad):
    with np.errstate(divide="ignore"):
        return 1.0 / np.hypot(2.0 * np.cos(angle_rad) / fwhm_a, 2.0 * np.sin(angle_rad) / fwhm_b)


def cube_names(table, what) -> np.ndarray:
    """The base names of a table's ``cube`` column; InputError for an empty one."""
    column = table["cube"]
    if getattr(column, "mask", None) is not None and np.any(column.mask):
        raise InputError(f"Some rows of the {what} have an empty 'cube': give every row its cube's "
                         f"file name.")
    return np.array([Path(str(v)).name for v in column], dtype=object)


def _as_int(values):
    return np.asarray(values, float).astype(int)
