"""Lesson 2, "Why dirty cubes are hard": one simulated cube with a bright source and faint ones, a
classic finder and the pipeline side by side, their candidates coloured true, false or missed
against the truth, and the sidelobe candidates explained with the bright source's dirty beam
drawn over them. The cube is simulated, searched and scored through :mod:`pipeline` (the
simulator, :func:`pipeline.alma.detect.detect`, :mod:`pipeline.alma.matching`,
:mod:`pipeline.alma.evaluate`), in a worker process (:func:`explorer.jobs.observe_and_find`)."""

from __future__ import annotations

import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import holoviews as hv
import holoviews.plotting.bokeh  # (plot options need a backend, also outside a served page)
import numpy as np
import panel as pn
import param

from explorer import jobs, overlays, uploads
from explorer.detection_view import HALO_COLOUR, TRUTH_COLOURS
from explorer.lesson_runs import RunningLesson
from pipeline.alma.classic import CLASSIC_DETECTORS
from pipeline.alma.companions import companion_candidates, dirty_beam_image, open_companion
from pipeline.alma.cube import open_cube
from pipeline.alma.evaluate import evaluate
from pipeline.alma.matching import classify
from pipeline.alma.measure import beam_on_grid
from pipeline.alma.noise import noise_of
from pipeline.alma.simulate import Observation, sky_model_path
from pipeline.alma.sky import SkyParameters
from pipeline.alma.truth import truth_for_cube

SIZE, CHANNELS = 256, 64  # the cube: 25.6" at 0.1"/px (the paper's field), 64 channels of 10 MHz
FAINT = 4  # faint sources besides the bright one
FRAME_PX = 300
SIGNAL_RANGE = (-3.0, 15.0)  # colours of the dirty images, in units of the channel's noise: faint things show
FLAGGED_DASH = "dashed"
MISSED_RADIUS_PX = 7.0

STEPS = (
    ("A bright source and faint ones",
     "The sky (left) holds one bright source at the centre and four faint ones, each emitting in a few "
     "channels of the cube. What the array delivers (right) is the dirty cube: every source convolved "
     "with the dirty beam, plus noise. Slide through the channels: in the bright source's channels "
     "its sidelobes spread over the whole field, many times brighter than the faint sources. Colours are "
     "in units of the channel's noise."),
    ("A classic finder",
     "A classic finder (photutils or PyBDSF) looks for groups of pixels above a few times the noise. "
     "Its candidates are coloured against the truth: green found a true source, red is false, and "
     "white circles are true sources nothing found. The bright source is easy; its sidelobes look to "
     "such a finder like sources too, and the faint lines, spread over few channels, may not stand out "
     "in the sum it searches."),
    ("The pipeline beside it",
     "The pipeline of Delli Veneri et al. (2022) searches with a network trained on dirty images (the "
     "Blobs Finder), checks each box's spectrum for a line (the Deep GRU) and keeps what is significant "
     "over the line's own channels. Compare it with the classic finder on the same cube: which finds "
     "the faint sources, and which takes sidelobes for sources?"),
    ("Sidelobes, seen with the dirty beam",
     "The same candidates, now over the bright source's dirty beam alone: the beam scaled to the bright "
     "source's brightness in the channel shown, in the same units and colours as the dirty channel "
     "(compare them with Back). Where the beam puts many times the noise, the bright source alone makes "
     "a blob: red candidates sitting on such blobs are its sidelobes, not sources (the numbers compare "
     "what the beam puts there with what was measured). Shorten the track or brighten the source and "
     "watch them multiply; a longer track fills the uv plane and lowers the sidelobes."),
    ("Telling sidelobes from sources",
     "Every finder's candidates go through the same physical check: a sidelobe's spectrum is a scaled "
     "copy of its parent's, at the level the dirty beam (the PSF cube) gives at their offset. Candidates "
     "that fit are flagged as probable sidelobes (dashed) and dropped from the catalogue. The numbers "
     "say what the check did to each finder's precision and recall."),
)


@dataclass
class Observed:
    """One run of the lesson: the simulated cube, its sky model and PSF cube (open), its truth, and
    each finder's catalogue (sidelobes flagged) with its outcome against the truth."""

    folder: Path
    cube: object
    sky: object
    psf: object
    truth: object
    catalogs: dict
    outcomes: dict
    noise: np.ndarray  # per channel, of the dirty cube

    @classmethod
    def read(cls, path: Path, catalogs: dict) -> Observed:
        cube = open_cube(path)
        sky = open_cube(sky_model_path(path))
        psf = open_companion(companion_candidates(path, "psf")[0], cube, "psf")
        truth = truth_for_cube(path)
        outcomes = {name: classify(truth, catalog, path.name, SIZE) for name, catalog in catalogs.items()}
        noise = np.asarray(noise_of(cube).quiet, float)
        return cls(path.parent, cube, sky, psf, truth, catalogs, outcomes, noise)

    def close(self) -> None:
        for cube in (self.cube, self.sky, self.psf):
            cube.close()
        shutil.rmtree(self.folder.parent, ignore_errors=True)

    @property
    def bright(self):
        """The bright source's truth row (the simulator's first, at the centre)."""
        return self.truth[0]

    def signal(self, channel: int) -> np.ndarray:
        """Channel ``channel`` of the dirty cube in units of its noise."""
        return np.asarray(self.cube.channel(channel), float) / self.noise[channel]

    def beam_map(self, channel: int) -> np.ndarray:
        """The bright source's dirty beam over the field, scaled to its brightness at its position in
        ``channel`` (units of the channel's noise): where it alone puts that much."""
        x, y = (int(round(float(self.bright[c]))) for c in ("x", "y"))
        side = 2 * SIZE
        beam = dirty_beam_image(self.psf, channel, channel + 1, side)
        rows, cols = slice(side // 2 - y, side // 2 - y + SIZE), slice(side // 2 - x, side // 2 - x + SIZE)
        return beam[rows, cols] * self.signal(channel)[y, x]

    def scores(self, name: str) -> tuple[dict, dict]:
        """``name``'s overall scores with every candidate, and without its probable sidelobes."""
        catalog = self.catalogs[name]
        return (evaluate(self.truth, catalog)["overall"],
                evaluate(self.truth, catalog[~np.asarray(catalog["sidelobe"], bool)])["overall"])


class DirtyCubesLesson(RunningLesson):
    """Widgets for the sky and the observation; ``panel(step)`` the step's plots and numbers. A
    change simulates and searches again in the background (a few seconds)."""

    bright_snr = param.Number(default=300.0, bounds=(20.0, 2000.0), step=10.0,
                              doc="Bright source: peak signal-to-noise per channel")
    minutes = param.Integer(default=5, bounds=(2, 120), doc="Track length (minutes)")
    seed = param.Integer(default=2, bounds=(0, 99_999), doc="Sky (random seed)")
    classic = param.Selector(default="photutils", objects=list(CLASSIC_DETECTORS), doc="Classic finder")
    channel = param.Integer(default=0, bounds=(0, CHANNELS - 1), doc="Channel shown")

    redraw_on = ("channel",)

    def __init__(self, **params):
        super().__init__(**params)
        self._folder = None  # the run going's
        self.param.watch(lambda *_: self.run(), ["bright_snr", "minutes", "seed", "classic"])

    # ---- running --------------------------------------------------------------------------
    def work(self) -> tuple:
        """Simulate the cube into a folder of this session's, and search it."""
        self._folder = Path(tempfile.mkdtemp(prefix="dirty-cube-", dir=uploads.session_folder()))
        sky = SkyParameters(snr_central=(self.bright_snr, self.bright_snr), n_fainter=(FAINT, FAINT))
        return (functools.partial(jobs.observe_and_find, self._folder / "cube", self.seed, SIZE, CHANNELS,
                                  Observation(observation_s=60.0 * self.minutes), sky, (self.classic, "pipeline")),
                "Observing and finding sources")

    def take(self, value) -> None:
        path, catalogs = value
        previous, observed = self.result, Observed.read(Path(path), catalogs)
        self.param.update(result=observed, channel=int(round(float(observed.bright["z"]))))  # one redraw
        if previous is not None:
            previous.close()

    def failed(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    # ---- plots ----------------------------------------------------------------------------
    def _frame(self) -> dict:
        side = int(FRAME_PX * self.scale)
        return {"frame_width": side, "frame_height": side}

    def _image(self, data: np.ndarray, title: str, **opts):
        image = hv.Image(np.flipud(data), bounds=(-0.5, -0.5, SIZE - 0.5, SIZE - 0.5), kdims=["x (pixel)", "y (pixel)"],
                         vdims=["value"])
        return image.opts(**self._frame(), title=title, tools=["hover"], colorbar=False, **opts)

    # Every plot has the same layers whether or not there is a result yet (a DynamicMap must keep them).
    def sky_plot(self, result):
        channel = self.channel
        data = np.asarray(result.sky.channel(channel), float) if result is not None else np.zeros((SIZE, SIZE))
        title = f"the true sky, channel {channel} (Jy/pixel)"
        return (self._image(data, title, cmap="inferno", clim=(0.0, max(float(data.max()), 1e-12)))
                * self._truth_marks(result, channel))

    def dirty_plot(self, result, finder: str | None = None, beam: bool = False, flagged: bool = False):
        """The dirty channel (signal-to-noise), or with ``beam`` the bright source's dirty beam alone
        (what it puts at each place, same units and colours); with ``finder`` its candidates coloured
        by outcome (probable sidelobes dashed when ``flagged``) and the true sources it missed."""
        channel = self.channel
        title = (f"{finder or 'the dirty cube'}, channel {channel} (signal / noise)" if not beam
                 else f"{finder}: the bright source's beam, ch. {channel}")
        if result is None:
            shown = np.zeros((SIZE, SIZE))
        else:
            shown = result.beam_map(channel) if beam else result.signal(channel)
        plot = self._image(shown, title, cmap="inferno", clim=SIGNAL_RANGE)
        if finder is None:
            return plot * self._truth_marks(result, channel)
        return plot * self._candidates(result, finder, flagged)

    @staticmethod
    def _truth_marks(result, channel):
        """Crosses on the true sources emitting in ``channel`` (within their line's FWHM)."""
        xy = np.zeros((0, 2))
        if result is not None:
            t = result.truth
            near = np.abs(np.asarray(t["z"], float) - channel) <= np.asarray(t["fwhm_z"], float)
            xy = np.column_stack([np.asarray(t["x"], float)[near], np.asarray(t["y"], float)[near]])
        return hv.Points(xy, ["x (pixel)", "y (pixel)"]).opts(marker="x", size=12, color="#00e676", line_width=2)

    def _candidates(self, result, finder: str, flagged: bool):
        boxes, missed = {False: [], True: []}, []
        if result is not None:
            catalog, outcome = result.catalogs[finder], result.outcomes[finder]
            sidelobe = np.asarray(catalog["sidelobe"], bool) if flagged else np.zeros(len(catalog), bool)
            for i, row in enumerate(catalog):
                boxes[bool(sidelobe[i])].append((float(row["x0"]) - 0.5, float(row["y0"]) - 0.5,
                                                 float(row["x1"]) - 0.5, float(row["y1"]) - 0.5,
                                                 TRUTH_COLOURS[outcome["rows"][i]], int(row["id"])))
            missed = [(float(t["x"]), float(t["y"])) for t in outcome["missed"]]
        style = {"fill_alpha": 0, "line_color": "colour", "line_width": 2, "tools": ["hover"]}
        halo = {"fill_alpha": 0, "line_color": HALO_COLOUR, "line_width": 5, "line_alpha": 0.6}
        return (overlays.rectangles(boxes[False] + boxes[True]).opts(**halo)
                * overlays.rectangles(boxes[False]).opts(**style)
                * overlays.rectangles(boxes[True]).opts(**style, line_dash=FLAGGED_DASH)
                * overlays.circles(missed, MISSED_RADIUS_PX).opts(color=TRUTH_COLOURS["missed"], line_width=2,
                                                                 line_dash="dotted"))

    def plots(self, step: int) -> list:
        """(name, function of the result) of step ``step``'s plots (at the channel shown)."""
        c = self.classic
        return [
            [("sky", self.sky_plot), ("dirty", self.dirty_plot)],
            [("sky", self.sky_plot), (c, functools.partial(self.dirty_plot, finder=c))],
            [(c, functools.partial(self.dirty_plot, finder=c)),
             ("pipeline", functools.partial(self.dirty_plot, finder="pipeline"))],
            [(f"{c}-beam", functools.partial(self.dirty_plot, finder=c, beam=True)),
             ("pipeline-beam", functools.partial(self.dirty_plot, finder="pipeline", beam=True))],
            [(f"{c}-flagged", functools.partial(self.dirty_plot, finder=c, beam=True, flagged=True)),
             ("pipeline-flagged", functools.partial(self.dirty_plot, finder="pipeline", beam=True, flagged=True))],
        ][step]

    # ---- numbers --------------------------------------------------------------------------
    def numbers(self, step: int) -> str:
        r = self.result
        if r is None:
            return "Simulating the observation and finding its sources (a few seconds)..."
        if step == 0:
            lines = [f"{len(r.truth)} true sources (peak signal / noise in the dirty cube, channels):"]
            for t in r.truth:
                lines.append(f"  source {int(t['source'])}: x {t['x']:.0f}, y {t['y']:.0f}, channel {t['z']:.0f} "
                             f"± {t['fwhm_z']:.1f}, signal/noise {t['snr_peak']:.1f}")
            bmaj, bmin, _ = beam_on_grid(r.cube)
            lines.append(f"beam {bmaj:.1f} x {bmin:.1f} px (0.1\" pixels); track {self.minutes} min")
            return "\n".join(lines)
        finders = [self.classic] if step == 1 else [self.classic, "pipeline"]
        lines = [self._score_line(name, *r.scores(name), after=step == 4) for name in finders]
        if step == 3:
            lines += self._sidelobe_lines(finders)
        return "\n".join(lines)

    def _score_line(self, name: str, every: dict, kept: dict, after: bool) -> str:
        outcome = self.result.outcomes[name]["rows"]
        line = (f"{name}: {outcome.count('true positive')} true, {outcome.count('false positive')} false, "
                f"{every['n_true'] - every['tp']} missed; precision {_fmt(every['precision'])}, "
                f"recall {_fmt(every['recall'])}")
        if after:
            flagged = int(np.sum(np.asarray(self.result.catalogs[name]["sidelobe"], bool)))
            line += (f"\n  {flagged} flagged as sidelobes and dropped: precision {_fmt(kept['precision'])}, "
                     f"recall {_fmt(kept['recall'])}")
        return line

    def _sidelobe_lines(self, finders) -> list[str]:
        """Each false candidate: its distance from the bright source in beams, and what the bright
        source's dirty beam puts there, against what was measured."""
        r = self.result
        bmaj, _, _ = beam_on_grid(r.cube)
        bx, by = float(r.bright["x"]), float(r.bright["y"])
        lines = []
        for name in finders:
            catalog, outcome = r.catalogs[name], r.outcomes[name]["rows"]
            for i, row in enumerate(catalog):
                if outcome[i] != "false positive":
                    continue
                x, y, z = (int(round(float(row[c]))) for c in ("x", "y", "z"))
                x, y = min(max(x, 0), SIZE - 1), min(max(y, 0), SIZE - 1)
                expected = r.beam_map(z)[y, x]
                lines.append(f"  {name} #{int(row['id'])}: {np.hypot(x - bx, y - by) / bmaj:.1f} beams from the "
                             f"bright source, channel {z}; its dirty beam puts {expected:.1f} x the noise there, "
                             f"{r.signal(z)[y, x]:.1f} measured")
        return (["false candidates:"] + lines) if lines else ["no false candidates"]

    def controls(self):
        return pn.Column(
            pn.widgets.FloatSlider.from_param(self.param.bright_snr, name="Bright source: signal / noise"),
            pn.widgets.IntSlider.from_param(self.param.minutes, name="Track length (minutes)"),
            pn.widgets.IntInput.from_param(self.param.seed, name="Sky (random seed)"),
            pn.widgets.Select.from_param(self.param.classic, name="Classic finder"),
            pn.widgets.IntSlider.from_param(self.param.channel, name="Channel shown"),
            sizing_mode="stretch_width", css_classes=["lesson-controls"])

    def __panel__(self):
        return pn.Row(self.controls(), self.panel(2))


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"
