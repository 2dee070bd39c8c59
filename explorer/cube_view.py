"""The cube explorer: channel maps, moment 0, spectra on click, beam and header, like CARTA or ds9.

``CubeViewer`` shows one open :class:`pipeline.alma.cube.Cube`; ``CubeExplorer`` is the tab around
it, which opens bundled cubes, cubes by path (inside the allowed data folders) and uploads.
Images are in pixel coordinates (so clicks map to pixels exactly) with RA/Dec tick labels from the
WCS. The image itself is an :class:`explorer.image_layer.ImageLayer`, changed in place on a new
channel, view, clip, stretch or colour map (large channels are sent at screen resolution).
"""

from __future__ import annotations

import functools

import holoviews as hv
import holoviews.plotting.bokeh  # registers the backend the options below are for
import numpy as np
import panel as pn
import param
from astropy.visualization import (
    AsinhStretch,
    LinearStretch,
    LogStretch,
    PercentileInterval,
    SqrtStretch,
)
from bokeh.core.validation import silence
from bokeh.core.validation.warnings import FIXED_SIZING_MODE
from bokeh.models import CustomJSTickFormatter
from holoviews.plotting.util import process_cmap
from panel.io import hold

from explorer.image_layer import ImageLayer
from explorer.text import Text
from pipeline.alma.cube import Cube
from pipeline.alma.cube_summary import format_info
from pipeline.alma.measure import beam_on_grid

# astropy's stretches (ds9's and CARTA's); applied by warping the colour map, so the image keeps
# its data units (colour bar, hover) while the colours follow the stretch
STRETCHES = {
    "linear": LinearStretch(),
    "sqrt": SqrtStretch(),
    "log": LogStretch(a=1000),
    "asinh": AsinhStretch(a=0.1),
}
CLIP_SAMPLE = 2**16  # pixels whose percentiles set the colour limits (see clip_limits)
PALETTE_SIZE = 1024  # fine enough that even the log stretch's steep start shows no banding
SCAN_LIMIT_BYTES = 512 * 2**20
FRAME_PX = 480  # the image frame's longer side on screen
IMAGE_PARAMETERS = ("channel", "view", "moment_range", "clip_percent", "cmap", "stretch")  # what the image shows
# what follows a new image (labels, spectrum, boxes) is made this much later: Bokeh writes one
# message at a time, and the image's message must be on its way before they are made
FOLLOW_MS = 30
_HIDE_PLAYER_SLIDER = "input[type='range'] {display: none;}"  # the channel slider above serves
# the image's size is fixed by its frame's (frame_width, frame_height), which Bokeh's check for a
# "fixed" plot without width and height does not know: its warning W-1005 would be noise in the log
silence(FIXED_SIZING_MODE, True)


def clip_limits(image: np.ndarray, clip_percent: float) -> tuple[float, float]:
    """Colour limits (data units) between the percentiles that keep ``clip_percent`` of the pixels.

    Images of more than ``CLIP_SAMPLE`` pixels are sampled on a regular grid of about that many: the
    limits of a display, to within a few hundredths of a percentile, in a sixth of the time of a
    512 x 512 channel's (ds9's zscale samples 600 pixels).
    """
    step = max(1, int(np.sqrt(image.size / CLIP_SAMPLE)))
    sample = image[::step, ::step]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in PercentileInterval(clip_percent).get_limits(finite))
    return (vmin, vmax) if vmax > vmin else (vmin, vmin + 1.0)


@functools.lru_cache(maxsize=64)
def stretched_palette(cmap: str, stretch: str, n: int = PALETTE_SIZE) -> list[str]:
    """The colour map resampled so that linear colour-mapping of data shows the stretch.

    Entry i (data fraction t = i / (n - 1) between the colour limits) takes the base colour at
    stretch(t): e.g. sqrt gives faint emission more of the colours, as in ds9.
    """
    base = process_cmap(cmap, ncolors=256)
    t = np.linspace(0.0, 1.0, n)
    index = np.clip(np.round(STRETCHES[stretch](t, clip=True) * (len(base) - 1)), 0, len(base) - 1)
    return [base[int(i)] for i in index]


def _sexagesimal_formatter(values_deg: np.ndarray, hours: bool) -> CustomJSTickFormatter:
    """Tick labels in RA (h:m:s) or Dec (d:m:s) from pixel ticks, by interpolating along the axis."""
    code = """
    const v = values, n = v.length;
    const i = Math.max(0, Math.min(n - 1.000001, tick));
    const k = Math.floor(i), f = i - k;
    let deg = v[k] + f * ((k + 1 < n ? v[k + 1] : v[k]) - v[k]);
    if (hours) { deg = ((deg % 360) + 360) % 360 / 15; }
    const sign = deg < 0 ? "-" : (hours ? "" : "+");
    let a = Math.abs(deg);
    const d = Math.floor(a); a = (a - d) * 60;
    const m = Math.floor(a); const s = (a - m) * 60;
    const pad = (x, w) => String(x).padStart(w, "0");
    const sec = s.toFixed(digits);
    return sign + pad(d, 2) + ":" + pad(m, 2) + ":" + pad(sec, digits ? 3 + digits : 2);
    """
    step_arcsec = float(np.median(np.abs(np.diff(values_deg)))) * 3600 if len(values_deg) > 1 else 1.0
    digits = 2 if step_arcsec < 0.5 else 1 if step_arcsec < 5 else 0
    digits += 1 if hours else 0
    return CustomJSTickFormatter(args={"values": values_deg.tolist(), "hours": hours, "digits": digits},
                                 code=code)


class CubeViewer(pn.viewable.Viewer):
    """One cube: image (channel or moment 0), spectrum at the clicked pixel, header summary."""

    channel = param.Integer(default=0, bounds=(0, 0), doc="Channel shown (0-based)")
    view = param.Selector(default="channel", objects=["channel", "moment 0"], doc="What the image shows")
    moment_range = param.Range(default=(0, 0), bounds=(0, 0), doc="Channels (inclusive) integrated for moment 0")
    stretch = param.Selector(default="linear", objects=list(STRETCHES), doc="Colour stretch")
    clip_percent = param.Selector(default=99.5, objects=[90.0, 95.0, 99.0, 99.5, 99.9, 100.0],
                                  doc="Percent of pixels between the colour limits")
    cmap = param.Selector(default="inferno", objects=["inferno", "viridis", "magma", "cividis", "gray", "coolwarm"])
    show_beam = param.Boolean(default=True, doc="Draw the beam ellipse")
    spectral_axis = param.Selector(default="velocity", objects=["velocity", "frequency", "channel"])
    aperture = param.Selector(default="pixel", objects=["pixel", "beam"],
                              doc="Spectrum of one pixel or a beam-sized disc")
    rest_frequency_ghz = param.Number(default=None, allow_None=True, bounds=(0, None),
                                      doc="Rest frequency for velocities (GHz); empty: the header's")
    pixel = param.NumericTuple(default=(0, 0), length=2, doc="Pixel (x, y) whose spectrum is shown")

    def __init__(self, cube: Cube, label: str | None = None, **params):
        self.cube = cube
        self.label = label or cube.path.name  # the name visitors know the cube by (never a server path)
        last = cube.nchan - 1
        self.param.channel.bounds = (0, last)
        self.param.moment_range.bounds = (0, last)
        params.setdefault("moment_range", (0, last))
        params.setdefault("pixel", (cube.nx // 2, cube.ny // 2))
        if cube.velocity_kms() is None:
            params.setdefault("spectral_axis", "frequency" if cube.frequency_hz is not None else "channel")
        super().__init__(**params)
        self._moment_cache = {}
        self.overlays = []  # more HoloViews layers on the image (e.g. detection boxes)
        self.image_layer = ImageLayer(cube.nx, cube.ny)
        self._shown = None  # the parameters of the image shown (see _show_image)
        self.param.watch(self._show_image, list(IMAGE_PARAMETERS))
        self._show_image()
        self.tap = hv.streams.Tap(source=self.image_layer.frame, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)

    # ---- science through the pipeline ------------------------------------------------------
    def current_image(self, channel=None, view=None, moment_range=None):
        """The data-unit image shown now: a channel or the moment-0 map; and its unit."""
        view = view or self.view
        if view == "moment 0":
            key = tuple(moment_range or self.moment_range)
            if key not in self._moment_cache:
                self._moment_cache = {key: self.cube.moment0(*key)}
            return self._moment_cache[key]
        return self.cube.channel(self.channel if channel is None else channel), self.cube.unit

    def spectrum(self):
        """(x values, their label, spectrum values) at the selected pixel and aperture."""
        x, y = (int(v) for v in self.pixel)
        radius = self.cube.beam_radius_pixels() if self.aperture == "beam" else 0.0
        values = self.cube.spectrum(x, y, radius)
        return (*self._spectral_values(), values)

    @property
    def _rest_hz(self) -> float | None:
        """The user's rest frequency in Hz, or None for the header's."""
        return self.rest_frequency_ghz * 1e9 if self.rest_frequency_ghz else None

    def _spectral_values(self):
        if self.spectral_axis == "velocity":
            vel = self.cube.velocity_kms(self._rest_hz)
            if vel is not None:
                return vel, "radio velocity (km/s)"
        if self.spectral_axis in ("velocity", "frequency") and self.cube.frequency_hz is not None:
            return self.cube.frequency_hz / 1e9, "frequency (GHz)"
        return np.arange(self.cube.nchan), "channel"

    def channel_label(self) -> str:
        """'channel k / n: f GHz, v km/s' for the current channel."""
        k = self.channel
        parts = [f"channel {k} / {self.cube.nchan - 1}"]
        if self.cube.frequency_hz is not None:
            parts.append(f"{self.cube.frequency_hz[k] / 1e9:.6f} GHz")
        vel = self.cube.velocity_kms(self._rest_hz)
        if vel is not None:
            parts.append(f"{vel[k]:.2f} km/s")
        return " | ".join(parts)

    # ---- plots ------------------------------------------------------------------------------
    def _show_image(self, *_, values_later=False, **values):
        """Show the image of the current parameters, or of ``values`` for some of them: in data units,
        with its colour limits, stretched palette and a title with the unit (``values_later``: see
        :meth:`ImageLayer.show`). Nothing is done when it is the image shown already."""
        state = {name: values.get(name, getattr(self, name)) for name in IMAGE_PARAMETERS}
        if self._shown == state:
            return
        self._shown = state
        channel, view, moment_range = state["channel"], state["view"], state["moment_range"]
        data, unit = self.current_image(channel, view, moment_range)
        what = (f"moment 0 of channels {moment_range[0]}-{moment_range[1]}" if view == "moment 0"
                else f"channel {channel}")
        self.image_layer.show(data, clip_limits(data, float(state["clip_percent"])),
                              stretched_palette(state["cmap"], state["stretch"]), f"{what} ({unit})", unit,
                              values_later=values_later)

    def _beam_overlay(self, show_beam):
        beam, cube = self.cube.beam, self.cube
        if not show_beam or beam is None:
            return hv.Ellipse(0, 0, 0).opts(alpha=0)
        major, minor, theta = beam_on_grid(cube)  # the PA turned onto the pixel grid by the WCS
        angle = np.deg2rad(theta)
        pad = 0.6 * major + 2
        return hv.Ellipse(pad - 0.5, pad - 0.5, (major, minor), orientation=angle).opts(
            color="white", line_width=2)

    def _marker(self, pixel):
        return hv.Points([pixel]).opts(marker="x", size=14, color="cyan", line_width=2)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) in screen pixels of the image's frame: the cube's aspect, at most
        ``FRAME_PX`` on either side."""
        scale = FRAME_PX / max(self.cube.nx, self.cube.ny)
        return max(64, round(self.cube.nx * scale)), max(64, round(self.cube.ny * scale))

    def image_plot(self):
        cw = self.cube.celestial_wcs
        xs = np.arange(self.cube.nx)
        ys = np.arange(self.cube.ny)
        ra = cw.pixel_to_world_values(xs, np.full_like(xs, self.cube.ny // 2))[0]
        dec = cw.pixel_to_world_values(np.full_like(ys, self.cube.nx // 2), ys)[1]
        beam = hv.DynamicMap(pn.bind(self._beam_overlay, self.param.show_beam))
        marker = hv.DynamicMap(pn.bind(self._marker, self.param.pixel))
        plot = (self.image_layer.frame.opts(
            tools=["tap"], default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"],
            xformatter=_sexagesimal_formatter(ra, hours=True), yformatter=_sexagesimal_formatter(dec, hours=False),
            xlabel="RA (ICRS)" if "RA" in cw.wcs.ctype[0] else cw.wcs.ctype[0],
            ylabel="Dec (ICRS)" if "DEC" in cw.wcs.ctype[1] else cw.wcs.ctype[1],
            frame_width=self.frame_size[0], frame_height=self.frame_size[1], toolbar="below",
        ) * beam * marker)
        for overlay in self.overlays:
            plot = plot * overlay
        return plot.opts(show_legend=False)  # the layers' names are for code; the page has its own legend

    def spectrum_plot(self, pixel, aperture, spectral_axis, rest_frequency_ghz):
        x, xlabel, values = self.spectrum()
        px, py = (int(v) for v in pixel)
        title = f"Spectrum at pixel ({px}, {py})" + (", mean over a beam-sized disc" if aperture == "beam" else "")
        return hv.Curve((x, values), hv.Dimension("spectral", label=xlabel),
                        hv.Dimension("flux", label=self.cube.unit)).opts(
            interpolation="steps-mid", color="black", line_width=1.5, title=title,
            responsive=True, height=300, tools=["hover"], framewise=True)

    def channel_line(self, channel, spectral_axis, rest_frequency_ghz):
        """The current channel on the spectrum: its own layer, so a channel change redraws only it."""
        x, _ = self._spectral_values()
        return hv.VLine(float(x[channel])).opts(color="red", line_dash="dashed", apply_ranges=False)

    def pixel_text(self, pixel, channel) -> str:
        """The selected pixel, its sky position and its value in the current channel."""
        px, py = (int(v) for v in pixel)
        sky = self.cube.sky(px, py).icrs
        value = float(self.cube.data[channel, py, px])
        return (f"Pixel ({px}, {py}) | RA {sky.ra.to_string('hourangle', sep=':', precision=3, pad=True)} "
                f"Dec {sky.dec.to_string(sep=':', precision=2, alwayssign=True, pad=True)} | "
                f"{value:.4g} {self.cube.unit} in channel {channel}")

    def _on_tap(self, x=None, y=None):
        if x is None or y is None:
            return
        px, py = int(round(x)), int(round(y))
        if 0 <= px < self.cube.nx and 0 <= py < self.cube.ny:
            self.pixel = (px, py)

    # ---- layout -----------------------------------------------------------------------------
    def _drives(self, widget, name: str):
        """``widget`` shows parameter ``name`` and sets it through :meth:`_image_first`.

        Panel waits 50 ms for more changes before it handles one (its ``_debounce``). Handling them at
        once (``_debounce = 0`` or ``_priority_changes``) saved those 50 ms, but under bursts of key
        presses it sometimes left the page deaf to the next widget change (a cube chosen in the list
        never opened: 1 in 3 runs of benchmarks/browser.py), so it stays."""
        widget.value = getattr(self, name)
        widget.param.watch(lambda event: self._image_first(name, event.new), "value")
        self.param.watch(lambda event: setattr(widget, "value", event.new), name)
        return widget

    def _image_first(self, name: str, value) -> None:
        """Set parameter ``name``, the new image first: its pixels are sent to the browser at once, and
        the parameter, with what follows from it (labels, spectrum, boxes, the values for the hover),
        is set ``FOLLOW_MS`` later, so that the image the eye waits for is not queued behind them."""
        doc = pn.state.curdoc
        served = doc is not None and doc.session_context is not None
        if name in IMAGE_PARAMETERS:
            self._show_image(values_later=served, **{name: value})
        if served:
            doc.add_timeout_callback(lambda: self._set_frozen(name, value), FOLLOW_MS)
        else:  # a notebook or a test: no messages to order
            setattr(self, name, value)

    def _set_frozen(self, name: str, value) -> None:
        """Set ``name`` and send the image's values for the hover, with the document's model graph
        frozen until every plot has redrawn: Bokeh then walks the graph once, not once per plot
        (when boxes redraw, a third of the time)."""
        with hold(freeze=True):
            self.image_layer.send_values()
            setattr(self, name, value)

    def controls(self):
        p = self.param
        last = self.cube.nchan - 1
        slider = self._drives(pn.widgets.IntSlider(label="Channel", start=0, end=last, sizing_mode="stretch_width",
                                                   css_classes=["channel-slider"]), "channel")
        player = self._drives(pn.widgets.Player(label="", start=0, end=last, show_value=False, interval=300,
                                                loop_policy="loop", width=300, stylesheets=[_HIDE_PLAYER_SLIDER],
                                                visible_buttons=["slower", "previous", "reverse", "pause", "play",
                                                                 "next", "faster"]), "channel")
        return pn.Column(
            pn.pane.Markdown(pn.bind(lambda c, r: f"**{self.channel_label()}**", p.channel, p.rest_frequency_ghz),
                             css_classes=["channel-label"]),
            slider, player,
            self._drives(pn.widgets.RadioButtonGroup(options=p.view.objects), "view"),
            pn.widgets.IntRangeSlider.from_param(p.moment_range, name="Moment-0 channels"),
            self._drives(pn.widgets.Select(label="Stretch", options=p.stretch.objects, description=p.stretch.doc),
                         "stretch"),
            self._drives(pn.widgets.Select(label="Clip (percentile)", options=p.clip_percent.objects,
                                           description=p.clip_percent.doc), "clip_percent"),
            self._drives(pn.widgets.Select(label="Colour map", options=p.cmap.objects), "cmap"),
            pn.widgets.Checkbox.from_param(p.show_beam, name="Beam ellipse"),
            pn.pane.Markdown("Spectrum", margin=(5, 10, 0, 10)),
            pn.widgets.RadioButtonGroup.from_param(p.spectral_axis),
            pn.widgets.RadioButtonGroup.from_param(p.aperture),
            pn.widgets.FloatInput.from_param(p.rest_frequency_ghz, name="Rest frequency (GHz, empty: header)"),
            sizing_mode="stretch_width",
        )

    def header_panel(self):
        # the NaN fraction reads the whole cube: only for cubes that read in a moment
        info = {**self.cube.info(scan=self.cube.data.nbytes <= SCAN_LIMIT_BYTES), "path": self.label}
        header_text = self.cube.header.tostring(sep="\n", padding=False)
        return pn.Column(
            Text(format_info(info), wrap=True, css_classes=["cube-summary"]),
            pn.Card(Text(header_text, css_classes=["fits-header"]), title="Full FITS header", collapsed=True,
                    sizing_mode="stretch_width"),
            sizing_mode="stretch_width", css_classes=["cube-header"])

    def plots(self):
        """The image, then the spectrum and the cube's header in tabs: at any window width the image
        keeps its size and nothing covers it."""
        p = self.param
        spectrum = pn.pane.HoloViews(
            hv.DynamicMap(pn.bind(self.spectrum_plot, p.pixel, p.aperture, p.spectral_axis, p.rest_frequency_ghz))
            * hv.DynamicMap(pn.bind(self.channel_line, p.channel, p.spectral_axis, p.rest_frequency_ghz)),
            sizing_mode="stretch_width", css_classes=["spectrum"])
        image = pn.pane.HoloViews(self.image_plot(), css_classes=["cube-image"])
        pixel = Text(pn.bind(self.pixel_text, self.param.pixel, self.param.channel), css_classes=["pixel-info"])
        return pn.Column(image, pixel, pn.Tabs(("Spectrum", spectrum), ("Cube header", self.header_panel()),
                                               dynamic=True, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Row(pn.Column(self.controls(), width=300), self.plots(), sizing_mode="stretch_width")
