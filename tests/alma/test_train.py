"""Training: checkpoints, resume, logs, model cards (tiny runs; the real ones are in assets/models)."""

import json

import torch

from pipeline.alma import models
from pipeline.alma.train import train


def test_train_writes_model_log_card_and_resumes_exactly(tmp_path):
    common = dict(size=64, batch_size=4, checkpoint_every=2, validate_every=2, validation_batches_n=1)
    straight = train("deep_gru", tmp_path / "a", steps=4, seed=3, **common)
    train("deep_gru", tmp_path / "b", steps=2, seed=3, **common)
    resumed = train("deep_gru", tmp_path / "b", steps=4, seed=3, **common)  # continues from step 2
    a, _ = models.load_checkpoint(straight)
    b, card = models.load_checkpoint(resumed)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb)  # a resumed run is the run it continues
    log = json.loads((tmp_path / "b" / "log.json").read_text())
    assert [e["step"] for e in log["train"]] == [1, 2, 3, 4]
    assert {"training_configs", "held_out_config"} <= set(log["validation"][-1])
    assert card["extra"]["steps"] == 4 and card["extra"]["task"] == "deep_gru"
    text = (tmp_path / "b" / "MODEL_CARD.md").read_text()
    assert "Steps: 4" in text and "held-out configuration" in text


def test_train_resnet_and_blob_tasks_run(tmp_path):
    for task in ("resnet_pa", "decoras_bce"):
        path = train(task, tmp_path / task, steps=1, size=64, batch_size=2, validate_every=1,
                     validation_batches_n=1)
        model, checkpoint = models.load_checkpoint(path)
        assert checkpoint["extra"]["task"] == task
