"""Which candidate a (query, annotated frame) sample refers to: the best mask-IoU match with the GT.

Pure: RLEs in, indices out. A sample whose best IoU is below ``min_iou`` (0.5) has no referred
candidate; training leaves it out and the stage counts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clawcrane.pipeline import masks as mask_ops

MIN_IOU = 0.5


@dataclass(frozen=True)
class Match:
    """The referred candidate of one sample."""

    index: int
    """Row of the frame's candidate list with the highest IoU, or -1 when none reaches ``min_iou``."""
    iou: float
    """That candidate's IoU with the GT mask (0.0 for a frame without candidates)."""

    @property
    def ok(self) -> bool:
        return self.index >= 0


def match_target(gt_rle: dict, candidate_rles: Sequence[dict], min_iou: float = MIN_IOU) -> Match:
    """The candidate with the highest mask IoU with ``gt_rle``, if that IoU is at least ``min_iou``.

    Ties go to the earlier row (candidates are in descending detector score).
    """
    if len(candidate_rles) == 0:
        return Match(-1, 0.0)
    ious = mask_ops.iou_matrix([gt_rle], list(candidate_rles))[0]  # (K,)
    best = int(np.argmax(ious))
    iou = float(ious[best])
    return Match(best if iou >= min_iou else -1, iou)
