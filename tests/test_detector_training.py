"""Training helpers of the detector: samples, augmentation, schedule, loop, COCO mask AP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.drawn_shapes import draw_frame

from clawcrane.build.detectors import new_detector_model as build_model
from clawcrane.config import TrainDetectorConfig
from clawcrane.pipeline import detector_training as dt


def _square_sample(H: int = 20, W: int = 30) -> dt.TrainSample:
    image = torch.zeros((3, H, W), dtype=torch.uint8)
    masks = torch.zeros((1, H, W), dtype=torch.bool)
    masks[0, 4:10, 2:8] = True  # rows 4..9, columns 2..7
    image[:, masks[0]] = 200
    return dt.TrainSample(image=image, masks=masks, labels=torch.tensor([1]))


def test_masks_to_boxes_is_the_exclusive_tight_box():
    masks = torch.zeros((2, 10, 12), dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 9, 11] = True  # a single pixel in the corner
    boxes = dt.masks_to_boxes(masks)
    # x1, y1 are the first column / row; x2, y2 one past the last (as masks.tight_box)
    assert boxes.tolist() == [[3, 2, 9, 5], [11, 9, 12, 10]]
    assert dt.masks_to_boxes(torch.zeros((0, 4, 4), dtype=torch.bool)).shape == (0, 4)


def test_prepare_sample_resizes_frame_and_masks_to_the_model_input_scale():
    frame, instances = draw_frame(0, height=48, width=64)
    masks = np.stack([i.mask for i in instances])
    s = dt.prepare_sample(frame, masks, [i.class_id for i in instances], min_size=96, max_size=96)
    # torchvision scales by min(96 / 48, 96 / 64) = 1.5 -> (72, 96)
    assert s.image.shape == (3, 72, 96) and s.image.dtype == torch.uint8
    assert s.masks.shape == (len(instances), 72, 96) and s.masks.dtype == torch.bool
    assert s.labels.tolist() == [i.class_id for i in instances]


def test_flip_mirrors_the_box_and_keeps_the_image_size():
    sample = _square_sample()
    seen = set()
    for seed in range(8):
        img, tgt = dt.augment(sample, generator=torch.Generator().manual_seed(seed), hflip=True)
        assert img.shape == (3, 20, 30)
        box = tgt["boxes"][0].tolist()
        # unflipped: x in [2, 8); flipped in a 30-wide frame: [30 - 8, 30 - 2) = [22, 28)
        assert box in ([2, 4, 8, 10], [22, 4, 28, 10])
        assert tgt["masks"][0].bool().equal(sample.masks[0] if box[0] == 2 else sample.masks[0].flip(-1))
        seen.add(box[0])
    assert seen == {2, 22}  # both outcomes occur over 8 draws (p = 1 - 2 / 2**8)


def test_scale_jitter_keeps_size_and_boxes_follow_the_masks():
    sample = _square_sample(40, 60)
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        img, tgt = dt.augment(sample, generator=g, hflip=False, scale_range=(0.5, 1.5), color_jitter=0.3)
        assert img.shape == (3, 40, 60) and 0.0 <= float(img.min()) and float(img.max()) <= 1.0
        assert torch.equal(tgt["boxes"], dt.masks_to_boxes(tgt["masks"].bool()))
        assert len(tgt["labels"]) == len(tgt["masks"]) == len(tgt["boxes"])


def test_instances_cropped_away_by_a_zoom_are_dropped():
    sample = _square_sample(40, 60)
    # zooming in x3 crops a 40 x 60 window of a 120 x 180 image: the 6 x 6 square (18 x 18 after
    # zooming, at rows 12..30, cols 6..24) is outside most windows; any kept one has >= 4 pixels
    dropped = 0
    for seed in range(10):
        _, tgt = dt.augment(sample, generator=torch.Generator().manual_seed(seed), hflip=False, scale_range=(3.0, 3.0))
        dropped += len(tgt["labels"]) == 0
        assert all(int(m.sum()) >= dt.MIN_INSTANCE_PIXELS for m in tgt["masks"])
    assert dropped > 0


def test_lr_warms_up_then_decays_to_zero():
    assert dt.lr_at(0, 0.0, base_lr=1.0, warmup_steps=100) == pytest.approx(0.01)
    assert dt.lr_at(100, 0.0, base_lr=1.0, warmup_steps=100) == pytest.approx(1.0)
    assert dt.lr_at(500, 0.5, base_lr=1.0, warmup_steps=100) == pytest.approx(0.5)  # cos(pi / 2) = 0
    assert dt.lr_at(900, 1.0, base_lr=1.0, warmup_steps=100) == pytest.approx(0.0)


def test_batches_of_one_epoch_cover_each_sample_once_and_repeat_by_seed():
    epoch = [i for s in range(3) for i in dt.batch_indices(s, num_samples=7, batch_size=2, seed=5)]
    assert len(epoch) == 6 and len(set(epoch)) == 6  # 7 // 2 = 3 steps, the 7th sample waits
    assert dt.batch_indices(4, num_samples=7, batch_size=2, seed=5) == dt.batch_indices(4, num_samples=7, batch_size=2, seed=5)
    assert dt.batch_indices(3, num_samples=7, batch_size=2, seed=5) != dt.batch_indices(3, num_samples=7, batch_size=2, seed=6)


def test_a_few_training_steps_reduce_the_loss_on_drawn_shapes():
    torch.manual_seed(0)
    model = build_model("lite", num_classes=2, min_size=96, max_size=96)
    samples = []
    for seed in range(2):
        frame, inst = draw_frame(seed)
        samples.append(dt.prepare_sample(frame, np.stack([i.mask for i in inst]),
                                         [1 if i.class_id == 11 else 2 for i in inst], min_size=96, max_size=96))
    config = TrainDetectorConfig(lr=0.01, warmup_steps=1)
    optimizer = dt.make_optimizer(model, config)
    images = [s.image.float() / 255 for s in samples]
    targets = [{"boxes": dt.masks_to_boxes(s.masks), "labels": s.labels, "masks": s.masks.to(torch.uint8)} for s in samples]
    losses = [dt.train_step(model, optimizer, images, targets, lr=0.01)["loss"] for _ in range(6)]
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2])  # from scratch the drop is > 50 %


def test_train_loop_stops_after_the_planned_epochs_and_checkpoints_each_epoch():
    torch.manual_seed(0)
    model = build_model("lite", num_classes=1, min_size=64, max_size=64)
    frame, inst = draw_frame(1)
    sample = dt.prepare_sample(frame, np.stack([i.mask for i in inst]), [1] * len(inst), min_size=64, max_size=64)
    config = TrainDetectorConfig(epochs=2, batch_size=2, warmup_steps=1, lr=0.005)
    saved = []
    state = dt.train_loop(model, dt.make_optimizer(model, config), [sample] * 4, config, state=dt.LoopState(),
                          device=torch.device("cpu"), on_checkpoint=lambda s: saved.append(s.step),
                          checkpoint_seconds=math.inf)  # only the epoch-end saves, however slow the machine
    # 4 samples / batch 2 = 2 steps per epoch; saves after epochs 1 and 2, then the final save
    assert state.step == 4 and saved == [2, 4, 4]
    assert [h["epoch"] for h in state.history] == [1, 2] and all("loss_mask" in h for h in state.history)


def _square(y: int, x: int, size: int = 8, H: int = 32, W: int = 32) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y : y + size, x : x + size] = True
    return m


def test_coco_ap_is_one_for_perfect_predictions():
    gm = np.stack([_square(2, 2), _square(20, 20)])
    gts = [(gm, np.array([1, 2]))]
    preds = [(gm.copy(), np.array([0.9, 0.8]), np.array([1, 2]))]
    ap = dt.coco_mask_ap(gts, preds)
    assert ap["AP"] == pytest.approx(1.0) and ap["AP50"] == pytest.approx(1.0)


def test_coco_ap_is_zero_without_predictions_and_nan_without_ground_truth():
    gm = np.stack([_square(2, 2)])
    empty = np.zeros((0, 32, 32), bool)
    ap = dt.coco_mask_ap([(gm, np.array([1]))], [(empty, np.zeros(0), np.zeros(0, int))])
    assert ap["AP"] == 0.0 and ap["AP50"] == 0.0
    assert math.isnan(dt.coco_mask_ap([(empty, np.zeros(0, int))], [(gm, np.array([0.5]), np.array([1]))])["AP"])


def test_coco_ap_with_half_the_objects_found_is_51_of_101_recall_points():
    # one of two objects found perfectly: precision 1 up to recall 0.5, nothing after. COCO
    # averages interpolated precision at recalls 0, 0.01, ..., 1: 51 of the 101 points are 1.
    gm = np.stack([_square(2, 2), _square(20, 20)])
    ap = dt.coco_mask_ap([(gm, np.array([1, 1]))], [(gm[:1], np.array([0.9]), np.array([1]))])
    assert ap["AP"] == pytest.approx(51 / 101) and ap["AP50"] == pytest.approx(51 / 101)


def test_coco_ap_counts_a_wrong_class_as_a_miss_unless_class_agnostic():
    gm = np.stack([_square(2, 2)])
    gts = [(gm, np.array([1]))]
    preds = [(gm.copy(), np.array([0.9]), np.array([2]))]
    assert dt.coco_mask_ap(gts, preds)["AP50"] == 0.0
    assert dt.coco_mask_ap(gts, preds, class_agnostic=True)["AP50"] == pytest.approx(1.0)


def test_coco_ap50_accepts_a_mask_with_iou_between_half_and_three_quarters():
    # prediction shifted by 2 of 8 columns: IoU = 48 / 80 = 0.6 -> a hit at 0.5, a miss at 0.75
    gm = np.stack([_square(4, 4)])
    pm = np.stack([_square(4, 6)])
    ap = dt.coco_mask_ap([(gm, np.array([1]))], [(pm, np.array([0.9]), np.array([1]))])
    assert ap["AP50"] == pytest.approx(1.0) and ap["AP75"] == 0.0
    # IoU thresholds .50, .55, .60 of the ten accept (0.6 >= 0.6), so AP = 3 / 10
    assert ap["AP"] == pytest.approx(0.3)


def test_actor_classes_drop_the_a2d_action_digit_and_auto_picks_them_for_a2d_layouts():
    # A2D ids are actor * 10 + action: 11 adult-climbing and 19 adult-none are both actor 1
    assert dt.map_classes(np.array([11, 19, 32]), "actor").tolist() == [1, 1, 3]
    assert dt.map_classes(np.array([11, 19, 32]), "agnostic").tolist() == [0, 0, 0]
    assert dt.map_classes(np.array([11, 19, 32]), "dataset").tolist() == [11, 19, 32]
    assert dt.resolve_class_mode("auto", "synthetic") == "actor"
    assert dt.resolve_class_mode("auto", "ytvos") == "dataset"  # category ids carry no action digit
    with pytest.raises(ValueError):
        dt.resolve_class_mode("shape", "a2d")
