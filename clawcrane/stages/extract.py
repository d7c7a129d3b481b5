"""`clawcrane extract`: candidate cache + frames -> feature cache (pooled features, positions p_i).

Reads the candidate artifact, decodes each frame that has candidates once (in background
threads, overlapping the backbone), runs batches of frames through the frozen backbone, pools every
candidate (``pipeline.pooling``), computes p_i (``pipeline.positions``) and writes one part per
finished video under ``<cache>/extract-<key16>/`` (resumable), then consolidates the shard.

The key chains the candidate key and the resolved config (backbone name, weights fingerprint,
levels, input size, threshold, dtype, flip), so a cache hit is found from the config and the
weights file alone, without building the backbone.

An incomplete candidate artifact (a killed or failed `detect`) is refused before anything is
read: this shard's videos must all be there. The feature artifact's ``meta.json`` lists the
videos it must hold (the candidate artifact's) and the command that completes it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clawcrane.build.backbones import build_backbone, resolve_backbone
from clawcrane.build.device import resolve_device
from clawcrane.cache.candidates import CandidateCache, VideoCandidates, open_candidates
from clawcrane.cache.features import SCHEMA, STAGE, FeatureCache, VideoFeatures
from clawcrane.cache.store import META, Store, artifact_dir
from clawcrane.config import ExtractConfig, option_flags, output_config, to_dict
from clawcrane.errors import CacheError, ConfigError, DataError
from clawcrane.fingerprint import chain_key, short
from clawcrane.pipeline import pooling, positions
from clawcrane.pipeline.backbone import Backbone, BackboneSpec
from clawcrane.progress import progress
from clawcrane.stages.sharding import parse_shard, shard_videos  # noqa: F401  (the CLI parses --shard with it)

log = logging.getLogger(__name__)

VERSION = 1  # bump when the output changes for the same inputs and config
_QUEUE_FRAMES = 64  # prepared frames waiting for the backbone, at most


@dataclass
class ExtractResult:
    """What one `extract` run did."""

    path: Path
    key: str
    hit: bool
    """True when every video of this shard was already in the artifact (nothing computed)."""
    config: ExtractConfig
    """The resolved config (backbone name, weights fingerprint, levels)."""
    channels: int
    videos: int  # of this shard
    computed_videos: int
    candidates: int
    """Rows (candidates) computed by this run."""
    frames: int
    """Frames decoded and run through the backbone by this run."""
    seconds: float
    raw_bytes_per_candidate: float
    """Uncompressed bytes per row: frame (4) + feat C x dtype + pos 10 x 4 (doubled with flip)."""
    stored_bytes_per_candidate: float
    """Bytes on disk per row of this shard's file (gzip-compressed, HDF5 overhead included); 0 on a hit."""


def resolve_config(config: ExtractConfig) -> tuple[ExtractConfig, BackboneSpec]:
    """Validate and resolve backbone/weights/levels (no model is built)."""
    if config.dtype not in ("float16", "float32"):
        raise ConfigError(f"--dtype {config.dtype}: choose float16 or float32")
    if not 0.0 < config.mask_threshold <= 1.0:
        raise ConfigError(f"--mask-threshold {config.mask_threshold}: must be in (0, 1]")
    if config.batch_size < 0 or config.workers < 1:
        raise ConfigError(f"--batch-size {config.batch_size} --workers {config.workers}: need batch size >= 0 (0: auto), workers >= 1")
    if not 0 <= config.shard < config.num_shards:
        raise ConfigError(f"--shard {config.shard}/{config.num_shards}: expected 0 <= I < N")
    spec = resolve_backbone(config.backbone, config.weights, config.levels, config.input_size)
    resolved = dataclasses.replace(config, backbone=spec.name, weights=spec.weights, weights_id=spec.weights_id, levels=spec.levels)
    return resolved, spec


def feature_key(config: ExtractConfig, candidates_key: str) -> str:
    """The artifact key; a weights *path* enters only through its content fingerprint."""
    cfg = output_config(config)
    if cfg["weights"] not in ("imagenet", "none"):
        cfg["weights"] = "file"
    return chain_key(STAGE, VERSION, {"candidates": candidates_key}, cfg)


def run(config: ExtractConfig, *, dataset=None) -> ExtractResult:
    """Run the stage; ``dataset`` (a ``Dataset``) overrides opening the one the candidates name."""
    t0 = time.perf_counter()
    if not config.cache and not config.candidates:
        raise ConfigError("extract: no --cache given; pass --cache DIR (the folder `clawcrane detect` wrote into)")
    cand = open_candidates(config.candidates or config.cache)
    root = Path(config.cache) if config.cache else cand.path.parent
    cfg, spec = resolve_config(config)
    key = feature_key(cfg, cand.key)
    out = artifact_dir(root, STAGE, key)
    expected = cand.store.expected_videos()
    all_videos = expected if expected is not None else cand.video_ids()
    videos = shard_videos(all_videos, (cfg.shard, cfg.num_shards))
    if expected is not None:
        cand.require_complete(videos)  # this shard's videos: a sharded detect need not be merged first
    elif cfg.num_shards == 1:
        cand.require_complete()
    shard_file = Store(out).shard_file_name(cfg.shard, cfg.num_shards)

    if (out / META).exists():
        existing = FeatureCache(Store(out))
        existing.check_candidates(cand.key, cand.path)
        if existing.key != key:
            raise CacheError(f"{out}: holds key {short(existing.key)}, expected {short(key)}; remove the folder and re-run")
        if all(existing.store.has(v) for v in videos):
            if any(existing.store.index()[v].parent.name == "parts" for v in videos):
                existing.store.consolidate(videos, shard_file)
            log.info("extract: cache hit %s", out)
            return ExtractResult(
                path=out, key=key, hit=True, config=cfg, channels=existing.channels, videos=len(videos),
                computed_videos=0, candidates=0, frames=0, seconds=time.perf_counter() - t0,
                raw_bytes_per_candidate=_raw_bytes(existing.channels, cfg), stored_bytes_per_candidate=0.0,
            )

    if dataset is None:
        dataset = _open_dataset(cand, cfg)
    dataset.require_media(videos, "clawcrane extract")  # before the fingerprints: an absent clip also changes them
    _check_dataset(cand, dataset, root)
    device = resolve_device(cfg.device)
    backbone = build_backbone(spec, device)
    batch_size = cfg.batch_size or (16 if device.type == "cuda" else 2)
    meta = {
        "stage": STAGE, "schema": SCHEMA, "key": key, "config": to_dict(cfg),
        "upstream": {"candidates": cand.key}, "dataset": cand.meta.get("dataset", {}),
        "channels": backbone.channels, "backbone_levels": list(backbone.levels),
        "videos": sorted(all_videos), "complete_with": complete_with(cfg, config),
    }
    store = Store.create(out, meta)
    todo = [v for v in videos if not store.has(v)]
    log.info("extract: %d/%d videos to do -> %s", len(todo), len(videos), out)
    rows, frames = _extract_videos(cand, dataset, todo, backbone, dataclasses.replace(cfg, batch_size=batch_size), store)
    store.consolidate(videos, shard_file)

    done_rows = rows + sum(len(store.read(v).arrays.get("frame", ())) for v in videos if v not in todo)
    size = (store.path / shard_file).stat().st_size
    return ExtractResult(
        path=out, key=key, hit=False, config=cfg, channels=backbone.channels, videos=len(videos),
        computed_videos=len(todo), candidates=rows, frames=frames, seconds=time.perf_counter() - t0,
        raw_bytes_per_candidate=_raw_bytes(backbone.channels, cfg),
        stored_bytes_per_candidate=size / done_rows if done_rows else 0.0,
    )


OUTPUT_OPTIONS = ("backbone", "weights", "levels", "input_size", "mask_threshold", "dtype", "with_flip")
"""The options that decide a feature artifact (``weights_id`` follows from ``weights``)."""


def complete_with(cfg: ExtractConfig, given: ExtractConfig) -> str:
    """The command that makes (or completes) the artifact of the resolved ``cfg``; ``{cache}`` stands for the cache root."""
    parts = ["clawcrane extract --cache {cache}", option_flags(cfg, OUTPUT_OPTIONS)]
    if given.candidates:  # absolute: the command runs from any folder
        parts.append(f"--candidates {shlex.quote(os.path.abspath(given.candidates))}")
    if given.dataset:
        parts.append(f"--dataset {shlex.quote(os.path.abspath(given.dataset))}")
    return " ".join(p for p in parts if p)


def _raw_bytes(channels: int, cfg: ExtractConfig) -> float:
    per = channels * np.dtype(cfg.dtype).itemsize + positions.P * 4
    return 4 + per * (2 if cfg.with_flip else 1)


def _open_dataset(cand: CandidateCache, cfg: ExtractConfig):
    from clawcrane.datasets import open_dataset

    info = cand.meta.get("dataset") or {}
    root = cfg.dataset or info.get("root", "")
    if not root:
        raise ConfigError(f"{cand.path}: the candidate cache does not record its dataset; pass --dataset DATASET")
    if not Path(root).exists():
        raise DataError(f"{root}: the dataset the candidates were detected on is not there; pass --dataset DATASET (its new location)")
    return open_dataset(root)


def _check_dataset(cand: CandidateCache, dataset, cache_root: Path) -> None:
    recorded = (cand.meta.get("dataset") or {}).get("fingerprint", "")
    if recorded and dataset.fingerprint and recorded != dataset.fingerprint:
        raise CacheError(
            f"{dataset.root}: dataset changed since detection (fingerprint {short(dataset.fingerprint)}, candidates in "
            f"{cand.path} were detected on {short(recorded)}); re-run `clawcrane detect {dataset.root} --cache {cache_root}`"
        )


# ---- the loop: decoding threads feed frames, the main thread runs the backbone ----------------------
@dataclass
class _Frame:
    video_id: str
    rows: np.ndarray  # (k,) candidate rows of this frame
    image: np.ndarray  # (S, S, 3) uint8 resized frame
    cells: list[torch.Tensor]  # per level, (k, h_l, w_l) bool member cells
    pos: np.ndarray  # (k, 10) p_i of the rows


@dataclass
class _Start:
    vc: VideoCandidates
    frames: int  # frames of this video that have candidates (each arrives as a _Frame)


@dataclass
class _Video:
    vc: VideoCandidates
    remaining: int
    feat: np.ndarray
    pos: np.ndarray
    feat_flip: np.ndarray | None


@dataclass
class _Failed:
    error: BaseException


@dataclass
class _Bad:
    video_id: str
    error: str
    """Why the video is skipped (detect marked it bad, or its frames failed to decode with --skip-bad)."""


_DONE = object()


def _produce(q: queue.Queue, stop: threading.Event, cand, dataset, video_ids: queue.SimpleQueue, backbone: Backbone, cfg: ExtractConfig) -> None:
    """One decoding thread: takes videos from ``video_ids`` until it is empty, puts their frames on ``q``."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        while True:
            try:
                vid = video_ids.get_nowait()
            except queue.Empty:
                break
            vc = cand.video(vid)
            if vc.status != "ok":
                if not put(_Bad(vid, vc.error or "marked bad by detect")):
                    return
                continue
            try:
                if not _produce_video(put, vc, cand, dataset, backbone, cfg):
                    return
            except DataError as err:
                if not cfg.skip_bad:  # the frame source's message knows no command; extract has --skip-bad
                    raise DataError(f"{err}, or pass --skip-bad to skip this video") from None
                log.warning("extract: skipping video %s: %s", vid, err)
                if not put(_Bad(vid, str(err))):
                    return
        put(_DONE)
    except BaseException as err:  # noqa: BLE001 - handed to the main thread, which re-raises it
        put(_Failed(err))


def _produce_video(put, vc: VideoCandidates, cand, dataset, backbone: Backbone, cfg: ExtractConfig) -> bool:
    """Decode one video's frames that have candidates and put them; False when asked to stop."""
    vid = vc.video_id
    video = dataset.videos.get(vid)
    if video is None:
        raise DataError(f"{dataset.root}: video {vid!r} of candidate cache {cand.path} is not in this dataset; pass the --dataset it was detected on")
    wanted = np.unique(vc.frames)
    if not put(_Start(vc, len(wanted))):
        return False
    for f, img in video.iter_frames(wanted.tolist()):
        if img.shape[:2] != (vc.height, vc.width):
            raise DataError(
                f"{video.source.describe()}: frame {f} is {img.shape[1]}x{img.shape[0]} but the candidates are "
                f"{vc.width}x{vc.height}; re-run `clawcrane detect` on this dataset"
            )
        rows = vc.frame_rows(f)
        masks = vc.masks(rows)
        cells = [pooling.select_cells(pooling.mask_coverage(masks, hw), cfg.mask_threshold) for hw in backbone.feature_sizes]
        image = backbone.resize_frames([img])[0]
        pos = positions.positions(positions.tight_boxes(masks, vc.boxes[rows]), vc.width, vc.height)
        if not put(_Frame(vid, rows, image, cells, pos)):
            return False
    return True


def _extract_videos(cand, dataset, video_ids, backbone: Backbone, cfg: ExtractConfig, store: Store) -> tuple[int, int]:
    """Compute and write every video of ``video_ids``; returns (rows, frames) computed."""
    C = backbone.channels
    q: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
    stop = threading.Event()
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for vid in video_ids:
        todo.put(vid)
    workers = [
        threading.Thread(target=_produce, args=(q, stop, cand, dataset, todo, backbone, cfg), daemon=True, name=f"extract-decode-{i}")
        for i in range(max(1, min(cfg.workers, len(video_ids))))
    ]
    for w in workers:
        w.start()
    running = len(workers)
    open_videos: dict[str, _Video] = {}
    batch: list[_Frame] = []
    n_rows = n_frames = 0
    bar = progress(None, desc="extract", total=0, unit="frame")

    def write(v: _Video) -> None:
        nonlocal n_rows
        vc = v.vc
        store.write_video(VideoFeatures(
            video_id=vc.video_id, frames=np.asarray(vc.frames, np.int32), feat=_cast(v.feat, cfg.dtype), pos=v.pos,
            feat_flip=None if v.feat_flip is None else _cast(v.feat_flip, cfg.dtype),
            pos_flip=positions.flip_positions(v.pos) if cfg.with_flip else None,
        ).to_record())
        n_rows += len(vc)

    def flush() -> None:
        nonlocal n_frames
        if not batch:
            return
        B = len(batch)
        x = backbone.normalise(torch.from_numpy(np.stack([f.image for f in batch])))  # (B, 3, S, S)
        frame_of = torch.cat([torch.full((len(f.rows),), i, dtype=torch.long) for i, f in enumerate(batch)])
        cells = [torch.cat([f.cells[lv] for f in batch]) for lv in range(len(backbone.levels))]
        if cfg.with_flip:  # the mirrored frames ride in the same forward; their cells mirror too
            x = torch.cat([x, torch.flip(x, dims=[3])])
            frame_of = torch.cat([frame_of, frame_of + B])
            cells = [torch.cat([c, torch.flip(c, dims=[2])]) for c in cells]
        feat = pooling.pool_levels(backbone(x), cells, frame_of).float().cpu().numpy()  # (k or 2k, C)
        k = len(feat) // (2 if cfg.with_flip else 1)
        at = 0
        for f in batch:
            v = open_videos[f.video_id]
            v.feat[f.rows] = feat[at:at + len(f.rows)]
            v.pos[f.rows] = f.pos
            if v.feat_flip is not None:
                v.feat_flip[f.rows] = feat[k + at:k + at + len(f.rows)]
            at += len(f.rows)
            v.remaining -= 1
            if v.remaining == 0:
                write(open_videos.pop(f.video_id))
        n_frames += B
        bar.update(B)
        batch.clear()

    try:
        while True:
            item = q.get()
            if item is _DONE:
                running -= 1
                if running > 0:
                    continue
                flush()
                break
            if isinstance(item, _Failed):
                flush()  # keep what is finished, so a re-run resumes after it
                raise item.error
            if isinstance(item, _Bad):  # stored as bad, so a resumed run does not retry it
                batch[:] = [f for f in batch if f.video_id != item.video_id]
                open_videos.pop(item.video_id, None)
                rec = VideoFeatures(item.video_id, np.zeros(0, np.int32), np.zeros((0, C), cfg.dtype),
                                    np.zeros((0, positions.P), np.float32), status="bad").to_record()
                rec.attrs["error"] = item.error
                store.write_video(rec)
            elif isinstance(item, _Frame):
                batch.append(item)
                if len(batch) >= cfg.batch_size:
                    flush()
            elif isinstance(item, _Start):
                vc, K = item.vc, len(item.vc)
                v = _Video(vc, item.frames, np.zeros((K, C), np.float32), np.zeros((K, positions.P), np.float32),
                           np.zeros((K, C), np.float32) if cfg.with_flip else None)
                bar.total += item.frames
                bar.refresh()
                if item.frames == 0:
                    write(v)
                else:
                    open_videos[vc.video_id] = v
    finally:
        stop.set()
        bar.close()
        for w in workers:
            w.join(timeout=10)
    return n_rows, n_frames


def _cast(feat: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float16":
        return np.clip(feat, -65504.0, 65504.0).astype(np.float16)
    return feat.astype(np.float32)
