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
class TrainHeadConfig:
    """`clawcrane train-head`: language encoder + object MLP + PRM + TSRM, contrastive loss (paper §3, §4.2).

    The head trains from the caches alone (features, positions, candidate masks) plus the
    dataset's annotations; it never decodes a frame.
    """

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("device",)

    position: str = "full"
    """PRM input (Table 3): none, absolute (the 8 box numbers of p_i), relative (r_x, r_y) or full (all 10)."""
    relation: str = "text"
    """Intra-frame relation (Table 3): none, vanilla (object self-attention) or text (TSRM)."""
    text_encoder: str = "lstm"
    """lstm (paper: learned word vectors + bi-LSTM) or minilm (frozen all-MiniLM-L6-v2 token states, cached)."""
    embed_dim: int = 256
    """D: width of the joint embedding space (256 in the paper's appendix)."""
    word_dim: int = 1000
    """E: word-vector width of the LSTM encoder (paper: 1000)."""
    lstm_hidden: int = 1000
    """bi-LSTM hidden units per direction (paper: 2000-d states = 1000 per direction)."""
    max_words: int = 20
    """Words kept per sentence (paper: 20)."""
    epochs: int = 20
    """Training epochs (the paper does not state a number)."""
    batch_size: int = 16
    """Samples (query, annotated frame) per step (paper: 16)."""
    lr: float = 1e-4
    """Adam learning rate (paper: 1e-4)."""
    lr_patience: int = 2
    """ReduceLROnPlateau: epochs without a lower training loss before the rate drops (paper: 2)."""
    lr_factor: float = 0.1
    """ReduceLROnPlateau: factor of each drop (paper: 10x)."""
    tau: float = 0.1
    """Temperature of the contrastive softmax (Eq. 8; paper: 0.1)."""
    min_iou: float = 0.5
    """A sample's referred candidate is its best-IoU candidate when that IoU reaches this; else the sample is left out."""
    seed: int = 0
    """Seed of initialisation, shuffling and flips; a fixed seed on CPU gives identical runs."""
    flip: bool = True
    """Horizontal-flip augmentation (p = 0.5; mirrored features/positions, 'left' <-> 'right'); needs `extract --with-flip`."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N' (runtime only)."""
