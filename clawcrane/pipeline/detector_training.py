"""Training and evaluating the Mask R-CNN candidate proposer: tensors in, tensors and numbers out.

- ``prepare_sample`` resizes a frame and its instance masks once to the model's input scale.
- ``augment`` draws a horizontal flip, a scale jitter (zoom in: crop; zoom out: pad) and a
  colour jitter from a ``torch.Generator``, and derives the boxes from the augmented masks.
- ``train_loop`` runs SGD steps with linear warm-up and a cosine decay whose progress is the
  larger of steps done / steps planned and time spent / time budget, so a time-budgeted run
  still ends annealed. Every random draw of step ``s`` comes from ``(seed, s)``, so a run resumed
  from a checkpoint at step ``s`` repeats the uninterrupted run (up to kernel nondeterminism).
  The draws of an image (its augmentation, the RPN anchors and ROI proposals sampled for its
  losses) come from ``(seed, s, its position j in the global batch)``, so they do not depend on
  which process trains it.

Several processes (``rank``, ``world`` > 1, a running process group, the model wrapped in
``DistributedDataParallel``) train the same global batch as one process: each takes the
positions ``rank, rank + world, ...`` of a step's batch. torchvision's Mask R-CNN losses are NOT
independent per image: the RPN losses are means over the anchors sampled in the whole batch, the
box-head losses means over the sampled proposals, the mask loss a mean over the positive
proposals' pixels, and BatchNorm normalises with statistics of the whole batch. So each process
counts its sampled anchors / proposals / positives, the counts are summed over the processes, and
its losses are rescaled by (its count x W / global count) before the backward pass; DDP's
average of the gradients is then the single-process gradient. BatchNorm layers become
``pipeline.distributed.GlobalBatchNorm2d`` (global-batch statistics, CPU and GPU) in the stage.
What remains different: the images of one process are padded to the largest of ITS images
(identical when the frames share a size), and the ``lite`` preset's stochastic depth draws its
per-image drops per process (seeded by (seed, step, rank)).
- ``coco_mask_ap`` is COCO mask AP / AP50 / AP75 (pycocotools ``COCOeval``, iouType 'segm').
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from torchvision.models.detection._utils import BalancedPositiveNegativeSampler

from clawcrane.config import TrainDetectorConfig
from clawcrane.errors import ConfigError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.distributed import all_max, all_sum, shard
from clawcrane.progress import progress

log = logging.getLogger(__name__)

MIN_INSTANCE_PIXELS = 4
"""Instances with fewer pixels after augmentation are dropped from the targets."""


@dataclass
class TrainSample:
    """One annotated frame at the model's input scale."""

    image: torch.Tensor
    """(3, H, W) uint8."""
    masks: torch.Tensor
    """(K, H, W) bool, every annotated instance."""
    labels: torch.Tensor
    """(K,) int64 contiguous labels 1..C."""


def input_scale(height: int, width: int, *, min_size: int, max_size: int) -> float:
    """The factor torchvision's transform resizes a (height, width) frame by."""
    return min(min_size / min(height, width), max_size / max(height, width))


def _resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if masks.shape[0] == 0:
        return torch.zeros((0, *size), dtype=torch.bool)
    return F.interpolate(masks[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0] >= 0.5


def _resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) float -> (3, *size) float."""
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def prepare_sample(frame: np.ndarray, masks: np.ndarray, labels: Sequence[int], *, min_size: int, max_size: int) -> TrainSample:
    """Resize an RGB uint8 (H, W, 3) frame and its (K, H, W) masks to the model's input scale."""
    H, W = frame.shape[:2]  # original frame height, width
    s = input_scale(H, W, min_size=min_size, max_size=max_size)
    size = (max(1, round(H * s)), max(1, round(W * s)))
    image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float()
    if size != (H, W):
        image = _resize_image(image, size)
    m = torch.from_numpy(np.asarray(masks, dtype=bool).reshape(-1, H, W))
    m = _resize_masks(m, size) if size != (H, W) else m
    return TrainSample(
        image=image.round().clamp(0, 255).to(torch.uint8),
        masks=m,
        labels=torch.as_tensor(list(labels), dtype=torch.int64),
    )


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(K, H, W) bool -> (K, 4) float32 x1, y1, x2, y2 with exclusive x2, y2 (as ``masks.tight_box``)."""
    K, H, W = masks.shape  # (K, H, W) instances, height, width
    if K == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    cols = masks.any(dim=1)  # (K, W)
    rows = masks.any(dim=2)  # (K, H)
    xs = torch.arange(W).expand(K, W)
    ys = torch.arange(H).expand(K, H)
    x1 = torch.where(cols, xs, W).min(dim=1).values
    x2 = torch.where(cols, xs, -1).max(dim=1).values + 1
    y1 = torch.where(rows, ys, H).min(dim=1).values
    y2 = torch.where(rows, ys, -1).max(dim=1).values + 1
    return torch.stack([x1, y1, x2, y2], dim=1).float()


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def augment(
    sample: TrainSample,
    *,
    generator: torch.Generator,
    hflip: bool = True,
    scale_range: tuple[float, float] = (1.0, 1.0),
    color_jitter: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A random view of ``sample``: (3, H, W) float image in [0, 1] and a torchvision target.

    The output keeps the input size: a zoom in (scale > 1) crops a random window, a zoom out
    pads at a random offset with mid grey. ``color_jitter`` c draws brightness, contrast and
    saturation factors in [1 - c, 1 + c]. Instances left with < MIN_INSTANCE_PIXELS pixels drop.
    """
    g = generator
    image = sample.image.float() / 255.0
    masks = sample.masks
    labels = sample.labels
    _, H, W = image.shape  # (3, H, W) input height, width
    if hflip and float(torch.rand((), generator=g)) < 0.5:
        image, masks = image.flip(-1), masks.flip(-1)
    s = _uniform(g, *scale_range)
    if abs(s - 1.0) > 1e-3:
        h, w = max(1, round(H * s)), max(1, round(W * s))
        image, masks = _resize_image(image, (h, w)), _resize_masks(masks, (h, w))
        if s > 1:  # crop an H x W window
            y0 = int(torch.randint(0, h - H + 1, (), generator=g))
            x0 = int(torch.randint(0, w - W + 1, (), generator=g))
            image, masks = image[:, y0 : y0 + H, x0 : x0 + W], masks[:, y0 : y0 + H, x0 : x0 + W]
        else:  # paste into an H x W canvas
            y0 = int(torch.randint(0, H - h + 1, (), generator=g))
            x0 = int(torch.randint(0, W - w + 1, (), generator=g))
            canvas = torch.full((3, H, W), 0.5)
            canvas[:, y0 : y0 + h, x0 : x0 + w] = image
            m = torch.zeros((masks.shape[0], H, W), dtype=torch.bool)
            m[:, y0 : y0 + h, x0 : x0 + w] = masks
            image, masks = canvas, m
    if color_jitter > 0:
        lo, hi = 1.0 - color_jitter, 1.0 + color_jitter
        b, c, sat = _uniform(g, lo, hi), _uniform(g, lo, hi), _uniform(g, lo, hi)
        image = image * b
        mean = image.mean()
        image = (image - mean) * c + mean
        gray = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]
        image = (gray + (image - gray) * sat).clamp(0.0, 1.0)
    keep = masks.flatten(1).sum(dim=1) >= MIN_INSTANCE_PIXELS
    masks, labels = masks[keep], labels[keep]
    target = {"boxes": masks_to_boxes(masks), "labels": labels, "masks": masks.to(torch.uint8)}
    return image.contiguous(), target


CLASS_MODES = ("dataset", "actor", "agnostic")


def resolve_class_mode(mode: str, dataset_name: str) -> str:
    """'auto' -> 'actor' for A2D-style ids (layouts 'a2d', 'synthetic'), else 'dataset'."""
    if mode == "auto":
        return "actor" if dataset_name in ("a2d", "synthetic") else "dataset"
    if mode not in CLASS_MODES:
        raise ValueError(f"unknown class mode {mode!r}; choose auto or one of {CLASS_MODES}")
    return mode


def map_classes(class_ids: np.ndarray, mode: str) -> np.ndarray:
    """Dataset class ids -> the ids a detector learns: as they are, actor (id // 10), or all 0."""
    ids = np.asarray(class_ids, dtype=np.int64)
    if mode == "actor":
        return ids // 10
    if mode == "agnostic":
        return np.zeros_like(ids)
    return ids


def lr_at(step: int, progress_fraction: float, *, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up over ``warmup_steps`` from base_lr / 100, then cosine to 0 at progress 1."""
    warm = min(1.0, 0.01 + 0.99 * step / warmup_steps) if warmup_steps > 0 else 1.0
    p = min(max(progress_fraction, 0.0), 1.0)
    return base_lr * warm * 0.5 * (1.0 + math.cos(math.pi * p))


def make_optimizer(model: torch.nn.Module, config: TrainDetectorConfig) -> torch.optim.Optimizer:
    """SGD with momentum 0.9; no weight decay on norm weights and biases."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=config.lr, momentum=0.9)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: list[torch.Tensor],
    targets: list[dict[str, torch.Tensor]],
    *,
    lr: float,
    grad_clip: float = 10.0,
    rescale: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> dict[str, float]:
    """One optimisation step on a batch; returns every loss term and their sum ``loss``.

    ``rescale`` maps the loss terms to the ones to differentiate (several processes: see the module docstring).
    """
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr
    losses = model(images, targets)
    if rescale is not None:
        losses = rescale(losses)
    loss = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    out = {k: float(v.detach()) for k, v in losses.items()}
    out["loss"] = float(loss.detach())
    return out


@dataclass
class LoopState:
    """Where a training run stands (what a checkpoint stores besides weights)."""

    step: int = 0
    """Optimisation steps done."""
    elapsed: float = 0.0
    """Wall-clock seconds spent in the training loop, over all resumed sessions."""
    cpu_seconds: float = 0.0
    """Process CPU seconds (all threads) spent in the training loop, over all resumed sessions."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Mean losses of each finished epoch: {'epoch', 'step', 'loss', ...}."""


def draw_seed(*parts: int) -> int:
    """A 63-bit generator seed from integers (seed, step, position, stream), well mixed."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


AUGMENT, RPN_SAMPLES, ROI_SAMPLES, GLOBAL_RNG = 1, 2, 3, 4
"""The streams ``draw_seed(seed, step, position, stream)`` separates."""


class SeededSampler(BalancedPositiveNegativeSampler):
    """torchvision's positive/negative sampler whose draws for each image come from that image's seed.

    ``seeds`` (one per image of the next call) are set before each training forward; without them it
    draws from the global generator as torchvision does. It also counts what it sampled (``sampled``:
    anchors or proposals, ``positives``) in its last call: the denominators of the losses' means.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float):
        super().__init__(batch_size_per_image, positive_fraction)
        self.seeds: list[int] | None = None
        self.sampled = 0
        self.positives = 0

    def __call__(self, matched_idxs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if self.seeds is None:
            pos_idx, neg_idx = super().__call__(matched_idxs)
        else:
            if len(self.seeds) != len(matched_idxs):
                raise ValueError(f"{len(self.seeds)} seeds for {len(matched_idxs)} images")
            pos_idx, neg_idx = [], []
            for matched, seed in zip(matched_idxs, self.seeds):
                g = torch.Generator().manual_seed(seed)
                positive = torch.where(matched >= 1)[0]
                negative = torch.where(matched == 0)[0]
                num_pos = min(positive.numel(), int(self.batch_size_per_image * self.positive_fraction))
                num_neg = min(negative.numel(), self.batch_size_per_image - num_pos)
                perm1 = torch.randperm(positive.numel(), generator=g)[:num_pos].to(positive.device)
                perm2 = torch.randperm(negative.numel(), generator=g)[:num_neg].to(negative.device)
                pos_mask = torch.zeros_like(matched, dtype=torch.uint8)
                neg_mask = torch.zeros_like(matched, dtype=torch.uint8)
                pos_mask[positive[perm1]] = 1
                neg_mask[negative[perm2]] = 1
                pos_idx.append(pos_mask)
                neg_idx.append(neg_mask)
        self.positives = int(sum(int(p.sum()) for p in pos_idx))
        self.sampled = self.positives + int(sum(int(n.sum()) for n in neg_idx))
        return pos_idx, neg_idx


def seeded_samplers(model: torch.nn.Module) -> tuple[SeededSampler, SeededSampler]:
    """The (RPN, ROI-head) samplers of a torchvision Mask R-CNN, made ``SeededSampler`` (in place, once)."""
    out = []
    for part in (model.rpn, model.roi_heads):
        s = part.fg_bg_sampler
        if not isinstance(s, SeededSampler):
            s = SeededSampler(s.batch_size_per_image, s.positive_fraction)
            part.fg_bg_sampler = s
        out.append(s)
    return out[0], out[1]


LOSS_COUNTS = {"loss_objectness": 0, "loss_rpn_box_reg": 0, "loss_classifier": 1, "loss_box_reg": 1, "loss_mask": 2}
"""The denominator of each torchvision loss term: 0 sampled anchors, 1 sampled proposals, 2 positive proposals."""


def global_batch_rescale(rpn: SeededSampler, roi: SeededSampler, world: int, device: torch.device):
    """``rescale`` for ``train_step`` under ``world`` processes: each term times (local count x W / global count).

    A term is sum(local) / n_local; DDP averages over W processes, so the gradient becomes that of
    sum over all processes / n_global, the single-process mean over the global batch.
    """

    def rescale(losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        local = torch.tensor([rpn.sampled, roi.sampled, roi.positives], dtype=torch.float64, device=device)
        total = all_sum(local.clone())
        factor = torch.where(total > 0, local * world / total.clamp(min=1), torch.zeros_like(total))
        return {k: v * float(factor[LOSS_COUNTS[k]]) if k in LOSS_COUNTS else v for k, v in losses.items()}

    return rescale


def batch_indices(step: int, *, num_samples: int, batch_size: int, seed: int) -> list[int]:
    """The samples of step ``step``: epoch-wise shuffles drawn from (seed, epoch)."""
    per_epoch = max(1, num_samples // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[pos * batch_size : (pos + 1) * batch_size].tolist()


def train_loop(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    samples: Sequence[TrainSample],
    config: TrainDetectorConfig,
    *,
    state: LoopState,
    device: torch.device,
    on_checkpoint: Callable[[LoopState], None] | None = None,
    checkpoint_seconds: float = 120.0,
    rank: int = 0,
    world: int = 1,
) -> LoopState:
    """Train until ``config.epochs`` epochs or ``config.max_minutes`` are used up.

    ``on_checkpoint(state)`` is called at every epoch end, every ``checkpoint_seconds`` and at
    the end; ``state`` is updated in place and returned. With ``world`` > 1 processes (``model``
    wrapped in DistributedDataParallel) every process runs this with the same samples and takes its
    share of each global batch; the step times are the slowest process's, so the schedule, the time
    budget and the checkpoints' step counts agree on every process.
    """
    n = len(samples)
    B = min(config.batch_size, n)  # batch size: the global batch of a step
    if B % world:
        raise ConfigError(f"the global batch is {B} frames (--batch-size {config.batch_size}, {n} train frames); it must "
                          f"divide among the {world} processes; use a multiple of {world} frames")
    per_epoch = max(1, n // B)
    total = max(1, config.epochs * per_epoch)
    budget = config.max_minutes * 60.0 if config.max_minutes > 0 else math.inf
    model.to(device).train()
    core = getattr(model, "module", model)  # the Mask R-CNN inside a DDP wrapper
    rpn_sampler, roi_sampler = seeded_samplers(core)
    rescale = global_batch_rescale(rpn_sampler, roi_sampler, world, device) if world > 1 else None
    devices = [device] if device.type == "cuda" else []
    bar = progress(range(state.step, total), desc="train-detector", total=total, initial=state.step, unit="step")
    sums: dict[str, float] = {}
    step_losses: list[float] = []
    count = 0
    last_save = time.monotonic()
    with torch.random.fork_rng(devices=devices):
        for step in bar:
            if state.elapsed >= budget:
                log.info("time budget of %.1f min used up at step %d of %d", config.max_minutes, step, total)
                break
            t0, c0 = time.monotonic(), time.process_time()
            # what still draws from the global generator (lite's stochastic depth): per process
            torch.manual_seed(config.seed * 1_000_033 + step if rank == 0 else draw_seed(config.seed, step, rank, GLOBAL_RNG))
            images, targets, positions = [], [], []
            batch = batch_indices(step, num_samples=n, batch_size=B, seed=config.seed)
            for j in shard(torch.arange(len(batch)), rank, world).tolist():  # this process's positions in the batch
                img, tgt = augment(
                    samples[batch[j]],
                    generator=torch.Generator().manual_seed(draw_seed(config.seed, step, j, AUGMENT)),
                    hflip=config.hflip,
                    scale_range=(config.scale_min, config.scale_max),
                    color_jitter=config.color_jitter,
                )
                images.append(img.to(device))
                targets.append({k: v.to(device) for k, v in tgt.items()})
                positions.append(j)
            rpn_sampler.seeds = [draw_seed(config.seed, step, j, RPN_SAMPLES) for j in positions]
            roi_sampler.seeds = [draw_seed(config.seed, step, j, ROI_SAMPLES) for j in positions]
            frac = max(step / total, state.elapsed / budget)
            lr = lr_at(step, frac, base_lr=config.lr, warmup_steps=config.warmup_steps)
            losses = train_step(model, optimizer, images, targets, lr=lr, rescale=rescale)
            if world > 1:  # the rescaled terms' mean over the processes is the global batch's loss
                names = sorted(losses)
                mean = all_sum(torch.tensor([losses[k] for k in names], dtype=torch.float64, device=device)) / world
                losses = dict(zip(names, mean.tolist()))
            if not math.isfinite(losses["loss"]):
                raise FloatingPointError(f"loss became {losses['loss']} at step {step}; lower --lr")
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            step_losses.append(losses["loss"])
            count += 1
            spent = torch.tensor([time.monotonic() - t0, time.process_time() - c0], dtype=torch.float64)
            if world > 1:  # the slowest process's wall time, every process's CPU time
                spent = spent.to(device)
                spent = torch.stack([all_max(spent[:1].clone())[0], all_sum(spent[1:].clone())[0]]).cpu()
            state.step = step + 1
            state.elapsed += float(spent[0])
            state.cpu_seconds += float(spent[1])
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{losses['loss']:.3f}", lr=f"{lr:.4f}", refresh=False)
            epoch_end = state.step % per_epoch == 0
            if epoch_end:
                row = {"epoch": state.step // per_epoch, "step": state.step}
                state.history.append({**row, **{k: v / count for k, v in sums.items()}, "step_losses": step_losses})
                if rank == 0:
                    log.info(
                        "epoch %d (step %d, %.1f min): loss %.3f (mask %.3f)", row["epoch"], state.step,
                        state.elapsed / 60, state.history[-1]["loss"], state.history[-1].get("loss_mask", math.nan),
                    )
                sums, count, step_losses = {}, 0, []
            if on_checkpoint is not None and (epoch_end or time.monotonic() - last_save >= checkpoint_seconds):
                on_checkpoint(state)
                last_save = time.monotonic()
    rpn_sampler.seeds = roi_sampler.seeds = None
    if hasattr(bar, "close"):
        bar.close()
    if on_checkpoint is not None:
        on_checkpoint(state)
    return state


def coco_mask_ap(
    gts: Sequence[tuple[np.ndarray, np.ndarray]],
    preds: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    class_agnostic: bool = False,
) -> dict[str, float]:
    """COCO mask AP (IoU .50:.95), AP50 and AP75 over images.

    ``gts[i]`` = (masks (K, H, W) bool, class ids (K,)); ``preds[i]`` = (masks (K, H, W) bool,
    scores (K,), class ids (K,)) of the same image. ``class_agnostic`` puts every instance in
    one category. NaN when there is no ground-truth instance at all.
    """
    if len(gts) != len(preds):
        raise ValueError(f"{len(gts)} ground-truth images but {len(preds)} prediction images")
    images, gt_anns, dt_anns, cats = [], [], [], set()
    for img_id, ((gm, gc), (pm, ps, pc)) in enumerate(zip(gts, preds), start=1):
        H, W = gm.shape[1:] if gm.ndim == 3 else pm.shape[1:]  # image height, width
        images.append({"id": img_id, "height": int(H), "width": int(W)})
        for anns, masks, classes, scores in ((gt_anns, gm, gc, None), (dt_anns, pm, pc, ps)):
            rles = mask_ops.encode_many(np.asarray(masks, dtype=bool))
            areas = mask_ops.area(rles)
            for k, rle in enumerate(rles):
                cat = 1 if class_agnostic else int(classes[k])
                cats.add(cat)
                box = mask_ops.tight_box(masks[k])
                ann = {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": cat,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"]},
                    "area": float(areas[k]),
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                    "iscrowd": 0,
                }
                if scores is not None:
                    ann["score"] = float(scores[k])
                anns.append(ann)
    if not gt_anns:
        return {"AP": math.nan, "AP50": math.nan, "AP75": math.nan}
    categories = [{"id": c, "name": str(c)} for c in sorted(cats)]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt, dt = COCO(), COCO()
        gt.dataset = {"images": images, "annotations": gt_anns, "categories": categories}
        dt.dataset = {"images": images, "annotations": dt_anns, "categories": categories}
        gt.createIndex()
        dt.createIndex()
        ev = COCOeval(gt, dt, iouType="segm")
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"]  # (T, R, K, A, M) IoU thresholds, recalls, classes, areas, max dets
    ious = ev.params.iouThrs

    def mean_ap(t: slice | int) -> float:
        p = precision[t, :, :, 0, -1]  # area 'all', the largest max-dets
        p = p[p > -1]
        return float(p.mean()) if p.size else math.nan

    return {
        "AP": mean_ap(slice(None)),
        "AP50": mean_ap(int(np.argmin(np.abs(ious - 0.5)))),
        "AP75": mean_ap(int(np.argmin(np.abs(ious - 0.75)))),
    }
