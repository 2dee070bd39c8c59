"""Studies on tiny budgets: the search runs, resumes, shares its storage between workers, names
its best, and exports a model that loads; the command line says what is wrong."""

import json

import optuna
import pytest

from pipeline.alma.models import load_checkpoint
from pipeline.automl import export, search, space, training
from pipeline.automl.tasks import get_task
from pipeline.errors import InputError
from tests.conftest import one_line_error, run_cli

TINY = search.Fidelity(max_steps=6, report_every=2, min_reports=1, n_train=16, n_validation=6)


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('studies') / 'studies.db'}"


@pytest.fixture(scope="module")
def lofar_study(storage_url):
    return search.run("lofar", 3, storage_url, "tiny-lofar", fidelity=TINY, trials=3)


def test_a_search_runs_trials_and_names_the_best(lofar_study):
    trials = lofar_study.get_trials()
    assert len(trials) >= 2
    first = trials[0]
    assert first.user_attrs.get("hand_designed") and first.user_attrs["config"]["widths"] == [16, 32, 64]
    found = search.best(lofar_study)
    assert found["task"] == "lofar" and found["baseline"] == "Hogbom CLEAN"
    assert set(found["scores"]) == set(found["baseline_scores"]) == {"flux_error", "residual_rms", "ssim"}
    assert found["config"] == space.from_params(lofar_study.best_trial.params, get_task("lofar"))
    assert found["parameters"] == training.parameters(found["config"], get_task("lofar"))


def test_a_study_resumes_where_it_stopped(lofar_study, storage_url):
    before = len(lofar_study.get_trials())
    again = search.run("lofar", 3, storage_url, "tiny-lofar", fidelity=TINY, trials=1)
    assert again.study_name == "tiny-lofar" and len(again.get_trials()) > before
    assert again.user_attrs["baseline_scores"] == lofar_study.user_attrs["baseline_scores"]  # computed once


def test_a_study_belongs_to_its_task(lofar_study, storage_url):
    with pytest.raises(InputError, match="is a search for task 'lofar'"):
        search.open_study(get_task("vst"), "tiny-lofar", storage_url)


def test_trials_over_the_parameter_limit_are_not_trained(storage_url):
    """VLBA's limit is half the hand-designed DECORAS's parameters: every trained trial is under it."""
    study = search.run("vlba", 3, storage_url, "tiny-vlba", fidelity=TINY, trials=4)
    limit = get_task("vlba").max_parameters
    for trial in study.get_trials():
        if trial.user_attrs.get("parameters", 0) > limit:
            assert trial.state == optuna.trial.TrialState.PRUNED and "steps" not in trial.user_attrs
    assert not any(t.user_attrs.get("hand_designed") for t in study.get_trials())  # DECORAS is over it


def test_two_workers_share_one_study(storage_url):
    study = search.run("vst", 3, storage_url, "tiny-vst", workers=2, fidelity=TINY, trials=2)
    trials = study.get_trials()
    assert len(trials) >= 2 and search.best(study)["task"] == "vst"
    # both processes ran trials at once: some trial started before another had ended
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials if t.datetime_complete)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


def test_export_writes_a_model_that_loads_and_a_card(lofar_study, tmp_path):
    out = tmp_path / "exported"
    result = export.export(lofar_study, out, steps=4, held_out_n=4)
    model, checkpoint = load_checkpoint(out / "model.pt")
    assert checkpoint["kind"] == "encoder_decoder" and checkpoint["extra"]["automl"]["task"] == "lofar"
    card = (out / "MODEL_CARD.md").read_text()
    assert "| this model |" in card and "| Hogbom CLEAN |" in card
    assert "| hand-designed DECORAS | 120,689 |" in card  # DECORAS with lofar's two input channels
    assert json.loads((out / "scores.json").read_text())["scores"] == result["scores"]
    export.export(lofar_study, out, steps=2, held_out_n=4, compare=False)  # an export replaces an export
    assert "hand-designed" not in (out / "MODEL_CARD.md").read_text()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not an exported model"):
        export.export(lofar_study, mine, steps=2)
    assert (mine / "notes.txt").read_text() == "keep"


def test_cli_search_best_and_export(storage_url, tmp_path):
    result = run_cli("automl", "vst", "--minutes", "3", "--trials", "2", "--storage", storage_url, "--study", "cli-vst",
                     "--max-steps", "4", "--examples", "8", "--validation-examples", "4", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "study cli-vst (task vst): best trial" in result.stdout and "photutils deblending" in result.stdout
    shown = run_cli("automl", "best", "cli-vst", "--storage", storage_url, "--json")
    assert json.loads(shown.stdout)["task"] == "vst"
    done = run_cli("automl", "export", "cli-vst", "--storage", storage_url, "--out", tmp_path / "m",
                   "--steps", "2", "--no-compare", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "python -m pipeline automl export cli-vst" in (tmp_path / "m" / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("args,message", [
    (("automl", "hubble"), "takes a task (vlba, lofar, vst)"),
    (("automl", "best"), "needs the study's name"),
    (("automl", "best", "nothing-here", "--storage", "sqlite:///{tmp}/empty.db"), "No study 'nothing-here'"),
    (("automl", "vlba", "--storage", "studies.db"), "database URL"),
    (("automl", "vlba", "--minutes", "0"), "--minutes must be a positive"),
    (("automl", "vlba", "--workers", "0"), "--workers must be at least 1"),
    (("automl", "export", "x"), "needs --out"),
    (("automl", "best", "x", "--storage", "postgresql://bob:secret@127.0.0.1:1/db"), "needs a database driver"),
])
def test_cli_bad_input_is_one_line(args, message, tmp_path):
    line = one_line_error(run_cli(*(a.format(tmp=tmp_path) for a in args)))
    assert message in line and "secret" not in line


def test_the_hand_designed_point_round_trips_and_older_studies_read_unscaled():
    from pipeline.automl import space

    task = get_task("vst")
    params = space.hand_designed_params(task)
    assert space.from_params(params, task) == space.hand_designed(task)
    assert space.hand_designed(task)["scale"] == "none"  # DECORAS as designed
    older = {k: v for k, v in params.items() if k != "scale"}  # before the choice existed
    assert space.from_params(older, task)["scale"] == "none"
    assert space.network_config(space.from_params(older, task), task)["scale"] == "none"
