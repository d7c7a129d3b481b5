"""The streaming core of `clawcrane detect`: decode -> detect -> postprocess + encode + write.

Threads form a stream, so memory does not grow with video length and decoding and writing
overlap with the model: decoders (``workers``) turn videos into single-video batches of frames,
the caller's thread runs the detector, a writer postprocesses, encodes masks as COCO RLE and writes
each finished video atomically (``parts/<video>.h5``, the resume unit). Batches never mix videos,
so a video's result does not depend on which other videos ran in the same call.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
from collections.abc import Iterator

import numpy as np

from clawcrane.cache.candidates import VideoCandidates
from clawcrane.cache.store import Store
from clawcrane.config import DetectConfig
from clawcrane.datasets.records import Dataset, Video
from clawcrane.errors import DataError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.detectors import (
    Detector,
    FrameCandidates,
    candidate_recall,
    fit_mask,
    postprocess_rles,
    refine_candidates,
)
from clawcrane.progress import progress

log = logging.getLogger(__name__)

_QUEUE = 4  # batches in flight between threads (bounds memory)
RECALL_IOU = 0.5
TRIM_EVERY = 32
"""Frames between two ``malloc_trim`` calls of the writer (see ``_trim_heap``)."""


def _load_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


_MALLOC_TRIM = _load_trim()


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc only).

    Masks (K, H, W) are allocated in the detector's thread and freed in the writer while small
    RLE strings accumulate between them; glibc then keeps the holes resident, and RSS crept up
    with video length (+50% over 500 frames in bench/detect_overhead.py). Trimming every
    ``TRIM_EVERY`` frames keeps peak memory flat; it costs about a millisecond.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def frames_to_run(
    video: Video, stride: int, annotated, detector: Detector | None = None, *, stride_frames: bool = True
) -> list[int]:
    """Frames 0, S, 2S, ... (unless not ``stride_frames``) plus every annotated frame, those the detector wants, ascending."""
    frames = set(range(0, video.num_frames, stride)) if stride_frames else set()
    frames |= {int(f) for f in annotated if 0 <= f < video.num_frames}
    if detector is not None:
        frames = {f for f in frames if detector.wants_frame(video.video_id, f)}
    return sorted(frames)


class _Stop(Exception):
    """Raised inside worker threads (and the caller's ``_put``) when the run is being torn down."""


def _skip_hint(message: str) -> str:
    """An unreadable video's message, offering ``--skip-bad`` unless it already does."""
    return message if "--skip-bad" in message else f"{message}, or pass --skip-bad to skip this video"


class DetectStream:
    """One run over a list of pending videos; ``run`` returns when every one is written (or raises)."""

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
        video = self.ds.videos[video_id]
        annotated = self.ds.annotated_frames.get(video_id, ())
        # train videos with annotations: only those frames when asked (a video without any keeps the stride)
        only_annotated = self.cfg.train_frames == "annotated" and video.split == "train" and len(annotated) > 0
        return frames_to_run(video, self.cfg.frame_stride, annotated, self.det, stride_frames=not only_annotated)

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
                        f"says {video.width}x{video.height}; re-encode the clip"
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
        since_trim = 0
        try:
            while True:
                item = self.q_out.get()
                if item is None:
                    return
                kind, video_id = item[0], item[1]
                if kind == "result":
                    acc.setdefault(video_id, []).extend(self._encode(video_id, item[2], item[3]))
                    since_trim += len(item[2])
                    item = None  # drop the masks before trimming
                    if since_trim >= TRIM_EVERY:
                        _trim_heap()
                        since_trim = 0
                elif kind == "done":
                    try:
                        self._write_video(video_id, acc.pop(video_id, []), item[2])
                    except DataError as err:  # e.g. a clip that cannot be opened to read its fps (oracle, imports)
                        if not self.cfg.skip_bad:
                            raise DataError(_skip_hint(str(err))) from None
                        self._write_bad(video_id, str(err))
                elif kind == "bad":
                    acc.pop(video_id, None)
                    self._write_bad(video_id, item[2])
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            self.errors.append(err)
            self.stop.set()

    def _write_bad(self, video_id: str, message: str) -> None:
        self.store.write_video(VideoCandidates.bad(video_id, message).to_record())
        log.warning("skipped unreadable video %s: %s", video_id, message)

    def _encode(self, video_id: str, frames: list[int], fcs: list[FrameCandidates]) -> list[tuple]:
        rows = []
        for f, fc in zip(frames, fcs):
            if not self.det.exact:
                fc, rles = postprocess_rles(fc, score_threshold=self.cfg.score_threshold,
                                            max_per_frame=self.cfg.max_per_frame, dedup_iou=self.cfg.dedup_iou)
            else:  # ground truth: keep every non-empty mask
                fc, rles = postprocess_rles(fc, score_threshold=0.0, max_per_frame=len(fc) + 1, dedup_iou=1.0)
            gt = self._gt_stats(video_id, f, rles)
            # keep only what is stored: small arrays and the RLE counts bytes (no masks, no dicts)
            rows.append((f, fc.boxes, fc.scores, fc.class_ids, [r["counts"] for r in rles], gt,
                         fc.track_ids, fc.class_names))
        return rows

    def _gt_stats(self, video_id: str, frame: int, rles: list[dict]) -> tuple[int, int] | None:
        if frame not in self.ds.annotated_frames.get(video_id, ()):
            return None
        video = self.ds.videos[video_id]
        inst = self.ds.frame_instances(video_id, frame)
        gt = [fit_mask(i.mask, video.height, video.width) for i in inst]
        gt_rles = mask_ops.encode_many(np.stack(gt)) if gt else []
        return len(gt_rles), candidate_recall(gt_rles, rles, RECALL_IOU)

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
            rles=[{"size": [video.height, video.width], "counts": c} for r in rows for c in r[4]],
            processed_frames=np.asarray(done, np.int32),
            fps=video.fps,
        )
        # proposer track ids / class texts (imports): stored when any frame has them, -1 / "" elsewhere
        if any(r[6] is not None for r in rows):
            vc.track_ids = np.concatenate([np.full(k, -1, np.int32) if r[6] is None else np.asarray(r[6], np.int32)
                                           for r, k in zip(rows, K)]).astype(np.int32)
        if any(r[7] is not None for r in rows):
            vc.class_names = [c for r, k in zip(rows, K) for c in (r[7] if r[7] is not None else [""] * k)]
        rec = vc.to_record()
        gts = [r[5] for r in rows if r[5] is not None]
        # annotated frames the detector has no entry for (an import that skipped them): not in the recall above
        seen = set(done)
        skipped = [f for f in self.ds.annotated_frames.get(video_id, ()) if 0 <= f < video.num_frames and f not in seen]
        rec.attrs.update(processed=len(done), gt_frames=len(gts),
                         gt_instances=sum(g[0] for g in gts), gt_covered=sum(g[1] for g in gts),
                         gt_frames_skipped=len(skipped),
                         gt_instances_skipped=sum(len(self.ds.frame_instances(video_id, f)) for f in skipped))
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
                        if self.cfg.refine_masks != "none" and self.det.needs_pixels and not self.det.exact:
                            fcs = [refine_candidates(img, fc, method=self.cfg.refine_masks,
                                                     min_score=self.cfg.score_threshold) for img, fc in zip(imgs, fcs)]
                        self._put(self.q_out, ("result", video_id, frames, fcs))
                        bar.update(len(frames))
                    elif item[0] == "bad" and not self.cfg.skip_bad:
                        fatal = DataError(_skip_hint(item[2]))
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
        if fatal is not None and not (isinstance(fatal, _Stop) and self.errors):
            raise fatal
        if self.errors:  # a thread's error (the main thread then only saw the stop)
            raise self.errors[0]
