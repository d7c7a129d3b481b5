"""One frozen dataclass per stage; every field documented (the docstring under it).

The CLI builds these (its options take their defaults, help and choices from the fields:
``field_docs``, ``CHOICES``), stages consume them, artifacts store ``asdict(config)``. Fields that
do not change a stage's output (batch size, workers, device, shard) are listed in the class
attribute ``RUNTIME_FIELDS`` and stay out of cache keys (``output_config``). Every option has
this one source: a default or a help text is never typed a second time elsewhere.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import shlex
import textwrap
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from clawcrane.errors import ConfigError

T = TypeVar("T")

CHOICES = "choices"
"""Field metadata key: the values a field accepts (the CLI offers them, the config checks them)."""
RANGE = "range"
"""Field metadata key: (lo, hi, lo_open, hi_open) bounds of a number (the CLI's IntRange/FloatRange, the config's check)."""
SEED_MAX = 2**63 - 1
"""Largest seed torch accepts."""


def limits(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Any:
    """A numeric field with bounds (None: unbounded); the config refuses values outside, and NaN."""
    return field(default=default, metadata={RANGE: (lo, hi, lo_open, hi_open)})


def to_dict(config: Any) -> dict[str, Any]:
    """Plain dict of a config dataclass (JSON-serialisable; nested configs become nested dicts)."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config from its dict, ignoring unknown keys (forward compatible); nested configs too."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        v = data[f.name]
        sub = _nested_config(f)
        if sub is not None and isinstance(v, dict):
            v = from_dict(sub, v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def _nested_config(f: dataclasses.Field) -> type | None:
    """The config class of a field holding a nested config (``TrainHeadConfig.head``), else None."""
    if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
        return f.default_factory
    return None


def output_config(config: Any) -> dict[str, Any]:
    """The fields that affect a stage's output: everything but ``RUNTIME_FIELDS``."""
    runtime = set(getattr(config, "RUNTIME_FIELDS", ()))
    return {k: v for k, v in to_dict(config).items() if k not in runtime}


def key_config(config: Any) -> dict[str, Any]:
    """``output_config`` as an artifact key hashes it: ``LATE_FIELDS`` (output fields added after artifacts
    were keyed) are left out while at their default, so the keys of those artifacts still hold."""
    out = output_config(config)
    fields = {f.name: f for f in dataclasses.fields(config)}
    for name in getattr(config, "LATE_FIELDS", ()):
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if out.get(name) == default:
            out.pop(name, None)
    return out


def option_flags(config: Any, names: tuple[str, ...] | list[str] | None = None) -> str:
    """The command-line options that give ``config``'s fields ``names`` (default: its output fields) their values.

    Only fields that differ from their default are written (``--frame-stride 2``, ``--with-flip``,
    ``--no-trm``, ``--levels C4,C5``), so the text is the shortest command that makes the same
    artifact; error messages use it to name the command that completes or rebuilds one.
    """
    names = list(output_config(config)) if names is None else list(names)
    fields = {f.name: f for f in dataclasses.fields(config)}
    out = []
    for name in names:
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = getattr(config, name)
        if value == default or dataclasses.is_dataclass(value):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, (tuple, list)):
            out.append(f"{flag} {shlex.quote(','.join(map(str, value)))}")
        elif value is None:
            continue
        else:
            out.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(out)


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict with dotted keys ('head.relation'), for comparing two configs field by field."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a config class (read from its source), whitespace-collapsed."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def check_fields(config: Any) -> None:
    """ConfigError naming the option when a field holds a value outside its ``CHOICES`` or ``RANGE``, or NaN."""
    for f in dataclasses.fields(config):
        value, flag = getattr(config, f.name), "--" + f.name.replace("_", "-")
        allowed = f.metadata.get(CHOICES)
        if allowed is not None and value not in allowed:
            raise ConfigError(f"{flag} {value!r}: unknown; choose one of {', '.join(map(str, allowed))}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag} {value}: must be a finite number")
        bounds = f.metadata.get(RANGE)
        if bounds is None or value is None:
            continue
        lo, hi, lo_open, hi_open = bounds
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise ConfigError(f"{flag} {value}: must be {'>' if lo_open else '>='} {lo}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise ConfigError(f"{flag} {value}: must be {'<' if hi_open else '<='} {hi}")


POSITIONS = ("none", "absolute", "relative", "full")
"""PRM inputs (Table 3): which entries of p_i feed W_p."""
RELATIONS = ("none", "vanilla", "text", "text-linear", "text-geo")
"""Intra-frame relation modules (Table 3; text-geo is not in the paper)."""
TEXT_RELATIONS = ("text", "text-linear", "text-geo")
"""The relation modules that read the sentence (Eq. 5's f_t)."""
TEXT_ENCODERS = ("lstm", "minilm")
MINILM_DIM = 384
"""Width S of the frozen MiniLM token states."""
SYNTH_PRESETS = ("tiny", "small", "full", "hard-tiny", "hard", "hard-full")
"""Names of the synthetic benchmark presets (their sizes live in ``datasets.synth``)."""
DETECTOR_PRESETS = ("lite", "lite-r18", "r50-fpn")
"""Mask R-CNN presets of `train-detector` (their settings live in ``pipeline.maskrcnn``)."""
SPLITS = ("test", "train", "val", "all")
"""What `track-rank`, `evaluate` and `ablate` can score; 'val' = the validation videos a head was selected on."""
TRM_SCORE_MODES = ("mean", "max", "sum")
TRM_FALLBACKS = ("best", "empty")
TRM_TRACKS = ("trm", "imported")
HEAD_SIZES = {"paper": (256, 1000, 1000), "small": (128, 128, 128)}
"""--size presets of a head: (embed_dim D, word_dim E, lstm_hidden per direction); 'paper' is the paper's width."""


@dataclass(frozen=True)
class SynthConfig:
    """`clawcrane data synth`: the synthetic referring-video benchmark (A2D-Sentences layout)."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("workers", "preview")

    def __post_init__(self):
        check_fields(self)

    preset: str = field(default="small", metadata={CHOICES: SYNTH_PRESETS})
    """Every preset adds one unannotated video (listed as missed). 'tiny' (8 videos of 16 frames, for tests:
    every query type in both splits), 'small' (the
    quickstart: 120 videos, about 450 queries), 'full' (800 videos, about 2,450 train and 600 test queries);
    the hard world (no trails, 8 directions and speed comparisons, a sixth query type 'size', occlusion,
    lighting drift, close shades, synonyms and templates, a test-only paraphrase split):
    'hard-tiny' (8 videos of 16 frames, for tests), 'hard' (120 videos of 24 frames), 'hard-full' (800 videos)."""
    seed: int = limits(0, 0, SEED_MAX)
    """Random seed; the same seed and preset give byte-identical annotations."""
    workers: int = limits(1, 1, None)
    """Parallel processes for rendering (runtime only)."""
    preview: bool = False
    """Also write OUT/preview.png: a contact sheet of frames, outlined masks and sentences (runtime only)."""

# Stage configs below (one per stage). Keep each with its docstrings; append new ones at the end.


@dataclass(frozen=True)
class EvalConfig:
    """`clawcrane evaluate`: score a predictions file against a dataset's ground truth."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        check_fields(self)

    split: str = field(default="test", metadata={CHOICES: SPLITS})
    """Which samples to score: 'test', 'train', 'all', or 'val' (the head's validation videos, recorded in
    predictions made with `track-rank --split val`)."""
    j_and_f: str = field(default="auto", metadata={CHOICES: ("auto", "on", "off")})
    """J&F (DAVIS-2017): 'auto' (when every query of the split has masks on all its video's frames), 'on', 'off'."""


@dataclass(frozen=True)
class ExportConfig:
    """`clawcrane export`: predictions -> COCO-RLE JSON, per-frame PNGs, or the Ref-YouTube-VOS layout."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("force",)

    def __post_init__(self):
        check_fields(self)

    format: str = field(default="coco-rle", metadata={CHOICES: ("coco-rle", "png", "ytvos")})
    """'coco-rle' (one JSON list of RLE masks), 'png' (one 0/255 PNG per query and frame), or 'ytvos'
    (the Ref-YouTube-VOS submission folder ``Annotations/<video>/<exp_id>/<frame>.png``)."""
    top_k: int = limits(1, 1, None)
    """coco-rle: masks of rank < top_k per (query, frame) (1: the answer only); png and ytvos need 1."""
    force: bool = False
    """Replace the --out folder even when it holds files export did not write (they are deleted with it) (runtime only)."""


@dataclass(frozen=True)
class ReportConfig:
    """`clawcrane report`: one static HTML page of a predictions file's results (metrics, curves, gallery)."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("force",)

    def __post_init__(self):
        check_fields(self)

    split: str = field(default="test", metadata={CHOICES: SPLITS})
    """Which samples the page scores, as `evaluate --split`: 'test', 'train', 'all', or 'val' (the head's validation
    videos, recorded in predictions made with `track-rank --split val`)."""
    j_and_f: str = field(default="auto", metadata={CHOICES: ("auto", "on", "off")})
    """J&F (DAVIS-2017) in the metrics table: 'auto' (when every query has masks on all its video's frames), 'on', 'off'."""
    gallery: int = limits(6, 0, 100)
    """Samples in each half of the gallery: the N worst and the N best by IoU of the chosen mask (0: no gallery)."""
    thumb_width: int = limits(320, 64, 1920)
    """Width in pixels of a gallery image (frames are drawn at their size, then scaled down, never up)."""
    force: bool = False
    """Replace the --out folder even when it holds files report did not write (they are deleted with it) (runtime only)."""


@dataclass(frozen=True)
class DoctorConfig:
    """`clawcrane doctor`: check a dataset folder, count its samples, list every problem."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("quick", "strict", "verbose")

    def __post_init__(self):
        check_fields(self)

    split: str | None = None
    """Check one split only ('train', 'test', a Ref-YouTube-VOS split); unset: all of them."""
    quick: bool = False
    """Skip the slow checks: decoding every clip end to end and reading every mask."""
    strict: bool = False
    """Count warnings (e.g. an annotated instance without a sentence) as failures too."""
    verbose: bool = False
    """List every warning on its own line, also the common ones (annotated instances without a sentence) that are
    otherwise counted in one line."""


@dataclass(frozen=True)
class ExtractConfig:
    """`clawcrane extract`: mask-pooled CNN features (Eq. 2 without the MLP) and positions p_i."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = (
        "cache", "candidates", "dataset", "skip_bad", "batch_size", "workers", "device", "shard", "num_shards",
    )

    def __post_init__(self):
        check_fields(self)

    backbone: str = "auto"
    """'auto' (resnet50 when its ImageNet file is in the torch hub cache, else efficientnet-lite0),
    'resnet18', 'resnet34', 'resnet50', 'resnet101', 'efficientnet-lite0', or 'detector:PATH' (the
    trained detector's FPN). Artifacts record the resolved name."""
    weights: str = "imagenet"
    """'imagenet' (a local torchvision file / the packaged EfficientNet weights), 'none' (seeded
    random initialisation) or a state-dict file path; ignored for 'detector:PATH'."""
    weights_id: str = ""
    """Fingerprint of the weights file content; filled in by the stage (part of the cache key)."""
    levels: tuple[str, ...] = ()
    """Feature levels pooled and concatenated; empty = the backbone's default (ResNet 'C5' = layer4,
    EfficientNet 'C3,C4,C5,head', detector 'fpn' = every FPN level but 'pool'); artifacts record the levels used."""
    input_size: int = limits(320, 32, None)
    """Frames are resized to input_size x input_size before the backbone (the paper uses 320)."""
    mask_threshold: float = limits(0.5, 0, 1, lo_open=True)
    """A feature cell belongs to a candidate when its mask covers at least this fraction of the cell
    (or, for masks too small for that, the cells it covers most)."""
    dtype: str = field(default="float16", metadata={CHOICES: ("float16", "float32")})
    """Storage dtype of the pooled features: 'float16' (half the size) or 'float32'."""
    with_flip: bool = False
    """Also store feat_flip / pos_flip: features and positions of the horizontally mirrored frame."""
    cache: str = ""
    """Cache root: where the candidate artifact is read (unless ``candidates``) and extract-<key> written."""
    candidates: str = ""
    """Candidate artifact folder (or a root holding one); default: the one under ``cache``."""
    dataset: str = ""
    """Dataset folder; default: the root recorded in the candidate cache's meta."""
    skip_bad: bool = False
    """Store a video whose frames cannot be decoded as 'bad' (and go on) instead of stopping."""
    batch_size: int = limits(0, 0, None)
    """Frames per backbone forward; 0: 2 on CPU (small batches stay in cache: ~1.6x faster than 16 on
    EfficientNet-Lite0), 16 on CUDA (runtime only)."""
    workers: int = limits(2, 1, None)
    """Threads decoding videos and preparing masks while the backbone runs (runtime only)."""
    device: str = "auto"
    """'auto' (cuda when available), 'cpu', 'cuda', 'cuda:N' (runtime only)."""
    shard: int = limits(0, 0, None)
    """This run's shard, 0-based, of ``num_shards`` (videos shard[::num_shards]) (runtime only)."""
    num_shards: int = limits(1, 1, None)
    """Number of shards the videos are split into (runtime only)."""


@dataclass(frozen=True)
class DetectConfig:
    """`clawcrane detect`: candidate masks of every frame -> candidate cache (stage 'detect').

    The detector enters the cache key through its content fingerprint (checkpoint hash, dataset
    fingerprint for the oracle, imported files' hash), not through the ``detector`` text, so moving
    a checkpoint file keeps its cache; ``detector`` is therefore listed with the runtime fields.
    """

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("detector", "batch_size", "device", "shard", "num_shards", "workers",
                                                 "skip_bad")
    LATE_FIELDS: ClassVar[tuple[str, ...]] = ("refine_masks",)

    def __post_init__(self):
        check_fields(self)

    detector: str
    """A detector checkpoint PATH (`train-detector`), 'r50-fpn[:WEIGHTS]' (torchvision COCO Mask R-CNN),
    'oracle' (ground-truth instances of annotated frames), 'import:PATH' (masks from another system: COCO-RLE
    JSON, id PNGs, .npy id maps) or 'import:KIND:PATH' (the files gsam2, deva, sam2 or sam3 write)."""
    frame_stride: int = limits(1, 1, None)
    """Run on every S-th frame (0, S, 2S, ...) plus every annotated frame, so evaluation frames always have candidates."""
    train_frames: str = field(default="all", metadata={CHOICES: ("all", "annotated")})
    """'all': the frames of ``frame_stride`` in every video; 'annotated': in 'train' videos only the annotated
    frames (all that `train-head` reads; the TRM runs on the other splits), a large saving on A2D-like data."""
    score_threshold: float = limits(0.3, 0, 1)
    """Keep candidates with score >= this."""
    max_per_frame: int = limits(20, 1, None)
    """Keep at most this many candidates per frame (highest scores first)."""
    dedup_iou: float = limits(0.7, 0, 1)
    """Drop a candidate whose mask IoU with a higher-scored kept one exceeds this (mask NMS; 1.0 keeps all)."""
    refine_masks: str = field(default="none", metadata={CHOICES: ("none", "grabcut")})
    """'grabcut': re-decide each kept candidate's outline within 2 pixels from the frame's colours (OpenCV
    GrabCut on a crop around the mask; a detector's masks only, never ground truth or imports); 'none': as
    the detector pasted them."""
    batch_size: int = limits(4, 1, None)
    """Frames per detector call (runtime only; batches never mix videos)."""
    device: str = "auto"
    """Torch device of the detector: 'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1' (runtime only)."""
    shard: int = limits(0, 0, None)
    """This run's shard, 0-based, of ``num_shards``: the videos at sorted positions i with i % N == shard (runtime only)."""
    num_shards: int = limits(1, 1, None)
    """Number of shards the videos are split into (runtime only)."""
    workers: int = limits(1, 1, None)
    """Threads decoding videos ahead of the detector (runtime only)."""
    skip_bad: bool = False
    """Record unreadable or truncated videos as bad and go on, instead of stopping (runtime only)."""


def default_score_threshold(detector: str) -> float:
    """`detect`'s score threshold when none is given: ``DetectConfig.score_threshold`` for a detector, 0 for an
    import (another system chose its masks on its own score scale: keep them all)."""
    return 0.0 if str(detector).strip().startswith("import:") else DetectConfig.score_threshold


@dataclass(frozen=True)
class HeadConfig:
    """The architecture of a retrieval head: what `train-head` builds and a checkpoint rebuilds.

    A new head option is a field here (with its docstring and, for a choice, its ``CHOICES``):
    `train-head` offers it as ``--<name>`` and the checkpoint stores it; the module that uses it
    reads it from the config.
    """

    position: str = field(default="full", metadata={CHOICES: POSITIONS})
    """PRM input (Table 3): none, absolute (the 8 box numbers of p_i), relative (r_x, r_y) or full (all 10)."""
    relation: str = field(default="text-geo", metadata={CHOICES: RELATIONS})
    """Intra-frame relation (Table 3): none, vanilla (object self-attention), text (the paper's TSRM,
    Eq. 5-6, with a nonlinear fusion f_o = ReLU(LayerNorm(W_o [f_V; f_t])) so the sentence steers the
    attention), text-linear (Eq. 5 read literally: a linear W_o, whose sentence term softmax cancels) or text-geo (TSRM + text-guided relative geometry; not in the paper, see
    the README's Results; the default because it lifts relation sentences there)."""
    ranks: bool = True
    """Text-guided ranks (not in the paper): where each candidate stands along x, y, size (and speed
    with motion) among the candidates that look like it, as the sentence defines "alike", for "the
    leftmost star" and "the second square from the right"; a rank term joins the score
    (``pipeline.ranks``)."""
    motion: bool = True
    """Motion from tracks (not in the paper): the video's candidates are linked without the sentence,
    each gets its track's velocity, direction and speed, and a text-conditioned motion term joins the
    score (``pipeline.motion``); needs at least two detected frames per video."""
    text_encoder: str = field(default="lstm", metadata={CHOICES: TEXT_ENCODERS})
    """lstm (paper: learned word vectors + bi-LSTM) or minilm (frozen all-MiniLM-L6-v2 token states,
    `pip install 'clawcrane[minilm]'`, computed once per sentence and cached in the cache root)."""
    embed_dim: int = limits(256, 1, None)
    """D: width of the joint embedding space (256 in the paper's appendix)."""
    word_dim: int = limits(1000, 1, None)
    """E: word-vector width of the LSTM encoder (paper: 1000)."""
    lstm_hidden: int = limits(1000, 1, None)
    """bi-LSTM hidden units per direction (paper: 2000-d states = 1000 per direction)."""
    max_words: int = limits(20, 1, None)
    """Words kept per sentence (paper: 20)."""
    dropout: float = limits(0.2, 0, 1, hi_open=True)
    """Dropout on the pooled features and the word vectors while training (0: none, as in the paper). With
    0.2 (and weight decay 0.01) appearance accuracy on the synthetic `small` preset rose from 0.85-0.96 to
    0.92-0.99 across the Table 3 rows: without it the head overfits a few hundred sentences."""
    text_dim: int = limits(MINILM_DIM, 1, None)
    """S of cached token states (minilm only); set by train-head from the encoder, not an option."""

    def __post_init__(self):
        check_fields(self)


HEAD_OPTION_EXCLUDE = ("text_dim",)
"""HeadConfig fields that are not command-line options (derived from the data)."""


@dataclass(frozen=True)
class TrainHeadConfig:
    """`clawcrane train-head`: language encoder + object MLP + PRM + TSRM, contrastive loss (paper §3, §4.2).

    The head trains from the caches alone (features, positions, candidate masks) plus the
    dataset's annotations; it never decodes a frame.
    """

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("device",)

    head: HeadConfig = field(default_factory=HeadConfig)
    """The architecture (its own fields are the options position, relation, embed-dim, ...)."""
    epochs: int = limits(20, 1, None)
    """Training epochs (the paper does not state a number)."""
    batch_size: int = limits(16, 1, None)
    """Samples (query, annotated frame) per step (paper: 16)."""
    lr: float = limits(1e-4, 0, None, lo_open=True)
    """Adam learning rate (paper: 1e-4); divided by lr_factor after lr_patience epochs without a lower training loss."""
    weight_decay: float = limits(0.01, 0, None)
    """Decoupled weight decay (AdamW) on every weight; 0 (with dropout 0) is the paper's plain Adam."""
    lr_patience: int = limits(2, 0, None)
    """ReduceLROnPlateau: epochs without a lower training loss before the rate drops (paper: 2)."""
    lr_factor: float = limits(0.1, 0, 1, lo_open=True)
    """ReduceLROnPlateau: factor of each drop (paper: 10x)."""
    tau: float = limits(0.1, 0, None, lo_open=True)
    """Temperature of the contrastive softmax (Eq. 8; paper: 0.1)."""
    min_iou: float = limits(0.5, 0, 1)
    """A sample's referred candidate is its best-IoU candidate when that IoU reaches this; else the sample is left out."""
    seed: int = limits(0, 0, SEED_MAX)
    """Seed of initialisation, shuffling and flips; a fixed seed on CPU gives identical runs."""
    val_fraction: float = limits(0.1, 0, 1, hi_open=True)
    """Share of the train videos held out (picked by a hash of the video id) to select best.pt; the test
    split is never read. A dataset with its own val split uses it instead. 0: no validation (best.pt
    follows the training loss)."""
    flip: bool = True
    """Horizontal-flip augmentation (p = 0.5; mirrored features/positions, 'left' <-> 'right'); needs `extract --with-flip`."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N' (runtime only)."""

    def __post_init__(self):
        if isinstance(self.head, dict):  # a stored config read back as JSON
            object.__setattr__(self, "head", from_dict(HeadConfig, self.head))
        check_fields(self)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction {self.val_fraction}: must be in [0, 1) (0: no validation)")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"--epochs {self.epochs} / --batch-size {self.batch_size}: both must be at least 1")


@dataclass(frozen=True)
class TrainDetectorConfig:
    """`clawcrane train-detector`: train the Mask R-CNN candidate proposer on every annotated instance."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = (
        "dataset", "out", "device", "resume", "eval_batch_size", "checkpoint_minutes",
    )

    def __post_init__(self):
        check_fields(self)

    dataset: str = ""
    """Dataset folder (any layout ``open_dataset`` reads); trains on its 'train' split, scores on 'test'."""
    out: str = ""
    """Output folder: last.pt (resumable state), final.pt (the trained detector), metrics.json."""
    preset: str = field(default="lite", metadata={CHOICES: DETECTOR_PRESETS})
    """'lite' (ImageNet EfficientNet-Lite0 FPN, 320 px, CPU minutes), 'lite-r18' (ResNet-18 FPN from scratch)
    or 'r50-fpn' (COCO-initialised R50-FPN)."""
    epochs: int = limits(60, 1, None)
    """Passes over the training frames; the learning-rate schedule ends with them."""
    max_minutes: float = limits(0.0, 0, None)
    """Training-time budget in minutes (0: none); the schedule is compressed to end within it."""
    batch_size: int = limits(4, 1, None)
    """Frames per optimisation step."""
    lr: float = limits(0.02, 0, None, lo_open=True)
    """Peak SGD learning rate (momentum 0.9), reached after the warm-up, then cosine decay to 0."""
    weight_decay: float = limits(1e-4, 0, None)
    """L2 weight decay of the convolution and linear weights."""
    warmup_steps: int = limits(100, 0, None)
    """Steps of linear learning-rate warm-up from lr / 100."""
    hflip: bool = True
    """Random horizontal flips."""
    scale_min: float = limits(0.75, 0, None, lo_open=True)
    """Smallest scale-jitter factor (< 1 zooms out, padding with grey)."""
    scale_max: float = limits(1.25, 0, None, lo_open=True)
    """Largest scale-jitter factor (> 1 zooms in, cropping a random window)."""
    color_jitter: float = limits(0.2, 0, 1, hi_open=True)
    """Brightness, contrast and saturation factors drawn in [1 - c, 1 + c]."""
    min_size: int = limits(0, 0, None)
    """Shorter input side in pixels (0: the preset's, lite 320, r50-fpn 800)."""
    max_size: int = limits(0, 0, None)
    """Longer input side cap in pixels (0: the preset's, lite 320, r50-fpn 1333)."""
    anchor_sizes: tuple[int, ...] = ()
    """Five RPN anchor sizes, one per pyramid level (empty: the preset's, lite 16..256)."""
    classes: str = field(default="auto", metadata={CHOICES: ("auto", "dataset", "actor", "agnostic")})
    """Labels to learn: 'dataset' (the class ids as they are), 'actor' (A2D-style id // 10: the actor
    without the action, which one frame rarely shows), 'agnostic' (one 'object' class), or 'auto'
    (actor for the A2D and synthetic layouts, dataset otherwise)."""
    weights: str = ""
    """r50-fpn: the COCO weights file (empty: the torch hub cache); lite ignores it."""
    seed: int = limits(0, 0, SEED_MAX)
    """Seed of the initialisation, the shuffles and the augmentations."""
    device: str = "cpu"
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available) (runtime only)."""
    resume: bool = False
    """Continue from OUT/last.pt (runtime only)."""
    eval_batch_size: int = limits(4, 1, None)
    """Frames per inference batch in the final evaluation (runtime only)."""
    checkpoint_minutes: float = limits(2.0, 0, None, lo_open=True)
    """Also write last.pt this often within an epoch (runtime only)."""


@dataclass(frozen=True)
class TrackRankConfig:
    """`clawcrane track-rank`: score every candidate of every frame for each query with a trained
    head, link them into tracks with the TRM (paper §3.2, Eq. 7) and write the ranked masks."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("batch_size", "device")
    LATE_FIELDS: ClassVar[tuple[str, ...]] = ("tracks",)

    def __post_init__(self):
        check_fields(self)

    split: str = field(default="test", metadata={CHOICES: SPLITS})
    """Which queries to predict: 'test', 'train', 'all', or 'val' (the train videos the head was selected on)."""
    top_k: int = limits(5, 1, None)
    """Tracks submitted per query (rank 0 = the answer); without the TRM, candidates per frame."""
    trm: bool = True
    """Link candidates across frames and answer with the best track (off: each frame's best-scored candidate, Table 3 rows 1-6)."""
    abstain_below: float | None = None
    """A query whose best track scores below this gets no mask (rows with candidate -1, NaN score, empty
    mask); without the TRM a frame whose best candidate scores below it. Unset: never abstain."""
    gamma: float = 0.8
    """Eq. 7 association threshold: a track and a candidate are linked only when S > gamma (paper: 0.8)."""
    beta: int = limits(3, 1, None)
    """Rounds (processed frames) a track may stay unmatched before it ends; shorter gaps are bridged."""
    alpha: float = 0.5
    """Weight of the mask-IoU term of Eq. 7 (S = cos(V_i, V_j) + alpha * maskIoU)."""
    score_mode: str = field(default="max", metadata={CHOICES: TRM_SCORE_MODES})
    """Track score: 'mean' (paper §1), 'max' (paper §3.3) or 'sum' (Eq. 3) of its members' query scores.
    'max' is the default because it scored best on validation videos (hard-full, README)."""
    fallback: str = field(default="best", metadata={CHOICES: TRM_FALLBACKS})
    """Frames the best track misses: 'best' (the frame's best-scored candidate) or 'empty' (no mask)."""
    tracks: str = field(default="trm", metadata={CHOICES: TRM_TRACKS})
    """How candidates become tracks: 'trm' (the paper's Eq. 7 linking) or 'imported' (the track ids of a tracking
    system imported with `detect --detector import:KIND:PATH` seed it: candidates sharing an id are one track, one
    with an id never joins another id's track, those without one are linked by the TRM)."""
    batch_size: int = limits(512, 1, None)
    """(query, frame) pairs per relation-module forward (runtime only)."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N' (runtime only)."""


@dataclass(frozen=True)
class AblateConfig:
    """`clawcrane ablate`: train and evaluate the rows of the paper's Table 3 over one feature cache."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("device",)

    def __post_init__(self):
        check_fields(self)

    epochs: int = limits(20, 1, None)
    """Training epochs of every row's head (a row already trained this far is reused)."""
    size: str = field(default="small", metadata={CHOICES: tuple(HEAD_SIZES)})
    """Head width: 'small' (D=128, 128-d words, 2x128 bi-LSTM; minutes on CPU) or 'paper' (256, 1000, 2x1000)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds of every row's initialisation, order and flips; with several, each row is trained once per
    seed and every cell reports the mean with the min-max."""
    rows: tuple[str, ...] = ()
    """Rows to run, by number ('1'..'15') or folder name ('4-prm'); empty: all of them."""
    val_fraction: float = limits(0.1, 0, 1, hi_open=True)
    """train-head --val-fraction of every row: the train videos held out to select best.pt."""
    weight_decay: float = limits(0.01, 0, None)
    """train-head --weight-decay of every row (0: the paper's Adam)."""
    dropout: float = limits(0.2, 0, 1, hi_open=True)
    """train-head --dropout of every row (0: none, as in the paper)."""
    split: str = field(default="test", metadata={CHOICES: SPLITS})
    """Split the rows are evaluated on: 'test', 'train', 'all', or 'val' (each head's validation videos, for tuning)."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N' (runtime only)."""


@dataclass(frozen=True)
class SegmentConfig:
    """`clawcrane segment`: sentences + one video -> masks, overlay video and segments.json."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("device", "cache", "force")

    def __post_init__(self):
        check_fields(self)

    detector: str = ""
    """What proposes candidates (as `detect --detector`): a checkpoint PATH, 'r50-fpn', 'import:PATH', or
    'import:KIND:PATH' with KIND gsam2, deva, sam2 or sam3 and PATH that system's output folder for this video."""
    backbone: str = "auto"
    """Feature backbone; 'auto' takes the one the head was trained on (any other value must equal it)."""
    top_k: int = limits(5, 1, None)
    """Tracks reported per query (rank 0 = the answer)."""
    abstain_below: float | None = None
    """Report "no matching object" for a query whose best track scores below this (unset: always answer)."""
    tracks: str = field(default="trm", metadata={CHOICES: TRM_TRACKS})
    """As `track-rank --tracks`: 'trm' links candidates by Eq. 7; 'imported' keeps the track ids of a
    --detector import:KIND:PATH (gsam2, deva, sam2, sam3) and links only the rest."""
    frame_stride: int = limits(1, 1, None)
    """Detect (and answer) every S-th frame; the overlay still shows every frame."""
    refine_masks: str = field(default="none", metadata={CHOICES: ("none", "grabcut")})
    """As `detect --refine-masks`: 'grabcut' re-decides each candidate's outline within 2 pixels from the
    frame's colours (a Mask R-CNN checkpoint or r50-fpn only)."""
    overlay: bool = True
    """Draw overlay.mp4 and contact_sheet.png (on a long video the slowest part of a cached call); without it only the
    masks, predictions and segments.json are written."""
    device: str = "auto"
    """Torch device for detector, backbone and head: auto, cpu, cuda or cuda:N (runtime only)."""
    cache: str = ""
    """Cache root for the video's candidates and features (empty: $CLAWCRANE_CACHE/segment, else ~/.cache/clawcrane/segment) (runtime only)."""
    force: bool = False
    """Replace the --out folder even when it holds files segment did not write (they are deleted with it) (runtime only)."""


@dataclass(frozen=True)
class QuickstartConfig:
    """`clawcrane quickstart`: the whole pipeline on the synthetic benchmark, end to end."""

    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("device",)

    def __post_init__(self):
        check_fields(self)

    preset: str = field(default="small", metadata={CHOICES: SYNTH_PRESETS})
    """Synthetic benchmark preset ('tiny' for tests, 'small' for the quickstart; 'hard' for the world without
    single-frame shortcuts, see `data synth --help`)."""
    seed: int = limits(0, 0, SEED_MAX)
    """Seed of the data, the detector and the head."""
    detector: str = ""
    """'' trains the lite detector (OUT/detector/); any `detect --detector` value (a checkpoint PATH,
    r50-fpn, oracle, import:PATH) is used as is and skips training."""
    detector_minutes: float = limits(5.0, 0, None)
    """Training-time budget of the lite detector, in minutes."""
    detector_epochs: int = limits(60, 1, None)
    """Epoch cap of the detector (the time budget usually ends training first)."""
    frame_stride: int = limits(1, 1, None)
    """Detect every S-th frame (annotated frames always)."""
    input_size: int = limits(320, 32, None)
    """Frame size of the feature extraction (extract --input-size; the paper's 320)."""
    head_size: str = "small"
    """Head width preset of `train-head --size` (small or paper)."""
    head_epochs: int = limits(15, 1, None)
    """Training epochs of the head."""
    overlays: int = limits(3, 0, None)
    """Test queries (of distinct videos) rendered into OUT/overlays/<video_id>/."""
    device: str = "cpu"
    """Torch device for every stage (runtime only)."""
