"""The "One-shot search" tab: pick one prototype galaxy, see its look-alikes in the feature space
of a frozen ImageNet network, count how many carry a label (AGN) against the base rate, search
recursively as ULISSE does, and steer the results with thumbs up/down.

Everything scientific goes through :mod:`pipeline.oneshot` (galaxy sets, galaxies, store, search,
stats); this module only lays it out.
"""

from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path

import holoviews.plotting.bokeh  # noqa: F401 -- plot options need a backend, also outside a served page
import numpy as np
import panel as pn
import param
from astropy.table import Table

from explorer import handouts, jobs, uploads
from explorer.background import BackgroundJob
from explorer.feature_map_view import FeatureMapView
from explorer.files import check_store_images, index_folders
from explorer.galaxy_browser import THUMB_PX, GalaxyBrowser, png_bytes
from explorer.oneshot_plots import iteration_chart, provenance_plot
from explorer.oneshot_vetting import NeighbourVetting, is_vetted_label
from explorer.text import Alert, Prose, Text, TextTable
from pipeline.errors import InputError
from pipeline.oneshot import galaxy_sets, search, survey
from pipeline.oneshot.backbones import DEFAULT_BACKBONE
from pipeline.oneshot.galaxies import to_rgb
from pipeline.oneshot.stats import label_statistics
from pipeline.oneshot.store import FeatureStore, image_features
from pipeline.tables import write_table

GALLERY_LIMIT = 24  # neighbour cards drawn; every galaxy found is in the tables and exports
PREFERRED_LABELS = (("bpt_class", "AGN"), ("xray_class", "AGN"))


def available_sets() -> dict[str, Path | None]:
    """{name: store folder} of the feature stores in the operator's ``EXPLORER_INDEX_DIRS``, then
    the embedded sets (None: built in the cache on first use); see
    :func:`pipeline.oneshot.galaxy_sets.available_sets`."""
    return galaxy_sets.available_sets(index_folders())


class OneShotViewer(pn.viewable.Viewer):
    """One-shot and recursive search over a feature store."""

    galaxy_set = param.Selector(doc="The galaxy set to search")
    model = param.Selector(default=DEFAULT_BACKBONE, objects=[DEFAULT_BACKBONE],
                           doc="Feature network for the embedded sets (B0 when its weights are on this machine)")
    prototype = param.String(default="", doc="id of the prototype galaxy ('' for an uploaded image)")
    n = param.Integer(default=12, bounds=(1, 100), doc="Neighbours per query")
    iterations = param.Integer(default=5, bounds=(2, 10), doc="Iterations of the recursive search")
    feedback = param.Selector(default=search.DEFAULT_FEEDBACK, objects=list(search.FEEDBACK_METHODS),
                              doc="How feedback re-ranks: a linear classifier on the marked galaxies, or Rocchio's "
                              "moving query")
    label = param.Selector(default=None, objects=[], allow_None=True, doc="Label column to count")
    positive = param.Selector(default=None, objects=[], allow_None=True, doc="The value that counts")
    status = param.String(default="")
    version = param.Integer(default=0, doc="Bumped when the results change")
    wanted = param.String(default="", doc="A galaxy to search from when the set opens (a shared link's), "
                          "instead of the first with the counted label")

    def __init__(self, **params):
        sets = available_sets()
        self.param.galaxy_set.objects = list(sets)
        params.setdefault("galaxy_set", next(iter(sets)))
        super().__init__(**params)
        self._sets = sets
        self.store: FeatureStore | None = None
        self.result: Table | None = None  # the galaxies shown: a direct, refined or recursive search
        self.mode = "direct"
        self.iteration_stats: list[dict] = []
        self.liked: set[str] = set()
        self.disliked: set[str] = set()
        self._upload_vector = None
        self._upload_rgb = None
        self._upload_caption = ""
        self._upload_dir = uploads.session_folder()
        self._thumbs: dict[str, bytes] = {}
        self.job = BackgroundJob(self._on_job_done, self._on_job_error, lambda text: setattr(self, "status", text))
        self._job_kind = ""
        self._opened_as = None  # (set, model) of the store shown or being opened
        self._error = Alert("", alert_type="danger", visible=False, css_classes=["oneshot-error"])
        self._notice = Alert("", alert_type="info", visible=False, css_classes=["oneshot-notice"])
        # restrict=False: an id that is not in the set reaches choose(), which says so
        self._id_input = pn.widgets.AutocompleteInput(label="Prototype by id", placeholder="type an id",
                                                      min_characters=1, case_sensitive=False, restrict=False,
                                                      css_classes=["prototype-id"])
        self._id_input.param.watch(lambda e: e.new and self.choose(e.new), "value")
        self._upload = pn.widgets.FileInput(accept=",".join(uploads.IMAGE_SUFFIXES), css_classes=["prototype-upload"])
        self._upload.param.watch(self._on_upload, "value")
        self._recursive_button = pn.widgets.Button(label="Recursive search", color="primary",
                                                   css_classes=["run-recursive"])
        self._recursive_button.on_click(lambda _: self.run_recursive())
        self._refine_button = pn.widgets.Button(label="Re-rank with feedback", disabled=True, css_classes=["refine"])
        self._refine_button.on_click(lambda _: self.refine())
        self._direct_button = pn.widgets.Button(label="Direct search", css_classes=["run-direct"])
        self._direct_button.on_click(lambda _: self.search())
        self._gallery_downloads = {
            kind: pn.widgets.FileDownload(callback=lambda kind=kind: self.gallery_handout(kind), embed=False,
                                          filename=f"neighbours.{kind}", label=f"Gallery as {kind.upper()}",
                                          css_classes=[f"gallery-save-{kind}"], width=140, disabled=True)
            for kind in ("html", "png")}
        self.param.watch(lambda *_: self._name_gallery_downloads(), "version")
        self._downloads = [pn.widgets.FileDownload(callback=lambda s=suffix: self.export(s),
                                                   filename=f"oneshot{suffix}", label=label, color="light")
                           for suffix, label in ((".csv", "CSV"), (".vot", "VOTable"))]
        self.browser = GalaxyBrowser(self)
        self.vetting = NeighbourVetting(self)
        self.feature_map = FeatureMapView(self)
        self._tabs = pn.Tabs(("Recursive search", self.recursive_panel), ("Browse prototypes", self.browser),
                             ("Feature map", self.feature_map), dynamic=True, css_classes=["oneshot-tabs"])
        self._tabs.param.watch(lambda e: e.new == 2 and self.feature_map.activate(), "active")
        self._loaded = False

    # ---- the galaxy set -------------------------------------------------------------------
    @param.depends("galaxy_set", "model", watch=True)
    def load(self):
        """Open the chosen set's store, building it (images and features) the first time. While
        another job runs the choice goes back to the set shown, with a message."""
        if self.job.busy:
            self.show_error("A search or a set is still being prepared: wait for it or press Cancel, then "
                            "choose the set again.")
            if self._opened_as is not None:
                self.param.update(dict(zip(("galaxy_set", "model"), self._opened_as, strict=True)))
            return
        self._opened_as = (self.galaxy_set, self.model)
        name, folder, model = self.galaxy_set, self._sets[self.galaxy_set], self.model
        self.store, self.result, self.iteration_stats = None, None, []
        self._upload_vector, self._upload_rgb = None, None
        self.forget_feedback()
        self.prototype = ""  # ids belong to a set
        self.show_error("")
        self._loaded = True

        def work(progress, cancel, share):
            if folder is not None:
                store = FeatureStore.open(folder)
                check_store_images(Path(store.meta["images"]), folder)
                return store
            return galaxy_sets.open_embedded(name, backbone=model, progress=progress, cancel=cancel)

        self._job_kind = "load"
        self.job.start(work, f"opening the {name}")

    def _set_loaded(self, store: FeatureStore):
        self.store = store
        self._thumbs.clear()
        labels = store.galaxies.label_columns
        self.param.label.objects = self._label_options()
        self.vetting.refresh()
        preferred = next(((c, v) for c, v in PREFERRED_LABELS if c in labels), None)
        self.label = preferred[0] if preferred else (labels[0] if labels else None)
        self._update_positive_options(preferred[1] if preferred else None)
        self._id_input.options = list(store.catalog["id"])
        simulated = "simulated" in store.catalog.colnames and bool(np.any(store.catalog["simulated"]))
        self._notice.object, self._notice.visible = (survey.SIMULATED_NOTE, simulated)
        self.browser.page = 0
        self.feature_map.refresh()
        wanted, self.wanted = self.wanted, ""
        if wanted and wanted in set(str(i) for i in store.catalog["id"]):
            self.choose(wanted)
            return
        # start from a galaxy with the counted label, so the first view already shows the idea
        counted = self.browser.rows(positive_only=True)
        self.choose(str(store.catalog["id"][counted[0] if counted else 0]))
        if wanted:
            self.show_error(f"The link's prototype {wanted} is not in the {self.galaxy_set}: showing another galaxy.")

    def _label_options(self) -> list[str]:
        """The set's label columns, and the team's verdicts for the vetting question."""
        return list(self.store.galaxies.label_columns) + ([self.vetting.label_name] if self.vetting.label_name else [])

    def labels_changed(self) -> None:
        """The vetting question changed: its verdicts are a label that can be counted."""
        if self.store is None:
            return
        options = self._label_options()
        self.param.label.objects = options
        if self.label not in options:
            self.label = options[0] if options else None
        self.version += 1

    def labelled_catalog(self):
        """The set's catalogue with the team's verdicts as a label column (the file is never changed)."""
        return self.vetting.catalog(self.store.catalog)

    @param.depends("label", watch=True)
    def _update_positive_options(self, preferred=None):
        if self.store is None or self.label is None:
            self.param.positive.objects = []
            return
        values = sorted({str(v) for v in self.labelled_catalog()[self.label].tolist()
                         if str(v).strip() not in ("", "--")})
        if not values:  # a question no one has answered yet
            self.param.positive.objects = []
            self.positive = None
            return
        self.param.positive.objects = values
        preferred = preferred if preferred is not None else self.positive
        self.positive = preferred if preferred in values else values[0]

    # ---- searching ------------------------------------------------------------------------
    def choose(self, galaxy_id: str):
        """Make the galaxy ``galaxy_id`` of the open set the prototype and search from it."""
        if self.store is None:
            return
        try:
            self.store.row_of(galaxy_id)
        except InputError as exc:
            self.show_error(str(exc))
            return
        self._upload_vector, self._upload_rgb = None, None
        self.prototype = str(galaxy_id)
        self.search()

    def query(self):
        """What the searches start from: the uploaded image's features, or the prototype's id."""
        return self._upload_vector if self._upload_vector is not None else self.prototype

    def search(self):
        """Direct one-shot search from the prototype; feedback is forgotten."""
        if self.store is None:
            return
        self.forget_feedback()
        self.show_error("")
        self._set_result(search.one_shot(self.store, self.query(), self.n), "direct")

    def forget_feedback(self):
        self.liked, self.disliked = set(), set()
        self._show_feedback()

    def _show_feedback(self):
        """The re-rank button says how many neighbours are marked, and waits for one."""
        self._refine_button.disabled = not (self.liked or self.disliked)
        self._refine_button.label = ("Re-rank with feedback" + (f" ({len(self.liked)} up, {len(self.disliked)} down)"
                                                               if self.liked or self.disliked else ""))

    def refine(self):
        """Re-rank with the thumbs up/down given so far (relevance feedback): the galaxies marked
        are not shown again, so each round shows new ones."""
        if self.store is None:
            return
        team_yes, team_no = self.vetting.feedback()  # the team's verdicts: good and bad examples too
        liked = (self.liked | set(team_yes)) - self.disliked
        disliked = (self.disliked | set(team_no)) - self.liked
        self._set_result(search.refine(self.store, self.query(), self.n, liked=sorted(liked),
                                       disliked=sorted(disliked), method=self.feedback), "refined")

    def run_recursive(self):
        if self.store is None or self.job.busy:
            return
        # in a worker process (served), which opens the store from its folder: Cancel ends it at once
        store = self.store.folder if self.job.processes else self.store
        # the worker counts the set's own labels; the team's verdicts are counted here, in the statistics
        counted = None if is_vetted_label(self.label) else self.label
        work = functools.partial(jobs.recursive_search, store, self.query(), self.n, self.iterations, counted,
                                 self.positive)
        self._job_kind = "recursive"
        self.show_error("")
        self.job.start(work, "recursive search", in_process=True)

    def _set_result(self, result: Table, mode: str, stats=None):
        self.result, self.mode, self.iteration_stats = result, mode, stats or []
        self.status = f"{len(result)} galaxies ({mode} search, n = {self.n}" + (
            f", {self.iterations} iterations)" if mode == "recursive" else ")")
        self.version += 1

    def _on_job_done(self, result):
        if self._job_kind == "load":
            self._set_loaded(result)
        else:
            self.forget_feedback()  # marks were for the galaxies shown before
            self._set_result(result[0], "recursive", result[1])

    def _on_job_error(self, message):
        self.status = ""
        self.show_error(message)

    def _on_upload(self, event):
        if not event.new or self.store is None:
            return
        try:
            name, image = uploads.read_uploaded_image(event.new, self._upload.filename, self._upload_dir)
            rgb = to_rgb(image, self.store.meta["size_px"] or None)
            vector = image_features(self.store, rgb)
        except InputError as exc:
            self.show_error(str(exc))
            return
        self.search_from_vector(vector, rgb, f"uploaded: {name}")

    def search_from_vector(self, vector: np.ndarray, rgb: np.ndarray, caption: str):
        """Search from a feature vector of the store's model (an uploaded image's, or the mean of
        galaxies selected on the map), shown as ``rgb`` with ``caption``; feedback is forgotten."""
        self._upload_caption = caption
        self._upload_vector, self._upload_rgb = vector, rgb
        self.prototype = ""
        self.forget_feedback()
        self.show_error("")
        self._set_result(search.one_shot(self.store, vector, self.n), "direct")

    def mark(self, ids, good: bool):
        """Mark the galaxies ``ids`` good (or bad) for the next re-ranking, as their cards' buttons do."""
        mine, other = (self.liked, self.disliked) if good else (self.disliked, self.liked)
        mine.update(ids)
        other.difference_update(ids)
        self._show_feedback()
        self.version += 1

    def show_error(self, text):
        self._error.object, self._error.visible = text, bool(text)

    # ---- export ---------------------------------------------------------------------------
    def export(self, suffix: str) -> io.BytesIO:
        if self.result is None:
            raise InputError("Nothing to export yet: run a search first.")
        with tempfile.TemporaryDirectory() as tmp:
            path = write_table(self._with_labels(self.result), Path(tmp) / f"oneshot{suffix}")
            return io.BytesIO(path.read_bytes())

    def _with_labels(self, result: Table) -> Table:
        """``result`` with the team's verdicts on its galaxies, when there is a vetting question."""
        return self.vetting.catalog(result) if self.vetting.label_name else result

    def _name_gallery_downloads(self) -> None:
        """The gallery's downloads, named after the prototype whose neighbours they hold; off without a search."""
        for kind, download in self._gallery_downloads.items():
            download.param.update(filename=f"{self.prototype or 'upload'}-neighbours.{kind}",
                                  disabled=self.result is None)

    def gallery_handout(self, kind: str) -> io.BytesIO:
        """The prototype and its neighbours as shown (the first ``GALLERY_LIMIT``), with their
        captions and the label's statistics: a standalone HTML page (``kind`` "html") or a PNG sheet."""
        if self.result is None:
            raise InputError("Nothing to save yet: run a search first.")
        found = list(self.result[:GALLERY_LIMIT])
        title = (f"{self.store.meta['name']}: the {len(found)} nearest of "
                 f"{self.prototype or 'the uploaded image'} ({self.mode} search, {self.store.network()})")
        prototype = (png_bytes(self._upload_rgb, 2 * THUMB_PX) if self._upload_vector is not None
                     else self.thumbnail(self.prototype))
        tiles = [(prototype, f"prototype\n{self.prototype or self._upload_caption}", False)]
        for row in found:
            gid = str(row["id"])
            label = self._label_of(gid)
            tiles.append((self.thumbnail(gid), f"{gid}\nd = {row['distance']:.3f}" + (f"\n{label}" if label else ""),
                          self.positive is not None and label == self.positive))
        statistics = self.statistics_text()
        if kind == "png":
            return handouts.contact_sheet(title, tiles, statistics)
        cards = [pn.Column(pn.pane.PNG(image, width=THUMB_PX), Text(caption), width=THUMB_PX + 50,
                           styles={"border": f"2px solid {'#d62728' if hit else '#ddd'}", "padding": "4px"})
                 for image, caption, hit in tiles]
        return handouts.html_page(title, Text(title, wrap=True), pn.FlexBox(*cards), Text(statistics, wrap=True))

    # ---- views ----------------------------------------------------------------------------
    def thumbnail(self, galaxy_id: str) -> bytes:
        if galaxy_id not in self._thumbs:
            galaxies = self.store.galaxies
            self._thumbs[galaxy_id] = png_bytes(galaxies.rgb(self.store.row_of(galaxy_id)))
        return self._thumbs[galaxy_id]

    def _label_of(self, galaxy_id) -> str:
        if self.label is None:
            return ""
        return str(self.labelled_catalog()[self.label][self.store.row_of(galaxy_id)])

    @param.depends("version", "label", "positive")
    def prototype_panel(self):
        if self.store is None or (not self.prototype and self._upload_vector is None):
            return pn.pane.Markdown("")
        if self._upload_vector is not None:
            image, caption = png_bytes(self._upload_rgb, 2 * THUMB_PX), self._upload_caption
        else:
            image = png_bytes(self.store.galaxies.rgb(self.store.row_of(self.prototype)), 2 * THUMB_PX)
            caption = f"{self.prototype}" + (f" | {self.label} = {self._label_of(self.prototype)}"
                                             if self.label else "")
        return pn.Column(pn.pane.Markdown("**Prototype**"), pn.pane.PNG(image, width=2 * THUMB_PX),
                         Text(caption, wrap=True, css_classes=["prototype-caption"]), width=2 * THUMB_PX + 20)

    @param.depends("version", "label", "positive")
    def neighbours_panel(self):
        if self.result is None:
            return pn.pane.Markdown("Pick a prototype to see its neighbours.")
        cards = [self._card(row) for row in self.result[:GALLERY_LIMIT]]
        more = (f" (the first {GALLERY_LIMIT} of {len(self.result)}; all are in the provenance table and the export)"
                if len(self.result) > GALLERY_LIMIT else "")
        return pn.Column(pn.pane.Markdown(f"**Neighbours**{more}: distance in feature space "
                                          f"({self.store.index.info.metric}); "
                                          "mark some good or bad, then *Re-rank with feedback*."),
                         pn.FlexBox(*cards, css_classes=["neighbours"]))

    def _card(self, row):
        gid = str(row["id"])
        up = pn.widgets.Toggle(label="good", value=gid in self.liked, width=54, color="success", css_classes=["like"])
        down = pn.widgets.Toggle(label="bad", value=gid in self.disliked, width=54, color="danger",
                                 css_classes=["dislike"])

        def mark(event, liked):
            mine, other = (self.liked, self.disliked) if liked else (self.disliked, self.liked)
            if event.new:
                mine.add(gid)
                other.discard(gid)
                (down if liked else up).value = False
            else:
                mine.discard(gid)
            self._show_feedback()

        up.param.watch(lambda e: mark(e, True), "value")
        down.param.watch(lambda e: mark(e, False), "value")
        use = pn.widgets.Button(label="prototype", width=90, color="light")
        use.on_click(lambda _: self.choose(gid))
        label = self._label_of(gid)
        text = f"{gid}\nd = {row['distance']:.3f}" + (f"\n{label}" if label else "") + (
            f"\niteration {row['iteration']}" if self.mode == "recursive" else "")
        hit = self.positive is not None and label == self.positive
        return pn.Column(pn.pane.PNG(self.thumbnail(gid), width=THUMB_PX), Text(text),
                         pn.Row(up, down), self.vetting.buttons(gid), use, width=THUMB_PX + 50,
                         styles={"border": f"2px solid {'#d62728' if hit else '#ddd'}", "padding": "4px",
                                 "border-radius": "4px"}, css_classes=["neighbour-card"])

    @param.depends("version", "label", "positive")
    def statistics_panel(self):
        if self.store is None or self.result is None or self.label is None or self.positive is None:
            return pn.pane.Markdown("No label column to count in this set." if self.store is not None else "")
        return Text(self.statistics_text(), css_classes=["oneshot-stats"])

    def statistics_text(self) -> str:
        """The counted label among the galaxies found, against the base rate ('' without a label)."""
        if self.store is None or self.result is None or self.label is None or self.positive is None:
            return ""
        rows = [self.store.row_of(i) for i in self.result["id"]]
        s = label_statistics(self.labelled_catalog(), rows, self.label, self.positive)
        if s["fraction"] is None:
            text = f"no galaxy found has a {self.label} value"
        else:
            text = (f"{s['k']} of {s['n']} = {100 * s['fraction']:.1f}%\n"
                    f"95% Wilson: {100 * s['low']:.1f} to {100 * s['high']:.1f}%\n"
                    f"base rate {100 * s['base_rate']:.1f}% ({s['base_k']}/{s['base_n']})\n"
                    f"enrichment x{s['enrichment']:.2f}\np = {s['p_value']:.2g} (hypergeometric)")
        return f"{self.mode} search, {len(self.result)} galaxies\n{self.label} = {self.positive}:\n{text}"

    @param.depends("version")
    def recursive_panel(self):
        if self.mode != "recursive" or self.result is None:
            return pn.pane.Markdown("Run *Recursive search*: each iteration queries with the galaxies found in "
                                    "the one before (n each), duplicates dropped, as ULISSE does; the "
                                    f"{search.MAX_FRONTIER} nearest new finds query next.")
        plots = [iteration_chart(self.iteration_stats, self.label, self.positive)] if self.iteration_stats else []
        start = "" if self._upload_vector is not None else self.prototype
        plots.append(provenance_plot(self.result, start, self._label_of, self.positive))
        table = self._with_labels(self.result)[["id", "iteration", "parent", "distance"]
                                               + ([self.label] if self.label else [])].to_pandas()
        return pn.Column(pn.Row(*plots), TextTable(table, disabled=True, show_index=False, max_height=260,
                                                               pagination=None, css_classes=["provenance-table"]))

    @param.depends("version")
    def info_panel(self):
        if self.store is None:
            return pn.pane.Markdown("")
        m = self.store.meta
        return Prose(
            f"{m['name']}: {len(self.store.catalog):,} galaxies. Features: {self.store.network()}, "
            f"{m['input_px']} px input, penultimate layer after global pooling ({self.store.features.shape[1]}-d). "
            f"Index: {self.store.index.describe()}." + "".join(f" Note: {n}" for n in m.get("notes", []))
            + f"\nPreprocessing: {m['preprocessing']}",
            css_classes=["oneshot-info"])

    def activate(self):
        """Open the chosen set the first time the tab is shown (its first build takes a while)."""
        if not self._loaded:
            from pipeline.oneshot.weights import available_backbones  # torch: once the tab is shown

            self.param.model.objects = available_backbones()
            self.load()

    def __panel__(self):
        controls = pn.Column(
            pn.widgets.Select.from_param(self.param.galaxy_set, name="Galaxy set"),
            pn.widgets.Select.from_param(self.param.model, name="Feature network (embedded sets)"),
            self._id_input,
            pn.pane.Markdown("or upload a cutout (PNG, JPEG, FITS):"), self._upload,
            pn.widgets.IntSlider.from_param(self.param.n, name="Neighbours (n)"),
            self._direct_button,
            pn.widgets.IntSlider.from_param(self.param.iterations, name="Iterations"),
            pn.Row(self._recursive_button, self.job.cancel_button),
            self._refine_button,
            pn.widgets.Select.from_param(self.param.feedback, name="Feedback re-ranks by",
                                         options={"a linear classifier": "linear", "Rocchio's query": "rocchio"}),
            pn.widgets.Select.from_param(self.param.label, name="Count label"),
            pn.widgets.Select.from_param(self.param.positive, name="Value"),
            self.statistics_panel,
            pn.Row(*self._downloads),
            pn.Row(*self._gallery_downloads.values()),
            self.vetting.controls(),
            width=300, sizing_mode="fixed")
        results = pn.Column(
            self._notice, self._error, self.job.bar,
            Text(self.param.status, wrap=True, css_classes=["oneshot-status"]),
            self.info_panel,
            pn.Row(self.prototype_panel, self.neighbours_panel),
            self._tabs,
            sizing_mode="stretch_width")
        return pn.Row(controls, results, sizing_mode="stretch_width")

