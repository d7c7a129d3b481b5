"""An independent A2D-protocol evaluator of an exported COCO-RLE file (test and bench helper).

It reads what another group's evaluator reads, ``export --format coco-rle``'s predictions.json,
and applies the published rule (../shared/datasets.md §3) its own way: per (query, frame) it
sorts that sample's masks by score with a stable sort and takes the *last* one, as MTTR's metric
code does (``sorted(..., key=score)[-1]``), so among equal scores the last listed mask wins, the
opposite of `evaluate`'s tie rule. It shares no code with `clawcrane evaluate`: masks are decoded
with pycocotools and compared as numpy arrays; IoU = (I + 1e-6) / (U + 1e-6); P@K counts IoU > K;
overall IoU = sum I / sum U; mean IoU = the mean of the per-sample IoU.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _decode(seg: dict, height: int, width: int) -> np.ndarray:
    rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    m = mask_utils.decode(rle)
    if m.shape != (height, width):
        m = cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST)
    return m.astype(bool)


def max_score_metrics(predictions_json: str | Path, gt: dict[tuple[str, int], np.ndarray]) -> dict[str, float]:
    """P@K, overall and mean IoU of the file against ``gt`` ((query_id, frame) -> (H, W) bool)."""
    by_sample: dict[tuple[str, int], list[dict]] = {}
    for item in json.loads(Path(predictions_json).read_text()):
        by_sample.setdefault((item["query_id"], int(item["frame"])), []).append(item)
    inter, union = [], []
    for key, g in gt.items():
        H, W = g.shape  # (H, W) annotation height, width
        cands = [p for p in by_sample.get(key, []) if p["score"] is not None] or by_sample.get(key, [])
        if cands:
            best = sorted(cands, key=lambda p: p["score"] if p["score"] is not None else -np.inf)[-1]
            pred = _decode(best["segmentation"], H, W)
        else:
            pred = np.zeros((H, W), bool)
        inter.append(int(np.logical_and(pred, g).sum()))
        union.append(int(np.logical_or(pred, g).sum()))
    i, u = np.array(inter, np.float64), np.array(union, np.float64)
    iou = (i + 1e-6) / (u + 1e-6)
    out = {f"P@{k:g}": float(np.mean(iou > k)) for k in THRESHOLDS}
    out["overall_iou"] = float(i.sum() / u.sum()) if u.sum() else 0.0
    out["mean_iou"] = float(iou.mean())
    out["samples"] = len(gt)
    return out


def compare(ours: dict[str, float], theirs: dict[str, float], tol: float = 1e-9) -> dict[str, tuple[float, float]]:
    """The metrics on which the two disagree by more than ``tol`` (NaN on either side disagrees): name -> (ours, theirs).

    ``samples`` must be equal: two evaluators agreeing on different sample sets prove nothing.
    """
    return {k: (float(ours[k]), float(theirs[k])) for k in theirs
            if not abs(float(ours[k]) - float(theirs[k])) <= tol}
