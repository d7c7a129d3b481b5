"""Mask quality of a candidate cache against ground truth, independent of any head (issue 16 item 4).

For every ground-truth instance of the processed annotated frames (the oracle candidate cache of
the same dataset: one row per true mask), the best mask IoU among the tested cache's candidates of
that frame. Prints, per split: instances, mean best IoU, recall at IoU 0.5 / 0.75 / 0.9, and the
boundary error: the mean distance in pixels from a candidate's boundary to the true boundary
(symmetric, best-matching candidate), plus how often the candidate mask stops at its box edge
while the true mask goes on (a box-clipping artifact of Mask R-CNN's paste).

    python bench/mask_quality.py --oracle CACHE/detect-<oracle key> --candidates CACHE/detect-<lite key> \
        [--dataset DATA] [--json out.json]

With --dataset, the rows are split by the dataset's split column (train / test); otherwise all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from clawcrane.cache.candidates import open_candidates


def boundary(m: np.ndarray) -> np.ndarray:
    """Pixels of ``m`` with a 4-neighbour outside it."""
    er = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return m & ~er.astype(bool)


def boundary_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean symmetric distance (pixels) between the two masks' boundaries."""
    bp, bg = boundary(pred), boundary(gt)
    if not bp.any() or not bg.any():
        return float("nan")
    dg = cv2.distanceTransform((~bg).astype(np.uint8), cv2.DIST_L2, 3)
    dp = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, 3)
    return float((dg[bp].mean() + dp[bg].mean()) / 2)


def clipped_at_box(pred: np.ndarray, box: np.ndarray, gt: np.ndarray) -> bool:
    """The candidate mask reaches its box edge on a side where the true mask extends past that edge."""
    H, W = pred.shape
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, W) - 1, min(y2, H) - 1
    if x2 <= x1 or y2 <= y1:
        return False
    sides = [(pred[:, x1].any() and gt[:, :x1].any()), (pred[:, x2].any() and gt[:, x2 + 1:].any()),
             (pred[y1, :].any() and gt[:y1, :].any()), (pred[y2, :].any() and gt[y2 + 1:, :].any())]
    return any(sides)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oracle", required=True, help="candidate artifact of `detect --detector oracle`")
    ap.add_argument("--candidates", required=True, help="candidate artifact to score")
    ap.add_argument("--dataset", help="dataset folder: split the rows by its split column")
    ap.add_argument("--json", help="write the table here too")
    args = ap.parse_args(argv)
    gt_cache, cand_cache = open_candidates(args.oracle), open_candidates(args.candidates)
    split_of = {}
    if args.dataset:
        from clawcrane.datasets import open_dataset

        ds = open_dataset(args.dataset, frames=False)
        split_of = {v: video.split for v, video in ds.videos.items()}
    rows: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    common = sorted(set(gt_cache.video_ids()) & set(cand_cache.video_ids()))
    for vid in common:
        g, c = gt_cache.video(vid), cand_cache.video(vid)
        if g.status != "ok" or c.status != "ok":
            continue
        done = set(c.processed_frames.tolist())
        for f in sorted(set(g.frames.tolist()) & done):
            gr, cr = g.frame_rows(f), c.frame_rows(f)
            split = split_of.get(vid, "all")
            if len(cr) == 0:
                rows[split] += [(0.0, float("nan"), False)] * len(gr)
                continue
            iou = mask_utils.iou([c.rles[int(r)] for r in cr], [g.rles[int(r)] for r in gr], [0] * len(gr))  # (k, n)
            gm, cm = g.masks(gr), c.masks(cr)
            for j in range(len(gr)):
                i = int(np.argmax(iou[:, j]))
                rows[split].append((float(iou[i, j]), boundary_error(cm[i], gm[j]), clipped_at_box(cm[i], c.boxes[cr[i]], gm[j])))
    table = {}
    for split, rs in sorted(rows.items()):
        a = np.asarray([r[0] for r in rs])
        be = np.asarray([r[1] for r in rs])
        clip = np.asarray([r[2] for r in rs])
        table[split] = {"instances": len(rs), "mean_best_iou": float(a.mean()), "recall@0.5": float((a >= 0.5).mean()),
                        "recall@0.75": float((a >= 0.75).mean()), "recall@0.9": float((a >= 0.9).mean()),
                        "boundary_px": float(np.nanmean(be[a >= 0.5])) if (a >= 0.5).any() else float("nan"),
                        "clipped_at_box": float(clip[a >= 0.5].mean()) if (a >= 0.5).any() else float("nan")}
    print(f"{'split':<6} {'inst':>6} {'mIoU':>6} {'R@.5':>6} {'R@.75':>6} {'R@.9':>6} {'bnd px':>7} {'clipped':>8}")
    for split, t in table.items():
        print(f"{split:<6} {t['instances']:>6} {t['mean_best_iou']:>6.3f} {t['recall@0.5']:>6.3f} {t['recall@0.75']:>6.3f} "
              f"{t['recall@0.9']:>6.3f} {t['boundary_px']:>7.2f} {t['clipped_at_box']:>8.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
