"""`clawcrane quickstart`: every stage runs once, and a second run finds every stage's work done."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from click.testing import CliRunner

from clawcrane.cli import main
from clawcrane.config import QuickstartConfig
from clawcrane.errors import ConfigError
from clawcrane.stages import quickstart

STAGES = ["synth", "train-detector", "detect", "extract", "train-head", "track-rank", "evaluate", "overlays"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_quickstart_runs_every_stage_then_serves_a_second_run_from_its_artifacts(tmp_path, monkeypatch):
    # drastically reduced: tiny data, oracle candidates (a detector trained for seconds finds nothing
    # a head could learn from; its reuse is tested below), 64-px features, 1 head epoch
    cfg = QuickstartConfig(preset="tiny", detector="oracle", frame_stride=16, input_size=64, head_epochs=1, overlays=1)
    first = quickstart.run(cfg, tmp_path)
    assert [s.name for s in first.stages] == STAGES
    assert [s.name for s in first.stages if s.reused] == ["train-detector"]  # skipped: oracle
    assert "P@0.5" in first.markdown and (tmp_path / "eval" / "metrics.md").is_file()
    (folder,) = first.overlays
    assert (folder / "overlay.mp4").is_file() and (folder / "contact_sheet.png").is_file()

    def boom(*a, **k):
        raise AssertionError("a finished stage recomputed")

    # the costly stages must not even start again
    monkeypatch.setattr(quickstart.train_detector, "run", boom)
    monkeypatch.setattr(quickstart.train_head, "run", boom)
    monkeypatch.setattr(quickstart, "render_overlays", boom)
    monkeypatch.setattr(quickstart.extract, "build_backbone", boom)
    second = quickstart.run(cfg, tmp_path)
    assert {s.name for s in second.stages if s.reused} == set(STAGES) - {"evaluate"}
    assert second.markdown == first.markdown

    # a head trained with other options (say, an older version's default relation) is moved aside,
    # not reused and not deleted, and a head with the current options is trained in its place
    monkeypatch.undo()
    old_best = (tmp_path / "head" / "best.pt").read_bytes()
    real_config = quickstart.TrainHeadConfig
    monkeypatch.setattr(quickstart, "TrainHeadConfig",
                        lambda **kw: real_config(**dict(kw, head=dataclasses.replace(kw["head"], relation="text"))))
    third = quickstart.run(cfg, tmp_path)
    (aside,) = tmp_path.glob("head.stale-*")
    assert (aside / "best.pt").read_bytes() == old_best
    assert "train-head" not in {s.name for s in third.stages if s.reused}
    assert torch.load(tmp_path / "head" / "last.pt", weights_only=True)["config"]["head"]["relation"] == "text"


def test_trained_detector_with_metrics_is_reused_and_a_bare_last_pt_is_resumed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(quickstart.train_detector, "run", lambda cfg, dataset: calls.append(cfg.resume) or
                        quickstart.train_detector.TrainDetectorResult(out_dir=tmp_path, checkpoint=tmp_path / "final.pt",
                                                                      metrics={"steps": 1}))
    ds = type("D", (), {"root": tmp_path})()
    (tmp_path / "last.pt").write_bytes(b"x")
    _, reused, _ = quickstart._train_detector(QuickstartConfig(), ds, tmp_path)
    assert not reused and calls == [True]  # last.pt only: resumed
    (tmp_path / "final.pt").write_bytes(b"x")
    (tmp_path / "metrics.json").write_text('{"steps": 3, "train_minutes": 5}')
    path, reused, note = quickstart._train_detector(QuickstartConfig(), ds, tmp_path)
    assert reused and calls == [True] and path == str(tmp_path / "final.pt") and "3 steps" in note


def test_quickstart_refuses_an_unknown_head_size():
    with pytest.raises(ConfigError, match="--head-size"):
        quickstart.check_config(QuickstartConfig(head_size="huge"))


def test_quickstart_help_names_its_options():
    r = CliRunner().invoke(main, ["quickstart", "--help"])
    assert r.exit_code == 0
    for opt in ("--out", "--preset", "--seed", "--detector-minutes", "--head-epochs", "--frame-stride", "--device"):
        assert opt in r.output


def test_a_detector_starved_of_steps_is_reported_with_the_fixes(tmp_path, caplog):
    # 46 steps in the 5-minute budget on a busy machine gave AP 0.006 and a table of zeros: say so
    (tmp_path / "final.pt").write_bytes(b"x")
    (tmp_path / "metrics.json").write_text('{"steps": 46, "train_minutes": 5, "test_frames": 90, "agnostic_AP": 0.006}')
    ds = type("D", (), {"root": tmp_path})()
    caplog.set_level("WARNING", logger="clawcrane")
    quickstart._train_detector(QuickstartConfig(), ds, tmp_path)
    assert any("AP 0.006 in 46 steps" in m and "--detector-minutes 15" in m and "DETECTOR=oracle" in m
               for m in caplog.messages), caplog.messages
    caplog.clear()
    (tmp_path / "metrics.json").write_text('{"steps": 315, "train_minutes": 5, "test_frames": 90, "agnostic_AP": 0.78}')
    quickstart._train_detector(QuickstartConfig(), ds, tmp_path)
    assert not caplog.messages
