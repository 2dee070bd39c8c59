"""The vetting card on screen: the channel map at the line peak and the moment-0 over the line, each
with the candidate's box (cyan), its neighbours' in the same channels (white; brighter ones
orange) and the beam (lower left); the box spectrum and the Deep GRU's with the emission range.

The figures are plain Bokeh, made once and changed in place, so the next card costs a few small
data updates (see :meth:`CardView.show`).
"""

from __future__ import annotations

import math

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure
from panel.io import hold

from explorer.cube_view import clip_limits, stretched_palette
from explorer.image_layer import colour
from pipeline.vetting.card import Card

IMAGE_PX = 230  # each image's frame on screen
CLIP_PERCENT = 99.5
BOX_COLOUR, NEIGHBOUR_COLOUR, BRIGHTER_COLOUR, HALO_COLOUR = "#00e5ff", "#ffffff", "#ff9800", "#000000"
RANGE_COLOUR = "orange"


def _empty_image() -> dict:
    return {"image": [np.zeros((1, 1), np.uint32)], "x": [0.0], "y": [0.0], "dw": [1.0], "dh": [1.0]}


def _boxes(rows) -> dict:
    """Quads (left, right, bottom, top) of boxes (x0, y0, x1, y1) in pixels, ends exclusive: the
    edges of the pixels they cover, and their colours."""
    rows = list(rows)
    return {"left": [r[0] - 0.5 for r in rows], "right": [r[2] - 0.5 for r in rows],
            "bottom": [r[1] - 0.5 for r in rows], "top": [r[3] - 0.5 for r in rows],
            "colour": [r[4] for r in rows]}


class CardImage:
    """One image of the card: a cutout coloured on the server, boxes and the beam drawn over it."""

    def __init__(self, title: str, css_class: str):
        self.image = ColumnDataSource(_empty_image())
        self.boxes = ColumnDataSource(_boxes([]))
        self.beam = ColumnDataSource({"x": [], "y": [], "width": [], "height": [], "angle": []})
        # a square frame (the borders take what the axes and title need) over a square window (see
        # show): the cube's pixels stay square
        fig = figure(width=IMAGE_PX + 55, height=IMAGE_PX + 75, min_border_left=50, min_border_right=5,
                     min_border_top=5, min_border_bottom=45, x_range=Range1d(0, 1), y_range=Range1d(0, 1),
                     title=title, tools="pan,wheel_zoom,reset", toolbar_location=None, x_axis_label="x (pixel)",
                     y_axis_label="y (pixel)", css_classes=[css_class])
        fig.title.text_font_size = "10pt"
        fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=self.image)
        for colour_, width in ((HALO_COLOUR, 4), ("colour", 1.6)):
            fig.quad(left="left", right="right", bottom="bottom", top="top", source=self.boxes, fill_alpha=0,
                     line_color=colour_, line_width=width, line_alpha=0.6 if colour_ == HALO_COLOUR else 1)
        fig.ellipse(x="x", y="y", width="width", height="height", angle="angle", source=self.beam,
                    fill_color="white", fill_alpha=0.35, line_color="white")
        fig.grid.visible = False
        self.figure = fig
        self.pane = pn.pane.Bokeh(fig, sizing_mode="fixed")  # the pane is the figure: its class is the figure's

    def show(self, image: np.ndarray, origin, boxes, beam, palette, title: str) -> None:
        ny, nx = image.shape
        x0, y0 = origin[0] - 0.5, origin[1] - 0.5
        self.image.data = {"image": [colour(image, clip_limits(image, CLIP_PERCENT), palette)], "x": [x0], "y": [y0],
                           "dw": [float(nx)], "dh": [float(ny)]}
        self.boxes.data = _boxes(boxes)
        if beam is not None:
            major, minor, angle = beam
            margin = 0.5 * major + 1
            self.beam.data = {"x": [x0 + margin], "y": [y0 + margin], "width": [major], "height": [minor],
                              "angle": [math.radians(angle)]}
        else:
            self.beam.data = {"x": [], "y": [], "width": [], "height": [], "angle": []}
        fig = self.figure
        fig.title.text = title
        side = max(nx, ny)  # a cutout cut by the cube's edge is shown in a square window all the same
        fig.x_range.update(start=x0 + nx / 2 - side / 2, end=x0 + nx / 2 + side / 2)
        fig.y_range.update(start=y0 + ny / 2 - side / 2, end=y0 + ny / 2 + side / 2)


class CardView:
    """The card's figures; :meth:`show` puts a :class:`~pipeline.vetting.card.Card` in them."""

    def __init__(self, cmap: str = "inferno"):
        self.palette = stretched_palette(cmap, "linear")
        self.channel = CardImage("channel map at the peak", "vetting-channel")
        self.moment0 = CardImage("moment 0 over the line", "vetting-moment0")
        self.spectra = ColumnDataSource({"channel": [], "box": [], "gru": []})
        self.ranges = ColumnDataSource({"left": [], "right": []})
        fig = figure(height=230, sizing_mode="stretch_width",
                     x_axis_label="channel", y_axis_label="normalised flux", tools="pan,wheel_zoom,reset,hover",
                     toolbar_location=None, y_range=Range1d(-0.45, 1.15), css_classes=["vetting-spectrum"])
        fig.quad(left="left", right="right", bottom=-10, top=10, source=self.ranges, fill_color=RANGE_COLOUR,
                 fill_alpha=0.2, line_alpha=0, legend_label="emission range")
        fig.step(x="channel", y="box", source=self.spectra, mode="center", color="black", legend_label="box spectrum")
        self._gru = fig.line(x="channel", y="gru", source=self.spectra, color="#0072B5", line_width=2,
                             legend_label="Deep GRU")
        fig.legend.orientation = "horizontal"
        fig.add_layout(fig.legend[0], "above")  # above the frame, not over the line it describes
        self.spectrum = pn.pane.Bokeh(fig, sizing_mode="stretch_width")
        self._spectrum_figure = fig

    def show(self, card: Card) -> None:
        """Put ``card`` in the figures: every change in one message (Bokeh's models are changed
        outside Panel's own, so under :func:`panel.io.hold` of their document)."""
        with hold(self._spectrum_figure.document):
            self._show(card)

    def _show(self, card: Card) -> None:
        row = card.row
        z, z0, z1 = int(round(float(row["z"]))), int(row["z0"]), int(row["z1"])
        boxes = [(*(other[c] for c in ("x0", "y0", "x1", "y1")),
                  BRIGHTER_COLOUR if other["brighter"] else NEIGHBOUR_COLOUR) for other in card.neighbours]
        boxes.append((*card.box, BOX_COLOUR))  # the candidate's on top
        self.channel.show(card.channel_map, card.origin, boxes, card.beam, self.palette, f"channel {z} (line peak)")
        self.moment0.show(card.moment0, card.origin, boxes, card.beam, self.palette,
                          f"moment 0, ch {z0}-{z1 - 1} [{card.moment0_unit}]")
        spectrum = np.nan_to_num(np.asarray(card.spectrum, float))
        scale = float(np.max(np.abs(spectrum))) or 1.0
        channels = np.arange(len(spectrum))
        gru = card.gru_spectrum if card.gru_spectrum is not None else np.full(len(spectrum), np.nan)
        self.spectra.data = {"channel": channels, "box": spectrum / scale, "gru": np.asarray(gru, float)}
        self._gru.visible = card.gru_spectrum is not None
        self.ranges.data = {"left": [first - 0.5 for _, first, _ in card.ranges],
                            "right": [end - 0.5 for _, _, end in card.ranges]}
        self._spectrum_figure.x_range.start, self._spectrum_figure.x_range.end = -0.5, len(spectrum) - 0.5

    def layout(self):
        return pn.Column(pn.Row(self.channel.pane, self.moment0.pane), self.spectrum, sizing_mode="stretch_width")
