"""Beams as FITS files give them: the header's BMAJ/BMIN/BPA or a CASA ``BEAMS`` table, and
what makes one not a beam."""

from __future__ import annotations

import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np

from pipeline.alma.gaussian import gaussian_area


@dataclass(frozen=True)
class Beam:
    """A restoring (or dirty) beam: FWHM axes in arcsec, position angle in degrees east of north."""

    major_arcsec: float
    minor_arcsec: float
    pa_deg: float

    def area_pixels(self, pixel_arcsec: float) -> float:
        """Beam solid angle in pixels (Gaussian: pi / (4 ln 2) * major * minor)."""
        return gaussian_area(self.major_arcsec, self.minor_arcsec) / pixel_arcsec**2


def invalid_beam(major, minor, pa) -> str | None:
    """What is wrong with a beam given as (BMAJ, BMIN, BPA) values, e.g. "BMAJ = 0"; None if fine.
    Axes must be positive finite numbers (any unit), the angle a finite number."""
    for key, value, positive in (("BMAJ", major, True), ("BMIN", minor, True), ("BPA", pa, False)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"{key} = {value!r}"
        if not math.isfinite(number) or (positive and number <= 0):
            return f"{key} = {number:g}"
    return None


def beams_table(hdul) -> list[Beam] | None:
    if "BEAMS" not in hdul:
        return None
    table = hdul["BEAMS"].data
    cols = {c.name.upper(): c for c in hdul["BEAMS"].columns}
    if not {"BMAJ", "BMIN", "BPA"} <= set(cols):
        return None

    def to_arcsec(c):
        return (1 * u.Unit(cols[c].unit or "arcsec")).to_value(u.arcsec)

    rows = np.asarray(table)
    if "POL" in cols:
        rows = rows[np.asarray(table["POL"]) == 0]
    if "CHAN" in cols:
        rows = rows[np.argsort(rows["CHAN"], kind="stable")]
    fa, fb = to_arcsec("BMAJ"), to_arcsec("BMIN")
    return [Beam(float(r["BMAJ"]) * fa, float(r["BMIN"]) * fb, float(r["BPA"])) for r in rows]
