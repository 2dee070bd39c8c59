"""The "Feature atlas" tab: what one of the 1280 features responds to (the images that activate
it most, with that channel's map over each), which features separate a label, which features
make the current prototype close to its neighbours, and a search on the separating features only.

It works on the galaxy set and prototype of the one-shot tab; the science is in
:mod:`pipeline.oneshot.atlas`.
"""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # plot options need a backend, also outside a served page
import numpy as np
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter
from panel.io import hold

from explorer.text import Alert, Text, TextTable
from pipeline.errors import InputError
from pipeline.oneshot import atlas, search
from pipeline.oneshot.stats import label_statistics

GALLERY_N = 12
# an image "activates" a feature when its activation (the map's mean) is at least this share of the
# feature's highest on the set; a feature whose highest is below ``BARELY_FIRES`` barely fires at all
ACTIVE_SHARE = 0.05
BARELY_FIRES = 0.05


class AtlasViewer(pn.viewable.Viewer):
    """The atlas over the store and prototype of a :class:`explorer.oneshot_view.OneShotViewer`."""

    feature = param.Integer(default=835, bounds=(0, None), doc="Feature (channel) number")
    n = param.Integer(default=GALLERY_N, bounds=(1, atlas.TOP_K), doc="Images shown")
    subset = param.Integer(default=20, bounds=(1, 1280), doc="How many of the best-separating features to search on")
    version = param.Integer(default=0)

    def __init__(self, oneshot, on_prototype=None, **params):
        super().__init__(**params)
        self.oneshot = oneshot
        self.on_prototype = on_prototype or (lambda: None)
        self.ranking = None
        self._error = Alert("", alert_type="danger", visible=False, css_classes=["atlas-error"])
        self._rank_button = pn.widgets.Button(label="Rank features by the counted label", css_classes=["rank-features"])
        self._rank_button.on_click(lambda _: self.rank())
        self._subspace_button = pn.widgets.Button(label="Compare: best features vs all",
                                                  css_classes=["subspace-search"])
        self._subspace_button.on_click(lambda _: self.compare_subspace())
        self._comparison = Text("", wrap=True, css_classes=["subspace-result"])
        self._ranking_table = TextTable(
            disabled=True, show_index=False, pagination="local", page_size=10, selectable=1,
            css_classes=["ranking-table"], formatters={"feature": NumberFormatter(format="0")},  # 1226, not 1,226
            widths={"feature": 64, "auroc": 62, "low": 56, "high": 56, "direction": 72},
            sortable=False,  # ranked already; without the sort arrows every title fits the narrow column
            stylesheets=[".tabulator, .tabulator .tabulator-col-title {font-size: 12px;}"])
        # typed numbers are checked against the store, with a message, before they become the feature
        self._feature_input = pn.widgets.IntInput(label="Feature", value=self.feature, css_classes=["feature-input"])
        self._feature_input.param.watch(lambda e: self.show_feature(e.new), "value")
        self.param.watch(lambda e: setattr(self._feature_input, "value", e.new), "feature")
        self._ranking_table.param.watch(self._on_rank_select, "selection")
        # the table enters the page with its rows: Tabulator cannot lay out rows given to it while
        # hidden, and toggling ``visible`` left it empty on a slow machine (CI)
        self._ranking_slot = pn.Column(sizing_mode="stretch_width")
        self._store_shown = None
        self._cards, self._card_ids = [], []  # the gallery's cards, reused; the galaxy id on each one shown
        self._gallery = pn.Column(Text("", wrap=True, css_classes=["atlas-title"]), pn.FlexBox())
        self._active = False  # the tab has been shown (see activate)
        oneshot.param.watch(self._on_oneshot, "version")
        self.param.watch(lambda _: self._active and self.gallery(), ["feature", "n", "version"])

    @property
    def store(self):
        return self.oneshot.store

    def _on_oneshot(self, _):
        """New results in the one-shot tab: the comparison was the old prototype's; a new store
        (another set, or the first one opened): start over."""
        self._comparison.object = ""
        if self.store is not self._store_shown:
            self._store_shown = self.store
            if self.store is not None and self.feature >= self.store.features.shape[1]:  # a set of other features
                self.feature = 0
            self.ranking, self._comparison.object = None, ""
            self._ranking_slot.clear()
            self._ranking_table.value = None
            self.version += 1

    def show_error(self, text):
        self._error.object, self._error.visible = text, bool(text)

    def show_feature(self, number) -> bool:
        """Show feature ``number`` if the store has it; else say why and keep the current one."""
        if number is None or number == self.feature:
            return number is not None
        try:
            if self.store is None:
                raise InputError("Open a galaxy set in the one-shot tab first: its features are what the atlas shows.")
            self.feature = atlas.check_feature(self.store, number)
        except InputError as exc:
            self.show_error(str(exc))
            self._feature_input.value = self.feature
            return False
        self.show_error("")
        return True

    # ---- actions --------------------------------------------------------------------------
    def rank(self):
        """AUROC of every feature for the one-shot tab's label and value."""
        if self.store is None or self.oneshot.label is None:
            self.show_error("This set has no label column to rank the features by.")
            return
        try:
            self.ranking = atlas.rank_features(self.store, self.oneshot.label, self.oneshot.positive)
        except InputError as exc:
            self.show_error(str(exc))
            return
        self.show_error("")
        frame = self.ranking[["feature", "auroc", "low", "high", "direction"]].to_pandas()
        self._ranking_table.value = frame.round({"auroc": 3, "low": 3, "high": 3})
        if not self._ranking_slot.objects:
            self._ranking_slot.append(self._ranking_table)
        self.feature = int(self.ranking["feature"][0])
        self.version += 1

    def _on_rank_select(self, event):
        if event.new and self.ranking is not None:
            self.feature = int(self._ranking_table.value["feature"].iloc[event.new[0]])

    def compare_subspace(self):
        """The one-shot tab's search again on the ``subset`` best-ranked features only."""
        if self.ranking is None:
            self.rank()
        if self.ranking is None or self.oneshot.result is None:
            return
        o = self.oneshot
        query, n = o.query(), len(o.result) if o.mode != "recursive" else o.n
        chosen = list(self.ranking["feature"][:self.subset])
        full = search.one_shot(self.store, query, n)
        sub = atlas.subspace_search(self.store, query, n, features=chosen)
        dim = self.store.features.shape[1]
        compared = [(f"all {dim} features", full)]
        if self.store.head is not None:  # the subspace search compares the network's own features
            compared = [("the search (through the invariance head)", full),
                        (f"all {dim} features, without the head", atlas.subspace_search(self.store, query, n))]
        lines = [f"{o.label} = {o.positive} among the {n} nearest:"]
        for name, found in (*compared, (f"best {len(chosen)} features", sub)):
            s = label_statistics(self.store.catalog, [self.store.row_of(i) for i in found["id"]], o.label, o.positive)
            lines.append(f"  {name}: {s['k']}/{s['n']} = {100 * (s['fraction'] or 0):.1f}% "
                         f"[{100 * s['low']:.1f}, {100 * s['high']:.1f}]")
        lines.append(f"  base rate {100 * s['base_rate']:.1f}%")
        self._comparison.object = "\n".join(lines)

    def use_as_prototype(self, galaxy_id: str):
        self.oneshot.choose(galaxy_id)
        self.on_prototype()

    # ---- views ----------------------------------------------------------------------------
    def activate(self):
        """The tab is shown: draw the gallery, and from now on follow every change (until then a new
        set in the one-shot tab costs no feature maps)."""
        self._active = True
        self.gallery()

    def gallery(self) -> pn.Column:
        """The images that activate the feature most, with its map over each: the title and cards of
        ``self._gallery`` are changed in place (new ones only when more are shown than ever before),
        so that a new feature sends the browser images and text, not a new page part."""
        title, flex = self._gallery.objects
        if self.store is None:
            title.object, flex.objects = "Open a galaxy set in the one-shot tab first.", []
            return self._gallery
        rows, values = self.store.top_activations()
        top = float(values[self.feature, 0])
        active = values[self.feature, :self.n] >= max(ACTIVE_SHARE * top, 1e-6)
        chosen, shown_values = rows[self.feature, :self.n][active], values[self.feature, :self.n][active]
        try:
            maps = atlas.feature_maps(self.store, self.feature, chosen) if len(chosen) else np.zeros((0, 1, 1))
        except InputError as exc:  # e.g. a store whose network is not on this machine
            title.object, flex.objects = str(exc), []
            return self._gallery
        vmax = float(maps.max()) if maps.size else 1.0
        while len(self._cards) < len(chosen):
            self._cards.append(self._new_card(len(self._cards)))
        self._card_ids = []
        for card, r, value, fmap in zip(self._cards, chosen, shown_values, maps, strict=False):
            gid = str(self.store.catalog["id"][r])
            label = f" | {self.store.catalog[self.oneshot.label][r]}" if self.oneshot.label else ""
            image, text, _ = card.objects
            image.object = atlas.overlay(self.store.view(int(r)), fmap, vmax, mark=float(value),
                                         image_format="JPEG")
            text.object = f"{gid}{label}\nactivation {value:.3f} (◄ on the bar)"
            self._card_ids.append(gid)
        rank = ""
        if self.ranking is not None:
            row = self.ranking[self.ranking["feature"] == self.feature][0]
            rank = (f" AUROC for {self.ranking.meta['column']} = {self.ranking.meta['positive']}: {row['auroc']:.3f} "
                    f"[{row['low']:.3f}, {row['high']:.3f}].")
        n_set = len(self.store.catalog)
        if top < BARELY_FIRES:
            shown = f"; the {len(chosen)} shown reach at least {ACTIVE_SHARE:.0%} of it" if len(chosen) else ""
            what = (f"Feature {self.feature} barely fires on this set: its highest activation on the {n_set:,} "
                    f"images is {top:.3f}{shown}. Its maps say little about these galaxies.")
        else:
            fewer = (f" (only {len(chosen)} of the {self.n} asked reach {ACTIVE_SHARE:.0%} of the highest activation)"
                     if len(chosen) < self.n else "")
            images = f"{len(chosen)} image" + "s" * (len(chosen) != 1)
            what = (f"Feature {self.feature}: the {images} of {n_set:,} that activate it most{fewer}, with "
                    f"its map (the last convolutional layer's channel {self.feature}, upsampled). The activation is "
                    f"the map's mean; every colour bar runs from 0 to {vmax:.3g}, the highest map value shown."
                    + _edge_note(maps))
        with hold():
            flex.objects = self._cards[:len(chosen)]
            title.object = what + rank
        return self._gallery

    def _new_card(self, i: int) -> pn.Column:
        """Card ``i`` of the gallery: the overlay, its caption, and a button searching from its galaxy."""
        use = pn.widgets.Button(label="search from it", color="light", width=130)
        use.on_click(lambda _: self.use_as_prototype(self._card_ids[i]))
        return pn.Column(pn.pane.JPG(None, width=250), Text("", wrap=True), use, width=260, css_classes=["atlas-card"])

    @param.depends("version")
    def contributions_plot(self):
        o = self.oneshot
        if self.store is None or o.result is None or not len(o.result):
            return pn.pane.Markdown("")
        shares = atlas.contributions(self.store, o.query(), list(o.result["id"][:o.n]))
        top = np.argsort(-shares)[:20]
        bars = hv.Bars([(str(k), float(shares[k])) for k in top], "feature", "share of cosine similarity").opts(
            width=700, height=260, xrotation=90, tools=["hover"],
            title=f"Why {o.prototype or 'the upload'} is close to its {min(o.n, len(o.result))} neighbours: top 20 "
            f"features (sum over all = {shares.sum():.3f})")
        head = (" The search itself compares these features through the set's invariance head, so its "
                "distances differ a little." if getattr(self.store, "head", None) is not None else "")
        return pn.Column(bars, Text("Pick one by its number above to see what it responds to." + head,
                                           css_classes=["contributions-note"]))

    def __panel__(self):
        controls = pn.Column(
            self._feature_input,
            pn.widgets.IntSlider.from_param(self.param.n, name="Images"),
            self._rank_button, self._ranking_slot,
            pn.widgets.IntSlider.from_param(self.param.subset, name="Best features to search on"),
            self._subspace_button, self._comparison,
            width=330, sizing_mode="fixed")
        return pn.Row(controls, pn.Column(self._error, self._gallery,
                                          pn.bind(lambda *_: self.contributions_plot(), self.oneshot.param.version,
                                                  self.param.version),
                                          sizing_mode="stretch_width"), sizing_mode="stretch_width")




def _edge_note(maps: np.ndarray) -> str:
    """What the gallery says of where the maps fire: on the image's edge, or inside it. It warns
    when the share on the outer ring says so (:func:`pipeline.oneshot.atlas.on_edge`)."""
    if not len(maps) or min(maps.shape[1:]) < 3:
        return ""
    share = float(np.nanmean(atlas.edge_share(maps)))
    even = atlas.edge_cells_share(*maps.shape[1:])
    if not np.isfinite(share):
        return ""
    if atlas.on_edge(share, even):
        return (f" Beware: {share:.0%} of its activation lies on the maps' outer ring ({even:.0%} if spread evenly): "
                "it responds to the image's edge (the network's padding, a cutout's frame), not to the galaxy.")
    return f" {share:.0%} of its activation lies on the maps' outer ring ({even:.0%} if spread evenly)."
