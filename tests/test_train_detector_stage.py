"""`clawcrane train-detector` on a tiny drawn dataset: outputs, resume, refusals, CLI help."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from helpers.drawn_shapes import DISC, RECT, drawn_dataset

from clawcrane.build.detectors import maskrcnn_from_checkpoint
from clawcrane.cache.checkpoints import KIND_DETECTOR, load_checkpoint
from clawcrane.cli import main
from clawcrane.config import TrainDetectorConfig
from clawcrane.errors import ConfigError
from clawcrane.pipeline import detector_training as dt
from clawcrane.stages import train_detector


def _config(out, **kw) -> TrainDetectorConfig:
    base = dict(out=str(out), epochs=2, batch_size=2, min_size=64, max_size=64, warmup_steps=1, lr=0.005,
                eval_batch_size=2)
    return TrainDetectorConfig(**{**base, **kw})


def test_stage_writes_a_loadable_detector_and_test_split_metrics(tmp_path):
    data = drawn_dataset(train_videos=2, test_videos=1, frames=2)  # 4 train frames, 2 test frames
    result = train_detector.run(_config(tmp_path / "run"), dataset=data)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert metrics["train_frames"] == 4 and metrics["test_frames"] == 2 and metrics["steps"] == 4
    assert 0.0 <= metrics["mask_AP"] <= metrics["mask_AP50"] <= 1.0  # AP averages AP50 with stricter IoUs
    det = maskrcnn_from_checkpoint(result.checkpoint, device="cpu")
    assert det.class_ids == [RECT, DISC]  # dataset ids, contiguous labels 1, 2 inside the model
    final = load_checkpoint(result.checkpoint, KIND_DETECTOR)
    assert final["metrics"]["mask_AP50"] == metrics["mask_AP50"] and final["step"] == 4
    assert (tmp_path / "run" / "last.pt").is_file()


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    data = drawn_dataset(train_videos=1, test_videos=0, frames=2)
    train_detector.run(_config(tmp_path, epochs=1), dataset=data)
    with pytest.raises(ConfigError, match="last.pt.*--resume"):
        train_detector.run(_config(tmp_path, epochs=1), dataset=data)
    with pytest.raises(ConfigError, match="lr=0.005"):  # resuming with another learning rate
        train_detector.run(_config(tmp_path, epochs=1, lr=0.1, resume=True), dataset=data)


def test_resume_restores_step_and_optimizer_state_and_matches_the_uninterrupted_run(tmp_path, monkeypatch):
    data = drawn_dataset(train_videos=1, test_videos=0, frames=4)  # 4 frames, batch 2: 2 steps per epoch
    whole = train_detector.run(_config(tmp_path / "whole", epochs=2), dataset=data)

    real_step = dt.train_step
    calls = {"n": 0}

    def crash_at_third_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed during epoch 2, after epoch 1's checkpoint
        return real_step(*args, **kwargs)

    monkeypatch.setattr(dt, "train_step", crash_at_third_step)
    with pytest.raises(KeyboardInterrupt):
        train_detector.run(_config(tmp_path / "cut", epochs=2), dataset=data)
    monkeypatch.setattr(dt, "train_step", real_step)
    saved = load_checkpoint(tmp_path / "cut" / "last.pt", KIND_DETECTOR)
    assert saved["step"] == 2 and saved["epoch"] == 1
    assert saved["optimizer"]["state"]  # SGD momentum buffers travel with the checkpoint

    resumed = train_detector.run(_config(tmp_path / "cut", epochs=2, resume=True), dataset=data)
    assert resumed.metrics["steps"] == 4
    a = load_checkpoint(whole.checkpoint, KIND_DETECTOR)["model"]
    b = load_checkpoint(resumed.checkpoint, KIND_DETECTOR)["model"]
    # the same draws, the same momentum: the same weights up to float reduction order
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=1e-3, atol=1e-5), k


def test_cli_help_explains_every_option():
    out = CliRunner().invoke(main, ["train-detector", "--help"])
    assert out.exit_code == 0
    for option in ("--preset", "--out", "--epochs", "--max-minutes", "--resume", "--device", "--weights"):
        assert option in out.output
