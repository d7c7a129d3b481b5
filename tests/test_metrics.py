"""Evaluation protocol (A2D / J-HMDB) and J&F, on hand-made masks with hand-computed answers."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mu
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline import metrics as M


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def sample(gt: np.ndarray, *preds_scores, qtype=None, sid="s") -> M.Sample:
    return M.Sample(
        sample_id=sid, gt=mask_ops.encode(gt), preds=[mask_ops.encode(p) for p, _ in preds_scores],
        scores=[s for _, s in preds_scores], query_type=qtype,
    )


def test_precision_threshold_is_strict():
    # IoU exactly 0.5 is not above 0.5; 0.6 is above 0.5 but not above 0.6.
    p = M.precision_at(np.array([0.5, 0.6]))
    assert p["P@0.5"] == 0.5 and p["P@0.6"] == 0.0


def test_half_overlap_counts_at_p05_through_the_epsilon_of_the_protocol():
    # GT 16 px, prediction = 8 of them: IoU = (8 + 1e-6) / (16 + 1e-6) = 0.5 + 3e-8, which is > 0.5.
    # This is the published code's formula (``datasets.md`` §3), so a pixel-exact half overlap counts.
    gt = box(8, 8, 0, 4, 0, 4)
    m = M.summarize([sample(gt, (box(8, 8, 0, 2, 0, 4), 1.0))])
    assert m["P@0.5"] == 1.0 and m["P@0.6"] == 0.0


def test_empty_prediction_scores_about_zero_and_empty_vs_empty_scores_one():
    gt = box(8, 8, 0, 4, 0, 4)
    I, U = M.intersection_union(None, mask_ops.encode(gt))
    assert (I, U) == (0, 16)
    assert M.sample_ious([I], [U])[0] == pytest.approx(0.0, abs=1e-7)  # 1e-6 / 16.000001
    empty = np.zeros((8, 8), bool)
    I, U = M.intersection_union(mask_ops.encode(empty), mask_ops.encode(empty))
    assert M.sample_ious([I], [U])[0] == pytest.approx(1.0)  # (0 + eps) / (0 + eps)
    # a sample with no submitted mask at all is an empty prediction
    m = M.summarize([sample(gt)])
    assert m["mean_iou"] == pytest.approx(0.0, abs=1e-7) and m["mAP_coco"] == 0.0


def test_overall_and_mean_iou_differ_when_objects_differ_in_size():
    # Big object (100 px) predicted exactly: I=100, U=100. Small object (4 px) missed by a disjoint
    # 4 px mask: I=0, U=8. Overall = 100/108 = 0.926 (pixel-weighted); Mean = (1 + 0)/2 = 0.5.
    big = box(20, 20, 0, 10, 0, 10)
    small, wrong = box(20, 20, 15, 17, 15, 17), box(20, 20, 15, 17, 17, 19)
    m = M.summarize([sample(big, (big, 0.9)), sample(small, (wrong, 0.8))])
    assert m["overall_iou"] == pytest.approx(100 / 108)
    assert m["mean_iou"] == pytest.approx(0.5, abs=1e-6)


def test_top1_is_the_highest_scored_mask():
    gt = box(8, 8, 0, 4, 0, 4)
    s = sample(gt, (box(8, 8, 4, 8, 4, 8), 0.2), (gt, 0.7), (box(8, 8, 0, 1, 0, 1), 0.5))
    assert M.summarize([s])["mean_iou"] == pytest.approx(1.0)


def test_mean_precision_map_on_a_hand_case():
    # IoUs 0.5, 0.75, 1.0, 0.3 against t = 0.50, 0.55, ..., 0.95 (counting IoU >= t):
    # t=0.50 -> 3/4; t=0.55..0.75 (5 thresholds) -> 2/4; t=0.80..0.95 (4) -> 1/4.
    # mean = (0.75 + 5 * 0.5 + 4 * 0.25) / 10 = 0.425.
    assert M.mean_precision_map(np.array([0.5, 0.75, 1.0, 0.3])) == pytest.approx(0.425)


def _pycocotools_reference(samples: list[M.Sample], tmp_path) -> float:
    """COCO AP computed straight from pycocotools with JSON files (independent of coco_map)."""
    images, anns, dets = [], [], []
    for i, s in enumerate(samples):
        h, w = s.gt["size"]
        images.append({"id": 100 + i, "height": h, "width": w, "file_name": f"{i}.png"})
        g = {"size": [h, w], "counts": s.gt["counts"].decode("ascii")}
        anns.append({"id": 1 + i, "image_id": 100 + i, "category_id": 7, "iscrowd": 0, "segmentation": g,
                     "area": float(mu.area(s.gt)), "bbox": mu.toBbox(s.gt).tolist()})
        for r, sc in zip(s.preds, s.scores):
            dets.append({"image_id": 100 + i, "category_id": 7, "score": sc,
                         "segmentation": {"size": [h, w], "counts": r["counts"].decode("ascii")}})
    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 7, "name": "x"}]}))
    dt_file.write_text(json.dumps(dets))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        dt = gt.loadRes(str(dt_file))
        e = COCOeval(gt, dt, "segm")
        e.params.useCats = 0
        e.evaluate()
        e.accumulate()
        e.summarize()
    return float(e.stats[0])


def test_coco_map_equals_pycocotools_on_a_random_case(tmp_path):
    rng = np.random.default_rng(3)
    samples = []
    for i in range(6):
        H, W = 24, 32
        y, x = rng.integers(0, 12), rng.integers(0, 16)
        gt = box(H, W, y, y + 10, x, x + 12)
        preds = []
        for _ in range(3):  # jittered boxes: IoUs spread over the 0.5:0.95 range
            dy, dx = rng.integers(-3, 4), rng.integers(-3, 4)
            preds.append((box(H, W, max(y + dy, 0), y + dy + 10, max(x + dx, 0), x + dx + 12), float(rng.uniform())))
        samples.append(sample(gt, *preds, sid=str(i)))
    ours = M.coco_map(samples)
    assert 0.0 < ours < 1.0
    assert ours == pytest.approx(_pycocotools_reference(samples, tmp_path), abs=1e-12)


def test_by_query_type_splits_samples():
    gt = box(8, 8, 0, 4, 0, 4)
    s = [sample(gt, (gt, 1.0), qtype="position"), sample(gt, qtype="motion"), sample(gt, (gt, 1.0), qtype="position")]
    t = M.by_query_type(s)
    assert sorted(t) == ["motion", "position"]
    assert t["position"]["samples"] == 2 and t["position"]["mean_iou"] == pytest.approx(1.0)
    assert t["motion"]["mean_iou"] == pytest.approx(0.0, abs=1e-6)


def test_resize_rle_is_nearest_neighbour():
    # A 2x2-block mask at half size scales back to exactly the full-size mask.
    full = box(8, 12, 2, 6, 4, 10)
    half = full[::2, ::2]
    back = mask_ops.decode(M.resize_rle(mask_ops.encode(half), 8, 12))
    assert back.shape == (8, 12) and np.array_equal(back, full)
    # a zero-size placeholder (a video without candidates) becomes an empty mask of the GT size
    placeholder = {"size": [0, 0], "counts": mask_ops.encode(np.zeros((0, 0), bool))["counts"]}
    assert not mask_ops.decode(M.resize_rle(placeholder, 8, 12)).any()


def test_boundary_map_on_a_hand_case():
    # 2x2 square at rows/cols 1-2 of a 4x4 image. A pixel is on the boundary when it differs from
    # its right, lower or lower-right neighbour (neighbours outside the image ignored).
    m = box(4, 4, 1, 3, 1, 3)
    expected = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], bool)
    assert np.array_equal(M.boundary_map(m), expected)


def test_j_and_f_on_a_hand_case():
    # 50x50 images: tolerance = ceil(0.008 * 70.7) = 1 px.
    assert M.boundary_tolerance(50, 50) == 1 and M.boundary_tolerance(240, 320) == 4
    gt = box(50, 50, 10, 20, 10, 20)
    shift1 = box(50, 50, 10, 20, 11, 21)
    # 1 px shift: J = 90/110; every boundary pixel is within 1 px of the other boundary, F = 1.
    assert M.jaccard(shift1, gt) == pytest.approx(9 / 11)
    assert M.boundary_f(shift1, gt) == pytest.approx(1.0)
    assert M.boundary_f(box(50, 50, 10, 20, 14, 24), gt) < 1.0  # 4 px shift: beyond tolerance
    empty = np.zeros((50, 50), bool)
    assert M.jaccard(empty, empty) == 1.0 and M.boundary_f(empty, empty) == 1.0
    # Query 1: exact on both frames (J = F = 1); query 2: empty prediction (J = F = 0).
    r = M.j_and_f([[(gt, gt), (gt, gt)], [(empty, gt)]])
    assert r == {"J": 1 / 2, "F": 1 / 2, "J&F": 1 / 2, "queries": 2}


def test_summary_keys_and_ranges():
    gt = box(8, 8, 0, 4, 0, 4)
    m = M.summarize([sample(gt, (gt, 0.3)), sample(gt, (box(8, 8, 0, 4, 0, 3), 0.9))])
    assert set(m) == {"samples", "P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9", "mAP_coco", "mAP_mean_precision",
                      "overall_iou", "mean_iou"}
    assert m["samples"] == 2 and all(0.0 <= v <= 1.0 for k, v in m.items() if k != "samples")
