"""Mask R-CNN models, the detector wrapper and detector checkpoints (tiny inputs, untrained weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.drawn_shapes import draw_frame

from clawcrane.build.detectors import detector_model as load_detector_model
from clawcrane.build.detectors import maskrcnn_from_checkpoint, maskrcnn_from_torchvision
from clawcrane.build.detectors import new_detector_model as build_model
from clawcrane.build.weights import COCO_FILE
from clawcrane.cache.checkpoints import KIND_DETECTOR, KIND_HEAD, save_checkpoint
from clawcrane.errors import ConfigError, WeightsError
from clawcrane.pipeline.maskrcnn import MaskRCNNDetector, model_spec, state_fingerprint

SMALL = {"min_size": 96, "max_size": 96}


def _lite(num_classes: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    return build_model("lite", num_classes=num_classes, **SMALL).eval()


def _payload(model, spec, class_ids):
    return {
        "kind": KIND_DETECTOR,
        "model": model.state_dict(),
        "optimizer": {},
        "epoch": 0,
        "step": 0,
        "config": {"model": spec, "train": {}},
        "class_ids": class_ids,
        "metrics": {},
    }


def test_lite_model_outputs_masks_at_input_resolution_and_caps_detections():
    model = _lite(num_classes=2)
    x = torch.rand(3, 40, 60)
    with torch.inference_mode():
        (out,) = model([x])
    K = len(out["scores"])  # detections
    assert K <= 20  # the lite preset's detections_per_img
    assert out["boxes"].shape == (K, 4)
    assert out["masks"].shape == (K, 1, 40, 60)  # pasted back at the input's size, not 96 px
    assert set(out["labels"].tolist()) <= {1, 2}  # 0 is background and never returned


@pytest.mark.parametrize("preset", ["lite", "lite-r18"])
def test_lite_pyramid_has_64_channels_and_five_levels(preset):
    # the feature extractor relies on model.backbone returning the FPN levels by name
    model = build_model(preset, num_classes=2, **SMALL).eval()
    with torch.inference_mode():
        feats = model.backbone(torch.rand(1, 3, 64, 64))
    assert list(feats) == ["0", "1", "2", "3", "pool"]
    assert all(f.shape[1] == 64 for f in feats.values())


def test_detector_returns_binary_masks_at_each_frame_size_with_dataset_class_ids():
    spec = model_spec("lite", num_classes=2, **SMALL)
    det = MaskRCNNDetector(model=_lite(), spec=spec, weights_key="w", class_ids=[11, 22], device="cpu",
                           batch_size=2, score_threshold=0.0)
    frames = [draw_frame(1)[0], draw_frame(2, height=30, width=50)[0], draw_frame(3)[0]]
    out = det.detect(frames, [("v", i) for i in range(3)])
    assert len(out) == 3
    for frame, fc in zip(frames, out):
        H, W = frame.shape[:2]
        assert fc.masks.dtype == bool and fc.masks.shape[1:] == (H, W)
        assert set(fc.class_ids.tolist()) <= {11, 22}
        assert fc.boxes.dtype == np.float32 and fc.scores.dtype == np.float32
    # an untrained 3-way classifier scores every class near 1/3, so threshold 0 keeps detections
    assert sum(len(fc) for fc in out) > 0


def test_checkpoint_round_trip_rebuilds_the_model_alone_with_identical_outputs(tmp_path):
    model = _lite(num_classes=2, seed=3)
    spec = model_spec("lite", num_classes=2, **SMALL)
    path = save_checkpoint(tmp_path / "det.pt", _payload(model, spec, [11, 22]))
    payload = torch.load(path, weights_only=True)  # plain tensors and containers only
    assert payload["kind"] == KIND_DETECTOR
    rebuilt = load_detector_model(path)
    x = [torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))]
    with torch.inference_mode():
        a, b = model(x)[0], rebuilt(x)[0]
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["masks"], b["masks"])
    det = maskrcnn_from_checkpoint(path, device="cpu")
    assert det.class_ids == [11, 22]
    assert det.weights_key == state_fingerprint(model.state_dict())


def test_a_checkpoint_from_before_the_body_key_rebuilds_its_resnet18_lite_model(tmp_path):
    # 'lite' used to mean the ResNet-18 body; a stored spec without 'body' must still rebuild that model
    torch.manual_seed(0)
    model = build_model("lite-r18", num_classes=2, **SMALL).eval()
    old_spec = {k: v for k, v in model_spec("lite-r18", num_classes=2, **SMALL).items() if k != "body"}
    old_spec["preset"] = "lite"
    path = save_checkpoint(tmp_path / "old.pt", _payload(model, old_spec, [11, 22]))
    rebuilt = load_detector_model(path)
    assert type(rebuilt.backbone.body).__name__ == type(model.backbone.body).__name__
    x = [torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))]
    with torch.inference_mode():
        assert torch.equal(model(x)[0]["boxes"], rebuilt(x)[0]["boxes"])
    assert model_spec("lite", num_classes=2)["body"] == "efficientnet-lite0"
    with pytest.raises(ConfigError, match="body"):
        model_spec("lite", num_classes=2, body="resnet18")


def test_detector_key_changes_with_weights_and_score_threshold_only():
    spec = model_spec("lite", num_classes=2, **SMALL)
    m = _lite()

    def key(weights_key: str, thr: float, batch: int) -> str:
        return MaskRCNNDetector(model=m, spec=spec, weights_key=weights_key, class_ids=[1, 2], device="cpu",
                                batch_size=batch, score_threshold=thr).key()

    assert key("a", 0.05, 1) == key("a", 0.05, 8)  # batch size is runtime only
    assert key("a", 0.05, 1) != key("b", 0.05, 1)
    assert key("a", 0.05, 1) != key("a", 0.5, 1)


def test_state_fingerprint_sees_a_single_changed_weight():
    m = _lite()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    before = state_fingerprint(state)
    state["roi_heads.box_predictor.cls_score.bias"][0] += 1e-3
    assert state_fingerprint(state) != before


def test_head_checkpoint_is_refused_by_the_detector_loader(tmp_path):
    path = save_checkpoint(tmp_path / "head.pt", {"kind": KIND_HEAD, "model": {}})
    with pytest.raises(WeightsError, match="clawcrane-head.*expected 'clawcrane-detector'"):
        load_detector_model(path)


def test_r50_missing_weights_error_names_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "coco.pth"
    with pytest.raises(WeightsError) as err:
        build_model("r50-fpn", num_classes=3, weights=missing)
    assert str(missing) in str(err.value) and "--weights" in str(err.value)


def test_r50_default_weights_are_looked_up_in_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsError, match=str(tmp_path / "hub" / "checkpoints" / COCO_FILE)):
        maskrcnn_from_torchvision(device="cpu")


def test_r50_refuses_a_file_that_is_not_maskrcnn_weights(tmp_path):
    bad = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(WeightsError, match="not a Mask R-CNN"):
        build_model("r50-fpn", num_classes=3, weights=bad)


def test_unknown_preset_and_setting_are_config_errors():
    with pytest.raises(ConfigError, match="preset"):
        build_model("tiny-yolo", num_classes=2)
    with pytest.raises(ConfigError, match="unknown detector settings"):
        model_spec("lite", num_classes=2, colour="red")
