"""The Positional Relation Module's input p_i (paper §3.2), and its horizontal mirror.

p_i = (x_min, y_min, x_max, y_max, x_c, y_c, w, h, r_x, r_y) of the candidate's tight box (the
smallest box around its mask), all in [0, 1]:

* coordinates are divided by the frame width W (x) or height H (y); boxes are pixel-edge boxes
  (x_max is exclusive: a mask touching the right border has x_max = 1), so mirroring is exact:
  x -> 1 - x;
* r_x (r_y) is the candidate's rank among the candidates of its frame by box centre x_c (y_c),
  ascending, 0-based, divided by (K - 1): the leftmost gets 0, the rightmost 1. Candidates with
  equal centres share the mean of their ranks, so the ranks of the mirrored frame are exactly
  1 - r_x. A frame with a single candidate gives it 0.5 (it is as much the leftmost as the
  rightmost, and 0.5 is the one value a mirror leaves unchanged).

Mirror (``flip_positions``): x_min' = 1 - x_max, x_max' = 1 - x_min, x_c' = 1 - x_c, r_x' = 1 - r_x;
y, w and h are unchanged.
"""

from __future__ import annotations

import numpy as np

P = 10
NAMES = ("x_min", "y_min", "x_max", "y_max", "x_c", "y_c", "w", "h", "r_x", "r_y")


def tight_boxes(masks: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """(K, H, W) bool -> (K, 4) float32 x1, y1, x2, y2 pixel edges (x2, y2 exclusive).

    An empty mask gets its row of ``fallback`` (K, 4) (e.g. the detector's box), else zeros.
    """
    K, H, W = masks.shape  # (K, H, W) candidates, height, width
    out = np.zeros((K, 4), np.float32)
    if K == 0:
        return out
    cols = masks.any(axis=1)  # (K, W)
    rows = masks.any(axis=2)  # (K, H)
    nonempty = cols.any(axis=1)
    out[:, 0] = cols.argmax(axis=1)
    out[:, 2] = W - cols[:, ::-1].argmax(axis=1)
    out[:, 1] = rows.argmax(axis=1)
    out[:, 3] = H - rows[:, ::-1].argmax(axis=1)
    out[~nonempty] = 0 if fallback is None else np.asarray(fallback, np.float32)[~nonempty]
    return out


def relative_ranks(values: np.ndarray) -> np.ndarray:
    """(K,) -> (K,) float32 ascending 0-based ranks (ties share their mean) / (K - 1); K == 1 -> 0.5."""
    K = len(values)
    if K == 0:
        return np.zeros(0, np.float32)
    if K == 1:
        return np.full(1, 0.5, np.float32)
    values = np.asarray(values)
    ranks = np.empty(K, np.float64)
    ranks[np.argsort(values, kind="stable")] = np.arange(K)
    _, group = np.unique(values, return_inverse=True)  # equal values -> one group
    mean_rank = np.bincount(group, weights=ranks) / np.bincount(group)
    return (mean_rank[group] / (K - 1)).astype(np.float32)


def positions(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(K, 4) pixel boxes x1, y1, x2, y2 of ONE frame's candidates -> (K, 10) float32 p_i."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    K = len(b)
    x1, x2 = b[:, 0] / width, b[:, 2] / width
    y1, y2 = b[:, 1] / height, b[:, 3] / height
    xc, yc = (x1 + x2) / 2, (y1 + y2) / 2
    out = np.stack([x1, y1, x2, y2, xc, yc, x2 - x1, y2 - y1, np.zeros(K), np.zeros(K)], axis=1)
    out[:, 8] = relative_ranks(xc)
    out[:, 9] = relative_ranks(yc)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def flip_positions(pos: np.ndarray) -> np.ndarray:
    """(K, 10) p_i -> (K, 10) p_i of the horizontally mirrored frame."""
    pos = np.asarray(pos, np.float32)
    out = pos.copy()
    out[:, 0] = 1.0 - pos[:, 2]
    out[:, 2] = 1.0 - pos[:, 0]
    out[:, 4] = 1.0 - pos[:, 4]
    out[:, 8] = 1.0 - pos[:, 8]
    return out
