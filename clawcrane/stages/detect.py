"""`clawcrane detect`: run a detector over every frame of every video -> candidate cache.

Three threads form a stream, so memory does not grow with video length and decoding and writing
overlap with the model: decoders (``workers``) turn videos into single-video batches of frames,
the caller's thread runs the detector, a writer postprocesses, encodes masks as COCO RLE and writes
each finished video atomically (``parts/<video>.h5``, the resume unit). At the end the shard's
videos are consolidated into its shard file (``data.h5`` for a single shard).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clawcrane.cache.candidates import SCHEMA, STAGE, VideoCandidates
from clawcrane.cache.fingerprint import chain_key, short
from clawcrane.cache.store import Store, VideoRecord, artifact_dir
from clawcrane.config import DetectConfig, output_config
from clawcrane.datasets.records import Dataset, Video
from clawcrane.errors import CacheError, ConfigError, DataError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.detectors import (
    Detector,
    FrameCandidates,
    build_detector,
    candidate_recall,
    detector_key,
    fit_mask,
    postprocess,
)
from clawcrane.progress import progress

log = logging.getLogger(__name__)

STAGE_VERSION = 1
_QUEUE = 4  # batches in flight between threads (bounds memory)


@dataclass
class DetectResult:
    """What one `detect` run did, for the summary (this shard's videos only)."""

    path: Path
    key: str
    cache_hit: bool
    shard: tuple[int, int]
    videos: int
    """Videos of this shard (ok + bad)."""
    computed: list[str] = field(default_factory=list)
    """Videos run through the detector in this call (empty on a cache hit)."""
    frames: int = 0
    candidates: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    """(video_id, error) of videos recorded as unreadable."""
    gt_instances: int = 0
    gt_covered: int = 0
    annotated_frames: int = 0

    @property
    def per_frame(self) -> float:
        return self.candidates / self.frames if self.frames else 0.0

    @property
    def recall(self) -> float | None:
        """Share of annotated GT instances covered by a candidate with mask IoU >= 0.5 (None without GT)."""
        return self.gt_covered / self.gt_instances if self.gt_instances else None


def parse_shard(text: str | None, env: dict[str, str] | None = None) -> tuple[int, int]:
    """'I/N' (0-based I) -> (I, N); None: from SLURM array variables, else (0, 1)."""
    env = os.environ if env is None else env
    if text is None or text == "":
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            i = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            n = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            return 0, 1
    else:
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. --shard 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard {i}/{n}: expected I/N with 0 <= I < N (I is 0-based)")
    return i, n


def shard_videos(video_ids, shard: tuple[int, int]) -> list[str]:
    """The videos shard (I, N) owns: sorted ids at positions i with i % N == I (disjoint, deterministic)."""
    I, N = shard
    return [v for i, v in enumerate(sorted(video_ids)) if i % N == I]


def cache_key(config: DetectConfig, dataset: Dataset, key_fn=detector_key) -> tuple[str, str]:
    """(artifact key, detector key); computing them never builds a model."""
    dkey = key_fn(config.detector, dataset)
    key = chain_key(STAGE, STAGE_VERSION, {"dataset": dataset.fingerprint, "detector": dkey}, output_config(config))
    return key, dkey


def frames_to_run(video: Video, stride: int, annotated, detector: Detector | None = None) -> list[int]:
    """Frames 0, S, 2S, ... plus every annotated frame, those the detector wants, ascending."""
    frames = set(range(0, video.num_frames, stride)) | {int(f) for f in annotated if 0 <= f < video.num_frames}
    if detector is not None:
        frames = {f for f in frames if detector.wants_frame(video.video_id, f)}
    return sorted(frames)


def _check(config: DetectConfig) -> None:
    if config.frame_stride < 1:
        raise ConfigError(f"--frame-stride {config.frame_stride}: must be >= 1")
    if config.batch_size < 1 or config.workers < 1:
        raise ConfigError("--batch-size and --workers must be >= 1")
    if config.max_per_frame < 1:
        raise ConfigError(f"--max-per-frame {config.max_per_frame}: must be >= 1")
    if not (0.0 <= config.dedup_iou <= 1.0 and 0.0 <= config.score_threshold <= 1.0):
        raise ConfigError("--dedup-iou and --score-threshold must lie in [0, 1]")


def run(
    config: DetectConfig,
    dataset: Dataset,
    cache_root: str | os.PathLike,
    *,
    detector_factory: Callable[..., Detector] = build_detector,
    key_fn: Callable[[str, Dataset], str] = detector_key,
) -> DetectResult:
    """Detect candidates for this shard's videos into ``cache_root/detect-<key16>/`` (resumable)."""
    _check(config)
    if not dataset.videos:
        raise DataError(f"{dataset.root}: the dataset has no videos; check the path with `clawcrane doctor`")
    key, dkey = cache_key(config, dataset, key_fn)
    path = artifact_dir(cache_root, STAGE, key)
    mine = shard_videos(dataset.videos, config.shard)
    target = Store(path).shard_file_name(*config.shard)

    if (path / "meta.json").exists():  # cache hit? decided before any model is built
        store = Store(path)
        if store.key != key:
            raise CacheError(f"{path}: holds key {short(store.key)}, expected {short(key)}; remove the folder and re-run")
        index = store.index()
        if all(v in index for v in mine):
            if any(index[v] != path / target for v in mine):
                store.consolidate(mine, target)
            log.info("cache hit: %s", path)
            return _summarise(store, mine, key, config.shard, hit=True)

    meta = {
        "stage": STAGE,
        "schema": SCHEMA,
        "key": key,
        "config": dict(output_config(config), detector=config.detector),
        "upstream": {"dataset": dataset.fingerprint, "detector": dkey},
        "dataset": {"name": dataset.name, "root": str(dataset.root), "fingerprint": dataset.fingerprint,
                    "num_videos": len(dataset.videos)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    store = Store.create(path, meta)
    index = store.index()
    pending = [v for v in mine if v not in index]
    log.info("%s: %d of %d videos of shard %d/%d to do", path, len(pending), len(mine), *config.shard)
    if pending:
        detector = detector_factory(config.detector, dataset, device=config.device)
        _Stream(config, dataset, store, detector).run(pending)
    store.consolidate(mine, target)
    result = _summarise(store, mine, key, config.shard, hit=False)
    result.computed = pending
    return result


def _summarise(store: Store, mine: list[str], key: str, shard, hit: bool) -> DetectResult:
    res = DetectResult(path=store.path, key=key, cache_hit=hit, shard=tuple(shard), videos=len(mine))
    summaries = store.summaries()
    for v in mine:
        a = summaries[v]
        if a.get("status", "ok") != "ok":
            res.bad.append((v, str(a.get("error", ""))))
            continue
        res.frames += int(a.get("processed", 0))
        res.candidates += int(a.get("rows", 0))
        res.gt_instances += int(a.get("gt_instances", 0))
        res.gt_covered += int(a.get("gt_covered", 0))
        res.annotated_frames += int(a.get("gt_frames", 0))
    return res


# ---- the stream: decode -> detect -> postprocess + write -----------------------------------------
class _Stop(Exception):
    """Raised inside worker threads when the run is being torn down."""


class _Stream:
    def __init__(self, config: DetectConfig, dataset: Dataset, store: Store, detector: Detector):
        self.cfg = config
        self.ds = dataset
        self.store = store
        self.det = detector
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.q_in: queue.Queue = queue.Queue(maxsize=_QUEUE + config.workers)
        self.q_out: queue.Queue = queue.Queue(maxsize=_QUEUE)

    # -- helpers shared by the threads
    def _put(self, q: queue.Queue, item) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _frames(self, video_id: str) -> list[int]:
        return frames_to_run(self.ds.videos[video_id], self.cfg.frame_stride,
                             self.ds.annotated_frames.get(video_id, ()), self.det)

    # -- decoders
    def _decode(self, todo: Iterator[str], lock: threading.Lock) -> None:
        try:
            while True:
                with lock:
                    video_id = next(todo, None)
                if video_id is None:
                    return
                self._decode_video(video_id)
        except _Stop:
            return
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            self.errors.append(err)
            self.stop.set()

    def _decode_video(self, video_id: str) -> None:
        video = self.ds.videos[video_id]
        frames = self._frames(video_id)
        B = self.cfg.batch_size
        if not self.det.needs_pixels:
            for s in range(0, len(frames), B):
                self._put(self.q_in, ("batch", video_id, frames[s:s + B], [None] * len(frames[s:s + B])))
            self._put(self.q_in, ("done", video_id, frames))
            return
        idx: list[int] = []
        imgs: list[np.ndarray] = []
        try:
            for i, img in video.iter_frames(frames):
                if img.shape[:2] != (video.height, video.width):
                    raise DataError(
                        f"{video.source.describe()}: frame {i} is {img.shape[1]}x{img.shape[0]} but the dataset "
                        f"says {video.width}x{video.height}; re-encode the clip, or pass --skip-bad to skip it"
                    )
                idx.append(i)
                imgs.append(img)
                if len(idx) == B:
                    self._put(self.q_in, ("batch", video_id, idx, imgs))
                    idx, imgs = [], []
        except DataError as err:
            self._put(self.q_in, ("bad", video_id, str(err)))
            return
        if idx:
            self._put(self.q_in, ("batch", video_id, idx, imgs))
        self._put(self.q_in, ("done", video_id, frames))

    # -- writer
    def _write(self) -> None:
        acc: dict[str, list] = {}
        try:
            while True:
                item = self.q_out.get()
                if item is None:
                    return
                kind, video_id = item[0], item[1]
                if kind == "result":
                    acc.setdefault(video_id, []).extend(self._encode(video_id, item[2], item[3]))
                elif kind == "done":
                    self._write_video(video_id, acc.pop(video_id, []), item[2])
                elif kind == "bad":
                    acc.pop(video_id, None)
                    self.store.write_video(VideoCandidates.bad(video_id, item[2]).to_record())
                    log.warning("skipped unreadable video %s: %s", video_id, item[2])
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            self.errors.append(err)
            self.stop.set()

    def _encode(self, video_id: str, frames: list[int], fcs: list[FrameCandidates]) -> list[tuple]:
        rows = []
        for f, fc in zip(frames, fcs):
            if not self.det.exact:
                fc = postprocess(fc, score_threshold=self.cfg.score_threshold,
                                 max_per_frame=self.cfg.max_per_frame, dedup_iou=self.cfg.dedup_iou)
            else:
                fc = postprocess(fc, score_threshold=0.0, max_per_frame=len(fc) + 1, dedup_iou=1.0)
            rles = mask_ops.encode_many(fc.masks)
            gt = self._gt_stats(video_id, f, rles)
            rows.append((f, fc.boxes, fc.scores, fc.class_ids, rles, gt))
        return rows

    def _gt_stats(self, video_id: str, frame: int, rles: list[dict]) -> tuple[int, int] | None:
        if frame not in self.ds.annotated_frames.get(video_id, ()):
            return None
        video = self.ds.videos[video_id]
        inst = self.ds.frame_instances(video_id, frame)
        gt = [fit_mask(i.mask, video.height, video.width) for i in inst]
        gt_rles = mask_ops.encode_many(np.stack(gt)) if gt else []
        return len(gt_rles), candidate_recall(gt_rles, rles, 0.5)

    def _write_video(self, video_id: str, rows: list[tuple], frames: list[int]) -> None:
        video = self.ds.videos[video_id]
        done = [r[0] for r in rows]
        if done != list(frames):
            raise RuntimeError(f"internal: {video_id} got frames {done[:5]}... expected {frames[:5]}...")
        K = [len(r[2]) for r in rows]
        vc = VideoCandidates(
            video_id=video_id, height=video.height, width=video.width, num_frames=video.num_frames,
            frames=np.repeat(np.asarray(done, np.int32), K).astype(np.int32),
            boxes=np.concatenate([r[1] for r in rows]) if rows else np.zeros((0, 4), np.float32),
            scores=np.concatenate([r[2] for r in rows]) if rows else np.zeros(0, np.float32),
            class_ids=np.concatenate([r[3] for r in rows]) if rows else np.zeros(0, np.int32),
            rles=[rle for r in rows for rle in r[4]],
            processed_frames=np.asarray(done, np.int32),
            fps=video.fps,
        )
        rec = vc.to_record()
        gts = [r[5] for r in rows if r[5] is not None]
        rec.attrs.update(processed=len(done), gt_frames=len(gts),
                         gt_instances=sum(g[0] for g in gts), gt_covered=sum(g[1] for g in gts))
        self.store.write_video(rec)

    # -- the caller's thread: detection
    def run(self, pending: list[str]) -> None:
        total = sum(len(self._frames(v)) for v in pending)
        todo, lock = iter(pending), threading.Lock()
        decoders = [threading.Thread(target=self._decode, args=(todo, lock), daemon=True, name=f"decode-{i}")
                    for i in range(min(self.cfg.workers, len(pending)))]
        writer = threading.Thread(target=self._write, daemon=True, name="write")
        for t in decoders + [writer]:
            t.start()
        fatal: BaseException | None = None
        try:
            with progress(range(total), desc="detect", total=total, unit="frame") as bar:
                live = len(decoders)
                while live and not self.stop.is_set():
                    try:
                        item = self.q_in.get(timeout=0.1)
                    except queue.Empty:
                        live = sum(t.is_alive() for t in decoders)
                        if live == 0 and not self.q_in.empty():
                            live = 1
                        continue
                    if item[0] == "batch":
                        _, video_id, frames, imgs = item
                        fcs = self.det.detect(imgs, [(video_id, f) for f in frames])
                        if len(fcs) != len(frames):
                            raise RuntimeError(f"detector {self.det.name} returned {len(fcs)} results for {len(frames)} frames")
                        self._put(self.q_out, ("result", video_id, frames, fcs))
                        bar.update(len(frames))
                    elif item[0] == "bad" and not self.cfg.skip_bad:
                        fatal = DataError(item[2] if "--skip-bad" in item[2] else f"{item[2]}; pass --skip-bad to skip it")
                        break
                    else:
                        self._put(self.q_out, item)
        except BaseException as err:
            fatal = err
        # let the writer finish every video queued before the stop, then tear down
        if fatal is not None or self.errors:
            self.stop.set()
        while True:
            try:
                self.q_out.put(None, timeout=0.1)
                break
            except queue.Full:
                if not writer.is_alive():
                    break
        writer.join()
        self.stop.set()
        for t in decoders:
            t.join(timeout=5)
        if fatal is not None:
            raise fatal
        if self.errors:
            raise self.errors[0]


def summary_lines(res: DetectResult) -> list[str]:
    """The end-of-run summary the CLI prints."""
    I, N = res.shard
    where = f" (shard {I}/{N})" if N > 1 else ""
    head = "cache hit" if res.cache_hit else "wrote"
    out = [f"{head}: {res.path}{where}",
           f"videos: {res.videos} ({len(res.computed)} computed now, {len(res.bad)} bad)",
           f"frames: {res.frames}  candidates: {res.candidates}  per frame: {res.per_frame:.2f}"]
    if res.recall is not None:
        out.append(f"candidate recall (mask IoU >= 0.5): {res.recall:.3f} "
                   f"({res.gt_covered} of {res.gt_instances} GT instances in {res.annotated_frames} annotated frames)")
    out += [f"bad video {v}: {err}" for v, err in res.bad]
    if N > 1:
        out.append(f"when every shard is done: clawcrane cache merge {res.path}")
    return out
