"""The candidate cache (stage ``detect``): per video, every frame's candidate masks as COCO RLE.

Columns per video (rows sorted by frame, then descending score; candidate id = row index):
``frame`` int32 (K,), ``box`` float32 (K, 4) x1 y1 x2 y2 px, ``score`` float32 (K,),
``class_id`` int32 (K,), ``rle`` K RLE ``counts`` byte strings, ``processed_frames`` int32 (F,).
Optional columns, written only when the detector gives them (imports of Grounded-SAM-2, DEVA,
SAM 2, SAM 3): ``track_id`` int32 (K,) the proposer's track id (-1: none) and ``class_name`` K
UTF-8 byte strings (b"": none). A cache without them reads as ``track_ids = class_names = None``;
readers that do not know them ignore them, so schema 2 is unchanged.
Attributes: ``height``, ``width``, ``num_frames``, ``fps``, ``status`` ('ok' / 'bad'), ``error``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from clawcrane.cache.store import StageArtifact, VideoRecord
from clawcrane.pipeline import masks as mask_ops

STAGE = "detect"
SCHEMA = 2
"""2: meta.json lists the expected ``videos`` and ``complete_with``; columns carry checksums (1 is still read)."""


@dataclass
class VideoCandidates:
    """All candidates of one video (K rows over its processed frames)."""

    video_id: str
    height: int
    width: int
    num_frames: int
    frames: np.ndarray
    """(K,) int32 frame index of each row."""
    boxes: np.ndarray
    """(K, 4) float32 x1, y1, x2, y2 in pixels."""
    scores: np.ndarray
    """(K,) float32 detector confidence."""
    class_ids: np.ndarray
    """(K,) int32 detector class."""
    rles: list[dict] = field(repr=False)
    """K COCO RLE dicts ``{"size": [H, W], "counts": bytes}``."""
    processed_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    """(F,) int32 frames the detector ran on (a frame may have no rows)."""
    fps: float = 0.0
    status: str = "ok"
    error: str = ""
    track_ids: np.ndarray | None = None
    """(K,) int32 track id given by the proposer (-1: none), or None when it gives none."""
    class_names: list[str] | None = None
    """K class texts given by the proposer ("" for none), or None when it names no classes."""

    def __len__(self) -> int:
        return len(self.frames)

    def frame_rows(self, frame: int) -> np.ndarray:
        """Row indices (candidate ids) of one frame, in score order."""
        return np.flatnonzero(self.frames == frame)

    def masks(self, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(k, H, W) bool masks of the given rows (default: all)."""
        rows = range(len(self.rles)) if rows is None else rows
        return mask_ops.decode_many([self.rles[int(r)] for r in rows], self.height, self.width)

    def to_record(self) -> VideoRecord:
        extra: dict = {}
        if self.track_ids is not None:
            extra["track_id"] = np.asarray(self.track_ids, np.int32).reshape(-1)
        if self.class_names is not None:
            extra["class_name"] = [str(c).encode("utf-8") for c in self.class_names]
        return VideoRecord(
            video_id=self.video_id,
            arrays={
                "frame": np.asarray(self.frames, np.int32).reshape(-1),
                "box": np.asarray(self.boxes, np.float32).reshape(-1, 4),
                "score": np.asarray(self.scores, np.float32).reshape(-1),
                "class_id": np.asarray(self.class_ids, np.int32).reshape(-1),
                "rle": [r["counts"] if isinstance(r["counts"], bytes) else r["counts"].encode() for r in self.rles],
                "processed_frames": np.asarray(self.processed_frames, np.int32).reshape(-1),
                **extra,
            },
            attrs={
                "height": int(self.height),
                "width": int(self.width),
                "num_frames": int(self.num_frames),
                "fps": float(self.fps),
                "status": self.status,
                "error": self.error,
            },
        )

    @classmethod
    def from_record(cls, rec: VideoRecord) -> VideoCandidates:
        a, t = rec.arrays, rec.attrs
        H, W = int(t["height"]), int(t["width"])
        return cls(
            video_id=rec.video_id,
            height=H,
            width=W,
            num_frames=int(t["num_frames"]),
            frames=a.get("frame", np.zeros(0, np.int32)),
            boxes=a.get("box", np.zeros((0, 4), np.float32)).reshape(-1, 4),
            scores=a.get("score", np.zeros(0, np.float32)),
            class_ids=a.get("class_id", np.zeros(0, np.int32)),
            rles=[{"size": [H, W], "counts": c} for c in a.get("rle", [])],
            processed_frames=a.get("processed_frames", np.zeros(0, np.int32)),
            fps=float(t.get("fps", 0.0)),
            status=str(t.get("status", "ok")),
            error=str(t.get("error", "")),
            track_ids=a["track_id"] if "track_id" in a else None,
            class_names=[bytes(c).decode("utf-8") for c in a["class_name"]] if "class_name" in a else None,
        )

    @classmethod
    def bad(cls, video_id: str, error: str) -> VideoCandidates:
        """The record of a video that could not be read (kept so a resumed run skips it)."""
        return cls(
            video_id=video_id, height=0, width=0, num_frames=0,
            frames=np.zeros(0, np.int32), boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros(0, np.float32), class_ids=np.zeros(0, np.int32), rles=[],
            status="bad", error=error,
        )


class CandidateCache(StageArtifact):
    """Read access to one candidate artifact (a ``detect-<key>`` folder)."""

    STAGE = STAGE
    NOUN = "candidate cache"
    MADE_BY = "clawcrane detect"

    def video(self, video_id: str) -> VideoCandidates:
        return VideoCandidates.from_record(self.store.read(video_id))


def open_candidates(path: str | os.PathLike) -> CandidateCache:
    """Open a candidate artifact folder, or the single candidate artifact under a cache root."""
    return CandidateCache.open(path, f"run `clawcrane detect DATASET --cache {path}` first")
