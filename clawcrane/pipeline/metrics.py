"""Referring-segmentation metrics (the A2D / J-HMDB protocol) and J&F (DAVIS-2017).

A *sample* is one (query, annotated frame) with a ground-truth mask and zero or more predicted
masks with scores, all at the annotation resolution. Per sample the single highest-scored
predicted mask (ties: the first given) is compared with the GT:

* ``IoU = (I + 1e-6) / (U + 1e-6)``; an empty prediction against a non-empty GT scores ~0;
* ``P@K`` for K in 0.5..0.9: the share of samples with IoU > K (strict);
* ``overall_iou`` = sum(I) / sum(U) (pixel-weighted), ``mean_iou`` = mean of per-sample IoU;
* ``mAP_coco``: pycocotools ``COCOeval(iouType='segm')``, ``useCats = 0``, every submitted mask
  of every sample with its score, ``stats[0]`` (one image and one GT annotation per sample);
* ``mAP_mean_precision``: mean of P@{0.5:0.05:0.95} on the top-1 mask, counting IoU >= t.

J&F, for data with masks on every frame: J = IoU (1 when the union is empty); F = boundary
F-measure with tolerance ``ceil(0.008 * sqrt(H^2 + W^2))`` px; averaged per query over its frames,
then over queries; ``J&F = (mean J + mean F) / 2``. Pure: masks and RLEs in, numbers out.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

EPS = 1e-6
PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
MAP_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5, 0.55, ..., 0.95
BOUNDARY_TOLERANCE = 0.008


def _coco(rle: dict) -> dict:
    """An RLE as pycocotools takes it (counts as bytes)."""
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def precision_name(k: float) -> str:
    return f"P@{k:g}"


@dataclass
class Sample:
    """One (query, frame) to score: its GT mask and the submitted masks with scores."""

    sample_id: str
    gt: dict
    """GT mask as an RLE ``{"size": [H, W], "counts": bytes}``."""
    preds: list[dict] = field(default_factory=list)
    """Submitted masks (RLEs of the GT's size); may be empty."""
    scores: list[float] = field(default_factory=list)
    """One score per submitted mask."""
    query_type: str | None = None
    wording: str | None = None
    """'seen' or 'paraphrase' (wording held out of the train split), None when the dataset does not say."""

    def top1(self) -> dict | None:
        """The highest-scored submitted mask (the first on a tie), or None."""
        if not self.preds:
            return None
        return self.preds[int(np.argmax(np.asarray(self.scores, dtype=np.float64)))]


def resize_rle(rle: dict, height: int, width: int) -> dict:
    """The mask resized to (height, width) with nearest-neighbour sampling (the protocol's rule)."""
    r = _coco(rle)
    if list(r["size"]) == [height, width]:
        return r
    if 0 in r["size"]:  # a zero-size placeholder (e.g. a video without candidates): empty mask
        empty = mask_utils.encode(np.zeros((int(height), int(width)), np.uint8, order="F"))
        return {"size": [int(height), int(width)], "counts": empty["counts"]}
    m = mask_utils.decode([r])[:, :, 0]  # (h, w) uint8
    m = cv2.resize(m, (int(width), int(height)), interpolation=cv2.INTER_NEAREST)
    out = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(height), int(width)], "counts": out["counts"]}


def intersection_union(pred: dict | None, gt: dict) -> tuple[int, int]:
    """Pixel counts (I, U) of two RLEs; a missing prediction counts as an empty mask."""
    g = _coco(gt)
    area_g = int(mask_utils.area(g))
    if pred is None:
        return 0, area_g
    p = _coco(pred)
    if list(p["size"]) != list(g["size"]):
        raise ValueError(f"prediction size {p['size']} differs from GT size {g['size']}")
    inter = int(mask_utils.area(mask_utils.merge([p, g], intersect=True)))
    return inter, int(mask_utils.area(p)) + area_g - inter


def sample_ious(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """(S,) per-sample IoU = (I + 1e-6) / (U + 1e-6)."""
    return (np.asarray(inter, np.float64) + EPS) / (np.asarray(union, np.float64) + EPS)


def precision_at(ious: np.ndarray, thresholds: Sequence[float] = PRECISION_THRESHOLDS) -> dict[str, float]:
    """Share of samples with IoU > K (strict), per K."""
    ious = np.asarray(ious, np.float64)
    return {precision_name(k): float(np.mean(ious > k)) if len(ious) else 0.0 for k in thresholds}


def mean_precision_map(ious: np.ndarray) -> float:
    """Older-work mAP: mean over t in 0.5:0.05:0.95 of the share of samples with IoU >= t."""
    ious = np.asarray(ious, np.float64)
    if len(ious) == 0:
        return 0.0
    return float(np.mean([np.mean(ious >= t) for t in MAP_THRESHOLDS]))


def coco_map(samples: Sequence[Sample]) -> float:
    """COCO segm AP@[0.5:0.95] (``stats[0]``), class-agnostic, one image + one GT per sample."""
    if not samples:
        return 0.0
    images, gts, dts = [], [], []
    for i, s in enumerate(samples, start=1):
        g = _coco(s.gt)
        H, W = g["size"]
        images.append({"id": i, "height": int(H), "width": int(W)})
        gts.append({
            "id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "segmentation": g,
            "area": float(mask_utils.area(g)), "bbox": [float(v) for v in mask_utils.toBbox(g)],
        })
        for rle, score in zip(s.preds, s.scores):
            dts.append({"image_id": i, "category_id": 1, "segmentation": _coco(rle), "score": float(score)})
    if not dts:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports on stdout
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": gts, "categories": [{"id": 1, "name": "object"}]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dts)
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return max(float(ev.stats[0]), 0.0)  # -1 means "no GT", which cannot happen here


def top1_intersection_union(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """(S,) int64 pixel counts I and U of each sample's top-1 mask against its GT."""
    S = len(samples)  # samples
    inter = np.zeros(S, np.int64)
    union = np.zeros(S, np.int64)
    for i, s in enumerate(samples):
        inter[i], union[i] = intersection_union(s.top1(), s.gt)
    return inter, union


def top1_ious(samples: Sequence[Sample]) -> np.ndarray:
    """(S,) per-sample IoU of the top-1 mask (the value P@K thresholds and Mean IoU averages)."""
    return sample_ious(*top1_intersection_union(samples))


def summarize(samples: Sequence[Sample]) -> dict[str, float]:
    """All A2D-protocol metrics of a set of samples (values are fractions in [0, 1])."""
    S = len(samples)  # samples
    inter, union = top1_intersection_union(samples)
    ious = sample_ious(inter, union)
    out: dict[str, float] = {"samples": S}
    out.update(precision_at(ious))
    out["mAP_coco"] = coco_map(samples)
    out["mAP_mean_precision"] = mean_precision_map(ious)
    out["overall_iou"] = float(inter.sum() / union.sum()) if union.sum() else 0.0
    out["mean_iou"] = float(ious.mean()) if S else 0.0
    return out


def by_query_type(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """``summarize`` per query type (samples without a type go under 'untyped')."""
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.query_type or "untyped", []).append(s)
    return {name: summarize(groups[name]) for name in sorted(groups)}


def by_wording(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """``summarize`` per wording ('seen', 'paraphrase'); {} when no sample says."""
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        if s.wording:
            groups.setdefault(s.wording, []).append(s)
    return {name: summarize(groups[name]) for name in sorted(groups)}


def by_type_seen(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """``by_query_type`` over the samples whose wording is 'seen' (what a model can read without the
    held-out words); {} when no sample marks its wording."""
    if not any(s.wording for s in samples):
        return {}
    return by_query_type([s for s in samples if s.wording == "seen"])


# ---- J&F (DAVIS-2017) ----------------------------------------------------------------------


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """J: IoU of two (H, W) masks, 1 when both are empty."""
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """(H, W) 1-px boundary: pixels differing from their right, lower or lower-right neighbour.

    Neighbours outside the image are ignored (the DAVIS convention).
    """
    m = np.asarray(mask, dtype=bool)
    b = np.zeros_like(m)
    b[:, :-1] |= m[:, :-1] != m[:, 1:]
    b[:-1, :] |= m[:-1, :] != m[1:, :]
    b[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]
    return b


def _disk(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (xx * xx + yy * yy <= r * r).astype(np.uint8)


def boundary_tolerance(height: int, width: int) -> int:
    """Dilation radius in pixels: ceil(0.008 * image diagonal)."""
    return int(math.ceil(BOUNDARY_TOLERANCE * math.hypot(height, width)))


def boundary_f(pred: np.ndarray, gt: np.ndarray) -> float:
    """F: boundary F-measure of two (H, W) masks (1 when both boundaries are empty)."""
    H, W = gt.shape  # (H, W) frame height, width
    bp, bg = boundary_map(pred), boundary_map(gt)
    n_p, n_g = int(bp.sum()), int(bg.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    disk = _disk(boundary_tolerance(H, W))
    bp_dil = cv2.dilate(bp.astype(np.uint8), disk).astype(bool)
    bg_dil = cv2.dilate(bg.astype(np.uint8), disk).astype(bool)
    precision = float(np.logical_and(bp, bg_dil).sum()) / n_p
    recall = float(np.logical_and(bg, bp_dil).sum()) / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def j_and_f(per_query: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]]) -> dict[str, float]:
    """J, F, J&F over queries; ``per_query[q]`` is that query's (pred, gt) (H, W) mask pairs."""
    js, fs = [], []
    for pairs in per_query:
        if not pairs:
            continue
        js.append(np.mean([jaccard(p, g) for p, g in pairs]))
        fs.append(np.mean([boundary_f(p, g) for p, g in pairs]))
    if not js:
        return {"J": 0.0, "F": 0.0, "J&F": 0.0, "queries": 0}
    J, F = float(np.mean(js)), float(np.mean(fs))
    return {"J": J, "F": F, "J&F": (J + F) / 2, "queries": len(js)}
