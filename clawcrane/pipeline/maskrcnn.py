"""Mask R-CNN candidate proposers: the CPU-trainable ``lite`` model and torchvision's COCO R50-FPN.

``build_model(preset, num_classes=C)`` makes a torchvision ``MaskRCNN`` predicting C + 1 labels
(0 = background). Presets:

- ``lite``: the packaged ImageNet EfficientNet-Lite0 (no download) + FPN with 64-channel pyramid,
  a 256-wide two-layer box head, a 64-channel mask head, trainable BatchNorm, inputs at most
  320 px, capped proposals; trains on a CPU in minutes (``clawcrane train-detector``; on the
  synthetic ``small`` preset mask AP50 0.95 after 5 minutes on 2 cores).
- ``lite-r18``: the same heads on a ResNet-18 trained from scratch (no pretrained weights at all;
  mask AP50 ~0.8 after 10 minutes there). torchvision's default heads (256-channel mask head,
  1024-wide box head, 800 px inputs) do not learn in that budget.
- ``r50-fpn``: ``maskrcnn_resnet50_fpn`` initialised from torchvision's COCO weights, read from a
  local file (nothing is downloaded at run time).

``MaskRCNNDetector`` wraps a model behind the ``Detector`` interface: batched inference, masks
pasted at the original frame resolution and binarised at 0.5. Pure: pretrained weights arrive as
state dicts (``build.detectors`` reads checkpoints and weight files and calls ``build_model``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from clawcrane.config import DETECTOR_PRESETS
from clawcrane.errors import ConfigError
from clawcrane.fingerprint import hash_json
from clawcrane.pipeline.detectors import Detector, FrameCandidates

log = logging.getLogger(__name__)

PRESETS = DETECTOR_PRESETS
LEGACY_PRESETS = {"lite-effnet": "lite"}
"""Preset names of older checkpoints -> today's (``current_spec``)."""
"""torchvision's COCO Mask R-CNN weights (the file name torchvision downloads to its hub cache)."""
COCO_NUM_CLASSES = 90
"""Foreground labels of torchvision's COCO models (category ids 1..90, some unused)."""
MASK_THRESHOLD = 0.5

_DEFAULTS: dict[str, dict[str, Any]] = {
    "lite": {
        "body": "efficientnet-lite0",
        "min_size": 320,
        "max_size": 320,
        "anchor_sizes": (16, 32, 64, 128, 256),
        "detections_per_img": 20,
        "fpn_channels": 64,
    },
    "lite-r18": {
        "body": "resnet18",
        "min_size": 320,
        "max_size": 320,
        "anchor_sizes": (16, 32, 64, 128, 256),
        "detections_per_img": 20,
        "fpn_channels": 64,
    },
    "r50-fpn": {
        "body": "resnet50",
        "min_size": 800,
        "max_size": 1333,
        "anchor_sizes": (32, 64, 128, 256, 512),
        "detections_per_img": 100,
        "fpn_channels": 256,
    },
}


def model_spec(preset: str, *, num_classes: int, **overrides: Any) -> dict[str, Any]:
    """The full description of a model (what a checkpoint stores to rebuild it).

    ``overrides`` with value None keep the preset default. Keys: preset, num_classes, body (fixed
    by the preset), min_size, max_size, anchor_sizes, detections_per_img, fpn_channels.
    """
    if preset not in _DEFAULTS:
        raise ConfigError(f"unknown detector preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1 (got {num_classes}); the dataset has no instance classes")
    spec = dict(_DEFAULTS[preset], preset=preset, num_classes=int(num_classes))
    unknown = set(overrides) - set(spec)
    if unknown:
        raise ConfigError(f"unknown detector settings {sorted(unknown)}; known: {sorted(spec)}")
    if overrides.get("body") not in (None, spec["body"]):
        raise ConfigError(f"preset {preset} has the {spec['body']} body, not {overrides['body']}; pick the preset of that body")
    spec.update({k: v for k, v in overrides.items() if v is not None})
    spec["anchor_sizes"] = tuple(int(a) for a in spec["anchor_sizes"])
    if len(spec["anchor_sizes"]) != 5:
        raise ConfigError(f"anchor_sizes needs 5 sizes (one per pyramid level), got {spec['anchor_sizes']}")
    return spec


def build_model(
    preset: str, *, num_classes: int, body_state: Mapping[str, torch.Tensor] | None = None,
    coco_state: Mapping[str, torch.Tensor] | None = None, **overrides: Any,
) -> MaskRCNN:
    """A torchvision ``MaskRCNN`` for ``num_classes`` foreground classes (C + 1 outputs).

    ``body_state`` (lite): the EfficientNet-Lite0 ImageNet state dict its body starts from.
    ``coco_state`` (r50-fpn): the COCO state dict it starts from; the class-specific layers are
    re-initialised when ``num_classes`` is not COCO's 90. Without them the weights are random
    (a checkpoint's state dict is loaded right after). ``overrides``: see ``model_spec``.
    """
    spec = model_spec(preset, num_classes=num_classes, **overrides)
    if preset in ("lite", "lite-r18"):
        return _build_lite(spec, body_state=body_state)
    return _build_r50(spec, coco_state=coco_state)


def _anchors(spec: Mapping[str, Any]) -> AnchorGenerator:
    sizes = tuple((int(s),) for s in spec["anchor_sizes"])
    return AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * len(sizes))


class _EfficientLiteBody(nn.Module):
    """EfficientNet-Lite0 up to its last block, returning the stride 4, 8, 16, 32 maps as '0'..'3'."""

    TAPS = (2, 4, 10, 15)
    CHANNELS = (24, 40, 112, 320)

    def __init__(self, state: Mapping[str, torch.Tensor] | None):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        if state is not None:
            net.load_state_dict(state)
        self.stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = net._blocks[: self.TAPS[-1] + 1]
        self.drop_connect = float(net._global_params.drop_connect_rate or 0.0)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.act(self.bn0(self.stem(x)))
        out = {}
        for i, block in enumerate(self.blocks):
            x = block(x, drop_connect_rate=self.drop_connect * i / len(self.blocks))
            if i in self.TAPS:
                out[str(len(out))] = x
        return out


class _BodyWithFPN(nn.Module):
    """A feature body (dict of maps) followed by an FPN with a max-pooled 'pool' level."""

    def __init__(self, body: nn.Module, in_channels: list[int], out_channels: int):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn(self.body(x))


def _build_lite(spec: Mapping[str, Any], *, body_state: Mapping[str, torch.Tensor] | None) -> MaskRCNN:
    C = int(spec["fpn_channels"])  # pyramid channels
    if spec["body"] == "efficientnet-lite0":  # ImageNet-pretrained, expects (x - 127) / 128 in 0..255 units
        backbone = _BodyWithFPN(_EfficientLiteBody(body_state), list(_EfficientLiteBody.CHANNELS), C)
        norm = {"image_mean": [127.0 / 255] * 3, "image_std": [128.0 / 255] * 3}
    else:
        body = resnet18(weights=None, norm_layer=nn.BatchNorm2d)
        backbone = BackboneWithFPN(
            body,
            return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
            in_channels_list=[64, 128, 256, 512],
            out_channels=C,
        )
        norm = {}
    labels = int(spec["num_classes"]) + 1
    return MaskRCNN(
        backbone,
        num_classes=None,
        **norm,
        min_size=int(spec["min_size"]),
        max_size=int(spec["max_size"]),
        rpn_anchor_generator=_anchors(spec),
        rpn_head=RPNHead(C, 3),
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        box_head=TwoMLPHead(C * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, labels),
        box_batch_size_per_image=128,
        box_detections_per_img=int(spec["detections_per_img"]),
        mask_head=MaskRCNNHeads(C, [C, C, C, C], 1),
        mask_predictor=MaskRCNNPredictor(C, C, labels),
    )


def _build_r50(spec: Mapping[str, Any], *, coco_state: Mapping[str, torch.Tensor] | None) -> MaskRCNN:
    labels = int(spec["num_classes"]) + 1
    state = dict(coco_state) if coco_state is not None else None
    model = maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=labels,
        min_size=int(spec["min_size"]),
        max_size=int(spec["max_size"]),
        rpn_anchor_generator=_anchors(spec),
        box_detections_per_img=int(spec["detections_per_img"]),
    )
    if state is not None:
        if labels != COCO_NUM_CLASSES + 1:  # a new label set: keep everything but the class layers
            own = model.state_dict()
            state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing, _ = model.load_state_dict(state, strict=False)
        if missing:
            log.info("r50-fpn: %d tensors re-initialised for %d classes: %s", len(missing), labels - 1, missing)
    return model


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and values (stable across re-saves)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def current_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A stored model spec in today's terms: 'lite' before the ``body`` key meant ResNet-18."""
    spec = dict(spec)
    if "body" not in spec and spec.get("preset") == "lite":
        spec["preset"] = "lite-r18"
    spec["preset"] = LEGACY_PRESETS.get(spec["preset"], spec["preset"])
    spec.pop("body", None)  # fixed by the preset
    return spec


class MaskRCNNDetector(Detector):
    """Any torchvision Mask R-CNN behind the ``Detector`` interface.

    ``class_ids[label - 1]`` is the dataset class id of model label ``label`` (None: identity,
    as for COCO). ``weights_key`` identifies the weights (``state_fingerprint``).
    """

    name = "maskrcnn"

    def __init__(
        self,
        *,
        model: MaskRCNN,
        spec: Mapping[str, Any],
        weights_key: str,
        class_ids: list[int] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 4,
        score_threshold: float = 0.05,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.model.roi_heads.score_thresh = float(score_threshold)
        self.spec = dict(spec)
        self.weights_key = weights_key
        self.class_ids = None if class_ids is None else [int(c) for c in class_ids]
        self.batch_size = max(1, int(batch_size))
        self.score_threshold = float(score_threshold)

    def key(self) -> str:
        return hash_json(
            {
                "detector": self.name,
                "weights": self.weights_key,
                "model": self.spec,
                "class_ids": self.class_ids,
                "score_threshold": self.score_threshold,
                "mask_threshold": MASK_THRESHOLD,
            }
        )

    def detect(self, frames: list[np.ndarray], refs: list[tuple[str, int]]) -> list[FrameCandidates]:
        out: list[FrameCandidates] = []
        for start in range(0, len(frames), self.batch_size):
            out.extend(self._detect_batch(frames[start : start + self.batch_size]))
        return out

    def _detect_batch(self, frames: list[np.ndarray]) -> list[FrameCandidates]:
        images = [torch.from_numpy(np.ascontiguousarray(f)).to(self.device).permute(2, 0, 1).float() / 255.0 for f in frames]
        with torch.inference_mode():
            preds = self.model(images)
        results = []
        for frame, pred in zip(frames, preds):
            H, W = frame.shape[:2]  # original frame height, width
            K = len(pred["scores"])  # detections
            if K == 0:
                results.append(FrameCandidates.empty(H, W))
                continue
            masks = (pred["masks"][:, 0] > MASK_THRESHOLD).cpu().numpy()  # (K, H, W)
            labels = pred["labels"].cpu().numpy().astype(np.int64)
            if self.class_ids is not None:
                labels = np.asarray(self.class_ids, dtype=np.int64)[labels - 1]
            results.append(
                FrameCandidates(
                    masks=masks,
                    boxes=pred["boxes"].cpu().numpy().astype(np.float32),
                    scores=pred["scores"].cpu().numpy().astype(np.float32),
                    class_ids=labels.astype(np.int32),
                )
            )
        return results
