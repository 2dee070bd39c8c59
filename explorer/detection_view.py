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
import panel as pn
import param
from astropy.table import Table
from bokeh.models.widgets.tables import NumberFormatter

from explorer import jobs, overlays
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

DETECTOR_COLOURS = {"pipeline": "#00e5ff", "decoras": "#ff9800", "photutils": "#76ff03", "pybdsf": "#ff80ff"}
TRUTH_COLOURS = {"true positive": "#00e676", "false positive": "#ff8a80", "missed": "#ffffff"}
PRELIMINARY_COLOUR = "#ffffff"  # the pipeline's candidate boxes while it runs: white, seen on any colour map's noise
# every box and circle is drawn over a wider dark line: a colour the map shares (yellow on inferno's
# top, white on gray's) still has a dark edge, and the dark edge a bright line, on every map offered
HALO_COLOUR, HALO_WIDTH = "#000000", 4.0
LINE_WIDTH, SELECTED_WIDTH = 1.5, 3.0
MISSED_RADIUS_PX = 8.0  # screen pixels of the circles round missed true sources
# what fits beside the controls at 1280 px; the exports have every column, the inspector the rest
TABLE_COLUMNS = ["id", "z", "ra", "dec", "freq", "fwhm_x", "fwhm_y", "pa", "flux", "snr"]
COLUMN_WIDTHS = {"id": 55, "z": 50, "ra": 104, "dec": 104, "GHz": 88, "fwhm_x": 92, "fwhm_y": 92, "pa": 55,
                 "Jy km/s": 88, "snr": 64, "truth": 112, "pb": 60, "sidelobe_p": 110, "p_false": 90}
MEASURED_COLUMNS = ["pb", "sidelobe_p", "p_false"]  # shown when measured (sidelobe_p: when a sidelobe is shown)
EXPORTS = {".csv": "CSV", ".vot": "VOTable", ".reg": "DS9 regions", ".crtf": "CRTF regions"}
GRID_LIMIT = 48  # spectra in the grid of every source
NO_COMPANION = "none"


def _boxes(rows, label: str, dash: str = "solid", width: float = LINE_WIDTH, hover: bool = True) -> hv.Rectangles:
    """Boxes in their colours (``colour`` column): the element ``Boxes.<label>``."""
    return overlays.rectangles(rows).relabel(group="Boxes", label=label).opts(
        fill_alpha=0, line_color="colour", line_width=width, line_dash=dash, tools=["hover"] if hover else [],
        apply_ranges=False)


def _halo(rows) -> hv.Rectangles:
    """The dark halo under every box drawn (``Halo.Boxes``), one layer for all."""
    return overlays.rectangles(rows).relabel(group="Halo", label="Boxes").opts(
        fill_alpha=0, line_color=HALO_COLOUR, line_width=SELECTED_WIDTH + HALO_WIDTH - LINE_WIDTH, line_alpha=0.5,
        apply_ranges=False)


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
    wanted = param.Integer(default=None, allow_None=True, doc="A source to select when the next run ends (a "
                           "shared link's), instead of the brightest")
    status = param.String(default="", doc="What the detector is doing")
    preliminary = param.List(default=[], doc="While the pipeline runs, its Blobs Finder's boxes so far "
                                             "(x0, y0, x1, y1, score): candidates before the spectral check")
    running = param.Boolean(default=False)
    version = param.Integer(default=0, doc="Bumped whenever the catalogue changes")
    found = param.ClassSelector(class_=Table, default=None, allow_None=True,
                                doc="Everything the last run found, its probable sidelobes flagged (set when it ends)")
    shown = param.Parameter(default=None, doc="What the boxes over the image show now (see _drawn_key)")
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
        try:
            self.truth = truth_for_cube(self.cube.path)
        except InputError as exc:  # a damaged truth file: the cube is still shown, without the comparison
            logging.getLogger("explorer").warning("truth of %s not used: %s", self.cube.path.name, exc)
            self.truth = None
        self.outcome = None  # per-row "true positive"/"false positive", and the missed truth rows
        self._drawable_of = None  # (version, what boxes() draws of that catalogue)
        self._last_boxes = None  # (what was drawn, the overlay drawn): unchanged boxes are not made again
        self.job = BackgroundJob(self._on_done, self._on_error, self._on_status,
                                 lambda boxes: setattr(self, "preliminary", boxes))
        self._error = Alert("", alert_type="danger", visible=False, css_classes=["detection-error"])
        self._run = pn.widgets.Button(label="Find sources", color="primary", css_classes=["run-detection"])
        self._run.on_click(lambda _: self.start())
        self.param.watch(lambda _: self.found is not None and self.set_catalog(self.found), "show_sidelobes")
        decimals = {"x": 2, "y": 2, "z": 0, "ra": 6, "dec": 6, "GHz": 4, "fwhm_x": 2, "fwhm_y": 2, "pa": 1,
                    "fwhm_x_err": 2, "fwhm_y_err": 2, "pa_err": 1,
                    "Jy km/s": 4, "pb": 3, "snr": 1, "sidelobe_p": 2}
        self._table = TextTable(
            pagination=None, max_height=300, disabled=True, show_index=False, widths=COLUMN_WIDTHS,
            formatters={k: NumberFormatter(format="0." + "0" * d if d else "0") for k, d in decimals.items()},
            selectable=1, sizing_mode="stretch_width", css_classes=["source-table"], frozen_columns=["id"],
            stylesheets=[".tabulator, .tabulator .tabulator-col-title {font-size: 13px;}"])
        self._table.param.watch(self._on_table_select, "selection")
        self._syncing = False  # True while the table's highlighted row follows a selection made elsewhere
        self.param.watch(self._highlight_selected, "selected")
        self._no_catalogue = pn.pane.Markdown("Run a detector first: its catalogue can then be exported.",
                                              css_classes=["export-note"], margin=(0, 10))
        self._downloads = {suffix: pn.widgets.FileDownload(callback=functools.partial(self.export, suffix),
                                                           filename=f"catalog{suffix}", label=label, embed=False,
                                                           disabled=True, css_classes=["export"])
                           for suffix, label in EXPORTS.items()}
        cube_viewer.tap.add_subscriber(self._on_tap)
        cube_viewer.param.watch(self._follow_view, ["channel", "view"])
        self.param.watch(self._follow_view, ["all_channels", "version", "selected", "preliminary"])
        self._follow_view()
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
        """Stop this viewer's detection, if one runs, and close the companion cubes it opened (the
        cube is its cube viewer's)."""
        self.job.stop()
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
        self.found = catalog
        self.set_catalog(catalog)
        self._show_brightest()

    def _show_brightest(self):
        """After a run: select the source of highest SNR and show its peak channel, where its box is;
        or the source ``wanted``, the channel left as it is."""
        wanted, self.wanted = self.wanted, None
        if wanted is not None and self.catalog is not None and wanted in set(int(i) for i in self.catalog["id"]):
            self.selected = wanted
            return
        if wanted is not None:
            self.show_error(f"The link's source {wanted} is not in this catalogue: showing the brightest instead.")
        if self.catalog is None or not len(self.catalog):
            return
        snr = np.nan_to_num(np.asarray(self.catalog["snr"], float), nan=-np.inf)
        row = self.catalog[int(np.argmax(snr))]
        self.selected = int(row["id"])
        self.cube_viewer.channel = int(row["z"])
        self.status += f"; showing channel {int(row['z'])}, the peak of source {int(row['id'])} (highest SNR)"

    def _on_error(self, message):
        self.preliminary = []
        self.running, self._run.disabled = False, False
        kept = ""
        if self.catalog is not None:
            kept = (f" The table still shows the previous catalogue ({len(self.catalog)} sources, "
                    f"{self.shown_detector}).")
        self.status = f"No new catalogue: {message}{kept}"
        if not self.job.cancelled:  # a Cancel is no error: the status line says it
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
        measured = [c for c in MEASURED_COLUMNS if np.isfinite(np.asarray(catalog[c], float)).any()
                    and (c != "sidelobe_p" or np.asarray(catalog["sidelobe"], bool).any())]
        frame = catalog[TABLE_COLUMNS + measured].to_pandas() if len(catalog) else None
        if frame is not None:
            frame["freq"] = frame["freq"] / 1e9
            frame = frame.rename(columns={"freq": "GHz", "flux": "Jy km/s"})
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
        detector = self.shown_detector = catalog.meta.get("detector", self.detector)
        self.status = f"{len(catalog)} sources ({detector}){tp}{hidden}; {scale}{cut}"
        stem = self.cube.path.name.split(".")[0]
        for suffix, download in self._downloads.items():
            download.filename, download.disabled = f"{stem}_{detector}{suffix}", False
        self._no_catalogue.visible = False
        self.version += 1
        self.selected = int(catalog["id"][0]) if len(catalog) else None
        self._highlight_selected()

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
        if event.new and self.catalog is not None and not self._syncing:
            row = self.catalog[event.new[0]]
            self.selected = int(row["id"])
            self.cube_viewer.channel = int(row["z"])

    def _highlight_selected(self, *_):
        """The table's highlighted row follows the selected source (a box clicked, a new run)."""
        if self.catalog is None or self._table.value is None:
            return
        rows = [i for i, v in enumerate(self._table.value["id"]) if int(v) == self.selected]
        if rows != list(self._table.selection):
            self._syncing = True
            try:
                self._table.selection = rows
            finally:
                self._syncing = False

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
        coloured by detector, or by outcome against the truth, the selected one thicker; missed true
        sources as dashed circles; while the pipeline runs, its candidate boxes so far
        (``preliminary``, every channel), dotted white. Every line has a dark halo. The layers:
        ``Boxes.Solid``, ``Boxes.Sidelobes`` (dashed), ``Boxes.Selected`` (thick, whatever its kind: the
        inspector says it), ``Boxes.Candidates`` and ``Path.Missed``; ``Halo.*`` under them."""
        return self._draw(self._drawn_key(channel, all_channels, version, selected, view, preliminary))

    def _draw(self, key: tuple):
        """The overlay of :meth:`boxes` for ``key`` (:meth:`_drawn_key`), made again only when it changes."""
        if self._last_boxes is not None and self._last_boxes[0] == key:  # a channel change that changes no box
            return self._last_boxes[1]
        emitting, near, selected, _, preliminary = key
        drawn = self._drawable()
        layers = {"Solid": [], "Sidelobes": [], "Selected": []}
        for i in emitting:
            name = "Selected" if drawn["id"][i] == selected else "Sidelobes" if drawn["sidelobe"][i] else "Solid"
            layers[name].append(drawn["boxes"][i])
        radius = MISSED_RADIUS_PX * max(self.cube.nx, self.cube.ny) / max(self.cube_viewer.frame_size)
        circles = overlays.circles(drawn["missed_xy"][list(near)], radius)
        so_far = [(x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5, PRELIMINARY_COLOUR, -1) for x0, y0, x1, y1, _ in preliminary]
        # few layers: every layer costs the server and the browser time on every channel change
        overlay = (_halo([box for boxes in layers.values() for box in boxes] + so_far)
                   * _boxes(layers["Solid"], "Solid") * _boxes(layers["Sidelobes"], "Sidelobes", "dashed")
                   * _boxes(layers["Selected"], "Selected", width=SELECTED_WIDTH)
                   * _boxes(so_far, "Candidates", "dotted", hover=False)
                   * circles.relabel(group="Halo", label="Missed").opts(color=HALO_COLOUR, line_width=HALO_WIDTH,
                                                                         alpha=0.5, apply_ranges=False)
                   * circles.relabel(label="Missed").opts(color=TRUTH_COLOURS["missed"], line_width=2,
                                                          line_dash="dashed", apply_ranges=False))
        self._last_boxes = (key, overlay)
        return overlay

    def _drawn_key(self, channel, all_channels, version, selected, view, preliminary) -> tuple:
        """What :meth:`boxes` draws: (rows whose boxes, missed sources whose circles, selected id,
        catalogue version, candidate boxes)."""
        every = all_channels or view == "moment 0"
        drawn = self._drawable()
        emitting = every | ((drawn["z0"] <= channel) & (channel < drawn["z1"]))
        near = every | (np.abs(channel - drawn["missed_z"]) <= drawn["missed_dz"])
        return (tuple(np.flatnonzero(emitting)), tuple(np.flatnonzero(near)), selected, version,
                tuple(tuple(box) for box in preliminary))

    def _follow_view(self, *_):
        """Set ``shown`` from the image's channel and view and this panel's state: the boxes are
        drawn again only when it changes (most channel changes change no box)."""
        cv = self.cube_viewer
        self.shown = self._drawn_key(cv.channel, self.all_channels, self.version, self.selected, cv.view,
                                     self.preliminary)

    def _drawable(self) -> dict:
        """What :meth:`boxes` draws of the catalogue shown, as arrays (made once per catalogue):
        each row's box (x0, y0, x1, y1 in plot coordinates, colour, id), channels, id, sidelobe flag;
        the missed true sources' positions and channels."""
        if self._drawable_of is not None and self._drawable_of[0] == self.version:
            return self._drawable_of[1]
        catalog = self.catalog if self.catalog is not None else []
        boxes = []
        for i, row in enumerate(catalog):
            colour = (TRUTH_COLOURS[self.outcome["rows"][i]] if self.outcome is not None
                      else DETECTOR_COLOURS.get(str(row["detector"]), "white"))
            boxes.append((float(row["x0"]) - 0.5, float(row["y0"]) - 0.5, float(row["x1"]) - 0.5,
                          float(row["y1"]) - 0.5, colour, int(row["id"])))
        missed = self.outcome["missed"] if self.outcome is not None and len(catalog) else []
        drawn = {"boxes": boxes, "id": np.array([b[5] for b in boxes], int),
                 "z0": np.array([row["z0"] for row in catalog], float),
                 "z1": np.array([row["z1"] for row in catalog], float),
                 "sidelobe": np.array([bool(row["sidelobe"]) for row in catalog], bool),
                 "missed_xy": np.array([(t["x"], t["y"]) for t in missed], float).reshape(-1, 2),
                 "missed_z": np.array([t["z"] for t in missed], float),
                 "missed_dz": np.array([t["fwhm_z"] for t in missed], float)}
        self._drawable_of = (self.version, drawn)
        return drawn

    def overlay(self):
        """The boxes and circles over the image, redrawn when what they show changes (``shown``)."""
        return hv.DynamicMap(pn.bind(self._draw, self.param.shown))

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
        # the legend above the frame, not over the spectrum it describes
        spectra = curves.opts(title=f"Source {row['id']} ({row['detector']}){blended}", height=290,
                              responsive=True, legend_position="top", legend_cols=2, show_legend=True)
        # own dimension names: Panel links the axes of panes that share them (the cube image's x, y)
        focused = hv.Image(view.focused[::-1], kdims=["focused x", "focused y"], vdims=["signal / rms"],
                           bounds=(0, 0, view.focused.shape[1], view.focused.shape[0])).opts(
            cmap="inferno", title="focused image (rms units)", colorbar=True, width=300, height=260,
            xaxis=None, yaxis=None)
        params = Text(
            f"RA {row['ra']:.6f} deg  Dec {row['dec']:.6f} deg\n"
            f"frequency {row['freq'] / 1e9:.6f} GHz (channel {int(row['z'])})\n"
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
        channels = np.arange(self.cube.nchan)
        for row in self.catalog[:GRID_LIMIT]:
            box = (int(row["x0"]), int(row["y0"]), int(row["x1"]), int(row["y1"]))
            # dimension names of their own and no shared axes: Panel links the ranges of plots that
            # share a dimension's name, and "x", "y" are the cube image's
            curve = hv.Curve((channels, box_spectrum(self.cube, box)), "spectral channel", "box flux").opts(
                interpolation="steps-mid", width=220, height=140, title=f"source {row['id']}", xaxis=None,
                yaxis=None, color="black", framewise=True, toolbar=None)
            plots.append(curve * hv.VSpan(row["z0"] - 0.5, row["z1"] - 0.5).opts(color="orange", alpha=0.3))
        note = f" (first {GRID_LIMIT})" if len(self.catalog) > GRID_LIMIT else ""
        return pn.Column(pn.pane.Markdown(f"Box spectra of every source{note}, emission ranges shaded"),
                         pn.GridBox(*[pn.pane.HoloViews(plot, sizing_mode="fixed", width=230, height=150)
                                      for plot in plots], ncols=4, sizing_mode="fixed", css_classes=["spectra-grid"]))

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
        exports = pn.Column(pn.Row(*self._downloads.values()), self._no_catalogue)
        swatch = "<span style='color:{}; -webkit-text-stroke: 1px #000'>{}</span> {}"
        legend = ("Boxes: " + ", ".join(swatch.format(c, "○" if k == "missed" else "■", k)
                                        for k, c in TRUTH_COLOURS.items())
                  + " (against this cube's truth)" if self.truth is not None else
                  "Boxes: " + ", ".join(swatch.format(c, "■", k) for k, c in DETECTOR_COLOURS.items()))
        return pn.Column(
            controls, options, companions, self.job.bar,
            Text(self.param.status, wrap=True, css_classes=["detection-status"]), self._error,
            Text(self.param.statistics_text, css_classes=["reliability-table"]), self.quality_plot,
            pn.pane.HTML(legend), self._table, exports,
            pn.Tabs(("Selected source", pn.panel(pn.bind(self.source_panel, self.param.selected, self.param.version))),
                    ("All spectra", pn.panel(pn.bind(self.spectra_grid, self.param.version))), dynamic=True),
            sizing_mode="stretch_width")
