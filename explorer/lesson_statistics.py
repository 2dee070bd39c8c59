"""Lesson 4, "One-shot search and statistics": the base rate, a search's fraction with its Wilson
interval, what chance looks like, the p-value and the recursive search, on the one-shot tab's
galaxy set and counted label, through :mod:`pipeline.oneshot.search` and :mod:`pipeline.oneshot.stats`."""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # plot options need a backend, also outside a served page
import numpy as np
import panel as pn
import param

from explorer.text import Alert, Text
from pipeline.errors import InputError
from pipeline.oneshot import search, stats

N_MAX = 50  # neighbours drawn on the fraction-against-n plot
WIDTH, HEIGHT = 560, 320
HIT, MISS, CHANCE = "#d62728", "#9ecae1", "#08519c"

STEPS = (
    ("The base rate",
     "Before asking whether a search found something, ask what finding it by chance would look like. "
     "The base rate is the share of the whole set that carries the label being counted (set in the "
     "One-shot search tab, AGN by default): a search that shows that share has found nothing. The "
     "set opens with the one-shot tab's; the first time it is built, which takes a minute or two."),
    ("The neighbours' fraction and its Wilson interval",
     "A one-shot search returns the n galaxies nearest to a prototype in feature space. The share of "
     "them with the label is an estimate from n galaxies only, so it comes with an interval: Wilson's "
     "95% interval (the band) holds the true rate 95 times in 100. Slide n: with few neighbours the "
     "band is wide and can include the base rate (the dashed line) even when the fraction looks high."),
    ("What chance looks like",
     "Draw n galaxies at random, many times, and count the labelled ones each time: the histogram is "
     "what chance gives. The dots are its exact form (the hypergeometric distribution). The red bar is "
     "the search's count: the further into the tail it lies, the less chance explains it."),
    ("The p-value",
     "The p-value is the share of random draws that do at least as well as the search (the red bars): "
     "the probability of a result this good if the features knew nothing. It is computed exactly from "
     "the hypergeometric distribution; the draws show where it comes from. A small p-value says the "
     "search beats chance, not by how much: the interval of the previous step says that."),
    ("The recursive search",
     "ULISSE's recursive search queries again from each galaxy found, n at a time, for a few "
     "iterations. Does it find a purer set than one direct search of the same size? Each point is "
     "everything found so far, beside the direct search's fraction at that size. On real sets the "
     "answer is often no: following neighbours of neighbours drifts towards the base rate."),
)


class StatisticsLesson(pn.viewable.Viewer):
    """The lesson over ``oneshot`` (an :class:`explorer.oneshot_view.OneShotViewer`): its set, label
    and value; a prototype and n of its own."""

    prototype = param.Selector(default=None, objects=[], allow_None=True, doc="Prototype (a galaxy with the label)")
    n = param.Integer(default=12, bounds=(3, N_MAX), doc="Neighbours (n)")
    draws = param.Integer(default=2000, bounds=(100, 20_000), doc="Random draws")
    recursive_n = param.Integer(default=3, bounds=(1, 20), doc="Recursive: neighbours per query")
    iterations = param.Integer(default=5, bounds=(1, 10), doc="Recursive: iterations")
    version = param.Integer(default=0, doc="Bumped when the numbers change")
    scale = param.Number(default=1.0, bounds=(0.5, 3.0), doc="Plot size, relative (presenter mode: larger)")

    def __init__(self, oneshot, **params):
        super().__init__(**params)
        self.oneshot = oneshot
        self.ranking = None  # the prototype's N_MAX nearest (a Table)
        self.drawn = None  # the fractions of the random draws (chance), made once per change
        self._error = Alert("", alert_type="danger", visible=False, css_classes=["lesson-error"])
        self._numbers = Text("", wrap=True, css_classes=["lesson-numbers"])
        self._question = None  # (store, label, value) the prototypes were chosen for
        oneshot.param.watch(lambda *_: self._refresh_set(), ["version", "label", "positive"])
        self.param.watch(lambda *_: self.search(), ["prototype"])
        self.param.watch(lambda *_: self._bump(), ["n", "draws", "recursive_n", "iterations", "scale"])
        self.param.watch(lambda e: self._numbers.scale_font(e.new), "scale")
        self._refresh_set()

    @property
    def store(self):
        return self.oneshot.store

    def start(self) -> None:
        """Open the one-shot tab's set if it is not open yet (its first build runs in the background),
        after the lesson's page is drawn: opening it imports the feature network, a few seconds."""
        if self.store is None:
            pn.state.execute(self.oneshot.activate, schedule=True)

    def _refresh_set(self) -> None:
        """A set opened, or another label counted: the prototypes are its labelled galaxies. (A new
        search in the one-shot tab changes nothing here.)"""
        question = (self.store, self.oneshot.label, self.oneshot.positive)
        if question == self._question:
            return
        self._question = question
        if self.store is None or self.oneshot.label is None or self.oneshot.positive is None:
            self.param.prototype.objects, self.ranking = [], None
            self._bump()
            return
        _, hit = self.masks()
        ids = [str(i) for i in np.asarray(self.store.catalog["id"])[hit]]
        self.param.prototype.objects = ids
        if self.prototype in ids:
            self.search()
        else:
            self.prototype = ids[0] if ids else None  # searches

    def search(self) -> None:
        if self.store is None or self.prototype is None:
            self.ranking = None
        else:
            self.ranking = search.one_shot(self.store, self.prototype, min(N_MAX, len(self.store.catalog) - 1))
        self._bump()

    def _bump(self) -> None:
        self.drawn = self.chance() if self.ranking is not None else None  # once, for the numbers and the plots
        self._numbers.object = self.numbers()
        self.version += 1

    # ---- the numbers ----------------------------------------------------------------------
    def masks(self):
        """(labelled, hit) over the set's rows, for the one-shot tab's label and value."""
        return stats.check_label(self.oneshot.labelled_catalog(), self.oneshot.label, self.oneshot.positive)

    def found(self, n: int) -> dict:
        """The label statistics of the prototype's ``n`` nearest."""
        rows = [self.store.row_of(i) for i in self.ranking["id"][:n]]
        return stats.label_statistics(self.oneshot.labelled_catalog(), rows, self.oneshot.label, self.oneshot.positive)

    def numbers(self) -> str:
        if self.store is None:
            return ("Opening the one-shot tab's galaxy set (the first time it is built: a minute or two; the "
                    "One-shot search tab shows its progress).")
        if self.ranking is None:
            return "This set has no label to count: choose one in the One-shot search tab."
        s = self.found(self.n)
        return "\n".join([
            f"{s['column']} = {s['positive']}: base rate {100 * s['base_rate']:.1f}% ({s['base_k']} of {s['base_n']} "
            "labelled galaxies)",
            f"prototype {self.prototype}: {s['k']} of its {s['n']} nearest = {100 * (s['fraction'] or 0):.0f}%, "
            f"95% Wilson interval {100 * s['low']:.0f} to {100 * s['high']:.0f}%",
            f"p-value (at least {s['k']} of {s['n']} by chance): {s['p_value']:.2g}; in {self.draws} random draws: "
            f"{np.mean(self.drawn >= s['k'] / s['n'] - 1e-9):.2g}",
        ])

    def chance(self) -> np.ndarray:
        labelled, hit = self.masks()
        return stats.chance_fractions(hit[labelled], self.n, self.draws)

    # ---- plots ----------------------------------------------------------------------------
    def base_plot(self):
        labelled, _ = self.masks()
        values = [str(v) for v in np.asarray(self.oneshot.labelled_catalog()[self.oneshot.label])[labelled]]
        kinds, counts = np.unique(values, return_counts=True)
        order = np.argsort(-counts)[:12]
        bars = hv.Bars([(kinds[i], int(counts[i]), kinds[i] == str(self.oneshot.positive)) for i in order],
                       self.oneshot.label, ["galaxies", "counted"])
        return bars.opts(**self._size(), color="counted", cmap={True: HIT, False: MISS}, tools=["hover"],
                         title=f"{len(values)} labelled galaxies; counted: {self.oneshot.positive}", xrotation=30,
                         show_legend=False)

    def fraction_plot(self):
        labelled, hit = self.masks()
        rows = [self.store.row_of(i) for i in self.ranking["id"]]
        sizes = np.arange(1, len(rows) + 1)
        counted, k = np.cumsum(labelled[rows]), np.cumsum(hit[rows])  # among the n nearest, for every n
        fraction = np.where(counted > 0, k / np.maximum(counted, 1), 0.0)
        low, high = zip(*(stats.wilson_interval(int(a), int(b)) for a, b in zip(k, counted, strict=True)), strict=True)
        band = hv.Area((sizes, low, high), "n", ["low", "high"])
        base = hit.sum() / labelled.sum()
        return (band.opts(color=MISS, alpha=0.5, line_alpha=0)
                * hv.Curve((sizes, fraction), "n", "fraction").opts(color=HIT, line_width=2)
                * hv.HLine(base).opts(color="black", line_dash="dashed")
                * hv.VLine(self.n).opts(color="grey")).opts(
            **self._size(), ylim=(0, 1), ylabel="fraction with the label",
            title=f"fraction among the n nearest of {self.prototype}", show_legend=False)

    def chance_plot(self, tail: bool = False):
        s = self.found(self.n)
        labelled, hit = self.masks()
        counts = np.bincount(np.rint(self.drawn * self.n).astype(int), minlength=self.n + 1)
        share = counts / counts.sum()
        k = np.arange(self.n + 1)
        red = (k >= s["k"]) if tail else (k == s["k"])  # the tail, or the search's own count
        bars = hv.Bars([(f"{i}/{self.n}", share[i], HIT if red[i] else MISS) for i in k], "labelled among n",
                       ["share of draws", "c"])
        exact = stats.hypergeometric_pmf(int(labelled.sum()), int(hit[labelled].sum()), self.n)
        dots = hv.Scatter([(f"{i}/{self.n}", exact[i]) for i in k], "labelled among n", "exact").opts(
            color=CHANCE, size=7)
        title = (f"p = {s['p_value']:.2g}: the red bars, at least {s['k']} of {self.n}" if tail
                 else f"{self.draws} random draws of {self.n}; the search found {s['k']} (red)")
        return (bars.opts(color="c") * dots).opts(**self._size(), title=title, show_legend=False)

    def recursive_plot(self):
        result = search.recursive(self.store, self.prototype, self.recursive_n, self.iterations)
        steps = search.iteration_statistics(self.store, result, self.oneshot.label, self.oneshot.positive,
                                            self.prototype)
        total = [s["total"] for s in steps]
        deep = hv.Curve((total, [s["fraction"] or 0 for s in steps]), "galaxies found", "fraction", label="recursive")
        direct = hv.Curve((total, [s["direct"]["fraction"] or 0 for s in steps]), "galaxies found", "fraction",
                          label="direct, same size")
        return (deep.opts(color=HIT, line_width=2) * hv.Scatter(deep).opts(color=HIT, size=7)
                * direct.opts(color=CHANCE, line_width=2, line_dash="dotted")
                * hv.HLine(steps[0]["base_rate"]).opts(color="black", line_dash="dashed")).opts(
            **self._size(), ylim=(0, 1), legend_position="top_right",
            title=f"recursive ({self.recursive_n} per query, {self.iterations} iterations) against direct")

    def _size(self) -> dict:
        return {"width": int(WIDTH * self.scale), "height": int(HEIGHT * self.scale)}

    def _step_plot(self, step: int):
        if self.ranking is None:  # the numbers say why
            return pn.Column()
        try:
            plot = [self.base_plot, self.fraction_plot, self.chance_plot, lambda: self.chance_plot(tail=True),
                    self.recursive_plot][step]()
        except InputError as exc:
            self._error.object, self._error.visible = str(exc), True
            return pn.Column()
        self._error.visible = False
        return pn.pane.HoloViews(plot, css_classes=["lesson-plot"])

    def handout(self, step: int) -> list:
        """Step ``step``'s plot as it is now, and its numbers: for a page that keeps without a server."""
        return [self._step_plot(step), Text(self._numbers.object, wrap=True)]

    def panel(self, step: int):
        self.start()
        return pn.Column(self._error, pn.bind(lambda *_: self._step_plot(step), self.param.version), self._numbers,
                         sizing_mode="stretch_width")

    def controls(self):
        return pn.Column(
            pn.widgets.Select.from_param(self.param.prototype, name="Prototype"),
            pn.widgets.IntSlider.from_param(self.param.n, name="Neighbours (n)"),
            pn.widgets.IntSlider.from_param(self.param.draws, name="Random draws", step=100),
            pn.widgets.IntSlider.from_param(self.param.recursive_n, name="Recursive: neighbours per query"),
            pn.widgets.IntSlider.from_param(self.param.iterations, name="Recursive: iterations"),
            Text("The set and the counted label are the One-shot search tab's.", wrap=True),
            sizing_mode="stretch_width", css_classes=["lesson-controls"])

    def __panel__(self):
        return pn.Row(self.controls(), self.panel(1))
