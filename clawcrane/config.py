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

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("workers",)

    preset: str = "tiny"
    """'tiny' (a few videos, for tests), 'small' (quickstart, a few hundred queries), 'full'."""
    seed: int = 0
    """Random seed; the same seed and preset give byte-identical annotations."""
    workers: int = 1
    """Parallel processes for rendering (runtime only)."""

# Stage configs below (one per stage). Keep each with its docstrings; append new ones at the end.


@dataclass(frozen=True)
class DetectConfig:
    """`clawcrane detect`: candidate masks of every frame -> candidate cache (stage 'detect').

    The detector enters the cache key through its content fingerprint (checkpoint hash, dataset
    fingerprint for the oracle, imported files' hash), not through the ``detector`` text, so moving
    a checkpoint file keeps its cache; ``detector`` is therefore listed with the runtime fields.
    """

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("detector", "batch_size", "device", "shard", "workers", "skip_bad")

    detector: str
    """A detector checkpoint PATH (`train-detector`), 'r50-fpn[:WEIGHTS]' (torchvision COCO Mask R-CNN),
    'oracle' (ground-truth instances of annotated frames) or 'import:PATH' (masks from another system)."""
    frame_stride: int = 1
    """Run on every S-th frame (0, S, 2S, ...) plus every annotated frame, so evaluation frames always have candidates."""
    score_threshold: float = 0.3
    """Keep candidates with score >= this."""
    max_per_frame: int = 20
    """Keep at most this many candidates per frame (highest scores first)."""
    dedup_iou: float = 0.7
    """Drop a candidate whose mask IoU with a higher-scored kept one exceeds this (mask NMS; 1.0 keeps all)."""
    batch_size: int = 4
    """Frames per detector call (runtime only; batches never mix videos)."""
    device: str = "auto"
    """Torch device of the detector: 'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1' (runtime only)."""
    shard: tuple[int, int] = (0, 1)
    """(I, N): this process handles the videos with sorted-index % N == I (runtime only)."""
    workers: int = 1
    """Threads decoding videos ahead of the detector (runtime only)."""
    skip_bad: bool = False
    """Record unreadable or truncated videos as bad and go on, instead of stopping (runtime only)."""
