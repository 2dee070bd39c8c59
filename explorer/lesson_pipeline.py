"""Lesson 3, "Inside the pipeline": the bundled simulated cube taken through the pipeline of Delli
Veneri et al. (2022) stage by stage (:func:`pipeline.alma.stages.stages`), with the numbers at each
stage and the truth beside them."""

from __future__ import annotations

import functools
import math

import holoviews as hv
import holoviews.plotting.bokeh  # (plot options need a backend, also outside a served page)
import numpy as np
import panel as pn
import param

from explorer import jobs, overlays
from explorer.detection_view import HALO_COLOUR, TRUTH_COLOURS
from explorer.files import BUNDLED_CUBES
from explorer.lesson_runs import RunningLesson
from explorer.text import Text
from pipeline.alma.cube import open_cube
from pipeline.alma.detect import FOCUS_MIN_SNR
from pipeline.alma.evaluate import ELONGATED_AXIS_RATIO
from pipeline.alma.focus import focused_images, focused_snr
from pipeline.alma.gaussian import major_minor
from pipeline.alma.measure import kms_per_channel_factor
from pipeline.alma.preprocess import FOCUS_SIZE
from pipeline.alma.source_maps import BLOB_THRESHOLD
from pipeline.alma.truth import truth_for_cube, truth_line_flux

CUBE = BUNDLED_CUBES / "sim_7_0000.fits"
FRAME_PX = 250
SPECTRUM_SIZE = (420, 280)
ZOOM_PX = 8  # the ResNets' step shows the source this far around it
TRUE_COLOUR, FOUND_COLOUR, RANGE_COLOUR = "#00e676", "#1f77b4", "#ff7f0e"

STEPS = (
    ("The integrated image",
     "The cube (a simulation shipped with the explorer, with its truth) has an image per channel. Summing "
     "the channels gives the integrated image (moment 0): every source is in it, but a line a few channels "
     "wide is summed with the noise of all the others, so faint ones barely show. Green crosses mark the "
     "true sources."),
    ("The Blobs Finder's map",
     "The Blobs Finder, a convolutional network trained on simulated dirty images, turns integrated "
     "images (of the whole band and of narrower windows of channels, the largest value kept) into a map "
     "of how likely each pixel is to belong to a source, from 0 to 1. It learned what a source looks like "
     "through the dirty beam; noise and sidelobes stay low."),
    ("Boxes",
     "The map is cut at a threshold (0.15 in the paper; try others): each connected region becomes a "
     "box. Green boxes hold a true source, red ones none; white circles are true sources no box holds. "
     "A low threshold gives more boxes, true and false; the next stages must sort them."),
    ("Box spectra",
     "Each box is summed over its pixels in every channel: its spectrum. A source is a line a few "
     "channels wide (the green band is the true line: its centre plus and minus its width), buried in "
     "noise. Pick a box: some lines stand out, some do not."),
    ("The Deep GRU",
     "A recurrent network (the Deep GRU) reads the spectrum channel by channel and returns it without "
     "the noise (blue, scaled 0 to 1). Its peaks are the lines; each emission range (orange) is the peak "
     "plus and minus its fitted width, as in the paper. Compare them with the true line (green)."),
    ("Focusing",
     "Summing only the line's channels (focusing) keeps the source's signal and leaves out the other "
     "channels' noise, so the source stands out far more than in the integrated image (left: the whole "
     "band; right: the emission range; both in units of their noise). A line is kept when its focused "
     "image peaks above the significance level (5 times the noise, raised for large cubes)."),
    ("The ResNets",
     "Three residual networks measure the focused image: its size along two axes, its angle and its flux. "
     "The ellipses are the measured source (blue) and the true one (green), at half their peak. The "
     "numbers compare them: what the pipeline's catalogue says of this source."),
)


class PipelineLesson(RunningLesson):
    """Widgets for the pipeline's two cuts and for the box and line looked at; ``panel(step)`` the
    step's plots and numbers. The stages run in the background: the Blobs Finder once, the rest again
    when a cut changes (a second or two)."""

    threshold = param.Number(default=BLOB_THRESHOLD, bounds=(0.02, 0.9), step=0.01, doc="Blobs Finder threshold")
    min_snr = param.Number(default=FOCUS_MIN_SNR, bounds=(3.0, 10.0), step=0.1, doc="Significance (focused SNR)")
    box = param.Integer(default=0, bounds=(0, None), doc="Box looked at")
    line = param.Integer(default=0, bounds=(0, None), doc="Line of the box looked at")

    redraw_on = ("line",)  # and the result: the stages (pipeline.alma.stages.Stages)

    def __init__(self, cube_path=CUBE, **params):
        super().__init__(**params)
        self.cube_path = cube_path
        with open_cube(cube_path) as cube:
            self.nx, self.ny, self.nchan = cube.shape
            self.kms = cube.channel_width()["kms"] or kms_per_channel_factor(cube)
        self.truth = truth_for_cube(cube_path)
        self._whole = {}  # box (x0, y0, x1, y1) -> its image over the whole band
        self._box_picker = pn.widgets.Select(label="Box looked at", options={"(none yet)": 0}, width=300)
        self._box_picker.link(self, value="box")
        self._line_picker = pn.widgets.Select(label="Line of that box", options={"(none yet)": 0}, width=300)
        self._line_picker.link(self, value="line")
        self.param.watch(lambda *_: self.run(), ["threshold", "min_snr"])
        self.param.watch(lambda *_: self._on_box(), "box")
        self.param.watch(lambda *_: self._show_numbers(), ["line", "result"])

    # ---- running --------------------------------------------------------------------------
    def work(self) -> tuple:
        """The stages, the Blobs Finder's map of the last run reused (it does not depend on the cuts)."""
        source_map = self.result.source_map if self.result is not None else None
        return (functools.partial(jobs.pipeline_stages, self.cube_path, self.threshold, self.min_snr, source_map),
                "Running the pipeline stage by stage")

    def take(self, stages) -> None:
        boxes = {self._box_label(i, b): i for i, b in enumerate(stages.boxes)} or {"(no box at this threshold)": 0}
        # the first box that holds a true source, else the first
        first = next((i for i, b in enumerate(stages.boxes) if self._true_in(b)), 0)
        self.result = stages
        self._box_picker.options = boxes
        self._box_picker.value = first
        self.box = first
        self._on_box()

    def _on_box(self) -> None:
        lines = self.selected_box.lines if self.selected_box is not None else []
        options = {f"line {k + 1}: channels {ln.first}-{ln.last - 1}" + ("" if ln.significant else ", not significant"):
                   k for k, ln in enumerate(lines)} or {"(no line)": 0}
        self._line_picker.options = options
        self._line_picker.value = 0
        self.line = 0
        self._show_numbers()
        self.param.trigger("result")  # the plots of the box

    # ---- what is looked at ----------------------------------------------------------------
    @property
    def selected_box(self):
        if self.result is None or not self.result.boxes:
            return None
        return self.result.boxes[min(self.box, len(self.result.boxes) - 1)]

    @property
    def selected_line(self):
        box = self.selected_box
        if box is None or not box.lines:
            return None
        return box.lines[min(self.line, len(box.lines) - 1)]

    def _true_in(self, box) -> list[int]:
        """Rows of the true sources ``box`` holds."""
        return [i for i, t in enumerate(self.truth) if box.holds(float(t["x"]), float(t["y"]))]

    def _box_label(self, i: int, box) -> str:
        held = self._true_in(box)
        sources = ", ".join(str(int(self.truth[j]["source"])) for j in held)
        return (f"box {i + 1}: x {box.x0}-{box.x1 - 1}, y {box.y0}-{box.y1 - 1}, "
                + (f"true source {sources}" if held else "no true source"))

    # ---- plots ----------------------------------------------------------------------------
    def _frame(self) -> dict:
        side = int(FRAME_PX * self.scale)
        return {"frame_width": side, "frame_height": side}

    # Every plot keeps its layers whatever is shown (a DynamicMap must): empty ones when there is nothing.
    def _image(self, data, title: str, bounds=None, **opts):
        ny, nx = np.shape(data)
        bounds = bounds or (-0.5, -0.5, nx - 0.5, ny - 0.5)
        image = hv.Image(np.flipud(np.asarray(data, float)), bounds=bounds, kdims=["x (pixel)", "y (pixel)"],
                         vdims=["value"])
        return image.opts(**{**self._frame(), "title": title, "tools": ["hover"], "colorbar": True, "cmap": "inferno",
                             "framewise": True, **opts})

    def _truth_points(self):
        return hv.Points((np.asarray(self.truth["x"], float), np.asarray(self.truth["y"], float)),
                         ["x (pixel)", "y (pixel)"]).opts(marker="x", size=12, color=TRUE_COLOUR, line_width=2)

    def integrated_plot(self, result):
        data = result.integrated if result is not None else np.zeros((self.ny, self.nx))
        unit = result.integrated_unit if result is not None else ""
        return self._image(data, f"integrated image ({unit})") * self._truth_points()

    def map_plot(self, result):
        data = result.source_map if result is not None else np.zeros((self.ny, self.nx))
        return self._image(data, "Blobs Finder map (0 to 1)", clim=(0.0, 1.0), cmap="viridis") * self._truth_points()

    def boxes_plot(self, result):
        boxes = result.boxes if result is not None else []
        rows = [(b.x0 - 0.5, b.y0 - 0.5, b.x1 - 0.5, b.y1 - 0.5,
                 TRUTH_COLOURS["true positive" if self._true_in(b) else "false positive"], i + 1)
                for i, b in enumerate(boxes)]
        held = {j for b in boxes for j in self._true_in(b)}
        missed = [(float(t["x"]), float(t["y"])) for j, t in enumerate(self.truth) if j not in held and boxes]
        halo = {"fill_alpha": 0, "line_color": HALO_COLOUR, "line_width": 5, "line_alpha": 0.6}
        return (self.integrated_plot(result) * overlays.rectangles(rows).opts(**halo)
                * overlays.rectangles(rows).opts(fill_alpha=0, line_color="colour", line_width=2, tools=["hover"])
                * overlays.circles(missed, 5.0).opts(color=TRUTH_COLOURS["missed"], line_width=2, line_dash="dotted"))

    def spectrum_plot(self, result, denoised: bool = False):
        """The box's spectrum (or the Deep GRU's, with its emission ranges in orange), the true lines of
        the sources it holds in green (centre +- FWHM)."""
        box = self.selected_box
        width, height = (int(v * self.scale) for v in SPECTRUM_SIZE)
        values = (box.denoised if denoised else box.spectrum) if box is not None else np.zeros(self.nchan)
        low, high = float(np.min(values)), float(np.max(values))
        low, high = low - 0.05 * (high - low + 1e-12), high + 0.05 * (high - low + 1e-12)
        true = [(float(t["z"]) - float(t["fwhm_z"]), low, float(t["z"]) + float(t["fwhm_z"]), high)
                for t in (self.truth[j] for j in (self._true_in(box) if box is not None else []))]
        lines = box.lines if box is not None and denoised else []
        ranges = [(ln.first - 0.5, low, ln.last - 0.5, high) for ln in lines]
        name = "Deep GRU output (0 to 1)" if denoised else "sum over the box"
        curve = hv.Curve((np.arange(len(values)), values), "channel", name).opts(
            color=FOUND_COLOUR if denoised else "black", line_width=2 if denoised else 1)
        title = f"box {self.box + 1}: " + ("the Deep GRU, its ranges (orange)" if denoised else "its spectrum")
        return (hv.Rectangles(true, ["channel", name, "x1", "y1"]).opts(color=TRUE_COLOUR, alpha=0.25, line_alpha=0)
                * hv.Rectangles(ranges, ["channel", name, "x1", "y1"]).opts(color=RANGE_COLOUR, alpha=0.3, line_alpha=0)
                * curve).opts(width=width, height=height, title=title, show_legend=False, framewise=True,
                              ylim=(low, high))

    def focus_plots(self, result):
        """The box's image over the whole band and over the line's emission range, both in units of
        their noise, on the same colours."""
        line, box = self.selected_line, self.selected_box
        if line is None:
            blank = np.zeros((FOCUS_SIZE, FOCUS_SIZE))
            return self._image(blank, "no line"), self._image(blank, "no line")
        side = line.focused.shape[0]
        cx, cy = (box.x0 + box.x1) // 2, (box.y0 + box.y1) // 2
        bounds = (cx - side // 2 - 0.5, cy - side // 2 - 0.5, cx - side // 2 + side - 0.5, cy - side // 2 + side - 0.5)
        whole = self.whole_band(box)
        top = max(float(line.focused.max()), float(whole.max()), 1.0)
        return (self._image(whole, f"whole band: peak {focused_snr(whole):.1f} x noise", bounds, clim=(-3, top)),
                self._image(line.focused, f"channels {line.first}-{line.last - 1}: peak {line.snrs[0]:.1f} x noise",
                            bounds, clim=(-3, top)))

    def whole_band(self, box):
        """The box's focused image over every channel (units of its rms), made once per box."""
        key = (box.x0, box.y0, box.x1, box.y1)
        if key not in self._whole:
            with open_cube(self.cube_path) as cube:
                self._whole[key] = focused_images(cube, (*key, box.score), [(0, cube.nchan)])[0][0]
        return self._whole[key]


    def resnet_plot(self, result):
        """The focused image near the source, with the measured (blue) and the true (green) half-maximum
        ellipses."""
        line = self.selected_line
        _, focused = self.focus_plots(result)
        row = line.row if line is not None else None
        true = self._matched_truth(row) if row is not None else None
        measured = _ellipse(row) if row is not None else []
        real = _ellipse(true) if true is not None else []
        plot = (focused * hv.Path(measured, ["x (pixel)", "y (pixel)"]).opts(color=FOUND_COLOUR, line_width=3)
                * hv.Path(real, ["x (pixel)", "y (pixel)"]).opts(color=TRUE_COLOUR, line_width=2, line_dash="dashed"))
        if row is None:
            return plot.opts(title="not significant: not measured")
        x, y = float(row["x"]), float(row["y"])
        return plot.opts(title="measured (blue) and true (green)", xlim=(x - ZOOM_PX, x + ZOOM_PX),
                         ylim=(y - ZOOM_PX, y + ZOOM_PX))

    def _matched_truth(self, row):
        """The true source nearest to a measured row, within 3 px, or None."""
        if not len(self.truth):
            return None
        d = np.hypot(np.asarray(self.truth["x"], float) - row["x"], np.asarray(self.truth["y"], float) - row["y"])
        return self.truth[int(np.argmin(d))] if d.min() <= 3.0 else None

    def plots(self, step: int) -> list:
        """(name, function of the result) of step ``step``'s plots."""
        return [
            [("integrated", self.integrated_plot)],
            [("integrated", self.integrated_plot), ("map", self.map_plot)],
            [("map", self.map_plot), ("boxes", self.boxes_plot)],
            [("spectrum", self.spectrum_plot)],
            [("spectrum", self.spectrum_plot), ("denoised", functools.partial(self.spectrum_plot, denoised=True))],
            [("whole", lambda r: self.focus_plots(r)[0]), ("focused", lambda r: self.focus_plots(r)[1])],
            [("resnets", self.resnet_plot)],
        ][step]

    # ---- numbers --------------------------------------------------------------------------
    def numbers(self, step: int) -> str:
        r = self.result
        if r is None:
            return "Running the pipeline on the cube (a few seconds)..."
        if step == 0:
            lines = [f"{self.cube_path.name}: {self.nx} x {self.ny} pixels, {self.nchan} channels; "
                     f"{len(self.truth)} true sources:"]
            lines += [f"  source {int(t['source'])}: x {t['x']:.0f}, y {t['y']:.0f}, line at channel {t['z']:.0f} "
                      f"± {t['fwhm_z']:.1f}, peak signal/noise {t['snr_peak']:.1f}" for t in self.truth]
            return "\n".join(lines)
        if step in (1, 2):
            held = {j for b in r.boxes for j in self._true_in(b)}
            false = sum(1 for b in r.boxes if not self._true_in(b))
            return (f"threshold {r.threshold:.2f}: {len(r.boxes)} boxes, {len(r.boxes) - false} holding a true source "
                    f"and {false} none; {len(self.truth) - len(held)} of {len(self.truth)} true sources in no box"
                    + "".join(f"\n  source {int(self.truth[j]['source'])} (signal/noise "
                              f"{self.truth[j]['snr_peak']:.1f}) in no box" for j in range(len(self.truth))
                              if j not in held))
        box = self.selected_box
        if box is None:
            return "No box at this threshold: lower it."
        held = [self.truth[j] for j in self._true_in(box)]
        truth = ("; ".join(f"true source {int(t['source'])}: line at channel {t['z']:.1f} ± {t['fwhm_z']:.1f}"
                           for t in held) or "no true source in this box")
        if step == 3:
            return f"box {self.box + 1} (score {box.score:.2f}): {truth}"
        if step == 4:
            found = "; ".join(f"line {k + 1}: peak at channel {ln.peak}, range {ln.first}-{ln.last - 1}"
                              for k, ln in enumerate(box.lines))
            return f"Deep GRU: {found}\n{truth}"
        line = self.selected_line
        if step == 5:
            verdict = "kept" if line.significant else "dropped (not significant)"
            return (f"line {self.line + 1}, channels {line.first}-{line.last - 1}: focused signal/noise "
                    f"{line.snrs[0]:.1f} over the range, up to {max(line.snrs):.1f} over narrower windows; whole band "
                    f"{focused_snr(self.whole_band(box)):.1f}. Level {r.level:.2f}: {verdict}")
        return self._measured(line)

    def _measured(self, line) -> str:
        if line.row is None:
            return "This line is not significant: the ResNets do not measure it (lower the significance)."
        row, true = line.row, self._matched_truth(line.row)
        major, minor, pa = (float(v) for v in major_minor(row["fwhm_x"], row["fwhm_y"], row["pa"]))
        out = [f"{'':14}{'measured':>10}{'true':>10}"]
        if true is None:
            values = {"x (px)": row["x"], "y (px)": row["y"], "major (px)": major, "minor (px)": minor,
                      "angle (deg)": pa % 180, "flux (Jy km/s)": row["flux"]}
            values = {name: (value, None) for name, value in values.items()}
        else:
            t_major, t_minor, t_pa = (float(v) for v in major_minor(true["fwhm_x"], true["fwhm_y"], true["pa"]))
            flux = float(truth_line_flux(self.truth[self.truth["source"] == true["source"]], self.kms)[0])
            values = {"x (px)": (row["x"], true["x"]), "y (px)": (row["y"], true["y"]), "major (px)": (major, t_major),
                      "minor (px)": (minor, t_minor), "angle (deg)": (pa % 180, t_pa % 180),
                      "flux (Jy km/s)": (row["flux"], flux)}
            if t_minor >= ELONGATED_AXIS_RATIO * t_major:
                values["angle (deg)"] = (pa % 180, "round")
        for name, (found, real) in values.items():
            shown = "-" if real is None else real if isinstance(real, str) else f"{float(real):.2f}"
            out.append(f"{name:14}{float(found):>10.2f}{shown:>10}")
        out.append("(sizes: FWHM of the source itself, before the beam blurs it; angle of its major axis, "
                   "counter-clockwise from +x; a round source has none)")
        return "\n".join(out)

    def controls(self):
        return pn.Column(
            pn.widgets.FloatSlider.from_param(self.param.threshold, name="Blobs Finder threshold"),
            pn.widgets.FloatSlider.from_param(self.param.min_snr, name="Significance (focused signal / noise)"),
            self._box_picker, self._line_picker,
            Text(f"The cube: {self.cube_path.name}, shipped with the explorer, with its truth.", wrap=True),
            sizing_mode="stretch_width", css_classes=["lesson-controls"])

    def __panel__(self):
        return pn.Row(self.controls(), self.panel(2))


def _ellipse(source) -> list[np.ndarray]:
    """The half-maximum ellipse of a source (x, y, fwhm_x along its own x axis, fwhm_y, pa: the
    catalogue's convention, counter-clockwise from +x) as one closed path."""
    t = np.linspace(0, 2 * np.pi, 65)
    a, b, pa = float(source["fwhm_x"]) / 2, float(source["fwhm_y"]) / 2, math.radians(float(source["pa"]))
    x, y = a * np.cos(t), b * np.sin(t)
    return [np.column_stack([float(source["x"]) + x * math.cos(pa) - y * math.sin(pa),
                             float(source["y"]) + x * math.sin(pa) + y * math.cos(pa)])]
