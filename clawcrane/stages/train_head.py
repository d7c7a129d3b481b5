"""Stage `train-head`: read the feature + candidate caches and the annotations, train, checkpoint.

Reads only: the feature cache (``cache.features``), the candidate cache it was extracted from
(found beside it in the same cache root, for the candidates' RLE masks), and the dataset's
annotations (sentences, splits, GT masks). Both caches must be complete and extracted from this
dataset (its fingerprint, which covers the annotations too; its annotation fingerprint when the
clips are absent), else the run is refused with the fix. Frames are never decoded, so the clips
need not be there (the CLI opens the dataset without its media). Everything needed is loaded into
memory once; ``pipeline.trainer`` does the training.

Model selection never sees the test split: the head is fitted on the train split minus a
validation part held out by video (``datasets.splits``: ``--val-fraction`` of the train videos,
picked from their ids; a dataset's own val split when it has one), and ``best.pt`` is the epoch
with the best validation accuracy. The vocabulary and the query-type names come from the train
split; no test sentence or mask is read.

Writes into the run folder ``OUT``: ``last.pt`` (every epoch), ``best.pt`` (best validation
accuracy), ``metrics.json`` (per-epoch history, sample counts, the validation videos).
``--resume`` continues from ``last.pt``, refusing a feature cache or options other than the run's.

Under ``torchrun --nproc_per_node N -m clawcrane train-head ...`` (``build.distributed``) every
process loads the caches and trains its share of each global batch (``--batch-size`` stays the
global batch; it must divide by N); rank 0 alone logs, shows progress and writes the run folder,
after a barrier, so the checkpoints are those of one process and load in one process.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from clawcrane.atomic import clean_stale_temps, write_json
from clawcrane.build import distributed
from clawcrane.build.device import resolve_device
from clawcrane.build.heads import BEST, LAST, METRICS, new_head, resolved_train_config
from clawcrane.build.text import LazyMiniLM, TextStates, text_tensors
from clawcrane.cache.candidates import CandidateCache, VideoCandidates
from clawcrane.cache.checkpoints import KIND_HEAD, check_head_features, load_checkpoint, save_checkpoint
from clawcrane.cache.features import FeatureCache, open_features
from clawcrane.config import MINILM_DIM, TrainHeadConfig, check_fields, flat, output_config, to_dict
from clawcrane.datasets.records import Dataset, Query
from clawcrane.datasets.splits import TrainValSplit, samples_of, train_val_split
from clawcrane.errors import CacheError, ConfigError, DataError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.language import SentenceTable, Vocabulary
from clawcrane.pipeline.motion import candidate_motion, flip_motion
from clawcrane.pipeline.targets import match_target
from clawcrane.pipeline.trainer import EpochState, SplitTensors, Trainer, build_split
from clawcrane.progress import progress

log = logging.getLogger(__name__)

UNTYPED = "untyped"


@dataclass
class TrainHeadResult:
    out: Path
    """The run folder."""
    best: Path
    """best.pt: the epoch with the highest validation accuracy."""
    last: Path
    """last.pt: the latest epoch (what --resume continues from)."""
    epochs: int
    """Epochs trained in total."""
    best_metrics: dict[str, Any]
    """Validation of the best epoch (accuracy, per query type)."""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per split: samples used, and samples left out with the reason."""


def _check_dataset(features: FeatureCache, dataset: Dataset, video_ids: set[str]) -> None:
    have = set(features.video_ids())
    if video_ids and not (video_ids & have):
        raise CacheError(
            f"{features.path}: holds none of the {len(video_ids)} videos of {dataset.root}; it was extracted from "
            f"another dataset; run `clawcrane detect {dataset.root}` and `clawcrane extract` for this one"
        )
    missing = video_ids - have
    if missing:
        log.warning("%s: %d of %d videos have no cached features (e.g. %s); their samples are left out",
                    features.path, len(missing), len(video_ids), sorted(missing)[:3])


def _load_split(
    name: str,
    samples: list[tuple[Query, int]],
    *,
    features: FeatureCache,
    candidates: CandidateCache,
    table: SentenceTable,
    type_names: list[str],
    min_iou: float,
    mirror: bool,
    motion: bool = False,
) -> tuple[list, list, list, Counter]:
    """Frame rows, (frame, target, sentence, mirrored sentence, type) tuples, their (video, frame), counts."""
    counts: Counter = Counter(total=len(samples))
    by_video: dict[str, list[tuple[Query, int]]] = defaultdict(list)
    for q, f in samples:
        by_video[q.video_id].append((q, f))
    have = set(features.video_ids())
    frames: list = []
    out: list = []
    refs: list[tuple[str, int]] = []
    for vid in progress(sorted(by_video), desc=f"load {name}", unit="video"):
        vs = by_video[vid]
        if vid not in have:
            counts["no_features"] += len(vs)
            continue
        vc, vf = candidates.video(vid), features.video(vid)
        if vc.status != "ok" or vf.status != "ok":
            counts["bad_video"] += len(vs)
            continue
        if len(vc) != len(vf):
            raise CacheError(
                f"{features.path}: video {vid!r} has {len(vf)} feature rows but {len(vc)} candidates in "
                f"{candidates.path}; re-run `clawcrane extract` over this candidate cache"
            )
        frame_index: dict[int, int] = {}
        pos_v, pos_flip_v = vf.pos, vf.pos_flip
        if motion:  # p_i gains each candidate's track motion m_i, over every processed frame of the video
            pos_v, pos_flip_v = with_motion(vc, vf)
        for q, f in vs:
            rows = vc.frame_rows(f)
            if len(rows) == 0:
                counts["no_candidates"] += 1
                continue
            gt = q.gt_mask(f)
            if gt.shape != (vc.height, vc.width):
                raise DataError(
                    f"{q.query_id}: GT mask of frame {f} is {gt.shape} but the candidates are "
                    f"{(vc.height, vc.width)}; the caches were built from another copy of the dataset"
                )
            match = match_target(mask_ops.encode(gt), [vc.rles[r] for r in rows], min_iou)
            if not match.ok:
                counts["low_iou"] += 1
                continue
            if f not in frame_index:
                frame_index[f] = len(frames)
                flip = mirror and vf.feat_flip is not None and vf.pos_flip is not None
                frames.append((vf.feat[rows], pos_v[rows], vf.feat_flip[rows] if flip else None, pos_flip_v[rows] if flip else None))
            sent, sent_flip = table.rows_of(q.sentence, mirror=mirror)
            out.append((frame_index[f], match.index, sent, sent_flip, type_names.index(q.query_type or UNTYPED)))
            refs.append((vid, f))
    counts["used"] = len(out)
    left = {k: v for k, v in counts.items() if k not in ("total", "used") and v}
    if left:
        log.warning("%s: %d of %d samples left out (%s)", name, sum(left.values()), len(samples),
                    ", ".join(f"{k}: {v}" for k, v in sorted(left.items())))
    return frames, out, refs, counts


def with_motion(vc: VideoCandidates, vf) -> tuple[np.ndarray, np.ndarray | None]:
    """(R, 10 + M) p_i with each candidate's track motion m_i appended, and the mirrored version (or None)."""
    frames = sorted({int(f) for f in vc.processed_frames} | {int(f) for f in vc.frames})
    m = candidate_motion(frames, [vc.frame_rows(f) for f in frames], np.asarray(vf.pos), np.asarray(vf.feat))
    pos = np.concatenate([np.asarray(vf.pos, np.float32), m], axis=1)
    if vf.pos_flip is None:
        return pos, None
    return pos, np.concatenate([np.asarray(vf.pos_flip, np.float32), flip_motion(m)], axis=1)


def _build(name, samples, *, features, candidates, config, vocab, text, type_names) -> tuple[SplitTensors | None, Counter]:
    table = SentenceTable(config.head.max_words)
    frames, rows, refs, counts = _load_split(name, samples, features=features, candidates=candidates, table=table,
                                       type_names=type_names, min_iou=config.min_iou,
                                       mirror=config.flip and name == "train" and features.has_flip,
                                       motion=config.head.motion)
    if not rows:
        return None, counts
    tokens, lengths = text_tensors(config.head.text_encoder, vocab, table.words, cache_root=features.path.parent, text_states=text, what=name)
    split = build_split(frame_rows=frames, samples=rows, text=tokens, text_lengths=lengths, type_names=type_names)
    split.unmatched = counts["total"] - counts["used"]
    split.refs = refs
    return split, counts


@dataclass
class Prepared:
    """The fit and validation samples as tensors, ready for ``pipeline.trainer``."""

    train: SplitTensors
    val: SplitTensors | None
    counts: dict[str, dict[str, int]]
    """Per part ('train', 'val'): samples in total, used, and left out by reason."""


def prepare(
    config: TrainHeadConfig,
    split: TrainValSplit,
    *,
    features: FeatureCache,
    candidates: CandidateCache,
    vocab: Vocabulary,
    text_states: TextStates | None = None,
    root: Path | str = "",
) -> Prepared:
    """Load every row the fit and validation samples need from the caches, once, into tensors."""
    fit_samples, val_samples = samples_of(split.fit), samples_of(split.val)
    if config.head.text_encoder == "minilm" and text_states is None:
        text_states = LazyMiniLM("cuda" if resolve_device(config.device).type == "cuda" else "cpu")
    type_names = sorted({q.query_type or UNTYPED for q, _ in fit_samples + val_samples})
    common = dict(features=features, candidates=candidates, config=config, vocab=vocab, text=text_states, type_names=type_names)
    train, train_counts = _build("train", fit_samples, **common)
    if train is None:
        raise DataError(
            f"{root}: none of the {len(fit_samples)} train samples has a candidate with IoU >= "
            f"{config.min_iou}; check the candidate cache (`clawcrane detect`)"
        )
    val, val_counts = _build("val", val_samples, **common) if val_samples else (None, Counter())
    return Prepared(train, val, {"train": dict(train_counts), "val": dict(val_counts)})


def check_config(config: TrainHeadConfig) -> None:
    """Refuse options that cannot work, with the option's name, before any cache or annotation is read."""
    check_fields(config.head)
    if not 0.0 <= config.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction {config.val_fraction}: must be in [0, 1) (0: no validation, best.pt follows the training loss)")
    if config.epochs < 1:
        raise ConfigError(f"--epochs {config.epochs}: must be at least 1")
    resolve_device(config.device)
    distributed.check_global_batch(config.batch_size, distributed.environment())  # under torchrun: divides by N


def changed_options(old: dict[str, Any], config: TrainHeadConfig) -> list[str]:
    """The output-affecting options (epochs aside), as --flags, in which a stored training config differs from ``config``."""
    a = {k: v for k, v in flat(old).items() if k != "epochs"}
    b = {k: v for k, v in flat(output_config(config)).items() if k != "epochs"}
    return sorted("--" + k.rsplit(".", 1)[-1].replace("_", "-") for k in set(a) | set(b) if a.get(k) != b.get(k))


def run(
    config: TrainHeadConfig,
    dataset: Dataset,
    *,
    features: str | os.PathLike,
    out: str | os.PathLike,
    resume: bool = False,
    text_states: TextStates | None = None,
) -> TrainHeadResult:
    """Train a head on ``dataset``'s train split from the caches; select it on the validation videos.

    Under torchrun (WORLD_SIZE > 1) this joins the process group, trains this process's share and
    leaves the group at the end; only rank 0 writes into ``out``.
    """
    check_config(config)
    procs, device = distributed.setup(config.device, config.batch_size)
    try:
        return _run(config, dataset, features=features, out=Path(out), resume=resume, text_states=text_states,
                    procs=procs, device=device)
    finally:
        distributed.teardown(procs)


def _run(config: TrainHeadConfig, dataset: Dataset, *, features, out: Path, resume: bool, text_states: TextStates | None,
         procs: distributed.Processes, device) -> TrainHeadResult:
    if procs.main:
        clean_stale_temps(out)  # .best.pt.<rand>.tmp and the like of a killed run (only this module's temp names)
    fc = open_features(features)
    candidates = fc.require_complete_inputs()
    dataset_fp = fc.check_dataset(dataset)  # the annotation fingerprint stands in when the clips are absent
    split = train_val_split(dataset, config.val_fraction)
    if not any(q.frames for q in split.fit):
        dropped = [v for v in dataset.missing_media if v not in dataset.videos]
        if dropped:  # opened with frames needed: videos without their clips were left out with their sentences
            raise DataError(
                f"{dataset.root}: no train samples: the {len(dropped)} videos whose clips are missing (e.g. "
                f"{dataset.missing_media[dropped[0]]}) were left out with their sentences; train-head decodes no frame, "
                "so open the dataset without its media (`open_dataset(path, frames=False)`, as `clawcrane train-head` does) "
                "or put the clips back"
            )
        raise DataError(
            f"{dataset.root}: no train samples (queries with annotated frames in the train split"
            + (", outside the validation videos" if split.val else "") + "); check the split column of the dataset "
            "(`clawcrane doctor`)" + (" or lower --val-fraction" if split.source == "carved" else "")
        )
    if split.source == "none":
        log.warning("%s: no validation videos (--val-fraction %g of %d train videos); best.pt follows the training loss",
                    dataset.root, config.val_fraction, len({q.video_id for q in split.fit}))
    else:
        log.info("validation: %d queries of %d videos (%s)", len(split.val), len(split.videos),
                 "the dataset's val split" if split.source == "dataset" else f"{config.val_fraction:g} of the train videos, by id")
    _check_dataset(fc, dataset, {q.video_id for q in split.fit + split.val})

    payload = None
    if resume:
        payload = load_checkpoint(out / LAST, KIND_HEAD)
        check_head_features(payload, fc.key, fc.meta, fc.path, same_dataset=True)
        diff = changed_options(resolved_train_config(payload), config)
        if diff:
            raise ConfigError(f"{out / LAST}: was trained with other options ({', '.join(diff)}); resume with the same options or use a new --out")
        vocab = Vocabulary(payload["vocab"])
    else:
        if (out / LAST).exists():
            raise ConfigError(f"{out}: already holds a trained head ({LAST}); pass --resume to continue it or choose another --out")
        if (out / BEST).exists():  # a checkpoint without the run's last.pt: not this run's to replace
            raise ConfigError(f"{out / BEST}: exists without {LAST}, so it is not a run to continue; choose another --out "
                              f"(`clawcrane train-head ... --out NEW_DIR`) or move the file away")
        vocab = Vocabulary.build([q.sentence for q in split.fit], max_words=config.head.max_words)

    def load() -> Prepared:
        return prepare(config, split, features=fc, candidates=candidates, vocab=vocab, text_states=text_states, root=dataset.root)

    # MiniLM states are cached under the cache root: rank 0 encodes and writes them, the others then read
    data = procs.main_first(load) if config.head.text_encoder == "minilm" else load()
    train, val, counts = data.train, data.val, data.counts
    use_flip = config.flip and train.can_flip
    if config.flip and not use_flip:
        log.warning("%s: no flipped features (extract without --with-flip); flip augmentation is off", fc.path)

    C = int(train.feat.shape[1])  # channels of the pooled features
    hcfg = replace(config.head, text_dim=int(train.text.shape[-1]) if train.text.dim() == 3 else MINILM_DIM)
    model = new_head(hcfg, vocab_size=len(vocab), feat_dim=C, seed=config.seed)
    trainer = Trainer(model=model, lr=config.lr, weight_decay=config.weight_decay, lr_patience=config.lr_patience,
                      lr_factor=config.lr_factor, tau=config.tau, batch_size=config.batch_size, flip=use_flip, seed=config.seed, device=device,
                      rank=procs.rank, world=procs.world)
    start = 0
    if payload is not None:
        trainer.load_state(payload)
        start = int(payload["epoch"])
        log.info("resuming %s from epoch %d", out / LAST, start)
    if procs.main:
        log.info("train-head: %d train / %d validation samples, %d words, C=%d, device %s, flip %s%s",
                 len(train), len(val) if val is not None else 0, len(vocab), C, device, use_flip,
                 f", {procs.world} processes of {config.batch_size // procs.world} samples per step" if procs.distributed else "")

    base = {
        "kind": KIND_HEAD, "config": output_config(config), "head_config": to_dict(hcfg), "vocab": vocab.tokens,
        "feat_dim": C, "flip_used": use_flip, "feature_key": fc.key, "feature_meta": fc.meta, "candidate_key": candidates.key,
        "dataset": dataset.identity(dataset_fp), "counts": counts,
        "validation": split.describe(),
    }

    def save(state: EpochState) -> None:
        trainer_state = trainer.state()  # every process calls it (it gathers their dropout generators)
        procs.barrier()  # every process has finished the epoch before rank 0 replaces last.pt / best.pt
        if not procs.main:
            return
        payload = dict(base, **trainer_state, epoch=state.epoch, processes=procs.world, metrics={
            "train_loss": state.train_loss, "train_accuracy": state.train_accuracy, "validation": state.validation})
        save_checkpoint(out / LAST, payload)
        if state.is_best:
            save_checkpoint(out / BEST, payload)
        write_json(out / METRICS, {"history": trainer.history, "counts": counts, "best_epoch": _best_epoch(trainer.history),
                                   "validation": split.describe()})

    if procs.main:
        out.mkdir(parents=True, exist_ok=True)
    history = trainer.fit(train, val, epochs=config.epochs, start_epoch=start, on_epoch_end=save)
    procs.barrier()  # no process returns before rank 0 has written the last epoch
    best = _best_epoch(history)
    best_val = next((h.get("validation") or {} for h in history if h["epoch"] == best), {})
    return TrainHeadResult(out=out, best=out / BEST, last=out / LAST, epochs=len(history), best_metrics=best_val, counts=counts)


def _best_epoch(history: list[dict[str, Any]]) -> int:
    if not history:
        return 0
    if all(h.get("validation") for h in history):
        return max(history, key=lambda h: (h["validation"]["accuracy"], -h["epoch"]))["epoch"]
    return min(history, key=lambda h: (h["train_loss"], h["epoch"]))["epoch"]
