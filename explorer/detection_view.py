"""Source finding in the cube explorer: run a detector off the UI thread, draw its boxes on the
channels where each source emits, inspect a source, compare with the truth, export.

The cube's primary-beam and PSF cubes (tclean's ``.pb`` and ``.psf``) are attached when they lie
beside it in its data folder under tclean's names, or picked from the data folders; they are
checked against the cube when attached and handed to the detector (fluxes corrected with the
primary beam).

Everything scientific goes through :mod:`pipeline.alma.detect`, ``catalog`` and ``evaluate``.
"""

from __future__ import annotations

import functools
import io
import logging
import tempfile
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from astropy.table import Table
from bokeh.models.widgets.tables import NumberFormatter

from explorer import jobs
from explorer.background import BackgroundJob
from explorer.files import find_companions, list_cubes, shown_path
from explorer.text import Alert, Prose, Text, TextTable
from pipeline.alma import completeness as completeness_check
from pipeline.alma import detect as finder_module
from pipeline.alma import reliability as reliability_check
from pipeline.alma.catalog import with_optional_columns, write_catalog, write_regions
from pipeline.alma.companions import KINDS, open_companion
from pipeline.alma.matching import classify
from pipeline.alma.measure import box_spectrum
from pipeline.alma.truth import truth_for_cube
from pipeline.alma.uncertainties import size_upper_limit
from pipeline.errors import InputError

DETECTOR_COLOURS = {"pipeline": "#00e5ff", "decoras": "#ff9800", "photutils": "#76ff03", "pybdsf": "#e040fb"}
TRUTH_COLOURS = {"true positive": "#00e676", "false positive": "#ff1744", "missed": "#ffea00"}
PRELIMINARY_COLOUR = "#ffffff"  # the pipeline's candidate boxes while it runs: white, seen on any colour map's noise
TABLE_COLUMNS = ["id", "x", "y", "z", "ra", "dec", "freq", "fwhm_x", "fwhm_y", "pa", "flux", "pb", "snr", "blended",
                 "sidelobe_p"]
GRID_LIMIT = 48  # spectra in the grid of every source
NO_COMPANION = "none"


def _rectangles(rows) -> hv.Rectangles:
    """Boxes (x0, y0, x1, y1, colour, width, id) as typed columns, so that an empty set of boxes
    has the same column types as a full one (a redraw from one to the other must not mix them)."""
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 7
    names = ("x0", "y0", "x1", "y1", "colour", "width", "id")
    types = (float, float, float, float, str, float, int)
    data = pd.DataFrame({name: np.asarray(values, dtype)
                         for name, values, dtype in zip(names, columns, types, strict=True)})
    return hv.Rectangles(data, kdims=list(names[:4]), vdims=list(names[4:]))


def shape_text(row) -> str:
    """A catalogue row's size and angle for the inspector, with their errors when the row has
    them, and what an unresolved source's sizes mean (upper limits)."""
    def value(name, unit, digits):
        err = row[f"{name}_err"]
        return f"{row[name]:.{digits}f}" + (f" ± {err:.{digits}f}" if np.isfinite(err) else "") + unit

    text = f"FWHM {value('fwhm_x', '', 2)} x {value('fwhm_y', ' px', 2)}, "
    text += f"PA {value('pa', ' deg', 1)}\n" if np.isfinite(row["pa"]) else "PA undefined (round source)\n"
    if not row["resolved"]:
        text += (f"unresolved: not wider than the beam beyond its errors; FWHM below "
                 f"{size_upper_limit(row['fwhm_x'], row['fwhm_x_err']):.2f} x "
                 f"{size_upper_limit(row['fwhm_y'], row['fwhm_y_err']):.2f} px\n")
    return text


class DetectionViewer(pn.viewable.Viewer):
    """Detection on the cube of a :class:`explorer.cube_view.CubeViewer`."""

    detector = param.Selector(default="pipeline", objects=list(finder_module.DETECTORS), doc="Which finder")
    all_channels = param.Boolean(default=False, doc="Draw every box on every channel (else only where it emits)")
    show_sidelobes = param.Boolean(default=False, doc="Show the probable sidelobes of brighter detections (dashed)")
    reliability = param.Boolean(default=False, doc="Also search the negated cube: each source's p_false and a "
                                "reliability table per SNR bin (twice as long)")
    completeness = param.Boolean(default=False, doc="Also inject point sources with the cube's beam where "
                                 "nothing was found and search again: the share found per SNR")
    statistics_text = param.String(default="", doc="The last run's reliability and completeness tables, as text")
    quality = param.Dict(default={}, doc="The last run's reliability and completeness tables (astropy), by name")
    selected = param.Integer(default=None, allow_None=True, doc="id of the selected source")
    status = param.String(default="", doc="What the detector is doing")
    preliminary = param.List(default=[], doc="While the pipeline runs, its Blobs Finder's boxes so far "
                                             "(x0, y0, x1, y1, score): candidates before the spectral check")
    running = param.Boolean(default=False)
    version = param.Integer(default=0, doc="Bumped whenever the catalogue changes")
    pb_file = param.Selector(default=NO_COMPANION, objects=[NO_COMPANION],
                             doc="The cube's primary-beam cube: fluxes are divided by its response at each source")
    psf_file = param.Selector(default=NO_COMPANION, objects=[NO_COMPANION],
                              doc="The cube's PSF cube (its real dirty beam)")
    attached = param.String(default="", doc="Which primary-beam and PSF cubes are attached")
    models = param.ClassSelector(class_=(str, Path), default=None, allow_None=True,
                                 doc="Folder of the trained networks (None: the shipped assets/models)")

    def __init__(self, cube_viewer, **params):
        chosen = {kind: params.pop(f"{kind}_file", None) for kind in KINDS}
        super().__init__(**params)
        self.cube_viewer = cube_viewer
        self.cube = cube_viewer.cube
        # the companions found beside the cube come first and are attached at once; any FITS file of
        # the data folders can be picked instead
        self._found = find_companions(self.cube.path)
        self._choices = {}
        for path in [*self._found.values(), *list_cubes().values()]:
            if path != self.cube.path.resolve():
                self._choices.setdefault(shown_path(path), path)
        for kind in KINDS:  # set on this viewer's own parameters (after __init__: not the class's)
            self.param[f"{kind}_file"].objects = [NO_COMPANION, *self._choices]
            found = self._found.get(kind)
            chosen[kind] = chosen[kind] or (shown_path(found) if found else NO_COMPANION)
        self._companions = {}  # kind -> the attached companion cube
        self._opened = {}  # (kind, path) -> every companion cube opened, closed with the viewer
        self.catalog: Table | None = None  # what is shown (and exported)
        self._found_all: Table | None = None  # everything the finder gave, probable sidelobes flagged
        try:
            self.truth = truth_for_cube(self.cube.path)
        except InputError as exc:  # a damaged truth file: the cube is still shown, without the comparison
            logging.getLogger("explorer").warning("truth of %s not used: %s", self.cube.path.name, exc)
            self.truth = None
        self.outcome = None  # per-row "true positive"/"false positive", and the missed truth rows
        self.job = BackgroundJob(self._on_done, self._on_error, self._on_status,
                                 lambda boxes: setattr(self, "preliminary", boxes))
        self._error = Alert("", alert_type="danger", visible=False, css_classes=["detection-error"])
        self._run = pn.widgets.Button(label="Find sources", color="primary", css_classes=["run-detection"])
        self._run.on_click(lambda _: self.start())
        self.param.watch(lambda _: self._found_all is not None and self.set_catalog(self._found_all), "show_sidelobes")
        decimals = {"x": 2, "y": 2, "z": 0, "ra": 6, "dec": 6, "freq_ghz": 6, "fwhm_x": 2, "fwhm_y": 2, "pa": 1,
                    "fwhm_x_err": 2, "fwhm_y_err": 2, "pa_err": 1,
                    "flux_jy_kms": 4, "pb": 3, "snr": 1, "sidelobe_p": 2}
        self._table = TextTable(
            pagination=None, max_height=300, disabled=True, show_index=False,
            formatters={k: NumberFormatter(format="0." + "0" * d if d else "0") for k, d in decimals.items()},
                                           selectable=1, sizing_mode="stretch_width", css_classes=["source-table"])
        self._table.param.watch(self._on_table_select, "selection")
        cube_viewer.tap.add_subscriber(self._on_tap)
        self.param.update({f"{kind}_file": chosen[kind] for kind in KINDS})
        for kind in KINDS:
            self._attach(kind, getattr(self, f"{kind}_file"))
        self.param.watch(lambda event: self._attach(event.name.removesuffix("_file"), event.new),
                         ["pb_file", "psf_file"])

    # ---- primary beam and PSF -------------------------------------------------------------
    def _attach(self, kind: str, label: str):
        """Attach the companion cube chosen as ``label`` (``NO_COMPANION``: none), checked against the
        cube; a file that does not fit is refused with the reason and the choice goes back to none."""
        self._companions.pop(kind, None)
        path = self._choices.get(label)
        if path is not None:
            try:
                if (kind, path) not in self._opened:
                    self._opened[(kind, path)] = open_companion(path, self.cube, kind)
                self._companions[kind] = self._opened[(kind, path)]
            except Exception as exc:  # any file: the visitor gets a message, the log the rest
                if not isinstance(exc, InputError):
                    logging.getLogger("explorer").exception("opening %s as a %s failed", path, KINDS[kind])
                    exc = f"{label} could not be read as a {KINDS[kind]}: check that it is a complete FITS file."
                self.show_error(str(exc))
                setattr(self, f"{kind}_file", NO_COMPANION)
        self.attached = "\n".join(self._describe(kind) for kind in KINDS)

    def _describe(self, kind: str) -> str:
        """One line on the attached ``kind`` cube, by the name visitors know it by."""
        title = {"pb": "Primary beam", "psf": "PSF"}[kind]
        companion = self._companions.get(kind)
        if companion is None:
            return f"{title}: none" + (" (fluxes will be uncorrected for the primary beam)" if kind == "pb" else "")
        beside = " (found beside the cube)" if self._found.get(kind) == companion.path.resolve() else ""
        planes = "1 plane for every channel" if companion.nchan == 1 else f"{companion.nchan} channels"
        effect = "; fluxes will be divided by its response" if kind == "pb" else ""
        return f"{title}: {shown_path(companion.path)}{beside}, {planes}{effect}"

    @property
    def companions(self) -> dict:
        """The attached companion cubes, {"pb": Cube, "psf": Cube} (those attached)."""
        return dict(self._companions)

    def close(self):
        """Close the companion cubes this viewer opened (the cube is its cube viewer's)."""
        for companion in self._opened.values():
            companion.close()
        self._opened.clear()
        self._companions.clear()

    # ---- running --------------------------------------------------------------------------
    def start(self):
        """Run the chosen detector in a worker process (progress, Cancel at once, the page and
        other sessions stay live)."""
        if self.job.running:
            return
        # the companions as attached now, whatever is picked while it runs
        work = functools.partial(jobs.find_sources, self.cube.path, self.detector,
                                 {kind: companion.path for kind, companion in self.companions.items()},
                                 self.models, self.reliability, self.completeness)
        self.running = True
        self._run.disabled = True
        self.show_error("")
        self.job.start(work, f"running {self.detector}...", in_process=True)

    def _on_status(self, text):
        found = f"; {len(self.preliminary)} candidate boxes so far (dotted white)" if self.preliminary else ""
        self.status = f"{text}{found}"

    def _on_done(self, result):
        self.preliminary = []
        catalog, self.quality = result
        texts = {"reliability": reliability_check.format_table, "completeness": completeness_check.format_table}
        self.statistics_text = "\n\n".join(texts[name](table) for name, table in self.quality.items())
        self.running, self._run.disabled = False, False
        self._found_all = catalog
        self.set_catalog(catalog)

    def _on_error(self, message):
        self.preliminary = []
        self.running, self._run.disabled = False, False
        self.status = ""
        self.show_error(message)

    def set_catalog(self, catalog: Table):
        """Show a catalogue: table, boxes, truth comparison; its probable sidelobes only when
        ``show_sidelobes`` (ids stay the finder's, so a hidden sidelobe leaves a gap)."""
        catalog = with_optional_columns(catalog)
        sidelobes = np.asarray(catalog["sidelobe"], bool)
        if not self.show_sidelobes:
            catalog = catalog[~sidelobes]
        self.catalog = catalog
        self.outcome = self._compare_with_truth(catalog)
        measured = bool(np.isfinite(np.asarray(catalog["p_false"], float)).any())  # the reliability was measured
        frame = catalog[TABLE_COLUMNS + ["p_false"] * measured].to_pandas() if len(catalog) else None
        if frame is not None:
            frame["freq"] = frame["freq"] / 1e9
            frame = frame.rename(columns={"freq": "freq_ghz", "flux": "flux_jy_kms"})
            if self.outcome is not None:
                frame["truth"] = self.outcome["rows"]
        self._table.value = frame
        tp = "" if self.outcome is None else (
            f"; against the truth: {self.outcome['rows'].count('true positive')} true, "
            f"{self.outcome['rows'].count('false positive')} false, {len(self.outcome['missed'])} missed")
        scale = ("fluxes primary-beam corrected" if catalog.meta.get("pb_corrected")
                 else "fluxes uncorrected for the primary beam")
        hidden = (f"; {int(sidelobes.sum())} probable sidelobe(s) "
                  + ("shown dashed" if self.show_sidelobes else "hidden") if sidelobes.any() else "")
        cut = catalog.meta.get("significance", "")
        cut = f"; {cut}" if "raised" in cut else ""  # a large cube's stricter cut is worth saying
        detector = catalog.meta.get("detector", self.detector)
        self.status = f"{len(catalog)} sources ({detector}){tp}{hidden}; {scale}{cut}"
        self.selected = int(catalog["id"][0]) if len(catalog) else None
        self.version += 1

    def _compare_with_truth(self, catalog):
        if self.truth is None or not len(catalog):
            return None
        return classify(self.truth, catalog, self.cube.path.name, image_size_px=max(self.cube.nx, self.cube.ny))

    def show_error(self, text):
        self._error.object, self._error.visible = text, bool(text)

    # ---- selection ------------------------------------------------------------------------
    def _on_table_select(self, event):
        """A row picked in the table: select it and show its peak channel (as a catalogue row
        activated in TOPCAT or CARTA pans the image to it)."""
        if event.new and self.catalog is not None:
            row = self.catalog[event.new[0]]
            self.selected = int(row["id"])
            self.cube_viewer.channel = int(row["z"])

    def _on_tap(self, x=None, y=None):
        if self.catalog is None or x is None:
            return
        channel = self.cube_viewer.channel
        for row in self.catalog:
            inside = row["x0"] - 0.5 <= x <= row["x1"] - 0.5 and row["y0"] - 0.5 <= y <= row["y1"] - 0.5
            if inside and (self.all_channels or row["z0"] <= channel < row["z1"]):
                self.selected = int(row["id"])
                return

    def selected_row(self):
        if self.catalog is None or self.selected is None:
            return None
        rows = self.catalog[self.catalog["id"] == self.selected]
        return rows[0] if len(rows) else None

    # ---- plots ----------------------------------------------------------------------------
    def boxes(self, channel, all_channels, version, selected, view, preliminary=()):
        """Boxes of the sources emitting in ``channel`` (all of them on moment 0 or when asked),
        coloured by detector, or by outcome against the truth; missed true sources as circles;
        while the pipeline runs, its candidate boxes so far (``preliminary``, every channel), dotted white."""
        every = all_channels or view == "moment 0"
        data = []
        for i, row in enumerate(self.catalog if self.catalog is not None else []):
            if every or row["z0"] <= channel < row["z1"]:
                colour = (TRUTH_COLOURS[self.outcome["rows"][i]] if self.outcome is not None
                          else DETECTOR_COLOURS.get(str(row["detector"]), "white"))
                width = 3 if int(row["id"]) == selected else 1.5
                data.append((row["x0"] - 0.5, row["y0"] - 0.5, row["x1"] - 0.5, row["y1"] - 0.5,
                             colour, width, int(row["id"]), bool(row["sidelobe"])))
        rects = hv.Overlay([_rectangles([d[:7] for d in data if d[7] == dashed]).opts(
            fill_alpha=0, line_color="colour", line_width="width", line_dash="dashed" if dashed else "solid",
            tools=["hover"]) for dashed in (False, True)])
        missed = []
        if self.outcome is not None and self.catalog is not None:
            for t in self.outcome["missed"]:
                if every or abs(channel - t["z"]) <= t["fwhm_z"]:
                    missed.append((t["x"], t["y"]))
        points = hv.Points(missed).opts(marker="circle", size=18, fill_alpha=0, line_color=TRUTH_COLOURS["missed"],
                                        line_dash="dashed", line_width=2)
        found_so_far = _rectangles([(x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5, PRELIMINARY_COLOUR, 1.5, -1)
                                    for x0, y0, x1, y1, _ in preliminary]).opts(
            fill_alpha=0, line_color="colour", line_width="width", line_dash="dotted")
        return rects * points * found_so_far

    def overlay(self):
        cv = self.cube_viewer
        return hv.DynamicMap(pn.bind(self.boxes, cv.param.channel, self.param.all_channels, self.param.version,
                                     self.param.selected, cv.param.view, self.param.preliminary))

    def source_panel(self, selected, version):
        """The selected source: spectra with emission ranges, focused image, parameters."""
        row = self.selected_row()
        if row is None:
            return pn.pane.Markdown("Run a detector, then pick a source in the table or click its box.")
        try:
            view = finder_module.inspect_source(
                self.cube, row, finder_module.SourceFinder.load(self.models) if row["detector"] == "pipeline" else None)
        except InputError as exc:
            return Alert(str(exc), alert_type="warning")
        x, xlabel, _ = self.cube_viewer.spectrum()
        raw = view.raw_spectrum
        scale = np.nanmax(np.abs(raw)) or 1.0
        curves = hv.Curve((x, raw / scale), xlabel, "normalised flux", label="box spectrum").opts(
            interpolation="steps-mid", color="black")
        if view.denoised_spectrum is not None:
            curves *= hv.Curve((x, view.denoised_spectrum), xlabel, "normalised flux", label="Deep GRU").opts(
                color="#0072B5", line_width=2)
        for _, first, last in view.ranges:
            lo, hi = x[first], x[min(last, len(x)) - 1]
            curves *= hv.VSpan(min(lo, hi), max(lo, hi)).opts(color="orange", alpha=0.2)
        blended = " | blended: more than one line" if bool(row["blended"]) else ""
        spectra = curves.opts(title=f"Source {row['id']} ({row['detector']}){blended}", height=260,
                              responsive=True, legend_position="top_right", show_legend=True)
        # own dimension names: Panel links the axes of panes that share them (the cube image's x, y)
        focused = hv.Image(view.focused[::-1], kdims=["focused x", "focused y"], vdims=["signal / rms"],
                           bounds=(0, 0, view.focused.shape[1], view.focused.shape[0])).opts(
            cmap="inferno", title="focused image (rms units)", colorbar=True, width=300, height=260,
            xaxis=None, yaxis=None)
        params = Text(
            f"RA {row['ra']:.6f} deg  Dec {row['dec']:.6f} deg\n"
            f"frequency {row['freq'] / 1e9:.6f} GHz (channel {row['z']})\n"
            + shape_text(row)
            + (f"probable sidelobe of source {row['sidelobe_of']} (p = {row['sidelobe_p']:.2f})\n"
               if row["sidelobe"] else "")
            + f"flux {row['flux']:.4g} Jy km/s, SNR {row['snr']:.1f}, score {row['score']:.2f}\n"
            + (f"primary beam {row['pb']:.3f} (flux corrected)" if np.isfinite(row["pb"])
               else "flux uncorrected for the primary beam"), css_classes=["source-params"])
        return pn.Column(pn.pane.HoloViews(spectra, sizing_mode="stretch_width"),
                         pn.Row(pn.pane.HoloViews(focused), params), sizing_mode="stretch_width")

    @param.depends("quality")
    def quality_plot(self):
        """Reliability (per SNR bin, at its lower edge) and completeness (per injected SNR) against
        SNR, when the last run measured them."""
        curves = []
        if "reliability" in self.quality:
            table = self.quality["reliability"]
            measured = [(float(r["snr_low"]), float(r["reliability"])) for r in table if r["reliability"] is not None]
            curves.append(hv.Curve(measured, "SNR", "fraction", label="reliability").opts(color="#ff9800"))
        if "completeness" in self.quality:
            table = self.quality["completeness"]
            curves.append(hv.Curve((np.asarray(table["snr"]), np.asarray(table["completeness"])), "SNR", "fraction",
                                   label="completeness").opts(color="#00b0ff"))
        if not curves:
            return pn.Spacer(height=0)
        return hv.Overlay([c.opts(line_width=2) * hv.Scatter(c.data).opts(color=c.opts.get().kwargs["color"], size=6)
                           for c in curves]).opts(ylim=(0, 1.05), height=220, width=420, legend_position="bottom_right",
                                                  title="From this cube: reliability and completeness", toolbar=None)

    def spectra_grid(self, version):
        if self.catalog is None or not len(self.catalog):
            return pn.pane.Markdown("No sources yet.")
        plots = []
        for row in self.catalog[:GRID_LIMIT]:
            box = (int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))
            spectrum = box_spectrum(self.cube, box)
            curve = hv.Curve(spectrum).opts(interpolation="steps-mid", width=220, height=140, title=f"{row['id']}",
                                            xaxis=None, yaxis=None, color="black")
            plots.append(curve * hv.VSpan(row["z0"], row["z1"] - 1).opts(color="orange", alpha=0.2))
        note = f" (first {GRID_LIMIT})" if len(self.catalog) > GRID_LIMIT else ""
        return pn.Column(pn.pane.Markdown(f"Box spectra of every source{note}, emission ranges shaded"),
                         pn.pane.HoloViews(hv.Layout(plots).cols(4)))

    # ---- export ---------------------------------------------------------------------------
    def export(self, suffix: str) -> io.BytesIO:
        """The catalogue (.csv, .vot) or its regions (.reg, .crtf) as a file to download."""
        if self.catalog is None:
            raise InputError("Nothing to export yet: run a detector first.")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"catalog{suffix}"
            if suffix in (".csv", ".vot"):
                write_catalog(self.catalog, path)
            else:
                write_regions(self.catalog, self.cube, path)
            return io.BytesIO(path.read_bytes())

    def _download(self, suffix, label):
        stem = self.cube.path.name.split(".")[0]
        return pn.widgets.FileDownload(callback=lambda: self.export(suffix), filename=f"{stem}_{self.detector}{suffix}",
                                       label=label, embed=False)

    def __panel__(self):
        controls = pn.Row(
            pn.widgets.Select.from_param(self.param.detector, name="Detector", width=160),
            pn.Column(pn.Spacer(height=18), pn.Row(self._run, self.job.cancel_button)),
            sizing_mode="stretch_width")
        # the view options on a row of their own: beside the buttons they squeezed them together
        options = pn.Row(pn.widgets.Checkbox.from_param(self.param.all_channels, name="Boxes on all channels"),
                         pn.widgets.Checkbox.from_param(self.param.show_sidelobes, name="Show probable sidelobes"),
                         pn.widgets.Checkbox.from_param(self.param.reliability, name="Reliability (negated cube)",
                                                        css_classes=["reliability-toggle"]),
                         pn.widgets.Checkbox.from_param(self.param.completeness, name="Completeness (injected sources)",
                                                        css_classes=["completeness-toggle"]))
        companions = pn.Column(
            pn.Row(pn.widgets.Select.from_param(self.param.pb_file, name="Primary beam (.pb)", width=240),
                   pn.widgets.Select.from_param(self.param.psf_file, name="PSF (.psf)", width=240)),
            Prose(self.param.attached, css_classes=["companions"]), sizing_mode="stretch_width")
        exports = pn.Row(self._download(".csv", "CSV"), self._download(".vot", "VOTable"),
                         self._download(".reg", "DS9 regions"), self._download(".crtf", "CRTF regions"))
        legend = ("Boxes: " + ", ".join(f"<span style='color:{c}'>■</span> {k}" for k, c in TRUTH_COLOURS.items())
                  + " (against this cube's truth)" if self.truth is not None else
                  "Boxes: " + ", ".join(f"<span style='color:{c}'>■</span> {k}" for k, c in DETECTOR_COLOURS.items()))
        return pn.Column(
            controls, options, companions, self.job.bar,
            Text(self.param.status, css_classes=["detection-status"]), self._error,
            Text(self.param.statistics_text, css_classes=["reliability-table"]), self.quality_plot,
            pn.pane.HTML(legend), self._table, exports,
            pn.Tabs(("Selected source", pn.panel(pn.bind(self.source_panel, self.param.selected, self.param.version))),
                    ("All spectra", pn.panel(pn.bind(self.spectra_grid, self.param.version))), dynamic=True),
            sizing_mode="stretch_width")
