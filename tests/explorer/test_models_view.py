"""The Models tab on a tiny study and export: the trials, importances and best configuration are
shown, and an exported model answers held-out and new simulations beside DECORAS and the baseline."""

import pytest

from explorer import models_view
from pipeline.automl import export, exported, search

TINY = search.Fidelity(max_steps=4, report_every=2, min_reports=1, n_train=8, n_validation=4)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A study and an export in the places the project ships them."""
    root = tmp_path_factory.mktemp("shipped")
    studies = root / "automl" / "studies.db"
    study = search.run("vlba", 3, f"sqlite:///{studies}", "vlba", fidelity=TINY, trials=6)
    export.export(study, root / "models" / "automl_vlba", steps=2, held_out_n=4)
    return root, studies


@pytest.fixture
def viewer(shipped, monkeypatch):
    root, studies = shipped
    monkeypatch.setattr(exported, "SHIPPED_DIR", root / "models")
    monkeypatch.setattr(exported, "SHIPPED_STUDIES", studies)
    monkeypatch.setattr(models_view, "HELD_OUT_SHOWN", 3)
    view = models_view.ModelsViewer()
    view.activate()
    return view


def test_the_shipped_study_is_shown_with_its_best(viewer):
    assert viewer.param.study.objects == ["vlba"] and viewer.study == "vlba"
    assert "study vlba (task vlba): best trial" in viewer._best.object
    assert viewer._trials.object is not None and viewer._importances.object is not None


def test_an_example_is_answered_three_ways(viewer):
    text = viewer._scores.object
    for who in ("exported model", "hand-designed DECORAS", "classic baseline"):
        assert who in text
    assert "held-out simulation 1 of" in viewer._about.object
    assert len(viewer._images.objects) == 1  # one output channel: one row of images
    viewer._simulate()
    assert "new simulation (seed 10000000)" in viewer._about.object and not viewer._held.disabled
    viewer._back_to_held_out()
    assert "held-out simulation 1" in viewer._about.object and viewer._held.disabled
    first = viewer._images.objects[0].object
    viewer.example = 2  # the slider shows that simulation, not the first again
    assert "held-out simulation 3 of 3" in viewer._about.object
    shown = models_view._example("vlba", 2, None)
    expected = models_view._held_out("vlba", 3).inputs[2]
    assert (shown["input"] == expected).all() and viewer._images.objects[0].object is not first


def test_a_task_without_an_export_says_how_to_make_one(viewer, monkeypatch):
    monkeypatch.setattr(exported, "SHIPPED_DIR", exported.SHIPPED_DIR / "nowhere")
    viewer._run_example()
    assert "python -m pipeline automl export vlba --out DIR" in viewer._scores.object and not viewer._images.objects


def test_no_local_study_says_how_to_run_one(viewer):
    viewer.source = models_view.LOCAL
    assert viewer.study is None and "python -m pipeline automl vlba" in viewer._status.object
