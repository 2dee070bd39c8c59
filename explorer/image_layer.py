"""The cube's image as a Bokeh glyph of its own inside a HoloViews plot, changed in place.

HoloViews draws the plot around the image (axes, RA/Dec ticks, the tap, the beam, boxes and other
overlays) from a transparent frame element; :meth:`ImageLayer.hook` adds the image glyph, its
colour bar and hover to that plot once. A new channel, stretch or colour map then replaces the
glyph's pixels directly: no HoloViews element is built or compared, and the browser is sent the
pixels and a few numbers, ahead of the labels and the spectrum (a channel change went from about
120 ms of server time to about 15 ms).

The pixels are coloured here (:func:`colour`, as Bokeh's linear colour mapper would in the browser,
where it took longer than everything else a channel change costs the page) and sent as RGBA, with
the values beside them for the hover. Images larger than ``SCREEN_PX`` on a side are sent
block-averaged to about that size, and the part in view is sent again at the resolution the screen
can show after a zoom or pan (CARTA and ds9 do the same).
"""

from __future__ import annotations

import functools
import math
import warnings
import weakref

import holoviews as hv
import numpy as np
from astropy.nddata import block_reduce
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
from panel.io import hold

SCREEN_PX = 960  # at most this many image pixels are sent per side: the frame's size on a 2x screen
_NOT_YET = np.full((1, 1), np.nan, np.float32)  # the hover's values until they are sent (see ImageLayer.show)


class ImageLayer:
    """One image (``ny`` x ``nx`` pixels, x = column, y = row, row 0 at the bottom) drawn into every
    plot made from ``frame``, kept up to date by :meth:`show` and, for large images, by zooming.

    ``frame`` is a transparent element over the image's extent: HoloViews draws the axes, takes
    clicks and zooms over it, and :meth:`hook` puts the image under it. Its blank title keeps
    HoloViews from writing one over the image's own."""

    def __init__(self, nx: int, ny: int):
        self.nx, self.ny = nx, ny
        self.image = np.full((ny, nx), np.nan, np.float32)  # the whole image in data units
        self.clim = (0.0, 1.0)
        self.palette = ["#000000", "#ffffff"]
        self.title = ""
        self.unit = ""
        self.window = (0, nx, 0, ny)  # the pixels in view: x0, x1, y0, y1 (end exclusive)
        self._plots = weakref.WeakKeyDictionary()  # Bokeh figure -> its (source, colour bar's mapper, hover)
        self._values, self._values_pending = self.image, False  # the values sent for the hover; held back
        self.frame = hv.Image(np.zeros((2, 2), np.float32), bounds=(-0.5, -0.5, nx - 0.5, ny - 0.5),
                              kdims=["x", "y"]).opts(alpha=0, colorbar=False, hooks=[self.hook], title=" ")
        hv.streams.RangeXY(source=self.frame).add_subscriber(self.zoom)  # large images follow zooms

    # ---- what is shown ---------------------------------------------------------------------
    def show(self, image: np.ndarray, clim: tuple[float, float], palette: list[str], title: str, unit: str,
             values_later: bool = False):
        """Show ``image`` (data units) between colour limits ``clim`` with ``palette``. With
        ``values_later`` the values for the hover wait for :meth:`send_values`: they cost the browser
        as much time again as the pixels, which the eye is waiting for."""
        self.image, self.clim, self.palette, self.title, self.unit = image, clim, palette, title, unit
        self._values_pending = values_later
        self._push()

    def send_values(self):
        """Send the values for the hover that :meth:`show` held back."""
        if self._values_pending:
            self._values_pending = False
            for figure, (source, _, _) in list(self._plots.items()):
                with hold(figure.document):
                    source.data["value"] = [self._values]

    def sent(self) -> dict:
        """What the browser is sent for the window in view: the image's values (block-averaged when
        larger than ``SCREEN_PX``), their colours and their place in pixel coordinates (x, y of the
        corner, dw, dh)."""
        x0, x1, y0, y1 = self.window
        part = self.image[y0:y1, x0:x1]
        factor = math.ceil(max(part.shape) / SCREEN_PX)
        if factor > 1:
            with warnings.catch_warnings():  # all-blank blocks (outside the primary beam) stay blank
                warnings.simplefilter("ignore", RuntimeWarning)
                part = block_reduce(part, factor, func=np.nanmean if np.isnan(part).any() else np.mean)
        height, width = part.shape[0] * factor, part.shape[1] * factor  # block_reduce drops partial blocks
        self._values = part = np.ascontiguousarray(part, dtype=np.float32)
        values = _NOT_YET if self._values_pending else part
        return {"image": [colour(part, self.clim, self.palette)], "value": [values],
                "x": [x0 - 0.5], "y": [y0 - 0.5], "dw": [width], "dh": [height]}

    def zoom(self, x_range=None, y_range=None, **_):
        """Follow the plot's ranges (pixel coordinates): the part in view at the screen's resolution."""
        if max(self.nx, self.ny) <= SCREEN_PX or x_range is None or y_range is None:
            return
        window = (*_pixels(x_range, self.nx), *_pixels(y_range, self.ny))
        if window != self.window:
            self.window = window
            self._push()

    def _push(self):
        data = self.sent()
        for figure in list(self._plots):
            self._draw(figure, data)

    def _draw(self, figure, data: dict):
        """Send ``data`` (:meth:`sent`), the colour limits and the title to ``figure`` at once: ahead
        of any other change made in the same callback, which Bokeh would otherwise send with them."""
        source, mapper, hover = self._plots[figure]
        with hold(figure.document):
            source.data = data
            _set(mapper, low=self.clim[0], high=self.clim[1], palette=self.palette)
            _set(figure.title, text=self.title)
            _set(hover, tooltips=[("x", "$x{0}"), ("y", "$y{0}"), (self.unit or "value", "@value")])

    # ---- the plot ---------------------------------------------------------------------------
    def hook(self, plot, element):
        """HoloViews hook of the frame: add the image glyph (under every other layer), its colour bar
        and hover to the plot's figure, once per figure."""
        figure = plot.state
        if figure in self._plots:
            return
        source = ColumnDataSource()
        renderer = figure.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=source, level="image",
                                     name="cube-image")
        figure.renderers.remove(renderer)
        figure.renderers.insert(0, renderer)  # drawn first: boxes and markers stay on top
        mapper = LinearColorMapper(palette=self.palette, low=self.clim[0], high=self.clim[1])  # for the colour bar
        figure.add_layout(ColorBar(color_mapper=mapper, width=12), "right")
        hover = HoverTool(renderers=[renderer], name="image-hover", tooltips=[])
        figure.add_tools(hover)
        self._plots[figure] = (source, mapper, hover)
        self._draw(figure, self.sent())


def colour(image: np.ndarray, clim: tuple[float, float], palette: list[str]) -> np.ndarray:
    """RGBA pixels (uint32, as Bokeh's ``image_rgba`` takes them) of ``image`` coloured linearly with
    ``palette`` between the colour limits ``clim``, as Bokeh's ``LinearColorMapper`` does: values at
    or below the low limit take the first colour, at or above the high one the last; NaN is
    transparent."""
    table = _rgba_table(tuple(palette))
    low, high = clim
    n = len(palette)
    index = np.empty(image.shape, np.float32)
    np.subtract(image, low, out=index)
    np.multiply(index, n / (high - low), out=index)
    np.clip(index, 0, n - 1, out=index)  # NaN stays NaN
    blank = np.isnan(index)
    index[blank] = n  # the table's last entry: transparent
    return table[index.astype(np.intp)]


@functools.lru_cache(maxsize=32)
def _rgba_table(palette: tuple[str, ...]) -> np.ndarray:
    """The palette's colours ('#rrggbb') as little-endian RGBA words, and a transparent one after them."""
    rgb = np.array([int(c[1:7], 16) for c in palette], np.uint32)
    rgba = ((rgb >> 16) & 0xFF) | (rgb & 0xFF00) | ((rgb & 0xFF) << 16) | np.uint32(0xFF000000)
    return np.append(rgba, np.uint32(0)).astype("<u4")


def _set(model, **values):
    """Set the properties of a Bokeh ``model`` that change: Bokeh checks every value it is given (a
    palette of 1024 colours takes milliseconds) and sends it to the browser."""
    model.update(**{name: value for name, value in values.items() if getattr(model, name) != value})


def _pixels(bounds: tuple[float, float], n: int) -> tuple[int, int]:
    """The pixel indices (start, end exclusive) covering plot coordinates ``bounds``, inside 0..n."""
    low, high = sorted(bounds)
    start = min(max(0, math.floor(low + 0.5)), n - 1)
    return start, max(start + 1, min(n, math.ceil(high + 0.5)))
