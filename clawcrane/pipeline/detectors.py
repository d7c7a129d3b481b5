"""Candidate proposers behind one interface: frames in, per-frame masks/boxes/scores/classes out.

Implementations: ``MaskRCNNDetector`` (``pipeline/maskrcnn.py``: the trained lite model or
torchvision's COCO R50-FPN), ``OracleDetector`` (ground-truth instances of annotated frames) and
``ImportDetector`` (masks made by any other system). ``postprocess`` applies the stage's
threshold, duplicate removal and per-frame cap identically to all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from clawcrane.pipeline import masks as mask_ops


@dataclass
class FrameCandidates:
    """Candidates of one frame, at the frame's original resolution."""

    masks: np.ndarray
    """(K, H, W) bool."""
    boxes: np.ndarray
    """(K, 4) float32 x1, y1, x2, y2 in pixels."""
    scores: np.ndarray
    """(K,) float32 in [0, 1]."""
    class_ids: np.ndarray
    """(K,) int32."""

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, height: int, width: int) -> FrameCandidates:
        return cls(
            masks=np.zeros((0, height, width), bool),
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros(0, np.float32),
            class_ids=np.zeros(0, np.int32),
        )

    def select(self, rows: np.ndarray) -> FrameCandidates:
        rows = np.asarray(rows, dtype=np.int64)
        return FrameCandidates(self.masks[rows], self.boxes[rows], self.scores[rows], self.class_ids[rows])


class Detector(ABC):
    """Proposes candidate objects for a batch of frames."""

    name: str = "detector"

    @abstractmethod
    def key(self) -> str:
        """Fingerprint of the weights and every output-affecting detector setting."""

    @abstractmethod
    def detect(self, frames: list[np.ndarray], refs: list[tuple[str, int]]) -> list[FrameCandidates]:
        """``frames``: RGB uint8 (H, W, 3); ``refs``: (video_id, frame index) of each frame."""

    def wants_frame(self, video_id: str, frame: int) -> bool:
        """Whether this detector has anything to say about a frame (the oracle: annotated ones)."""
        return True


def postprocess(
    fc: FrameCandidates, *, score_threshold: float, max_per_frame: int, dedup_iou: float
) -> FrameCandidates:
    """Keep candidates with score >= threshold and a non-empty mask, drop duplicates, cap to K.

    Duplicates: greedily, in descending score, a mask whose IoU with an already kept mask exceeds
    ``dedup_iou`` is dropped (mask NMS). Output rows are in descending score order.
    """
    K, H, W = fc.masks.shape  # (K, H, W) candidates, height, width
    if K == 0:
        return fc
    nonempty = fc.masks.reshape(K, -1).any(axis=1)
    keep0 = np.flatnonzero((fc.scores >= score_threshold) & nonempty)
    order = keep0[np.argsort(-fc.scores[keep0], kind="stable")]
    if len(order) == 0:
        return FrameCandidates.empty(H, W)
    rles = mask_ops.encode_many(fc.masks[order])
    iou = mask_ops.iou_matrix(rles, rles)  # (k, k)
    kept: list[int] = []
    for i in range(len(order)):
        if len(kept) >= max_per_frame:
            break
        if kept and iou[i, kept].max() > dedup_iou:
            continue
        kept.append(i)
    return fc.select(order[kept])
