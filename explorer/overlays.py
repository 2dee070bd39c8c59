"""Shapes drawn over a cube's images in pixel coordinates: boxes and circles, as HoloViews elements
(the cube tab's detections and the lessons' use them)."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd


def rectangles(rows) -> hv.Rectangles:
    """Boxes (x0, y0, x1, y1, colour, id) as typed columns, so that an empty set of boxes has the
    same column types as a full one (a redraw from one to the other must not mix them)."""
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 6
    names = ("x0", "y0", "x1", "y1", "colour", "id")
    types = (float, float, float, float, str, int)
    data = pd.DataFrame({name: np.asarray(values, dtype)
                         for name, values, dtype in zip(names, columns, types, strict=True)})
    return hv.Rectangles(data, kdims=list(names[:4]), vdims=list(names[4:]))


def circles(centres, radius: float) -> hv.Path:
    """Circles of ``radius`` (pixels of the cube) round ``centres`` [(x, y)], as one path."""
    angle = np.linspace(0, 2 * np.pi, 49)
    return hv.Path([np.column_stack([x + radius * np.cos(angle), y + radius * np.sin(angle)]) for x, y in centres],
                   kdims=["x", "y"])
