"""Lesson 5, "What does a feature see?": the feature atlas as a lesson on the one-shot tab's set and
counted label: one feature and the galaxies that activate it, the features that separate the label,
where in the image each fires (a feature can answer to the image's edge, a cutout's padding frame,
rather than the galaxy), and what that means for a search on the "best" features. Everything goes
through :mod:`pipeline.oneshot.atlas`."""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # (plot options need a backend, also outside a served page)
import numpy as np
import panel as pn
import param

from explorer.background import BackgroundJob
from explorer.text import Alert, Text
from pipeline.errors import InputError
from pipeline.oneshot import atlas, search, stats

BEST = 40  # the best-separating features offered
EDGE_SAMPLE = 32  # galaxies of the set (drawn once, seeded) whose maps give every feature's edge share
SEARCH_N = 10  # neighbours of the searches compared
CARD_PX = 170
PLOT_SIZE = (520, 320)
HIT, MISS, EDGE = "#d62728", "#9ecae1", "#ff7f0e"

STEPS = (
    ("One feature and what activates it",
     "The network turns each galaxy into 1280 numbers, its features: each is the mean of one channel of "
     "its last convolutional layer, a 7 x 7 map of where in the image that channel responds. These are the "
     "galaxies of the set that activate the chosen feature most, with its map over each (bright: strong). "
     "Type any feature's number, or pick one of the best-separating ones."),
    ("Features that separate the label",
     "How well does one feature alone tell the counted label (the One-shot search tab's) from the rest? "
     "Its AUROC: the chance that a galaxy with the label has a larger value than one without (0.5: no "
     "better than a coin; far from 0.5 either way: it separates). Left, the AUROC of all 1280 features; "
     "right, the chosen feature's values for the two groups."),
    ("Where in the image it fires",
     "A feature's map says where it fires. If the activation lies on the image's edge (the outer ring of "
     "the 7 x 7 cells) rather than on the galaxy, the feature answers to the frame: the network's zero "
     "padding, or the border of a small cutout upsampled to the network's size. The share on the outer "
     "ring is measured over the galaxies that activate it most; spread evenly it would be 49%."),
    ("Features that answer to artefacts",
     "Each point is one of the 1280 features: how well it separates the label (AUROC, 0.5 in the middle) "
     "against the share of its activation on the edge, over a sample of the set's galaxies. Orange points, "
     "above the dashed line, fire on the frame, not the galaxy (the network's padding answers on every "
     "image). If such a feature separated the label, the label would be tied to how the cutouts were made "
     "(their size, their padding, their survey), not to what the galaxies look like, and on another "
     "survey it would fail. Type an orange one's number and look at its maps."),
    ("Interpretation before trust",
     "A search on the best-separating features looks better on the label than one on all of them, but they "
     "were chosen with the label on these same galaxies, so part of the gain is circular. And if some of "
     "them fire on the frame, the gain is an artefact's. The bars: the label's share among the nearest "
     "galaxies of the prototype with all features, with the best ones, and with the best that do not "
     "fire on the edge. Interpret a feature before trusting it."),
)


class FeaturesLesson(pn.viewable.Viewer):
    """The lesson over ``oneshot`` (an :class:`explorer.oneshot_view.OneShotViewer`): its set, label
    and value; a feature, a prototype and a subset size of its own."""

    feature = param.Integer(default=0, bounds=(0, None), doc="Feature (channel) number")
    images = param.Integer(default=6, bounds=(1, 24), doc="Galaxies shown")
    prototype = param.Selector(default=None, objects=[], allow_None=True, doc="Prototype (a galaxy with the label)")
    subset = param.Integer(default=20, bounds=(1, BEST), doc="Best features searched on")
    version = param.Integer(default=0, doc="Bumped when the numbers change")
    scale = param.Number(default=1.0, bounds=(0.5, 3.0), doc="Plot size, relative (presenter mode: larger)")

    def __init__(self, oneshot, **params):
        super().__init__(**params)
        self.oneshot = oneshot
        self.ranking = None  # atlas.rank_features for the label
        self.edges = None  # (every feature's share on the ring over EDGE_SAMPLE galaxies, an even spread's)
        self._question = None
        self._searched = None  # ((ranking, edges, prototype, subset), their searches)
        self._step = 0
        self._error = Alert("", alert_type="danger", visible=False, css_classes=["lesson-error"])
        self._status = Text("", wrap=True, css_classes=["lesson-status"])
        self._numbers = Text("", wrap=True, css_classes=["lesson-numbers"])
        self._feature_input = pn.widgets.IntInput(label="Feature (0 to 1279)", value=self.feature, width=140)
        self._feature_input.param.watch(lambda e: self.show_feature(e.new), "value")
        self.param.watch(lambda e: setattr(self._feature_input, "value", e.new), "feature")
        self._best = pn.widgets.Select(label="Best-separating features", options={"(ranking...)": None}, width=300)
        self._best.param.watch(lambda e: e.new is not None and self.show_feature(e.new), "value")
        self.job = BackgroundJob(self._on_ranked, self._on_error, lambda text: setattr(self._status, "object", text))
        self._progress = self.job.controls()
        # a feature's maps are made by the network the first time (seconds): off the page's thread
        self._maps = {}  # (feature, images) -> (rows, activations, maps) of the galaxies shown, for _maps_of
        self._maps_of = None  # the store they are of
        self._maps_job = BackgroundJob(self._on_maps, self._on_error)
        oneshot.param.watch(lambda *_: self._refresh_set(), ["version", "label", "positive"])
        self.param.watch(lambda *_: self._bump(), ["prototype", "subset", "scale"])
        self.param.watch(lambda *_: self._draw_maps(), ["feature", "images"])
        self.param.watch(lambda e: self._numbers.scale_font(e.new), "scale")

    @property
    def store(self):
        return self.oneshot.store

    def start(self) -> None:
        """Open the one-shot tab's set if it is not open yet, after the page is drawn; rank its
        features once it is."""
        if self.store is None:
            pn.state.execute(self.oneshot.activate, schedule=True)
        else:
            self._refresh_set()

    # ---- the set, its ranking and the edge shares -------------------------------------------
    def _refresh_set(self) -> None:
        question = (self.store, self.oneshot.label, self.oneshot.positive)
        if question == self._question or self.job.busy:
            return
        self._question = question
        self.ranking, self.edges = None, None
        self.param.prototype.objects = []
        if self.store is None or self.oneshot.label is None or self.oneshot.positive is None:
            self._bump()
            return
        store, label, positive = question

        def work(progress, cancel, share):
            progress(0, 2, "ranking the features by the label")
            ranking = atlas.rank_features(store, label, positive)
            progress(1, 2, f"where every feature fires, on {EDGE_SAMPLE} galaxies of the set")
            sample = np.random.default_rng(0).choice(len(store.catalog), min(EDGE_SAMPLE, len(store.catalog)),
                                                     replace=False)
            return question, ranking, atlas.edge_shares(store, np.sort(sample))

        self.job.start(work, "Ranking the features and measuring where they fire")

    def _on_ranked(self, value) -> None:
        question, ranking, edges = value
        self._status.object = ""
        if question != (self.store, self.oneshot.label, self.oneshot.positive):  # the set changed meanwhile
            self._question = None
            self._refresh_set()
            return
        self.ranking, self.edges = ranking, edges
        best = zip(ranking["feature"][:BEST], ranking["auroc"][:BEST], strict=True)
        self._best.options = {f"{int(k)}: AUROC {a:.2f}" + (", on the edge" if self._fires_on_edge(int(k)) else ""):
                              int(k) for k, a in best}
        _, hit = stats.check_label(self.oneshot.labelled_catalog(), self.oneshot.label, self.oneshot.positive)
        ids = [str(i) for i in np.asarray(self.store.catalog["id"])[hit]]
        self.param.prototype.objects = ids
        self.param.update(feature=int(ranking["feature"][0]), prototype=ids[0] if ids else None)
        self._draw_maps()

    def _on_error(self, message: str) -> None:
        self._status.object = ""
        self._error.object, self._error.visible = message, True

    def _draw_maps(self) -> None:
        """The chosen feature's maps over the galaxies that activate it most, made in the background
        the first time; the step is drawn again when they are there."""
        if self.store is not self._maps_of:  # another set: its own maps
            self._maps, self._maps_of = {}, self.store
        wanted = (self.feature, self.images)
        if self.store is None or wanted in self._maps:
            self._bump()
            return
        if self._maps_job.busy:
            return  # the next one starts when this one ends
        store, (feature, images) = self.store, wanted
        rows, values = store.top_activations()
        chosen, shown = rows[feature, :images], values[feature, :images]
        self._status.object = f"drawing feature {feature}'s maps..."
        self._maps_job.start(lambda progress, cancel, share: (store, wanted, chosen, shown,
                                                              atlas.feature_maps(store, feature, chosen)),
                             f"feature {feature}'s maps")

    def _shown_maps(self):
        """(rows, activations, maps) of the galaxies shown for the chosen feature, or None (being made)."""
        return self._maps.get((self.feature, self.images)) if self.store is self._maps_of else None

    def _on_maps(self, value) -> None:
        store, wanted, chosen, shown, maps = value
        if store is self._maps_of:  # not a set shown before
            self._maps[wanted] = (chosen, shown, maps)
        self._status.object = ""
        self._draw_maps()  # those asked for now: shown if these are they, else made

    def show_feature(self, number) -> bool:
        if number is None:
            return False
        try:
            if self.store is None:
                raise InputError("Open a galaxy set in the one-shot tab first: its features are what this lesson "
                                 "shows.")
            self.feature = atlas.check_feature(self.store, number)
        except InputError as exc:
            self._error.object, self._error.visible = str(exc), True
            self._feature_input.value = self.feature
            return False
        self._error.visible = False
        return True

    def _fires_on_edge(self, feature: int) -> bool:
        return self.edges is not None and atlas.on_edge(float(self.edges[0][feature]), self.edges[1])

    def _bump(self) -> None:
        self._numbers.object = self.numbers(self._step)
        self.version += 1

    # ---- the numbers ----------------------------------------------------------------------
    def numbers(self, step: int) -> str:
        if self.store is None:
            return ("Opening the one-shot tab's galaxy set (the first time it is built: a minute or two; the "
                    "One-shot search tab shows its progress).")
        if self.ranking is None:
            return "Ranking the features by the counted label (choose the label in the One-shot search tab)..."
        row = self.ranking[self.ranking["feature"] == self.feature][0]
        meta = self.ranking.meta
        line = (f"feature {self.feature}: AUROC {row['auroc']:.3f} [{row['low']:.3f}, {row['high']:.3f}] for "
                f"{meta['column']} = {meta['positive']} ({meta['n_positive']} against {meta['n_other']}); "
                f"galaxies with the label have {row['direction']} values")
        if step == 1:
            best = [f"  {int(r['feature'])}: {r['auroc']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
                    for r in self.ranking[:5]]
            return "\n".join([line, "the five best-separating features (AUROC, 95% interval):", *best])
        if step == 2:
            if self._shown_maps() is None:
                return f"{line}\ndrawing its maps..."
            _, _, maps = self._shown_maps()
            share, even = float(np.nanmean(atlas.edge_share(maps))), atlas.edge_cells_share(*maps.shape[1:])
            if even >= 1:
                return f"{line}\n{self._edge_numbers()}"
            verdict = "it fires on the edge, not on the galaxy" if atlas.on_edge(share, even) else "it fires inside"
            return (f"{line}\n{share:.0%} of its activation lies on the maps' outer ring over the {len(maps)} "
                    f"galaxies that activate it most, shown ({even:.0%} if spread evenly): {verdict}")
        if step == 3:
            return f"{line}\n{self._edge_numbers()}"
        if step == 4:
            return self._search_numbers()
        return line

    def _edge_numbers(self) -> str:
        shares, even = self.edges
        if even >= 1:
            return ("this set's feature maps are too small to have an inside (every cell is on the edge): "
                    "where a feature fires cannot be told here; build the set's features at 224 px")
        order = np.asarray(self.ranking["feature"], int)  # best-separating first
        edge = [k for k in order if self._fires_on_edge(k)]
        best = [k for k in order[:BEST] if self._fires_on_edge(k)]
        auroc = dict(zip(order, np.asarray(self.ranking["auroc"], float), strict=True))
        lines = [f"on {EDGE_SAMPLE} galaxies of the set, {len(edge)} of the {len(shares)} features fire mostly on "
                 f"the edge (ring share at least {even + atlas.EDGE_WARNING * (1 - even):.0%}; {even:.0%} if even)"]
        if edge:
            lines.append("  the most separating of them: " + ", ".join(f"{k} (AUROC {auroc[k]:.2f})" for k in edge[:5]))
        lines.append(f"  among the {BEST} best-separating: " + (", ".join(str(k) for k in best) if best else "none"))
        return "\n".join(lines)

    def searches(self) -> list[tuple[str, list]]:
        """(name, ids found) of the prototype's SEARCH_N nearest by all features and by subsets; made
        once per question (the numbers and the plot both ask)."""
        asked = self._searched[0] if self._searched is not None else None
        if (asked is None or asked[0] is not self.ranking or asked[1] is not self.edges
                or asked[2:] != (self.prototype, self.subset)):
            self._searched = ((self.ranking, self.edges, self.prototype, self.subset), self._search())
        return self._searched[1]

    def _search(self) -> list[tuple[str, list]]:
        best = [int(k) for k in self.ranking["feature"][:self.subset]]
        inside = [k for k in best if not self._fires_on_edge(k)]
        found = [("all features (the search)", list(search.one_shot(self.store, self.prototype, SEARCH_N)["id"])),
                 (f"the best {len(best)}", list(atlas.subspace_search(self.store, self.prototype, SEARCH_N,
                                                                      features=best)["id"]))]
        if len(inside) < len(best):
            found.append((f"the best {len(inside)} inside the galaxy",
                          list(atlas.subspace_search(self.store, self.prototype, SEARCH_N, features=inside)["id"])
                          if inside else []))
        return found

    def _found(self, ids) -> dict:
        return stats.label_statistics(self.oneshot.labelled_catalog(), [self.store.row_of(i) for i in ids],
                                      self.oneshot.label, self.oneshot.positive)

    def _search_numbers(self) -> str:
        if self.prototype is None:
            return "No galaxy has the counted label: nothing to search from."
        lines = [f"{self.oneshot.label} = {self.oneshot.positive} among the {SEARCH_N} nearest of {self.prototype}:"]
        for name, ids in self.searches():
            if not ids:
                lines.append(f"  {name}: no feature left")
                continue
            s = self._found(ids)
            lines.append(f"  {name}: {s['k']} of {s['n']} = {100 * (s['fraction'] or 0):.0f}% "
                         f"[{100 * s['low']:.0f}, {100 * s['high']:.0f}]")
        lines.append(f"  base rate {100 * s['base_rate']:.1f}%")
        return "\n".join(lines)

    # ---- plots ----------------------------------------------------------------------------
    def _size(self) -> dict:
        return {"width": int(PLOT_SIZE[0] * self.scale), "height": int(PLOT_SIZE[1] * self.scale)}

    def gallery(self):
        """The galaxies that activate the feature most, its map over each, and their captions."""
        if self._shown_maps() is None:
            return Text(f"Drawing feature {self.feature}'s maps (the network runs the first time)...")
        chosen, shown, maps = self._shown_maps()
        top = max(float(maps.max()), 1e-12)
        share = atlas.edge_share(maps)
        label = self.oneshot.label
        catalog = self.oneshot.labelled_catalog()
        px = int(CARD_PX * self.scale)
        cards = []
        for r, value, fmap, ring in zip(chosen, shown, maps, share, strict=True):
            png = atlas.overlay(self.store.view(int(r)), fmap, top, px=px, mark=float(value))
            caption = (f"{self.store.catalog['id'][r]}" + (f" | {catalog[label][r]}" if label else "")
                       + f"\nactivation {value:.3f}\non the edge {ring:.0%}")
            cards.append(pn.Column(pn.pane.PNG(png, width=px + 60), Text(caption, wrap=True), width=px + 70))
        return pn.FlexBox(*cards, css_classes=["lesson-gallery"])

    def auroc_plot(self):
        auroc = np.asarray(self.ranking["auroc"], float)
        chosen = float(self.ranking["auroc"][self.ranking["feature"] == self.feature][0])
        counts, edges = np.histogram(auroc, bins=40, range=(min(auroc.min(), 0.3), max(auroc.max(), 0.7)))
        return (hv.Histogram((edges, counts), kdims=["AUROC"], vdims=["features"]).opts(color=MISS, line_color="white")
                * hv.VLine(0.5).opts(color="black", line_dash="dashed")
                * hv.VLine(chosen).opts(color=HIT, line_width=2)).opts(
            **self._size(), title=f"AUROC of all {len(auroc)} features; feature {self.feature} in red")

    def values_plot(self):
        labelled, hit = stats.check_label(self.oneshot.labelled_catalog(), self.oneshot.label, self.oneshot.positive)
        x = np.asarray(self.store.features[:, self.feature], float)
        bins = np.histogram_bin_edges(x[labelled], bins=30)
        parts = []
        for mask, name, colour in ((labelled & ~hit, "others", MISS), (hit, str(self.oneshot.positive), HIT)):
            counts, _ = np.histogram(x[mask], bins=bins)
            share = counts / max(counts.sum(), 1)
            parts.append(hv.Histogram((bins, share), kdims=[f"feature {self.feature}"], vdims=["share of the group"],
                                      label=name).opts(color=colour, alpha=0.6, line_color=colour))
        return hv.Overlay(parts).opts(**self._size(), legend_position="top_right",
                                      title=f"feature {self.feature}: {self.oneshot.positive} against the others")

    def edge_plot(self):
        """Every feature: its AUROC against its share on the ring (over the sample); the chosen one ringed."""
        shares, even = self.edges
        features = np.asarray(self.ranking["feature"], int)
        auroc = np.asarray(self.ranking["auroc"], float)
        share = shares[features]
        where = np.where([self._fires_on_edge(k) for k in features], "on the edge", "inside")
        keep = np.isfinite(share)
        scatter = hv.Points((auroc[keep], share[keep], features[keep], where[keep]),
                            ["AUROC", "share on the edge"], ["feature", "where"]).opts(
            color="where", cmap={"on the edge": EDGE, "inside": MISS}, size=6, tools=["hover"], line_color=None)
        mine = features == self.feature
        marked = hv.Points((auroc[mine], np.nan_to_num(share[mine])), ["AUROC", "share on the edge"]).opts(
            color=HIT, size=16, fill_alpha=0, line_width=2)
        return (scatter * marked * hv.HLine(even).opts(color="grey", line_dash="dotted")
                * hv.HLine(even + atlas.EDGE_WARNING * (1 - even)).opts(color=EDGE, line_dash="dashed")
                * hv.VLine(0.5).opts(color="black", line_dash="dotted")).opts(
            **self._size(), ylim=(0, 1), show_legend=False,
            title=f"all {int(keep.sum())} features that fire on the sample; feature {self.feature} ringed")

    def search_plot(self):
        bars = []
        for name, ids in self.searches():
            bars.append((name, (self._found(ids)["fraction"] or 0) if ids else 0.0))
        base = self._found([self.prototype])["base_rate"]
        return (hv.Bars(bars, "features searched on", "share with the label").opts(color=HIT)
                * hv.HLine(base).opts(color="black", line_dash="dashed")).opts(
            **self._size(), ylim=(0, 1), title=f"the {SEARCH_N} nearest of {self.prototype} (dashed: the base rate)")

    def _step_view(self, step: int):
        if self.store is None or self.ranking is None:
            return pn.Column()
        try:
            if step in (0, 2):
                return self.gallery()
            if step == 1:
                return pn.Row(pn.pane.HoloViews(self.auroc_plot()), pn.pane.HoloViews(self.values_plot()))
            if step == 3:
                return pn.Row(pn.pane.HoloViews(self.edge_plot()), self.gallery_of_one())
            if self.prototype is None:
                return pn.Column()
            return pn.pane.HoloViews(self.search_plot())
        except InputError as exc:
            self._error.object, self._error.visible = str(exc), True
            return pn.Column()

    def gallery_of_one(self):
        """The chosen feature's strongest map, beside the scatter."""
        if self._shown_maps() is None:
            return Text(f"Drawing feature {self.feature}'s maps...")
        chosen, shown, maps = self._shown_maps()
        r = int(chosen[0])
        px = int(CARD_PX * self.scale)
        png = atlas.overlay(self.store.view(r), maps[0], px=px, mark=float(shown[0]))
        return pn.Column(pn.pane.PNG(png, width=px + 60),
                         Text(f"feature {self.feature} on {self.store.catalog['id'][r]}", wrap=True))

    # ---- the lesson's parts ---------------------------------------------------------------
    def handout(self, step: int) -> list:
        return [self._step_view(step), Text(self.numbers(step), wrap=True)]

    def panel(self, step: int):
        self._step = step
        self._numbers.object = self.numbers(step)
        self.start()
        return pn.Column(self._error, self._progress, self._status,
                         pn.bind(lambda *_: self._step_view(step), self.param.version), self._numbers,
                         sizing_mode="stretch_width")

    def controls(self):
        return pn.Column(
            self._feature_input, self._best,
            pn.widgets.IntSlider.from_param(self.param.images, name="Galaxies shown"),
            pn.widgets.Select.from_param(self.param.prototype, name="Prototype (step 5)"),
            pn.widgets.IntSlider.from_param(self.param.subset, name="Best features searched on (step 5)"),
            Text("The set and the counted label are the One-shot search tab's.", wrap=True),
            sizing_mode="stretch_width", css_classes=["lesson-controls"])

    def __panel__(self):
        return pn.Row(self.controls(), self.panel(0))
