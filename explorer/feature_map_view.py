"""The one-shot tab's map of the feature space: every galaxy of the set placed in 2-D so that
neighbours in the search space stay neighbours (:mod:`pipeline.oneshot.feature_map`), drawn by
datashader so that a million galaxies stay fluid. Coloured by the counted label, by the current
search or by the feedback; the prototype and the galaxies found are drawn over it. Hovering shows
the nearest galaxy's cutout beside the map; a lasso (or a box) selects galaxies to search from
(their mean features as the prototype), to mark good or bad, or to export.
"""

from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path

import datashader as ds
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from holoviews.operation.datashader import datashade, dynspread

from explorer import jobs
from explorer.background import BackgroundJob
from explorer.galaxy_browser import THUMB_PX
from explorer.text import Alert, Text
from pipeline.oneshot.feature_map import map_table
from pipeline.tables import write_table

COLOURINGS = {"the counted label": "label", "the search": "search", "the feedback": "feedback"}
GROUPS = {  # each colouring's groups, drawn in this order, and their colours
    "label": {"other value": "#9ecae1", "no value": "#d9d9d9", "counted value": "#d62728"},
    "search": {"not found": "#c6dbef", "found": "#ff7f0e", "prototype": "#000000"},
    "feedback": {"not marked": "#d9d9d9", "marked good": "#2ca02c", "marked bad": "#d62728"},
}
HOVER_REACH = 0.02  # a galaxy is hovered within this share of the map's width of the pointer
MAP_PX = 560
MEAN_OF_AT_MOST = 10_000  # a selection's mean features are those of a random sample of this many
MARK_AT_MOST = 1_000  # galaxies marked good or bad at once: feedback learns from examples


class FeatureMapView(pn.viewable.Viewer):
    """The map of the set open in a :class:`explorer.oneshot_view.OneShotViewer` (``oneshot``:
    its store, label, result, feedback and searches)."""

    colour = param.Selector(default="label", objects=list(COLOURINGS.values()), doc="What colours the map")
    hovered = param.Integer(default=-1, doc="Row of the galaxy under the pointer (-1: none)")
    selected = param.Array(default=np.zeros(0, int), doc="Rows of the galaxies selected on the map")
    version = param.Integer(default=0, doc="Bumped when the map or its colours change")

    def __init__(self, oneshot, **params):
        super().__init__(**params)
        self.oneshot = oneshot
        self.positions: np.ndarray | None = None
        self._tree, self._reach = None, 0.0
        self._shown = False
        self.job = BackgroundJob(self._on_layout, self._on_error, lambda text: setattr(self._status, "object", text))
        self._status = Text("", wrap=True, css_classes=["map-status"])
        self._error = Alert("", alert_type="danger", visible=False, css_classes=["map-error"])
        self._pointer = hv.streams.PointerXY(x=None, y=None)
        self._pointer.add_subscriber(self._on_pointer)
        self._lasso = hv.streams.Lasso()
        self._lasso.add_subscriber(lambda geometry: self.select_polygon(geometry))
        self._box = hv.streams.BoundsXY()
        self._box.add_subscriber(lambda bounds: bounds is not None and self.select_box(bounds))
        self._buttons = {name: pn.widgets.Button(label=label, disabled=True, css_classes=[f"map-{name}"])
                         for name, label in (("search", "Search from selection"), ("good", "Mark good"),
                                             ("bad", "Mark bad"), ("clear", "Clear selection"))}
        self._buttons["search"].on_click(lambda _: self.search_from_selection())
        self._buttons["good"].on_click(lambda _: self.mark(True))
        self._buttons["bad"].on_click(lambda _: self.mark(False))
        self._buttons["clear"].on_click(lambda _: self.param.update(selected=np.zeros(0, int)))
        self._export = pn.widgets.FileDownload(callback=self.export, filename="map_selection.csv",
                                               label="Export selection (CSV)", disabled=True,
                                               css_classes=["map-export"])
        self._plot = pn.pane.HoloViews(sizing_mode="fixed", css_classes=["feature-map"])
        oneshot.param.watch(lambda _: self.positions is not None and self.param.trigger("version"),
                            ["version", "label", "positive"])

    # ---- the layout -----------------------------------------------------------------------
    def refresh(self) -> None:
        """The set changed: forget the map; make the new one if the map is on screen."""
        self.job.stop()
        self.positions, self._tree, self._plot.object = None, None, None
        self.param.update(hovered=-1, selected=np.zeros(0, int))
        if self._shown:
            self._start()

    def activate(self) -> None:
        """The map's tab is shown: make the map the first time (from the cache when made before)."""
        self._shown = True
        if self.positions is None and not self.job.busy:
            self._start()
        elif self.positions is not None:
            self.param.trigger("version")  # marks given on the cards since

    def _start(self) -> None:
        store = self.oneshot.store
        if store is None:
            return
        self._show_error("")
        # in a worker process (served), which opens the store from its folder
        work = functools.partial(jobs.feature_map, store.folder if self.job.processes else store)
        self.job.start(work, "the map of the feature space", in_process=True)

    def _on_layout(self, positions: np.ndarray) -> None:
        from scipy.spatial import cKDTree

        if self.oneshot.store is None or len(positions) != len(self.oneshot.store.catalog):
            return  # made for a set no longer shown
        self.positions, self._tree = positions, cKDTree(positions)
        self._reach = HOVER_REACH * float(np.ptp(positions[:, 0]) or 1.0)  # once: not on every pointer move
        self._status.object = (f"{len(positions):,} galaxies: PCA then t-SNE of the search vectors; near on the "
                               "map is near in feature space, but distances between clusters mean little.")
        self._plot.object = self._figure()

    def _on_error(self, message: str) -> None:
        self._status.object = ""
        self._show_error(message)

    def _show_error(self, text: str) -> None:
        self._error.object, self._error.visible = text, bool(text)

    # ---- what the map shows ---------------------------------------------------------------
    def groups(self) -> np.ndarray:
        """Each galaxy's group (a name of ``GROUPS[self.colour]``), in the store's row order."""
        store, oneshot = self.oneshot.store, self.oneshot
        names = list(GROUPS[self.colour])
        out = np.full(len(store.catalog), names[0], dtype=object)
        if self.colour == "label":
            if oneshot.label is not None:
                values = np.array([str(v).strip() for v in oneshot.labelled_catalog()[oneshot.label].tolist()])
                out[np.isin(values, ("", "--", "None", "nan"))] = names[1]
                out[values == str(oneshot.positive)] = names[2]
        elif self.colour == "search":
            out[self._found_rows()] = names[1]
            if oneshot.prototype:
                out[store.row_of(oneshot.prototype)] = names[2]
        else:
            for ids, name in ((oneshot.liked, names[1]), (oneshot.disliked, names[2])):
                out[[store.row_of(i) for i in ids]] = name
        return out

    def _found_rows(self) -> list[int]:
        """Rows of the galaxies the current search shows (none before a search)."""
        result = self.oneshot.result
        return [] if result is None else [self.oneshot.store.row_of(i) for i in result["id"]]

    def _points(self, colour, version):
        frame = pd.DataFrame({"map_x": self.positions[:, 0], "map_y": self.positions[:, 1],
                              "group": pd.Categorical(self.groups(), categories=list(GROUPS[colour]))})
        return hv.Points(frame, ["map_x", "map_y"], ["group"])

    def _marks(self, colour, version, selected):
        """The galaxies found, the prototype and the selection, drawn as points over the image."""
        layers = [hv.Points(self.positions[self._found_rows()], ["map_x", "map_y"]).opts(
            color="#ff7f0e", fill_alpha=0, size=8, line_width=1.5)]
        if self.oneshot.prototype:
            layers.append(hv.Points(self.positions[[self.oneshot.store.row_of(self.oneshot.prototype)]],
                                    ["map_x", "map_y"]).opts(color="black", marker="star", size=16))
        layers.append(hv.Points(self.positions[selected], ["map_x", "map_y"]).opts(
            color="#6a3d9a", size=4, alpha=0.8))
        return hv.Overlay(layers)

    def _figure(self):
        colours = {name: colour for groups in GROUPS.values() for name, colour in groups.items()}
        points = hv.DynamicMap(self._points, streams=[self.param.colour, self.param.version])
        shaded = dynspread(datashade(points, aggregator=ds.count_cat("group"), color_key=colours,
                                     min_alpha=120), threshold=0.6, max_px=3)
        shaded = shaded.opts(width=MAP_PX, height=MAP_PX, tools=["lasso_select", "box_select"],
                             active_tools=["lasso_select"], xaxis=None, yaxis=None,
                             title="map of the feature space (drag to select; hover for the cutout)")
        self._pointer.source = shaded
        self._lasso.source = shaded
        self._box.source = shaded
        marks = hv.DynamicMap(self._marks, streams=[self.param.colour, self.param.version, self.param.selected])
        return shaded * marks

    # ---- pointer and selection --------------------------------------------------------------
    def _on_pointer(self, x=None, y=None) -> None:
        if self._tree is None or x is None or y is None:
            return
        distance, row = self._tree.query([x, y])
        if distance <= self._reach and int(row) != self.hovered:  # between galaxies, the last one stays shown
            self.hovered = int(row)

    def select_polygon(self, geometry) -> None:
        """Select the galaxies inside the lasso's polygon (map coordinates, (m, 2))."""
        from skimage.measure import points_in_poly

        if self.positions is None or geometry is None or len(geometry) < 3:
            return
        self.selected = np.flatnonzero(points_in_poly(self.positions, np.asarray(geometry, float)))

    def select_box(self, bounds) -> None:
        """Select the galaxies inside ``bounds`` (left, bottom, right, top) in map coordinates."""
        if self.positions is None:
            return
        left, bottom, right, top = bounds
        x, y = self.positions[:, 0], self.positions[:, 1]
        self.selected = np.flatnonzero((x >= left) & (x <= right) & (y >= bottom) & (y <= top))

    @param.depends("selected", watch=True)
    def _selection_changed(self) -> None:
        for button in self._buttons.values():
            button.disabled = not len(self.selected)
        self._export.disabled = not len(self.selected)

    def selected_ids(self) -> list[str]:
        return [str(self.oneshot.store.catalog["id"][r]) for r in self.selected]

    def search_from_selection(self) -> None:
        """Search from the selection: the mean of its galaxies' features (of a random
        ``MEAN_OF_AT_MOST`` of them in a larger selection) is the prototype."""
        if not len(self.selected):
            return
        store = self.oneshot.store
        rows = self.selected if len(self.selected) <= MEAN_OF_AT_MOST else \
            np.random.default_rng(0).choice(self.selected, MEAN_OF_AT_MOST, replace=False)
        vector = np.asarray(store.features[np.sort(rows)], np.float32).mean(axis=0)
        centre = self.positions[self.selected].mean(axis=0)
        nearest = self.selected[np.argmin(np.linalg.norm(self.positions[self.selected] - centre, axis=1))]
        self.oneshot.search_from_vector(vector, store.galaxies.rgb(int(nearest)),
                                        f"the mean of {len(self.selected)} galaxies selected on the map")

    def mark(self, good: bool) -> None:
        """Mark the selected galaxies good (or bad) for the next re-ranking."""
        if len(self.selected) > MARK_AT_MOST:
            self._show_error(f"The selection holds {len(self.selected):,} galaxies: mark at most {MARK_AT_MOST:,} at "
                             "once (feedback learns from examples; a few dozen are plenty). Select fewer.")
            return
        self._show_error("")
        self.oneshot.mark(self.selected_ids(), good)

    def export(self) -> io.BytesIO:
        """The selected galaxies' catalogue rows with their map positions, as CSV."""
        with tempfile.TemporaryDirectory() as tmp:
            path = write_table(map_table(self.oneshot.store, self.positions, np.sort(self.selected)),
                               Path(tmp) / "map_selection.csv")
            return io.BytesIO(path.read_bytes())

    # ---- views ------------------------------------------------------------------------------
    @param.depends("hovered", "version")
    def hover_panel(self):
        if self.hovered < 0 or self.oneshot.store is None or self.positions is None:
            return pn.Column(pn.pane.Markdown("Hover over the map to see a galaxy."), width=2 * THUMB_PX + 20)
        gid = str(self.oneshot.store.catalog["id"][self.hovered])
        label = self.oneshot._label_of(gid)
        return pn.Column(pn.pane.PNG(self.oneshot.thumbnail(gid), width=2 * THUMB_PX),
                         Text(gid + (f"\n{self.oneshot.label} = {label}" if label else ""), wrap=True,
                              css_classes=["map-hovered"]), width=2 * THUMB_PX + 20)

    @param.depends("selected")
    def selection_panel(self):
        count = len(self.selected)
        return Text(f"{count:,} galaxies selected" if count else "Nothing selected: drag a lasso (or a box) on "
                    "the map.", wrap=True, css_classes=["map-selection"])

    def __panel__(self):
        return pn.Column(
            self._error, self.job.bar, self._status,
            pn.widgets.Select.from_param(self.param.colour, name="Colour by", options=COLOURINGS, width=200),
            pn.Row(self._plot, pn.Column(self.hover_panel, self.selection_panel, *self._buttons.values(),
                                         self._export, self.job.cancel_button, width=2 * THUMB_PX + 30)),
            sizing_mode="stretch_width")
