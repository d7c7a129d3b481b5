"""train-head and train-detector under torchrun (2 CPU processes, gloo) against one process.

The end-to-end tests launch ``python -m torch.distributed.run --nproc_per_node 2 --standalone -m
clawcrane ...`` (what ``torchrun`` runs) on tiny on-disk datasets, and compare the per-step losses
the run folder records (metrics.json's history for the head, the checkpoint's history for the
detector) with a single-process run of the same global batch in this process.

Tolerances. Both runs do the same arithmetic except the order of float32 sums: the head's per-sample
losses are summed within a process and then across processes (all_reduce), DDP averages gradients
bucket-wise, synchronised BatchNorm sums its statistics in two stages. That is rounding at ~1e-7
relative per step, which the optimiser carries forward; measured on the head: <= 6e-6 relative
over 16 steps, so 1e-4. The detector's first two steps agree to < 1e-6, so 1e-5 there. Later
detector steps keep the rounding, but Mask R-CNN's proposal stage is discontinuous (top-k, NMS and
IoU thresholds pick proposals), so a rounding-level weight change can swap a sampled proposal and
move a loss by a finite amount: measured 3e-4 and 2e-3 at steps 3 and 4, so 3e-2 there. Dropout is
0 in the head test (a process draws its own dropout masks); the detector uses ``lite-r18`` (the
``lite`` body's stochastic depth draws per process). Each test takes about 30-45 s on 2 busy cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from click.testing import CliRunner
from helpers.dataset_builders import A2DObject, A2DVideo, make_a2d
from helpers.head_world import a2d_colour_world

import clawcrane
from clawcrane.build.detectors import maskrcnn_from_checkpoint
from clawcrane.build.heads import load_head
from clawcrane.cache.checkpoints import KIND_DETECTOR, load_checkpoint
from clawcrane.cli import main
from clawcrane.config import TrainDetectorConfig
from clawcrane.datasets import open_dataset
from clawcrane.pipeline.distributed import shard
from clawcrane.pipeline.losses import contrastive_loss
from clawcrane.stages import train_detector

HAVE_GLOO = dist.is_available() and dist.is_gloo_available()
needs_gloo = pytest.mark.skipif(not HAVE_GLOO, reason="this torch build has no torch.distributed / gloo backend")

pytestmark = pytest.mark.usefixtures("one_thread")

HEAD_OPTIONS = ["--embed-dim", "32", "--word-dim", "16", "--lstm-hidden", "16", "--no-motion", "--dropout", "0",
                "--batch-size", "4", "--lr", "3e-3", "--device", "cpu"]
DETECTOR_OPTIONS = ["--preset", "lite-r18", "--size", "64", "--batch-size", "2", "--warmup-steps", "1", "--lr", "0.005",
                    "--device", "cpu"]


def torchrun(*args: str, procs: int = 2, timeout: float = 180) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node procs --standalone -m clawcrane ARGS`` with this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(clawcrane.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", CLAWCRANE_PROGRESS="0")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--standalone",
           "-m", "clawcrane", *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def step_losses(history: list[dict]) -> list[float]:
    return [x for h in history for x in h["step_losses"]]


def assert_close(ours: list[float], theirs: list[float], rel: float) -> float:
    """Largest relative difference, asserted below ``rel``."""
    assert len(ours) == len(theirs)
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs))
    assert worst < rel, (worst, ours, theirs)
    return worst


# ---- without processes: the refusals and the loss arithmetic ------------------------------------


def test_a_global_batch_that_does_not_divide_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "0")
    data, features = tmp_path, tmp_path  # refused before either is read
    args = ["train-head", "--features", str(features), "--dataset", str(data), "--out", str(tmp_path / "run"), "--batch-size", "3"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        "error: --batch-size 3 is the global batch; it must divide among the 2 processes (each takes --batch-size / 2); "
        "use a multiple of 2"]
    res = CliRunner().invoke(main, ["train-detector", str(data), "--out", str(tmp_path / "det"), "--batch-size", "3"])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1 and "--batch-size 3" in res.output
    monkeypatch.setenv("RANK", "1")  # the same option error on another rank: rank 0 alone prints it
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and res.output == ""
    assert not (tmp_path / "run").exists() and not (tmp_path / "det").exists()


def test_other_commands_refuse_to_run_under_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "p.parquet"), "--dataset", str(tmp_path)])
    assert res.exit_code == 2 and "only train-head and train-detector run under torchrun" in res.output


def test_per_sample_losses_over_processes_average_to_the_global_batch_mean():
    """The head's loss has no cross-sample term, so (W / B) * sum of a process's terms, averaged over the
    W processes (what DDP does to the gradients), is the global batch mean, also for a last batch of 3 on 2."""
    g = torch.Generator().manual_seed(0)
    for B, W in ((4, 2), (3, 2), (8, 4), (1, 2)):
        sim = torch.rand(B, 5, generator=g) * 2 - 1
        valid = torch.rand(B, 5, generator=g) > 0.3
        valid[:, 0] = True
        target = torch.zeros(B, dtype=torch.long)
        mean = contrastive_loss(sim, valid, target)
        parts = []
        for r in range(W):
            mine = shard(torch.arange(B), r, W)
            terms = contrastive_loss(sim[mine], valid[mine], target[mine], reduction="none") if len(mine) else torch.zeros(0)
            parts.append(terms.sum() * W / B)
        assert torch.allclose(torch.stack(parts).mean(), mean, rtol=1e-6)
    assert shard(torch.arange(6), 1, 2).tolist() == [1, 3, 5] and shard(torch.arange(6), 0, 1).tolist() == list(range(6))


# ---- two processes --------------------------------------------------------------------------------


@needs_gloo
@pytest.mark.slow
def test_train_head_under_torchrun_matches_one_process_and_resumes(tmp_path):
    data, features = a2d_colour_world(tmp_path)  # 30 fit samples: 8 steps of 4 per epoch, the last one of 2
    common = ["train-head", "--features", str(features), "--dataset", str(data), *HEAD_OPTIONS]
    res = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "one"), "--epochs", "2"])
    assert res.exit_code == 0, res.output
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())["history"]

    run = tmp_path / "two"
    first = torchrun(*common, "--out", str(run), "--epochs", "1")  # then killed, say: resumed for epoch 2
    assert first.stderr.count("epoch 1: loss") == 1  # rank 0 alone logs
    assert first.stdout.count("wrote ") == 1  # and reports
    torchrun(*common, "--out", str(run), "--epochs", "2", "--resume")
    two = json.loads((run / "metrics.json").read_text())["history"]
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "last.pt", "metrics.json"]  # no temp or rank file left

    assert [len(h["step_losses"]) for h in two] == [8, 8]
    worst = assert_close(step_losses(two), step_losses(one), rel=1e-4)
    print(f"head: largest relative step-loss difference over 16 steps {worst:.2e}")
    assert [h["validation"]["accuracy"] for h in two] == [h["validation"]["accuracy"] for h in one]

    # the checkpoint is a single-process one: plain parameter names, and it loads here
    payload = torch.load(run / "last.pt", weights_only=True)
    assert payload["processes"] == 2 and len(payload["torch_rng_ranks"]) == 2
    assert not any(k.startswith("module.") for k in payload["model"])
    model, _config, vocab, meta = load_head(run / "last.pt")
    ref, *_ = load_head(tmp_path / "one" / "last.pt")
    assert meta["epoch"] == 2
    # compare what the heads compute, not raw weights. Parameters whose gradient is zero up to rounding
    # (a bias in front of a softmax; the rank term, whose gate starts saturated) take full-size Adam steps
    # driven by that rounding in BOTH runs, so they differ between any two summation orders, even within
    # one process (measured: the rank term moves scores by 2.5e-3; everything else by < 1e-5).
    g = torch.Generator().manual_seed(1)
    words = torch.tensor([vocab.encode(f"the {c} ball") for c in ("red", "green", "blue")])
    lengths = torch.full((3,), words.shape[1])
    feat, pos = torch.randn(3, 3, 8, generator=g), torch.rand(3, 3, 10, generator=g)
    valid = torch.ones(3, 3, dtype=torch.bool)
    model.eval(), ref.eval()
    with torch.no_grad():
        assert torch.allclose(model(words, lengths, feat, pos, valid), ref(words, lengths, feat, pos, valid), atol=1e-2)
        model.ranks = ref.ranks = None  # the similarity without the rank term
        assert torch.allclose(model(words, lengths, feat, pos, valid), ref(words, lengths, feat, pos, valid), atol=1e-4)


def detector_world(root: Path) -> Path:
    """A2D folder: 2 train videos x 2 annotated 48x64 frames (2 objects each), 1 test video."""
    videos = []
    for v in range(3):
        objects = [A2DObject("1", "a thing", {0: (4 + 2 * v, 6, 20 + 2 * v, 22), 3: (8, 10 + v, 24, 26 + v)}, 11),
                   A2DObject("2", "another thing", {0: (26, 30, 42, 52), 3: (24, 34 - v, 40, 56 - v)}, 22)]
        videos.append(A2DVideo(f"v{v}", "test" if v == 2 else "train", height=48, width=64, num_frames=4, objects=objects))
    return make_a2d(root, videos, missed=[], copy_row=False)


@needs_gloo
@pytest.mark.slow
def test_train_detector_under_torchrun_matches_one_process_and_resumes(tmp_path):
    data = detector_world(tmp_path / "data")  # 4 train frames, global batch 2: 2 steps per epoch
    dataset = open_dataset(data)
    config = dict(dataset=str(data), preset="lite-r18", min_size=64, max_size=64, batch_size=2, warmup_steps=1, lr=0.005,
                  device="cpu")
    # one process: epoch 1, then resumed to epoch 2 (the schedule follows --epochs, so both runs resume alike)
    train_detector.run(TrainDetectorConfig(**config, out=str(tmp_path / "one"), epochs=1), dataset=dataset)
    train_detector.run(TrainDetectorConfig(**config, out=str(tmp_path / "one"), epochs=2, resume=True), dataset=dataset)
    one = load_checkpoint(tmp_path / "one" / "final.pt", KIND_DETECTOR)

    run = tmp_path / "two"
    common = ["train-detector", str(data), *DETECTOR_OPTIONS, "--out", str(run)]
    first = torchrun(*common, "--epochs", "1")
    assert first.stdout.count("detector: ") == 1 and first.stderr.count("epoch 1 (step 2") == 1  # rank 0 alone
    torchrun(*common, "--epochs", "2", "--resume")
    two = load_checkpoint(run / "final.pt", KIND_DETECTOR)
    assert sorted(p.name for p in run.iterdir()) == ["final.pt", "last.pt", "metrics.json"]
    assert two["processes"] == 2 and two["step"] == one["step"] == 4

    ours, theirs = step_losses(two["history"]), step_losses(one["history"])
    first_two = assert_close(ours[:2], theirs[:2], rel=1e-5)
    later = assert_close(ours[2:], theirs[2:], rel=3e-2)
    print(f"detector: largest relative step-loss difference, steps 1-2 {first_two:.2e}, steps 3-4 {later:.2e}")

    assert not any(k.startswith("module.") for k in two["model"])
    det = maskrcnn_from_checkpoint(run / "final.pt", device="cpu")  # loads in one process
    assert det.class_ids == [1, 2]  # actor ids 11 // 10 and 22 // 10
    assert json.loads((run / "metrics.json").read_text())["processes"] == 2
