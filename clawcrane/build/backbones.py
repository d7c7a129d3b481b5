"""Backbones from ``--backbone``/``--weights``/``--levels``: resolution, weight discovery, the frozen module.

``resolve_backbone`` turns the user's choice into a ``BackboneSpec`` (resolved name, weights file,
its fingerprint, levels, input size) WITHOUT building a model, so `extract` computes its cache key
and detects a cache hit cheaply; ``build_backbone(spec)`` then reads the weights and makes the
module (``pipeline.backbone.make_backbone``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from clawcrane.build.weights import efficientnet_file, find_imagenet_file, hub_checkpoint_dir, imagenet_file_names, load_state
from clawcrane.errors import ConfigError, WeightsError
from clawcrane.fingerprint import file_fingerprint
from clawcrane.pipeline.backbone import (
    CHOICES,
    DEFAULT_LEVELS,
    DETECTOR,
    EFFICIENTNET,
    EFFICIENTNET_LEVELS,
    RANDOM_SEED,
    RESNET_LEVELS,
    RESNETS,
    Backbone,
    BackboneSpec,
    make_backbone,
)

log = logging.getLogger(__name__)


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


def build_backbone(spec: BackboneSpec, device: str | torch.device = "cpu") -> Backbone:
    """Build the frozen module of a resolved spec, weights loaded, on ``device``."""
    if spec.name == DETECTOR:
        from clawcrane.build.detectors import detector_model

        return make_backbone(spec, detector=detector_model(spec.weights_path)).to(device)
    state = load_state(spec.weights_path, spec.name) if spec.weights_path else None
    try:
        module = make_backbone(spec, state=state)
    except RuntimeError as err:  # the state dict does not fit the architecture
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise WeightsError(f"{spec.weights_path}: does not fit {spec.name} ({first}); pass weights of that architecture "
                           "or another --backbone") from None
    return module.to(device)
