"""One frozen dataclass per stage; every field documented (the docstring under it).

The CLI builds these, stages consume them, artifacts store ``asdict(config)``. Fields that do not
change a stage's output (batch size, workers, device, shard) are listed in the class attribute
``RUNTIME_FIELDS`` and stay out of cache keys (``output_config``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


def to_dict(config: Any) -> dict[str, Any]:
    """Plain dict of a config dataclass (JSON-serialisable)."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config from its dict, ignoring unknown keys (forward compatible)."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return cls(**kwargs)


def output_config(config: Any) -> dict[str, Any]:
    """The fields that affect a stage's output: everything but ``RUNTIME_FIELDS``."""
    runtime = set(getattr(config, "RUNTIME_FIELDS", ()))
    return {k: v for k, v in to_dict(config).items() if k not in runtime}


@dataclass(frozen=True)
class SynthConfig:
    """`clawcrane data synth`: the synthetic referring-video benchmark (A2D-Sentences layout)."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("workers", "preview")

    preset: str = "tiny"
    """'tiny' (8 videos of 16 frames, for tests: every query type in both splits), 'small' (the
    quickstart: 120 videos, about 500 queries), 'full' (720 videos, >= 2,000 train and >= 500 test queries)."""
    seed: int = 0
    """Random seed; the same seed and preset give byte-identical annotations."""
    workers: int = 1
    """Parallel processes for rendering (runtime only)."""
    preview: bool = False
    """Also write OUT/preview.png: a contact sheet of frames, outlined masks and sentences (runtime only)."""

# Stage configs below (one per stage). Keep each with its docstrings; append new ones at the end.


@dataclass(frozen=True)
class EvalConfig:
    """`clawcrane evaluate`: score a predictions file against a dataset's ground truth."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ()

    split: str = "test"
    """Which samples to score: 'test', 'train', or 'all'."""
    j_and_f: str = "auto"
    """J&F (DAVIS-2017): 'auto' (when every query of the split has masks on all its video's frames), 'on', 'off'."""


@dataclass(frozen=True)
class ExportConfig:
    """`clawcrane export`: predictions -> COCO-RLE JSON, per-frame PNGs, or the Ref-YouTube-VOS layout."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ()

    format: str = "coco-rle"
    """'coco-rle' (one JSON list of RLE masks), 'png' (one 0/255 PNG per query and frame), or 'ytvos'
    (the Ref-YouTube-VOS submission folder ``Annotations/<video>/<exp_id>/<frame>.png``)."""
    top_k: int = 1
    """coco-rle: masks of rank < top_k per (query, frame) (1: the answer only); png and ytvos need 1."""


@dataclass(frozen=True)
class DoctorConfig:
    """`clawcrane doctor`: check a dataset folder, count its samples, list every problem."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("quick", "strict")

    split: str | None = None
    """Check one split only ('train', 'test', a Ref-YouTube-VOS split); None checks all."""
    quick: bool = False
    """Skip the slow checks: decoding every clip end to end and reading every mask."""
    strict: bool = False
    """Count warnings (e.g. an annotated instance without a sentence) as failures too."""


@dataclass(frozen=True)
class TrainDetectorConfig:
    """`clawcrane train-detector`: train the Mask R-CNN candidate proposer on every annotated instance."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = (
        "dataset", "out", "device", "resume", "eval_batch_size", "checkpoint_minutes",
    )

    dataset: str = ""
    """Dataset folder (any layout ``open_dataset`` reads); trains on its 'train' split, scores on 'test'."""
    out: str = ""
    """Output folder: last.pt (resumable state), final.pt (the trained detector), metrics.json."""
    preset: str = "lite"
    """'lite' (ResNet-18 FPN, 320 px, from scratch, CPU minutes) or 'r50-fpn' (COCO-initialised R50-FPN)."""
    epochs: int = 60
    """Passes over the training frames; the learning-rate schedule ends with them."""
    max_minutes: float = 0.0
    """Training-time budget in minutes (0: none); the schedule is compressed to end within it."""
    batch_size: int = 4
    """Frames per optimisation step."""
    lr: float = 0.02
    """Peak SGD learning rate (momentum 0.9), reached after the warm-up, then cosine decay to 0."""
    weight_decay: float = 1e-4
    """L2 weight decay of the convolution and linear weights."""
    warmup_steps: int = 100
    """Steps of linear learning-rate warm-up from lr / 100."""
    hflip: bool = True
    """Random horizontal flips."""
    scale_min: float = 0.75
    """Smallest scale-jitter factor (< 1 zooms out, padding with grey)."""
    scale_max: float = 1.25
    """Largest scale-jitter factor (> 1 zooms in, cropping a random window)."""
    color_jitter: float = 0.2
    """Brightness, contrast and saturation factors drawn in [1 - c, 1 + c]."""
    min_size: int = 0
    """Shorter input side in pixels (0: the preset's, lite 320, r50-fpn 800)."""
    max_size: int = 0
    """Longer input side cap in pixels (0: the preset's, lite 320, r50-fpn 1333)."""
    anchor_sizes: tuple[int, ...] = ()
    """Five RPN anchor sizes, one per pyramid level (empty: the preset's, lite 16..256)."""
    classes: str = "auto"
    """Labels to learn: 'dataset' (the class ids as they are), 'actor' (A2D-style id // 10: the actor
    without the action, which one frame rarely shows), 'agnostic' (one 'object' class), or 'auto'
    (actor for the A2D and synthetic layouts, dataset otherwise)."""
    weights: str = ""
    """r50-fpn: the COCO weights file (default: torch hub cache); lite ignores it."""
    seed: int = 0
    """Seed of the initialisation, the shuffles and the augmentations."""
    device: str = "cpu"
    """'cpu', 'cuda' or 'auto' (runtime only)."""
    resume: bool = False
    """Continue from OUT/last.pt (runtime only)."""
    eval_batch_size: int = 4
    """Frames per inference batch in the final evaluation (runtime only)."""
    checkpoint_minutes: float = 2.0
    """Also write last.pt this often within an epoch (runtime only)."""
