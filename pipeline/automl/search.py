"""Studies: the search over :mod:`.space` for a task, in Optuna's storage.

A study is named (by default after its task) and lives in a database: SQLite by default
(:func:`default_storage`, in the pipeline's cache), or any URL SQLAlchemy takes (PostgreSQL or
MySQL, shared by many machines: Optuna's distributed mode). It is created the first time and
continued after that: an interrupted study resumes, its trials kept; a trial whose process died
is marked failed when its heartbeat stops and is tried once more. Several worker processes (or
machines) run trials of the same study at once.

Multi-fidelity: a trial trains for up to :data:`Fidelity.max_steps` steps and reports its
validation objective every ``report_every`` steps; Optuna's Hyperband pruner stops the weak ones
early (a third go on at each rung). Trials are drawn by TPE, the first one being the
hand-designed DECORAS when it fits the task's parameter limit. The time budget is wall-clock
minutes: no trial starts after it, and a trial still training at its end is pruned.

The study keeps, as user attributes, the task, the fidelity, and the classic baseline's scores on
the validation images; each trial keeps its configuration, parameter count, and scores.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from pipeline.automl import space
from pipeline.automl.tasks import HELD_OUT_SEED, VALIDATION_SEED, AutomlTask, Examples, get_task
from pipeline.cache import cache_dir
from pipeline.errors import InputError
from pipeline.progress import report

HEARTBEAT_S = 30  # a running trial says it is alive this often; one silent for GRACE_S has died
GRACE_S = 90


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """How much a trial may train and on what: ``max_steps`` steps at most, the objective
    reported every ``report_every`` steps (Hyperband's unit of resource; the first rung is
    ``min_reports`` reports), on ``n_train`` training and ``n_validation`` validation examples."""

    max_steps: int = 1200
    report_every: int = 100
    min_reports: int = 2
    n_train: int = 4096
    n_validation: int = 128

    @property
    def max_reports(self) -> int:
        return max(1, self.max_steps // self.report_every)


def default_storage() -> str:
    """``sqlite:///<cache>/automl/studies.db``: the studies of this machine."""
    return f"sqlite:///{cache_dir('automl') / 'studies.db'}"


def quiet_optuna() -> None:
    """Optuna's log at warnings only, and without its notes that heartbeats are experimental."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage(url: str | None = None):
    """Optuna's database storage at ``url`` (default :func:`default_storage`), with heartbeats so
    that trials of a dead process are found and retried. InputError for what is not a database URL."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    quiet_optuna()
    url = url or default_storage()
    if "://" not in url:
        raise InputError(f"--storage takes a database URL, e.g. sqlite:///studies.db or "
                         f"postgresql://user:password@host/db, not {url!r}.")
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    shown = _without_password(url)
    try:
        return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    except (ImportError, ModuleNotFoundError) as exc:
        raise InputError(f"The storage {shown.split('://')[0]} needs a database driver that is not installed "
                         f"({exc}); e.g. pip install psycopg2-binary for PostgreSQL, pymysql for MySQL.") from None
    except optuna.exceptions.OptunaError as exc:
        raise InputError(f"Cannot open the storage {shown}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for an unreachable database
        raise InputError(f"Cannot open the storage {shown}: {str(exc).splitlines()[0]}") from None


def _without_password(url: str) -> str:
    """``url`` as it may be printed: a password in it replaced by ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://")[0] + "://..."


def open_study(task: AutomlTask, study_name: str | None = None, url: str | None = None,
               fidelity: Fidelity = Fidelity(), seed: int = 0):
    """The study ``study_name`` (default: the task's name) of ``task`` in the storage, made if new.
    InputError when a study of that name belongs to another task."""
    import optuna

    study = optuna.create_study(study_name=study_name or task.name, storage=storage(url), load_if_exists=True,
                                direction=task.direction, **_sampler_and_pruner(fidelity, seed))
    attrs = study.user_attrs
    if attrs.get("task", task.name) != task.name:
        raise InputError(f"Study {study.study_name!r} is a search for task {attrs['task']!r}, not {task.name!r}: "
                         "give another --study name.")
    if "task" not in attrs:
        study.set_user_attr("task", task.name)
        study.set_user_attr("fidelity", dataclasses.asdict(fidelity))
        from pipeline.automl.training import parameters

        if task.max_parameters is None or parameters(space.hand_designed(task), task) <= task.max_parameters:
            study.enqueue_trial(space.hand_designed_params(task), user_attrs={"hand_designed": True})
    return study


def _sampler_and_pruner(fidelity: Fidelity, seed: int) -> dict:
    """A study's TPE sampler (seeded) and Hyperband pruner over the fidelity's reports, as keywords."""
    import optuna

    return {"sampler": optuna.samplers.TPESampler(seed=seed, n_startup_trials=8),
            "pruner": optuna.pruners.HyperbandPruner(min_resource=fidelity.min_reports,
                                                     max_resource=fidelity.max_reports, reduction_factor=3)}


class Objective:
    """What one trial does: draw a configuration, train it with reports, return the objective."""

    def __init__(self, task: AutomlTask, fidelity: Fidelity, deadline: float, seed: int = 0, cancel=None):
        self.task, self.fidelity, self.deadline, self.seed, self.cancel = task, fidelity, deadline, seed, cancel
        self.train_set = task.examples(seed, fidelity.n_train)
        self.validation = task.examples(VALIDATION_SEED, fidelity.n_validation)
        self.baseline = None

    def baseline_scores(self, study) -> dict:
        """The classic baseline's validation scores: computed once per study, kept in it."""
        if self.baseline is None:
            self.baseline = study.user_attrs.get("baseline_scores")
            if self.baseline is None:
                self.baseline = self.task.scores(self.task.baseline(self.validation), self.validation)
                study.set_user_attr("baseline_scores", self.baseline)
        return self.baseline

    def __call__(self, trial) -> float:
        import optuna

        from pipeline.automl import training

        baseline = self.baseline_scores(trial.study)
        config = space.suggest(trial, self.task)
        n_parameters = training.parameters(config, self.task)
        trial.set_user_attr("config", config)
        trial.set_user_attr("parameters", n_parameters)
        if self.task.max_parameters is not None and n_parameters > self.task.max_parameters:
            trial.set_user_attr("pruned_because", f"{n_parameters} parameters, over {self.task.max_parameters}")
            raise optuna.TrialPruned()

        def on_report(step, scores):
            value = self.task.objective(scores, baseline)
            trial.set_user_attr("scores", scores)
            trial.set_user_attr("steps", step)
            trial.report(value, step // self.fidelity.report_every)
            if self.cancel is not None and self.cancel.is_set():
                trial.study.stop()
                raise optuna.TrialPruned()
            if time.time() > self.deadline and step < self.fidelity.max_steps:
                trial.set_user_attr("pruned_because", "the time budget ran out")
                raise optuna.TrialPruned()
            if trial.should_prune():
                raise optuna.TrialPruned()

        _, log = training.train(config, self.task, self.train_set, self.fidelity.max_steps,
                                seed=self.seed + trial.number, validation=self.validation,
                                report_every=self.fidelity.report_every, on_report=on_report)
        trial.set_user_attr("seconds", round(log["seconds"], 1))
        return self.task.objective(log["reports"][-1], baseline)


def run(task_name: str, minutes: float, url: str | None = None, study_name: str | None = None, workers: int = 1,
        fidelity: Fidelity = Fidelity(), seed: int = 0, progress=None, cancel=None, trials: int | None = None):
    """Search for ``minutes`` (wall clock) on ``workers`` processes; returns the study. Each worker
    uses ``cores / workers`` threads. ``progress(done, total, stage)`` is called with the seconds
    spent of the budget and the number of trials: after each trial (one worker), or about every 10
    s (several). ``cancel`` (one worker): the running trial stops at its next report, none follows."""
    task = get_task(task_name)
    if not (isinstance(minutes, (int, float)) and minutes > 0):
        raise InputError(f"--minutes must be a positive number of minutes; got {minutes!r}.")
    if not (isinstance(workers, int) and 1 <= workers <= 64):
        raise InputError(f"--workers must be a whole number from 1 to 64; got {workers!r}.")
    study = open_study(task, study_name, url, fidelity, seed)
    url = url or default_storage()
    budget = float(minutes) * 60.0
    deadline = time.time() + budget
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers == 1:
        def after_trial(done_study, _trial):
            report(progress, min(budget, budget - (deadline - time.time())), budget,
                   f"{len(done_study.get_trials(deepcopy=False))} trials")

        _optimise(task_name, study.study_name, url, fidelity, seed, deadline, threads, cancel, after_trial, trials)
        return study
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_optimise, args=(task_name, study.study_name, url, fidelity,
                                                         seed + 1000 * i, deadline, threads, None, None, trials),
                                 daemon=True)
                 for i in range(workers)]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            if cancel is not None and cancel.is_set():
                for p in processes:
                    p.terminate()
                break
            report(progress, min(budget, budget - (deadline - time.time())), budget,
                   f"{len(study.get_trials(deepcopy=False))} trials")
            for p in processes:
                p.join(timeout=10 / workers)
    except KeyboardInterrupt:
        for p in processes:
            p.terminate()
        raise
    return study


def _optimise(task_name, study_name, url, fidelity, seed, deadline, threads, cancel, after_trial=None, trials=None):
    """One worker: trials of the study until the deadline (``after_trial(study, trial)`` after each)."""
    import optuna
    import torch

    torch.set_num_threads(threads)
    task = get_task(task_name)
    study = optuna.load_study(study_name=study_name, storage=storage(url), **_sampler_and_pruner(fidelity, seed))
    objective = Objective(task, fidelity, deadline, seed, cancel)
    remaining = deadline - time.time()  # what is left once the examples are made
    if remaining <= 0:
        return
    study.optimize(objective, n_trials=trials, timeout=remaining, gc_after_trial=True,
                   callbacks=[after_trial] if after_trial else None)


def load(study_name: str, url: str | None = None):
    """The study ``study_name`` in the storage; InputError naming the studies there when missing."""
    import optuna

    opened = storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)]
    if study_name not in names:
        shipped = (" The project's own studies are in --storage sqlite:///assets/automl/studies.db (from the "
                   "project's folder).") if url is None else ""
        raise InputError(f"No study {study_name!r} in {url or default_storage()}; "
                         + (f"the studies there: {', '.join(names)}." if names else
                            "it holds none yet: run `python -m pipeline automl TASK` first.") + shipped)
    return optuna.load_study(study_name=study_name, storage=opened)


def best(study) -> dict:
    """The best finished trial of ``study``: its number, configuration, objective, validation
    scores, parameter count and steps; the baseline's validation scores; the trials' counts."""
    import optuna

    task = get_task(study.user_attrs["task"])
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise InputError(f"Study {study.study_name!r} has no finished trial yet: let it search longer.")
    trial = study.best_trial
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    return {"study": study.study_name, "task": task.name, "trial": trial.number, "objective": trial.value,
            "objective_note": task.objective_note, "config": space.from_params(trial.params, task),
            "scores": trial.user_attrs.get("scores", {}), "parameters": trial.user_attrs.get("parameters"),
            "steps": trial.user_attrs.get("steps"), "baseline": task.baseline_name,
            "baseline_scores": study.user_attrs.get("baseline_scores", {}),
            "trials": {s: states.count(s) for s in sorted(set(states))}}


def best_text(found: dict) -> str:
    """What :func:`best` found, as lines of text."""
    trials = ", ".join(f"{n} {state}" for state, n in found["trials"].items())
    return "\n".join([
        f"study {found['study']} (task {found['task']}): best trial {found['trial']} "
        f"(of {sum(found['trials'].values())}: {trials})",
        f"  objective {found['objective']:.4f} ({found['objective_note']})",
        f"  {space.describe(found['config'])}",
        f"  {found['parameters']:,} parameters, trained {found['steps']} steps in the search",
        "  validation: " + ", ".join(f"{k} {v:.3f}" for k, v in found["scores"].items()),
        f"  {found['baseline']}: " + ", ".join(f"{k} {v:.3f}" for k, v in found["baseline_scores"].items())])


def held_out(task: AutomlTask, n: int) -> Examples:
    """``n`` held-out examples: seeds no search or training uses."""
    return task.examples(HELD_OUT_SEED, n)


def importances(study) -> dict[str, float]:
    """How much each parameter mattered to the objective among the finished trials (Optuna's
    fANOVA), largest first; empty with fewer than two finished trials."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # e.g. every finished trial with the same parameters
        return {}


def list_studies(url: str | None = None) -> list[tuple[str, str]]:
    """(name, task) of every study in the storage at ``url``."""
    import optuna

    summaries = optuna.get_all_study_summaries(storage(url), include_best_trial=False)
    return [(s.study_name, s.user_attrs.get("task", "?")) for s in summaries]


def trials_table(study) -> list[dict]:
    """Every trial: number, state, objective (a pruned one's last report), minutes since the study's
    first trial, steps trained, parameters and its last validation scores."""
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    first = min(starts) if starts else None
    rows = []
    for t in trials:
        end = t.datetime_complete or t.datetime_start
        objective = t.value if t.value is not None else (
            t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     "objective": np.nan if objective is None else float(objective),
                     "minutes": np.nan if end is None or first is None else (end - first).total_seconds() / 60,
                     "steps": t.user_attrs.get("steps", 0), "parameters": t.user_attrs.get("parameters", 0),
                     "scores": t.user_attrs.get("scores", {})})
    return rows
