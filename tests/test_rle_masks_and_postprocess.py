"""RLE encoding, IoU and mask post-processing on hand-made masks."""

import numpy as np

from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.detectors import FrameCandidates, postprocess


def test_rle_round_trip_is_exact_for_random_masks():
    rng = np.random.default_rng(0)
    m = rng.random((5, 17, 23)) > 0.5
    rles = mask_ops.encode_many(m)
    assert np.array_equal(mask_ops.decode_many(rles, 17, 23), m)
    assert np.array_equal(mask_ops.decode(rles[2]), m[2])
    assert mask_ops.area(rles).tolist() == m.reshape(5, -1).sum(1).tolist()
    assert mask_ops.decode_many([], 4, 5).shape == (0, 4, 5)


def test_iou_matrix_matches_hand_count():
    a = np.zeros((4, 4), bool); a[:2, :2] = True      # 4 px
    b = np.zeros((4, 4), bool); b[:2, 1:3] = True     # 4 px, 2 shared -> IoU 2 / 6
    iou = mask_ops.iou_matrix(mask_ops.encode_many(np.stack([a])), mask_ops.encode_many(np.stack([a, b])))
    assert iou.shape == (1, 2)
    assert np.allclose(iou, [[1.0, 2 / 6]])
    assert mask_ops.mask_iou(a, b) == 2 / 6


def test_tight_box_is_exclusive_at_the_far_edge():
    m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
    assert mask_ops.tight_box(m).tolist() == [2, 1, 5, 3]


def test_postprocess_thresholds_dedups_and_caps_in_score_order():
    m = np.zeros((4, 4, 4), bool)
    m[0, :2, :2] = True
    m[1, :2, :2] = True; m[1, 2, 0] = True   # IoU 4/5 with m[0] -> duplicate of the better one
    m[2, 3, 3] = True
    # m[3] stays empty -> dropped even with a high score
    fc = FrameCandidates(m, np.zeros((4, 4), np.float32), np.array([0.5, 0.9, 0.7, 0.99], np.float32), np.arange(4, dtype=np.int32))
    out = postprocess(fc, score_threshold=0.6, max_per_frame=5, dedup_iou=0.5)
    assert out.scores.tolist() == [np.float32(0.9), np.float32(0.7)]
    assert out.class_ids.tolist() == [1, 2]
    assert len(postprocess(fc, score_threshold=0.0, max_per_frame=1, dedup_iou=0.5)) == 1
