"""Which axes of a FITS image make the cube: longitude, latitude and the spectral axis, in any
order and beside others (a Stokes axis, say), and the pixels seen as ``data[channel, y, x]``."""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

from pipeline.errors import InputError


def find_axes(wcs: WCS, name: str) -> dict:
    """FITS axis numbers (1-based) of longitude, latitude and the spectral axis."""
    w = wcs.wcs
    if w.lng < 0 or w.lat < 0:
        raise InputError(f"{name} has no celestial axes (RA/Dec) in its header (CTYPE: "
                         f"{', '.join(w.ctype)}). Open a sky cube.")
    spec = w.spec
    if spec < 0:
        raise InputError(
            f"{name} has no spectral axis (CTYPE: {', '.join(w.ctype)}). A cube needs a FREQ or "
            "velocity (VRAD, VOPT, VELO) axis.")
    return {"lon": w.lng + 1, "lat": w.lat + 1, "spectral": spec + 1}


def cube_pixels(data: np.ndarray, wcs: WCS, axes: dict, dims: list[int]) -> tuple[np.ndarray, WCS, list[str]]:
    """The pixels as (spectral, y, x), the first plane of every other axis; the 3-D WCS in the
    order (longitude, latitude, spectral); notes on the planes left out. ``dims``: NAXISn."""
    naxis = len(dims)
    notes = []
    # numpy axis order is the reverse of FITS's; pick one plane of every extra axis (e.g. Stokes)
    index = []
    for fits_axis in range(naxis, 0, -1):
        if fits_axis in axes.values():
            index.append(slice(None))
        else:
            if dims[fits_axis - 1] > 1:
                notes.append(f"axis {fits_axis} ({wcs.wcs.ctype[fits_axis - 1]}) has "
                             f"{dims[fits_axis - 1]} planes; showing the first")
            index.append(0)
    cube_data = data[tuple(index)]
    remaining = [a for a in range(naxis, 0, -1) if a in axes.values()]  # FITS axes, numpy order
    order = [remaining.index(axes[k]) for k in ("spectral", "lat", "lon")]
    cube_data = np.transpose(cube_data, order)
    cube_wcs = wcs.sub([axes["lon"], axes["lat"], axes["spectral"]])
    return cube_data, cube_wcs, notes
