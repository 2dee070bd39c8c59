"""The Models tab: the AutoML search (:mod:`pipeline.automl`) as an astronomer reviews it.

A study (the project's own benchmark studies, shipped; or this machine's, from
``python -m pipeline automl``): its trials over time with their objective (finished and pruned),
each parameter's importance, the best configuration. Then the task's exported model against the
hand-designed DECORAS and the classic baseline on the same held-out simulations, images side by
side with each one's scores, and on new simulations made on demand.
"""

from __future__ import annotations

import functools

import holoviews as hv
import holoviews.plotting.bokeh  # (plot options need a backend, also outside a served page)
import numpy as np
import panel as pn
import param

from explorer.background import BackgroundJob
from explorer.text import Alert, Text, for_visitor
from pipeline.errors import InputError

SHIPPED, LOCAL = "Shipped with the project", "This machine's (python -m pipeline automl)"
HELD_OUT_SHOWN = 12  # held-out simulations offered one by one
NEW_SEEDS = 10**7  # seeds of new simulations start here: above the held-out ones
SIZE = 220  # px per image: five side by side fit a 1280-px window
COLOURS = {"complete": "#1f77b4", "pruned": "#bbbbbb", "fail": "#d62728", "running": "#2ca02c", "waiting": "#999999"}


def _storage_url(source: str) -> str | None:
    from pipeline.automl.exported import SHIPPED_STUDIES

    return f"sqlite:///{SHIPPED_STUDIES}" if source == SHIPPED else None


def _summary(source: str, name: str) -> dict:
    """What the tab shows of a study (a thread's work: fANOVA takes a second or two)."""
    from pipeline.automl import search
    from pipeline.automl.tasks import get_task

    study = search.load(name, _storage_url(source))
    try:
        best = search.best(study)
    except InputError as exc:  # no finished trial yet
        best = {"error": str(exc)}
    task = study.user_attrs.get("task")
    return {"name": name, "task": task, "trials": search.trials_table(study), "importances": search.importances(study),
            "best": best, "maximise": get_task(task).direction == "maximize"}


@functools.lru_cache(maxsize=6)
def _loaded(folder):
    """An export folder's models, loaded once per server (they are read-only)."""
    from pipeline.automl.exported import load_export

    return load_export(folder)


@functools.lru_cache(maxsize=6)
def _held_out(task_name: str, n: int):
    """The held-out simulations the tab offers, made once per server and task."""
    from pipeline.automl.search import held_out
    from pipeline.automl.tasks import get_task

    return held_out(get_task(task_name), n)


def _example(task_name: str, index: int, seed: int | None) -> dict:
    """Held-out example ``index``, or a new simulation of ``seed``, answered three ways."""
    from pipeline.automl.exported import answer_one, shipped_exports

    exported = _loaded(shipped_exports()[task_name])
    examples = _held_out(task_name, HELD_OUT_SHOWN) if seed is None else exported.task.examples(seed, 1)
    shown = answer_one(exported, examples, index if seed is None else 0)
    return {**shown, "task": task_name, "what": f"new simulation (seed {seed})" if seed is not None
            else f"held-out simulation {index + 1} of {HELD_OUT_SHOWN}", "result": exported.result}


class ModelsViewer(pn.viewable.Viewer):
    """Studies and exported models of the AutoML search."""

    source = param.Selector(default=SHIPPED, objects=[SHIPPED, LOCAL], doc="Which studies")
    study = param.Selector(default=None, objects=[], doc="The study shown")
    example = param.Integer(default=0, bounds=(0, HELD_OUT_SHOWN - 1), doc="Held-out simulation shown")

    def __init__(self, **params):
        super().__init__(**params)
        self._activated = False
        self._new_seed = None
        self._task = None  # the shown study's task
        self._pending = set()  # jobs asked for while one of their kind was running: run when it ends
        self._status = Text("", wrap=True)
        self._error = Alert("", alert_type="warning", visible=False)
        self._best = Text("", wrap=True, css_classes=["models-best"])
        self._trials = pn.pane.HoloViews(None, sizing_mode="fixed")
        self._importances = pn.pane.HoloViews(None, sizing_mode="fixed")
        self._images = pn.Column()
        self._scores = Text("", wrap=True, css_classes=["models-scores"])
        self._about = Text("", wrap=True, css_classes=["models-about"])
        self._study_job = BackgroundJob(lambda value: self._then(self._show_study, value, "study"),
                                        lambda message: self._then(self._failed, message, "study"),
                                        lambda t: setattr(self._status, "object", t))
        self._example_job = BackgroundJob(lambda value: self._then(self._show_example, value, "example"),
                                          lambda message: self._then(self._failed, message, "example"),
                                          lambda t: setattr(self._status, "object", t))
        self._new = pn.widgets.Button(label="New simulation", color="primary", width=140)
        self._new.on_click(lambda _: self._simulate())
        self._held = pn.widgets.Button(label="Back to held-out", width=140, disabled=True)
        self._held.on_click(lambda _: self._back_to_held_out())
        self.param.watch(lambda _: self._list_studies(), "source")
        self.param.watch(lambda _: self._open_study(), "study")
        self.param.watch(lambda _: self._back_to_held_out(), "example")

    # ---- studies ----------------------------------------------------------------------------------
    def activate(self) -> None:
        """The tab is shown: list the studies the first time."""
        if not self._activated:
            self._activated = True
            self._list_studies()

    def _list_studies(self) -> None:
        from pipeline.automl import search
        from pipeline.automl.exported import SHIPPED_STUDIES

        self._error.visible = False
        if self.source == SHIPPED and not SHIPPED_STUDIES.is_file():
            names = []
        else:
            try:
                names = [name for name, _ in search.list_studies(_storage_url(self.source))]
            except Exception as exc:  # noqa: BLE001 - a database that cannot be read is said, not raised
                self._failed(for_visitor(exc))
                names = []
        self.param.study.objects = names
        if not names:
            self._status.object = ("No study here yet. Run one with `python -m pipeline automl vlba --minutes 60` "
                                   "(or lofar, vst); it lands in this machine's studies.")
            self.study = None
        elif self.study in names:
            self._open_study()
        else:
            self.study = names[0]

    def _open_study(self) -> None:
        if self.study is None:
            return
        if not self._study_job.start(functools.partial(_study_work, self.source, self.study), "reading the study"):
            self._pending.add("study")

    def _show_study(self, summary: dict) -> None:
        self._status.object = ""
        self._trials.object = trials_plot(summary["trials"], summary["maximise"])
        self._importances.object = importances_plot(summary["importances"])
        best = summary["best"]
        if "error" in best:
            self._best.object = best["error"]
        else:
            from pipeline.automl.search import best_text

            self._best.object = best_text(best)
        self._task = summary["task"]
        self._back_to_held_out()

    # ---- examples -----------------------------------------------------------------------------------
    def _simulate(self) -> None:
        self._new_seed = NEW_SEEDS if self._new_seed is None else self._new_seed + 1
        self._held.disabled = False
        self._run_example()

    def _back_to_held_out(self) -> None:
        self._new_seed = None
        self._held.disabled = True
        self._run_example()

    def _run_example(self) -> None:
        from pipeline.automl.exported import shipped_exports

        task = self._task
        if task is None:
            return
        if task not in shipped_exports():
            self._images.objects = []
            self._scores.object = (f"No exported model of task {task} ships with the project. Export one with "
                                   f"`python -m pipeline automl export {self.study} --out DIR`.")
            return
        if not self._example_job.start(functools.partial(_example_work, task, self.example, self._new_seed),
                                       "answering the simulation three ways"):
            self._pending.add("example")

    def _show_example(self, shown: dict) -> None:
        self._status.object = ""
        self._images.objects = [pn.pane.HoloViews(layout, sizing_mode="fixed") for layout in example_plots(shown)]
        self._scores.object = scores_text(shown)
        result = shown["result"]
        self._about.object = (f"{shown['what']}. The exported model ({result['parameters']:,} parameters, "
                              f"trained {result['steps']} steps) against the hand-designed DECORAS "
                              f"({result.get('hand_parameters', 0):,} parameters, trained alike) and "
                              f"{result['baseline']}. Over {result['held_out']['n']} held-out simulations: "
                              + "; ".join(f"{who} " + ", ".join(f"{k} {v:.3f}" for k, v in result[key].items())
                                          for who, key in (("exported", "scores"), ("hand-designed", "hand_scores"),
                                                           (result["baseline"], "baseline_scores"))
                                          if key in result) + ".")

    def _then(self, show, value, kind: str) -> None:
        """Show a job's ``value``, then run the job of this kind asked for meanwhile, if any."""
        show(value)
        if kind in self._pending:
            self._pending.discard(kind)
            if kind == "study":
                self._open_study()
            else:
                self._run_example()

    def _failed(self, message: str) -> None:
        self._status.object = ""
        self._error.object = message
        self._error.visible = True

    def __panel__(self):
        widgets = pn.Param(self.param, parameters=["source", "study"], show_name=False,
                           widgets={"source": pn.widgets.RadioButtonGroup})
        example = pn.widgets.IntSlider.from_param(self.param.example, name="Held-out simulation (index)",
                                                  start=0, end=HELD_OUT_SHOWN - 1, width=280)
        return pn.Column(
            pn.pane.Markdown("### AutoML: DECORAS carried to other instruments and tasks"),
            widgets, self._study_job.controls(), self._status, self._error,
            pn.Row(self._trials, self._importances), self._best,
            pn.pane.Markdown("#### The exported model, the hand-designed DECORAS and the classic baseline"),
            pn.Row(example, self._new, self._held), self._example_job.controls(), self._about, self._images,
            self._scores, sizing_mode="stretch_width")


# ---- work off the page's thread -------------------------------------------------------------------------
def _study_work(source, name, progress, cancel, share):
    return _summary(source, name)


def _example_work(task, index, seed, progress, cancel, share):
    return _example(task, index, seed)


# ---- plots -------------------------------------------------------------------------------------------------
def trials_plot(rows: list[dict], maximise: bool):
    """Each trial's objective against the minutes since the study began: finished trials blue,
    pruned ones grey (at their last report), and the best so far in black."""
    if not rows:
        return hv.Scatter([]).opts(width=480, height=300, title="No trials yet")
    minutes = np.array([r["minutes"] for r in rows], float)
    objective = np.array([r["objective"] for r in rows], float)
    states = [r["state"] for r in rows]
    scores = sorted({k for r in rows for k in r["scores"]})
    points = hv.Scatter({"minutes": minutes, "objective": objective, "state": states,
                         **{k: [r[k] for r in rows] for k in ("trial", "parameters", "steps")},
                         **{k: [r["scores"].get(k, np.nan) for r in rows] for k in scores}},
                        "minutes", ["objective", "state", "trial", "parameters", "steps", *scores]).opts(
        color=hv.dim("state").categorize(COLOURS, default="#999999"), size=7, tools=["hover"])
    done = np.array([s == "complete" for s in states]) & np.isfinite(objective)
    order = np.argsort(minutes[done])
    running_best = (np.maximum if maximise else np.minimum).accumulate(objective[done][order])
    curve = hv.Curve((minutes[done][order], running_best), "minutes", "objective").opts(
        color="black", interpolation="steps-post")
    return (points * curve).opts(width=480, height=300, title="Trials: objective over the search",
                                 xlabel="minutes since the study began", ylabel="objective", show_legend=False)


def importances_plot(importances: dict):
    if not importances:
        return hv.Bars([]).opts(width=380, height=300, title="Parameter importances: too few finished trials")
    items = sorted(importances.items(), key=lambda kv: kv[1])
    return hv.Bars(items, "parameter", "importance").opts(
        invert_axes=True, width=380, height=300, title="Parameter importances (fANOVA)", color="#1f77b4",
        tools=["hover"])


def _image(data, title, low, high):
    return hv.Image(np.flipud(np.asarray(data, float)), bounds=(0, 0, data.shape[1], data.shape[0])).opts(
        cmap="inferno", clim=(low, high), width=SIZE, height=SIZE, title=title, xaxis=None, yaxis=None,
        toolbar=None, colorbar=False)


def example_plots(shown: dict) -> list:
    """Rows of images: input, truth, exported, hand-designed, baseline (one row per output channel;
    detection: the sources each finds marked on its map)."""
    names = [("input", "dirty / observed image"), ("target", "truth (what it learns)"), ("searched", "exported model"),
             ("hand", "hand-designed DECORAS"), ("baseline", "classic baseline")]
    rows = []
    channels = shown["target"].shape[0]
    for c in range(channels):
        reference = shown["target"][c]
        low, high = float(min(0.0, reference.min())), float(max(reference.max(), 1.0))
        panels = []
        for key, title in names:
            data = shown.get(key)
            if data is None:
                continue
            image = data[0] if key == "input" or data.shape[0] == 1 else data[c]
            limits = (low, high)
            observed = key == "input" or (key == "baseline" and "baseline" in shown["found"])  # its sources on it
            if observed:  # the observed image on its own stretch
                limits = (float(np.percentile(image, 1)), float(np.percentile(image, 99.5)))
            element = _image(image, title if channels == 1 else f"{title} ({'central' if c == 0 else 'companion'})",
                             *limits)
            found = shown["found"].get(key)
            if found is not None and len(found):
                # pixel (x, y) is drawn over [x, x + 1] x [y, y + 1]
                element = element * hv.Points((found[:, 0] + 0.5, found[:, 1] + 0.5)).opts(
                    marker="circle", size=14, fill_alpha=0, line_color="cyan", line_width=2)
            panels.append(element)
        rows.append(hv.Layout(panels).cols(len(panels)).opts(shared_axes=False))
    return rows


def scores_text(shown: dict) -> str:
    labels = {"searched": "exported model", "hand": "hand-designed DECORAS", "baseline": "classic baseline"}
    return "On this simulation alone:\n" + "\n".join(
        f"  {labels[who]:24s} " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        for who, scores in shown["scores"].items())
