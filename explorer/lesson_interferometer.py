"""Lesson 1, "How an interferometer sees": an ALMA configuration, a declination, an hour-angle range
and a frequency, and what they make of a sky, through :func:`pipeline.alma.synthesis.observe`."""

from __future__ import annotations

import math

import holoviews as hv
import holoviews.plotting.bokeh
import numpy as np
import panel as pn
import param
import scipy.ndimage

from explorer import uploads
from explorer.text import Alert, Text
from pipeline.alma import interferometer, synthesis
from pipeline.errors import InputError

PLOT_PX = 340
#: every plot: a square frame (equal scales on both axes, as the ranges given are square), its
#: ranges set again for every new result
SQUARE = {"frame_width": PLOT_PX - 70, "frame_height": PLOT_PX - 70, "framewise": True}
UV_COLOURS = ["#c6dbef", "#6baed6", "#2171b5", "#08306b"]  # light to dark blue: few to many points
POINT_PX = 5
BEAM_FIELD_FRINGES = 12  # the dirty beam is drawn out to this many fringes (lambda / longest baseline)

STEPS = (
    ("The array",
     "An interferometer is many small telescopes whose signals are combined in pairs. Each pair, a "
     "baseline, measures one Fourier component of the sky: the longer the baseline, the finer the "
     "detail it sees. N antennas make N(N - 1)/2 baselines. Pick a configuration: the compact ones "
     "(cycle 11.1) span a few hundred metres, the extended ones (cycle 11.10) sixteen kilometres."),
    ("Earth rotation fills the uv plane",
     "Seen from the source, each baseline is a vector (u, v) measured in wavelengths. As the Earth "
     "turns, the vector turns too and draws an arc: a longer hour-angle range fills more of the plane "
     "(Earth-rotation synthesis). Change the declination: a source far from the array's latitude "
     "(-23 deg) is seen foreshortened and its tracks squash. Raise the frequency: the same metres "
     "are more wavelengths, so the whole pattern grows."),
    ("The dirty beam",
     "The image of a single point through this sampling is the dirty beam: the Fourier transform of "
     "the uv coverage. Its main lobe, fitted by a Gaussian (the ellipse), sets the resolution, about "
     "the wavelength over the longest baseline. The gaps in the uv plane make sidelobes: the cross "
     "marks the largest. A short track (try one of a few minutes) leaves big gaps and strong "
     "sidelobes; a source finder must not take those for sources."),
    ("The dirty image",
     "What the array delivers is the true sky convolved with the dirty beam: the dirty image. The "
     "sky keeps its size in arcseconds, so an extended configuration resolves it and a compact one "
     "blurs it. A disc larger than the largest scale seen (set by the shortest baseline) is "
     "'resolved out': only its edges remain, because no baseline is short enough to measure its "
     "total flux. Try the disc with cycle 11.10, then with cycle 11.1; upload an image of your own."),
)


class InterferometerLesson(pn.viewable.Viewer):
    """Widgets for the observation and the sky; ``panel(step)`` the plots of a step."""

    config = param.Selector(default="alma.cycle9.3", objects=interferometer.available_configurations(),
                            doc="ALMA antenna configuration")
    declination = param.Number(default=-30.0, bounds=(-85.0, 45.0), step=1.0, doc="Declination (deg)")
    hour_angles = param.Range(default=(-1.0, 1.0), bounds=(-6.0, 6.0), doc="Hour angles (h)")
    frequency_ghz = param.Number(default=230.0, bounds=(35.0, 950.0), step=5.0, doc="Frequency (GHz)")
    sky = param.Selector(default="points", objects=list(synthesis.SKIES), doc="Sky")
    extent = param.Number(default=4.0, bounds=(0.1, 120.0), step=0.1, doc="Sky's extent (arcsec)")
    result = param.Parameter(default=None, doc="The last observation (synthesis.Synthesis)")
    scale = param.Number(default=1.0, bounds=(0.5, 3.0), doc="Plot size, relative (presenter mode: larger)")

    def __init__(self, **params):
        super().__init__(**params)
        self._image = None  # an uploaded sky, 2-D brightness
        self._image_name = ""
        self._panes = {}  # plot name -> its pane, made when first shown
        self._error = Alert("", alert_type="danger", visible=False, css_classes=["lesson-error"])
        self._numbers = Text("", wrap=True, css_classes=["lesson-numbers"])
        self._upload = pn.widgets.FileInput(accept=",".join(uploads.IMAGE_SUFFIXES), css_classes=["sky-upload"])
        self._upload.param.watch(self._on_upload, "value")
        self.param.watch(self._on_scale, "scale")
        self.param.watch(lambda *_: self.observe(),
                         ["config", "declination", "hour_angles", "frequency_ghz", "sky", "extent"])
        self.observe()

    def _on_scale(self, event) -> None:
        self._panes.clear()  # made again at the new size when next shown
        self._numbers.scale_font(event.new)

    def observe(self) -> None:
        """Observe again with the widgets' values; a setting that cannot be observed is explained
        and the last good result stays."""
        start, stop = self.hour_angles
        try:
            if stop - start < 1 / 60:
                raise InputError("The hour-angle range is shorter than a minute: widen it.")
            self.result = synthesis.observe(self.config, self.declination, start, stop, self.frequency_ghz * 1e9,
                                            self.sky, self.extent, self._image)
        except InputError as exc:
            self._error.object, self._error.visible = str(exc), True
            return
        self._error.object, self._error.visible = "", False
        self._numbers.object = self.result.summary() + (
            f"\nsky: {self._image_name}" if self.sky == "image" and self._image_name else "")

    def _on_upload(self, event) -> None:
        if not event.new:
            return
        try:
            name, data = uploads.read_uploaded_image(event.new, self._upload.filename, uploads.session_folder(),
                                                     default="sky.png")
        except InputError as exc:
            self._error.object, self._error.visible = str(exc), True
            return
        # FITS: (bands, ny, nx) float; PNG and JPEG: (ny, nx, 3) uint8; the sky is their brightness
        self._image = data.sum(axis=-1) if data.dtype == np.uint8 else data.sum(axis=0)
        self._image_name = name
        if self.sky == "image":
            self.observe()
        else:
            self.sky = "image"

    # ---- plots ----------------------------------------------------------------------------
    # Each plot is a DynamicMap over ``result``, made once: a change sends the new data to the plot
    # already on the page instead of a new plot (see benchmarks/lessons.py).
    def _pane(self, name: str):
        if name not in self._panes:
            plot = getattr(self, f"{name}_plot")
            side = int(SQUARE["frame_width"] * self.scale)
            dynamic = hv.DynamicMap(lambda result: plot(result), streams=[hv.streams.Params(self, ["result"])])
            self._panes[name] = pn.pane.HoloViews(dynamic.opts(frame_width=side, frame_height=side),
                                                  css_classes=[f"lesson-{name}"])
        return self._panes[name]

    @staticmethod
    def antennas_plot(r):
        reach = 1.1 * float(np.max(np.abs(r.antennas_m - r.antennas_m.mean(axis=0))))
        (east, north) = r.antennas_m.mean(axis=0)
        points = hv.Points(r.antennas_m, ["east (m)", "north (m)"])
        return points.opts(**SQUARE, size=5, color="#1f77b4", tools=["hover"], xlim=(east - reach, east + reach),
                           ylim=(north - reach, north + reach), title=f"{r.config}: {len(r.antennas_m)} antennas")

    @staticmethod
    def uv_plot(r):
        """The uv points counted in PLOT_PX x PLOT_PX cells (a million points stay one image)."""
        reach = 1.05 * r.longest_baseline_klambda
        counts, _, _ = np.histogram2d(r.uv_klambda[:, 1], r.uv_klambda[:, 0], bins=PLOT_PX,
                                      range=[[-reach, reach], [-reach, reach]])
        image = hv.Image(np.flipud(np.log10(1 + counts)), bounds=(-reach, -reach, reach, reach),
                         kdims=["u (kilo-wavelengths)", "v (kilo-wavelengths)"], vdims=["log10(1 + points)"])
        return image.opts(**SQUARE, cmap=["white", *UV_COLOURS], title=f"uv coverage: {len(r.uv_klambda)} points",
                          tools=["hover"])

    @staticmethod
    def beam_plot(r):
        """The dirty beam's centre (out to BEAM_FIELD_FRINGES, or to its largest sidelobe), its
        colours saturated so that sidelobes show."""
        centre = synthesis.PSF_NPIX // 2
        row, col = r.sidelobe_px
        reach = max(BEAM_FIELD_FRINGES * synthesis.PSF_CELLS_PER_FRINGE, abs(row - centre), abs(col - centre)) + 4
        reach = min(reach, centre)
        shown = r.psf[centre - reach:centre + reach, centre - reach:centre + reach]
        limit = min(1.0, max(3 * r.sidelobe, 0.05))
        image = sky_image(shown, r.psf_cell_arcsec, f"dirty beam (peak 1; colours end at ±{limit:.2g})",
                          cmap="RdBu_r", clim=(-limit, limit))
        mark = hv.Points([(-(col - centre) * r.psf_cell_arcsec, (row - centre) * r.psf_cell_arcsec)]).opts(
            marker="x", size=14, color="black", line_width=2)
        return image * beam_ellipse(r.beam, 0.0, 0.0) * mark

    @staticmethod
    def sky_plot(r):
        if r.sky_kind == "points":  # a point is one pixel: drawn wider, or it could not be seen
            return sky_image(scipy.ndimage.maximum_filter(r.sky, size=POINT_PX), r.cell_arcsec,
                             f"the sky (Jy/pixel; points drawn {POINT_PX} pixels wide)", cmap="inferno")
        return sky_image(r.sky, r.cell_arcsec, "the sky (Jy/pixel)", cmap="inferno")

    @staticmethod
    def dirty_plot(r):
        corner = 0.8 * synthesis.IMAGE_NPIX * r.cell_arcsec / 2
        dirty = sky_image(r.dirty, r.cell_arcsec, "the dirty image (Jy/beam)", cmap="inferno")
        return dirty * beam_ellipse(r.beam, corner, -corner, colour="white")

    @staticmethod
    def _names(step: int) -> tuple[str, ...]:
        return [("antennas",), ("antennas", "uv"), ("uv", "beam"), ("sky", "dirty")][step]

    def _step_plots(self, step: int):
        return pn.Row(*(self._pane(name) for name in self._names(step)))

    def handout(self, step: int) -> list:
        """Step ``step``'s plots as they are now, and its numbers: for a page that keeps without a server."""
        plots = [getattr(self, f"{name}_plot")(self.result) for name in self._names(step)]
        return [pn.Row(*(pn.pane.HoloViews(plot) for plot in plots)), Text(self._numbers.object, wrap=True)]

    def panel(self, step: int):
        """What step ``step`` (0-based) shows beside its text: its plots, updated on every change,
        and the measured numbers."""
        return pn.Column(self._error, self._step_plots(step), self._numbers, sizing_mode="stretch_width")

    def controls(self):
        return pn.Column(
            pn.widgets.Select.from_param(self.param.config, name="ALMA configuration"),
            pn.widgets.FloatSlider.from_param(self.param.declination, name="Declination (deg)"),
            pn.widgets.RangeSlider.from_param(self.param.hour_angles, name="Hour angles (h)", step=0.05),
            pn.widgets.FloatSlider.from_param(self.param.frequency_ghz, name="Frequency (GHz)"),
            pn.widgets.Select.from_param(self.param.sky, name="Sky"),
            pn.widgets.FloatInput.from_param(self.param.extent, name="Sky's extent (arcsec)"),
            Text("Or observe an image of your own (PNG, JPEG or FITS):", wrap=True), self._upload,
            sizing_mode="stretch_width", css_classes=["lesson-controls"])

    def __panel__(self):
        return pn.Row(self.controls(), self.panel(3))


def sky_image(data: np.ndarray, cell_arcsec: float, title: str, cmap: str, clim=None):
    """An image indexed [row, col] = [north, west] drawn as on the sky: north up, east to the left,
    axes in arcsec from the centre."""
    n = data.shape[0]
    near, far = (n // 2 + 0.5) * cell_arcsec, (n - n // 2 - 0.5) * cell_arcsec  # edges from the centre pixel's middle
    # hv.Image: first row at the top, first column at the left of its bounds (the smallest RA
    # offset, the west); the data's rows run north and its columns west, hence both flips; with the
    # x axis inverted, east is on the left
    shown = np.flipud(np.fliplr(data))
    image = hv.Image(shown, bounds=(-far, -near, near, far), kdims=["RA offset (arcsec)", "Dec offset (arcsec)"])
    opts = dict(SQUARE, cmap=cmap, colorbar=True, cformatter="%.2g", invert_xaxis=True, title=title, tools=["hover"])
    if clim is not None:
        opts["clim"] = clim
    return image.opts(**opts)


def beam_ellipse(beam, x: float, y: float, colour: str = "black"):
    """The beam's FWHM ellipse at (x, y) arcsec (RA offset east positive, Dec offset)."""
    bmaj, bmin, bpa = beam
    # holoviews: width along x at orientation 0, counter-clockwise; the major axis points
    # (sin bpa, cos bpa) in (east, north)
    return hv.Ellipse(x, y, (bmaj, bmin), orientation=math.radians(90.0 - bpa)).opts(color=colour, line_width=2)
