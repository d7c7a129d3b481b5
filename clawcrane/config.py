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
    quickstart: 120 videos, about 450 queries), 'full' (800 videos, about 2,450 train and 600 test queries)."""
    seed: int = 0
    """Random seed; the same seed and preset give byte-identical annotations."""
    workers: int = 1
    """Parallel processes for rendering (runtime only)."""
    preview: bool = False
    """Also write OUT/preview.png: a contact sheet of frames, outlined masks and sentences (runtime only)."""

# Stage configs below (one per stage). Keep each with its docstrings; append new ones at the end.
