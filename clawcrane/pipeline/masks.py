"""Binary masks: COCO RLE (pycocotools) encoding, IoU, tight boxes.

An RLE here is the pycocotools dict ``{"size": [H, W], "counts": bytes}``; caches store the
``counts`` bytes and the frame size separately.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> dict:
    """(H, W) bool/uint8 -> COCO RLE dict with ``counts`` as bytes."""
    H, W = mask.shape  # (H, W) frame height, width
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(H), int(W)], "counts": rle["counts"]}


def encode_many(masks: np.ndarray) -> list[dict]:
    """(K, H, W) -> K RLE dicts."""
    if len(masks) == 0:
        return []
    K, H, W = masks.shape  # (K, H, W) candidates, height, width
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(H), int(W)], "counts": r["counts"]} for r in rles]


def decode(rle: dict) -> np.ndarray:
    """COCO RLE dict -> (H, W) bool."""
    return mask_utils.decode(_as_coco(rle)).astype(bool)


def decode_many(rles: Sequence[dict], height: int, width: int) -> np.ndarray:
    """K RLE dicts -> (K, H, W) bool (an empty (0, H, W) array for K == 0)."""
    if len(rles) == 0:
        return np.zeros((0, height, width), dtype=bool)
    out = mask_utils.decode([_as_coco(r) for r in rles])  # (H, W, K)
    return out.transpose(2, 0, 1).astype(bool)


def _as_coco(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": list(rle["size"]), "counts": counts}


def area(rles: Sequence[dict]) -> np.ndarray:
    """(K,) pixel areas of K RLEs."""
    if len(rles) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(mask_utils.area([_as_coco(r) for r in rles]), dtype=np.int64)


def iou_matrix(a: Sequence[dict], b: Sequence[dict]) -> np.ndarray:
    """(Ka, Kb) mask IoU between two lists of RLEs of the same frame size."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    return np.asarray(
        mask_utils.iou([_as_coco(r) for r in a], [_as_coco(r) for r in b], [0] * len(b)), dtype=np.float64
    ).reshape(len(a), len(b))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) boolean masks; 0 when both are empty."""
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float(inter / union) if union else 0.0


def tight_box(mask: np.ndarray) -> np.ndarray:
    """(4,) float32 x1, y1, x2, y2 of the mask's pixels (x2, y2 exclusive); zeros when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.zeros(4, dtype=np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)
