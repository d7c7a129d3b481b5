"""`clawcrane train-detector`: train the Mask R-CNN proposer on every annotated instance, score it.

Reads the annotated frames of the 'train' videos once into memory (there are few), trains with
``pipeline.detector_training.train_loop``, keeps ``OUT/last.pt`` current (``--resume`` goes on
from it), then runs the model over the annotated frames of the 'test' videos and writes COCO
mask AP / AP50 / AP75 into ``OUT/metrics.json`` and the finished detector into ``OUT/final.pt``.

Under ``torchrun --nproc_per_node N -m clawcrane train-detector ...`` every process decodes the
train frames and trains its share of each global batch (``--batch-size`` stays the global batch;
it must divide by N) with synchronised BatchNorm and DDP-averaged gradients (see
``pipeline.detector_training``). Rank 0 alone logs, writes ``last.pt``, and, once every process
has finished training, scores the test split and writes ``final.pt`` and ``metrics.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clawcrane.atomic import clean_stale_temps, write_json
from clawcrane.build import distributed
from clawcrane.build.detectors import new_detector_model
from clawcrane.cache.checkpoints import KIND_DETECTOR, load_checkpoint, save_checkpoint
from clawcrane.config import TrainDetectorConfig, output_config, to_dict
from clawcrane.datasets.records import Dataset
from clawcrane.errors import ConfigError, DataError
from clawcrane.pipeline import detector_training as dt
from clawcrane.pipeline.distributed import plain_state, sync_batchnorm
from clawcrane.pipeline.maskrcnn import MaskRCNNDetector, model_spec, state_fingerprint
from clawcrane.progress import progress

log = logging.getLogger(__name__)

STAGE = "train-detector"
STAGE_VERSION = 1
EXTENDABLE = ("epochs", "max_minutes")
"""Options a resumed run may change (to train longer); every other output option must match."""


@dataclass
class TrainDetectorResult:
    out_dir: Path
    """The output folder."""
    checkpoint: Path
    """OUT/final.pt, the trained detector."""
    metrics: dict[str, Any]
    """What OUT/metrics.json holds (mask AP / AP50 / AP75 on the test split, sizes, time)."""


def _frames(dataset: Dataset, split: str) -> Iterator[tuple[str, int, np.ndarray, list]]:
    """(video_id, frame, RGB frame, instances) of every annotated frame of ``split``'s videos."""
    for vid in dataset.video_ids(split):
        frames = dataset.annotated_frames.get(vid, ())
        if not frames:
            continue
        for f, rgb in dataset.videos[vid].iter_frames(frames):
            yield vid, f, rgb, dataset.frame_instances(vid, f)


def _count(dataset: Dataset, split: str) -> int:
    return sum(len(dataset.annotated_frames.get(v, ())) for v in dataset.video_ids(split))


def _stack(instances: list, height: int, width: int, class_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(K, H, W) bool masks and (K,) class ids (mapped by ``class_mode``) of a frame's instances."""
    if not instances:
        return np.zeros((0, height, width), bool), np.zeros(0, np.int64)
    ids = dt.map_classes(np.array([i.class_id for i in instances], np.int64), class_mode)
    return np.stack([i.mask for i in instances]).astype(bool), ids


def _check_resume(path: Path, payload: dict[str, Any], config: TrainDetectorConfig, dataset: Dataset) -> None:
    old = {k: v for k, v in payload["config"]["train"].items() if k not in EXTENDABLE}
    new = {k: v for k, v in to_dict(config).items() if k not in EXTENDABLE}
    new_out = {k: new[k] for k in output_config(config) if k in new}
    diff = sorted(k for k in new_out if k in old and _plain(old[k]) != _plain(new_out[k]))
    if diff:
        shown = ", ".join(f"{k}={old[k]!r} (now {new_out[k]!r})" for k in diff)
        raise ConfigError(f"{path}: was trained with {shown}; resume with the same options or choose a new --out")
    if payload.get("dataset", {}).get("fingerprint") != dataset.fingerprint:
        raise ConfigError(f"{path}: was trained on a different dataset (fingerprint differs); choose a new --out")


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def run(config: TrainDetectorConfig, *, dataset: Dataset | None = None) -> TrainDetectorResult:
    """Train (or resume) the detector of ``config`` and evaluate it on the test split.

    Under torchrun (WORLD_SIZE > 1) this joins the process group and trains this process's share; the
    other ranks return without scoring (their result's ``metrics`` are empty), rank 0 scores and writes.
    """
    procs, device = distributed.setup(config.device, config.batch_size)
    try:
        return _run(config, dataset=dataset, procs=procs, device=device)
    finally:
        distributed.teardown(procs)


def _run(config: TrainDetectorConfig, *, dataset: Dataset | None, procs: distributed.Processes, device: torch.device) -> TrainDetectorResult:
    if dataset is None:
        from clawcrane.datasets import open_dataset

        dataset = open_dataset(config.dataset)
    if config.scale_min > config.scale_max or config.scale_min <= 0:
        raise ConfigError(f"--scale-min {config.scale_min} / --scale-max {config.scale_max}: need 0 < min <= max")
    if not config.out:
        raise ConfigError("train-detector needs --out DIR for its checkpoints and metrics")
    out = Path(config.out)
    if procs.main:
        out.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(out)
    last, final = out / "last.pt", out / "final.pt"
    payload: dict[str, Any] | None = None
    if last.is_file():
        if not config.resume:
            raise ConfigError(f"{last}: a training run is already here; pass --resume to continue it or choose a new --out")
        payload = load_checkpoint(last, KIND_DETECTOR)
        _check_resume(last, payload, config, dataset)

    n_train = _count(dataset, "train")
    if n_train == 0:
        raise DataError(f"{dataset.root}: no annotated frames in 'train' videos; the detector needs instance masks to learn from")
    sizes = model_spec(
        config.preset, num_classes=1, min_size=config.min_size or None, max_size=config.max_size or None
    )
    try:
        class_mode = dt.resolve_class_mode(config.classes, dataset.name)
    except ValueError as err:
        raise ConfigError(f"--classes {config.classes}: {err}") from None
    raw: list[dt.TrainSample] = []
    for _, _, rgb, instances in progress(_frames(dataset, "train"), desc="decode train frames", total=n_train, unit="frame"):
        H, W = rgb.shape[:2]  # frame height, width
        masks, classes = _stack(instances, H, W, class_mode)
        raw.append(dt.prepare_sample(rgb, masks, classes, min_size=sizes["min_size"], max_size=sizes["max_size"]))
    class_ids = sorted({int(c) for s in raw for c in s.labels.tolist()}) or [0]
    to_label = {c: i + 1 for i, c in enumerate(class_ids)}  # contiguous labels 1..C, 0 = background
    for s in raw:
        s.labels = torch.as_tensor([to_label[int(c)] for c in s.labels.tolist()], dtype=torch.int64)
    if payload is not None and list(payload["class_ids"]) != class_ids:
        raise ConfigError(f"{last}: was trained on classes {payload['class_ids']}, the data has {class_ids}; choose a new --out")
    n_instances = sum(len(s.labels) for s in raw)
    log.info("%d train frames, %d instances, %d classes", len(raw), n_instances, len(class_ids))

    spec = model_spec(
        config.preset,
        num_classes=len(class_ids),
        min_size=config.min_size or None,
        max_size=config.max_size or None,
        anchor_sizes=config.anchor_sizes or None,
    )
    torch.manual_seed(config.seed)
    model = new_detector_model(
        config.preset, num_classes=len(class_ids), pretrained=payload is None, weights=config.weights or None,
        **{k: v for k, v in spec.items() if k not in ("preset", "num_classes")},
    )
    model.to(device)
    if procs.distributed:  # BatchNorm with the statistics of the global batch, as one process computes them
        sync_batchnorm(model)
    optimizer = dt.make_optimizer(model, config)
    state = dt.LoopState()
    if payload is not None:
        model.load_state_dict(plain_state(payload["model"]))
        optimizer.load_state_dict(payload["optimizer"])
        state = dt.LoopState(
            step=int(payload["step"]), elapsed=float(payload["elapsed"]),
            cpu_seconds=float(payload.get("cpu_seconds", 0.0)), history=list(payload["history"]),
        )
        log.info("resuming %s at step %d (%.1f min trained)", last, state.step, state.elapsed / 60)
    per_epoch = max(1, len(raw) // min(config.batch_size, len(raw)))

    def checkpoint(s: dt.LoopState, path: Path = last, with_optimizer: bool = True, **extra: Any) -> None:
        if not procs.main:  # the weights and the optimizer are the same on every process; rank 0 writes
            return
        save_checkpoint(
            path,
            {
                "kind": KIND_DETECTOR,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict() if with_optimizer else {},
                "epoch": s.step // per_epoch,
                "step": s.step,
                "elapsed": s.elapsed,
                "cpu_seconds": s.cpu_seconds,
                "history": s.history,
                "config": {"model": spec, "train": to_dict(config)},
                "class_ids": class_ids,
                "class_names": [str(c) for c in class_ids],
                "class_mode": class_mode,
                "dataset": dataset.identity(),
                "stage_version": STAGE_VERSION,
                "processes": procs.world,
                **extra,
            },
        )

    net: torch.nn.Module = model
    if procs.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    t0 = time.monotonic()
    state = dt.train_loop(
        net, optimizer, raw, config, state=state, device=device, on_checkpoint=checkpoint,
        checkpoint_seconds=config.checkpoint_minutes * 60.0, rank=procs.rank, world=procs.world,
    )
    del raw
    procs.barrier()  # every process has finished training before rank 0 scores and writes final.pt
    if not procs.main:
        return TrainDetectorResult(out_dir=out, checkpoint=final, metrics={})

    detector = MaskRCNNDetector(
        model=model, spec=spec, weights_key=state_fingerprint(model.state_dict()),
        class_ids=class_ids, device=device, batch_size=config.eval_batch_size,
    )
    metrics = evaluate(detector, dataset, class_mode=class_mode)
    metrics.update(
        {
            "preset": config.preset,
            "train_frames": int(n_train),
            "train_instances": int(n_instances),
            "classes": len(class_ids),
            "steps": state.step,
            "epochs": round(state.step / per_epoch, 3),
            "train_minutes": round(state.elapsed / 60.0, 3),
            "train_cpu_minutes": round(state.cpu_seconds / 60.0, 3),
            "session_minutes": round((time.monotonic() - t0) / 60.0, 3),
            "device": str(device),
            "processes": procs.world,
        }
    )
    checkpoint(state, final, with_optimizer=False, metrics=metrics)
    write_json(out / "metrics.json", metrics)
    return TrainDetectorResult(out_dir=out, checkpoint=final, metrics=metrics)


def evaluate(detector: MaskRCNNDetector, dataset: Dataset, *, class_mode: str = "dataset") -> dict[str, Any]:
    """COCO mask AP / AP50 / AP75 of ``detector`` on the annotated frames of the test split.

    ``mask_*`` compares classes (GT ids mapped by ``class_mode``, as in training);
    ``agnostic_*`` ignores them (what matters for candidates, which are matched to sentences).
    """
    n_test = _count(dataset, "test")
    if n_test == 0:
        log.warning("%s: no annotated frames in 'test' videos; no AP computed", dataset.root)
        return {"test_frames": 0}
    gts, preds = [], []
    batch: list[tuple[np.ndarray, list]] = []

    def flush() -> None:
        cands = detector.detect([b[0] for b in batch], [("", 0)] * len(batch))
        for (rgb, instances), c in zip(batch, cands):
            H, W = rgb.shape[:2]  # frame height, width
            gts.append(_stack(instances, H, W, class_mode))
            preds.append((c.masks, c.scores, c.class_ids))
        batch.clear()

    for _, _, rgb, instances in progress(_frames(dataset, "test"), desc="evaluate", total=n_test, unit="frame"):
        batch.append((rgb, instances))
        if len(batch) >= detector.batch_size:
            flush()
    if batch:
        flush()
    agnostic = dt.coco_mask_ap(gts, preds, class_agnostic=True)
    per_class = agnostic if class_mode == "agnostic" else dt.coco_mask_ap(gts, preds)
    return {
        "class_mode": class_mode,
        "test_frames": len(gts),
        "test_instances": int(sum(len(g[1]) for g in gts)),
        "mask_AP": per_class["AP"],
        "mask_AP50": per_class["AP50"],
        "mask_AP75": per_class["AP75"],
        "agnostic_AP": agnostic["AP"],
        "agnostic_AP50": agnostic["AP50"],
        "agnostic_AP75": agnostic["AP75"],
    }


def summary(result: TrainDetectorResult) -> str:
    """The lines the CLI prints."""
    m = result.metrics
    lines = [f"detector: {result.checkpoint}  ({m.get('steps')} steps, {m.get('train_minutes')} min training)"]
    if m.get("test_frames"):
        lines.append(
            f"test split ({m['test_frames']} frames, {m['test_instances']} instances): "
            f"mask AP {m['mask_AP']:.3f}  AP50 {m['mask_AP50']:.3f}  AP75 {m['mask_AP75']:.3f}  "
            f"(class-agnostic AP {m['agnostic_AP']:.3f}  AP50 {m['agnostic_AP50']:.3f})"
        )
    else:
        lines.append("no annotated test frames: no AP computed")
    lines.append(f"metrics: {result.out_dir / 'metrics.json'}")
    return "\n".join(lines)

