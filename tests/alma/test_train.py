"""Training: checkpoints, resume, logs, model cards (tiny runs; the real ones are in assets/models)."""

import json

import pytest
import torch

from pipeline.alma import models
from pipeline.alma.train import train
from pipeline.errors import InputError


def test_train_writes_model_log_card_and_resumes_exactly(tmp_path):
    common = dict(size=64, batch_size=4, checkpoint_every=2, validate_every=2, validation_batches_n=1)
    straight = train("deep_gru", tmp_path / "a", steps=4, seed=3, **common)
    train("deep_gru", tmp_path / "b", steps=2, seed=3, **common)
    resumed = train("deep_gru", tmp_path / "b", steps=4, seed=3, **common)  # continues from step 2
    a, _ = models.load_checkpoint(straight)
    b, card = models.load_checkpoint(resumed)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb)  # a resumed run is the run it continues
    log = json.loads((tmp_path / "b" / "log.json").read_text())
    assert [e["step"] for e in log["train"]] == [1, 2, 3, 4]
    assert {"training_configs", "held_out_config"} <= set(log["validation"][-1])
    assert card["extra"]["steps"] == 4 and card["extra"]["task"] == "deep_gru"
    text = (tmp_path / "b" / "MODEL_CARD.md").read_text()
    assert "Steps: 4" in text and "held-out configuration" in text
    # the checkpoint holds plain values only, and resuming it with other options is refused
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4
    for option, message in (({"size": 32}, "--size 64"), ({"seed": 4}, "--seed 3"),
                            ({"batch_size": 2}, "--batch 4"), ({"lr": 0.5}, "--lr")):
        with pytest.raises(InputError, match=message):
            train("deep_gru", tmp_path / "b", steps=6, **{**common, "seed": 3, **option})


def test_train_resnet_and_blob_tasks_run(tmp_path):
    for task in ("resnet_shape", "resnet_flux", "decoras_bce"):
        path = train(task, tmp_path / task, steps=1, size=64, batch_size=2, validate_every=1,
                     validation_batches_n=1)
        model, checkpoint = models.load_checkpoint(path)
        assert checkpoint["extra"]["task"] == task


class _Planted:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_a_planted_checkpoint_is_refused_and_never_runs(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "marker"
    out.mkdir()
    torch.save({"task": "deep_gru", "step": 1, "log": _Planted(marker)}, out / "checkpoint.pt")
    with pytest.raises(InputError) as info:
        train("deep_gru", out, steps=2, size=64, batch_size=2)
    message = str(info.value).lower()
    assert "not a plain weights file" in message and "--no-resume" in message and "delete" in message
    assert not marker.exists()
    # what the refusal protects from: loading it the old way runs the planted code
    torch.load(out / "checkpoint.pt", weights_only=False)
    assert marker.read_text() == "ran"


def test_a_damaged_checkpoint_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(InputError, match="--no-resume"):
        train("deep_gru", out, steps=2, size=64, batch_size=2)
    torch.save({"task": "deep_gru"}, out / "checkpoint.pt")  # plain, but not a checkpoint of train
    with pytest.raises(InputError, match="--no-resume"):
        train("deep_gru", out, steps=2, size=64, batch_size=2)


@pytest.mark.parametrize("option, message", [
    ({"steps": 0}, "steps"), ({"batch_size": 0}, "batch"), ({"lr": -1.0}, "lr"), ({"size": 8}, "size"),
    ({"checkpoint_every": 0}, "checkpoint"), ({"seed": -1}, "seed"), ({"validate_every": 0}, "validate")])
def test_bad_options_are_refused_before_anything_is_made(tmp_path, option, message):
    with pytest.raises(InputError, match=message):
        train("deep_gru", tmp_path / "run", **{"steps": 2, "size": 64, **option})
    assert not (tmp_path / "run").exists()


def test_cosine_schedule_falls_to_zero_and_constant_stays():
    from pipeline.alma.tasks import TASKS
    from pipeline.alma.train import learning_rate

    shape, gru = TASKS["resnet_shape"], TASKS["deep_gru"]
    assert shape.schedule == "cosine" and gru.schedule == "constant"
    assert learning_rate(shape, 1e-3, 0, 100) == pytest.approx(1e-3)
    assert learning_rate(shape, 1e-3, 50, 100) == pytest.approx(5e-4)
    assert learning_rate(shape, 1e-3, 99, 100) < 1e-6
    assert learning_rate(gru, 1e-3, 99, 100) == 1e-3


def test_shape_batches_tell_the_dirty_beam_for_most_skies_and_the_gaussian_beam_for_the_rest():
    import numpy as np

    from pipeline.alma.train import GAUSSIAN_BEAM_EVERY, BatchMaker

    maker = BatchMaker("resnet_shape", np.random.default_rng(0), 64)
    x, _ = maker.batch(32)
    beams = x[:, 1].numpy().reshape(len(x), -1)
    dirty = beams.min(axis=1) < 0  # a dirty beam's sidelobes go negative; a Gaussian stays >= 0
    assert np.allclose(beams.max(axis=1), 1.0)
    assert maker._focused_skies >= GAUSSIAN_BEAM_EVERY and dirty.any() and (~dirty).any()
