"""Detectors from ``--detector`` values: spec parsing, the cache key, the ready detector.

A value is a ``train-detector`` checkpoint PATH, ``r50-fpn[:WEIGHTS]`` (torchvision's COCO Mask
R-CNN), ``oracle`` (the dataset's ground-truth instances), ``import:PATH`` (masks made by another
system, generic formats: ``cache.imports``) or ``import:<kind>:PATH`` with kind gsam2, deva, sam2
or sam3 (the files those systems write: ``cache.system_imports``). ``detector_key(spec, dataset)``
names its content (checkpoint hash, dataset fingerprint, imported files) without building
anything, so `detect` finds a cached result before loading a model; ``build_detector(spec, dataset)`` builds it. ``new_detector_model`` is the untrained model
`train-detector` starts from (pretrained bodies loaded), ``detector_model(path)`` a trained one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from clawcrane.build.device import resolve_device
from clawcrane.build.weights import efficientnet_file, load_coco_state_dict, load_state
from clawcrane.cache.checkpoints import KIND_DETECTOR, load_checkpoint
from clawcrane.errors import ConfigError, DataError, WeightsError
from clawcrane.fingerprint import file_fingerprint, hash_json
from clawcrane.pipeline.detectors import Detector, ImportDetector, OracleDetector
from clawcrane.pipeline.maskrcnn import (
    COCO_NUM_CLASSES,
    MaskRCNN,
    MaskRCNNDetector,
    build_model,
    current_spec,
    model_spec,
    state_fingerprint,
)

log = logging.getLogger(__name__)

ORACLE, R50_FPN, IMPORT, CHECKPOINT = "oracle", "r50-fpn", "import", "checkpoint"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``--detector`` value -> (kind, path): 'oracle', 'r50-fpn[:WEIGHTS]', 'import:PATH' or a checkpoint PATH."""
    spec = str(spec).strip()
    if spec == ORACLE:
        return ORACLE, None
    if spec == R50_FPN:
        return R50_FPN, None
    if spec.startswith(R50_FPN + ":"):
        return R50_FPN, spec[len(R50_FPN) + 1:]
    if spec.startswith(IMPORT + ":"):
        path = spec[len(IMPORT) + 1:]
        if not path:
            raise ConfigError("--detector import: needs a path, e.g. import:masks.json, import:masks_dir/ or "
                              "import:sam2:sam2_out/")
        return IMPORT, path
    if not spec:
        raise ConfigError("--detector is empty; pass a checkpoint, r50-fpn, oracle or import:PATH")
    return CHECKPOINT, spec


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise WeightsError(
            f"{p}: {what} not found; pass a checkpoint written by `clawcrane train-detector`, "
            "r50-fpn, oracle or import:PATH"
        )
    return p


def detector_key(spec: str, dataset) -> str:
    """The detector part of the candidate cache key, without building the model (cheap).

    Checkpoints and weight files are keyed by their full content hash (moving a file keeps its
    key); torchvision's default COCO weights by their published file name, which embeds their hash;
    the oracle by the dataset fingerprint; imports by the imported files' contents.
    """
    kind, path = parse_spec(spec)
    if kind == ORACLE:
        return OracleDetector.key_for(dataset.fingerprint)
    if kind == IMPORT:
        from clawcrane.cache.imports import import_fingerprint, split_import

        fmt, where = split_import(path)
        if fmt is None:
            return hash_json({"detector": "import", "version": 1, "files": import_fingerprint(where)})
        from clawcrane.cache.system_imports import system_fingerprint

        return hash_json({"detector": "import", "kind": fmt, "version": 1, "files": system_fingerprint(fmt, where)})
    if kind == R50_FPN:
        if path is None:
            from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

            weights = "torchvision:" + MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url.rsplit("/", 1)[-1]
        else:
            weights = file_fingerprint(_existing_file(path, "weights file"), full=True)
        return hash_json({"detector": "maskrcnn-r50-fpn", "version": 1, "weights": weights})
    ckpt = file_fingerprint(_existing_file(path, "checkpoint"), full=True)
    return hash_json({"detector": "maskrcnn-checkpoint", "version": 1, "weights": ckpt})


def new_detector_model(preset: str, *, num_classes: int, pretrained: bool = True,
                       weights: str | os.PathLike | None = None, **overrides: Any) -> MaskRCNN:
    """The model `train-detector` starts from: ``lite`` on the packaged ImageNet EfficientNet-Lite0,
    ``r50-fpn`` on the COCO weights at ``weights`` (or in the torch hub cache), ``lite-r18`` from scratch."""
    spec = model_spec(preset, num_classes=num_classes, **overrides)  # fail on bad settings before reading weights
    body_state = coco_state = None
    if pretrained and spec["body"] == "efficientnet-lite0":
        body_state = load_state(efficientnet_file(), "efficientnet-lite0")
    elif pretrained and preset == R50_FPN:
        coco_state = load_coco_state_dict(weights)
    return build_model(preset, num_classes=num_classes, body_state=body_state, coco_state=coco_state, **overrides)


def detector_from_payload(payload: Mapping[str, Any]) -> MaskRCNN:
    """Rebuild the model of a loaded detector checkpoint payload (no other file needed), eval mode."""
    spec = current_spec(payload["config"]["model"])
    model = build_model(spec.pop("preset"), num_classes=spec.pop("num_classes"), **spec)
    model.load_state_dict(payload["model"])
    return model.eval()


def detector_model(path: str | os.PathLike) -> MaskRCNN:
    """The torchvision MaskRCNN (eval mode, CPU) of a ``train-detector`` checkpoint.

    ``model.backbone`` maps a normalised (B, 3, H, W) batch to the FPN levels '0'..'3', 'pool'.
    """
    return detector_from_payload(load_checkpoint(path, KIND_DETECTOR))


def maskrcnn_from_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "auto", batch_size: int = 4,
                             score_threshold: float = 0.05) -> MaskRCNNDetector:
    """Our ``train-detector`` checkpoint (``last.pt`` or ``final.pt``) behind the ``Detector`` interface."""
    payload = load_checkpoint(path, KIND_DETECTOR)
    return MaskRCNNDetector(model=detector_from_payload(payload), spec=payload["config"]["model"],
                            weights_key=state_fingerprint(payload["model"]), class_ids=list(payload["class_ids"]),
                            device=resolve_device(device), batch_size=batch_size, score_threshold=score_threshold)


def maskrcnn_from_torchvision(weights_path: str | os.PathLike | None = None, *, device: str | torch.device = "auto",
                              batch_size: int = 2, score_threshold: float = 0.05) -> MaskRCNNDetector:
    """torchvision's COCO R50-FPN; class ids are COCO category ids (1..90)."""
    dev = resolve_device(device)
    model = new_detector_model(R50_FPN, num_classes=COCO_NUM_CLASSES, weights=weights_path)
    return MaskRCNNDetector(model=model, spec=model_spec(R50_FPN, num_classes=COCO_NUM_CLASSES),
                            weights_key=state_fingerprint(model.state_dict()), device=dev, batch_size=batch_size,
                            score_threshold=score_threshold)


def frame_stems(dataset) -> dict[str, dict[str, int]]:
    """video id -> {frame image stem: frame index} of the videos stored as frame folders (not mp4s)."""
    out = {}
    for vid, video in dataset.videos.items():
        files = getattr(video.source, "files", None)
        if files:
            out[vid] = {Path(f).stem: i for i, f in enumerate(files)}
    return out


def open_mask_source(value: str, dataset):
    """The parsed import of ``import:VALUE`` for ``dataset`` (generic format or a system's own files).

    Warns when imported frame numbers run past a video's last frame (frames are 0-based indices;
    1-based names leave the last frame out and shift every mask by one).
    """
    from clawcrane.cache.imports import open_import, split_import

    fmt, where = split_import(value)
    if fmt is None:
        src = open_import(where, video_ids=list(dataset.videos))
    else:
        from clawcrane.cache.system_imports import open_system_import

        src = open_system_import(fmt, where, video_ids=list(dataset.videos), frame_stems=frame_stems(dataset))
    imported = set(src.video_ids())
    covered, lacking = [], []
    for vid, video in dataset.videos.items():
        frames = src.frames(vid) if vid in imported else frozenset()
        if frames and max(frames) >= video.num_frames:
            log.warning("%s: %s has masks for frames up to %d but %d frames (0..%d); frames past the end are ignored "
                        "(name frames by their 0-based index)", where, vid, max(frames), video.num_frames, video.num_frames - 1)
        (covered if any(f < video.num_frames for f in frames) else lacking).append(vid)
    if dataset.videos and not covered:
        raise DataError(f"{where}: no imported mask falls on a frame of the dataset's {len(dataset.videos)} videos "
                        f"(e.g. {lacking[0]}: frames 0..{dataset.videos[lacking[0]].num_frames - 1}); name each "
                        f"video's output by its video id and each frame by its 0-based index")
    if lacking:
        log.warning("%s: %d of %d videos have no imported mask on any of their frames (e.g. %s); they get no candidates "
                    "and their queries no answer", where, len(lacking), len(dataset.videos), ", ".join(lacking[:3]))
    return src


def build_detector(spec: str, dataset, *, device: str = "auto", batch_size: int = 4) -> Detector:
    """The detector a ``--detector`` value names, ready to run (loads weights or imported masks).

    ``batch_size``: frames per model forward (the stage hands over batches of this size).
    """
    kind, path = parse_spec(spec)
    if kind == ORACLE:
        return OracleDetector.from_dataset(dataset)
    sizes = {v: (video.height, video.width) for v, video in dataset.videos.items()}
    if kind == IMPORT:
        return ImportDetector(open_mask_source(path, dataset), sizes)
    if kind == R50_FPN:
        return maskrcnn_from_torchvision(path, device=device, batch_size=batch_size)
    return maskrcnn_from_checkpoint(_existing_file(path, "checkpoint"), device=device, batch_size=batch_size)
