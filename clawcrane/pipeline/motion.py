"""Motion from tracks (not in the paper): how each candidate's object moves over the video.

A per-frame head cannot tell "moving left" from "moving right" when no single frame shows it. Here
the video's candidates are linked into tracks once, without the sentence (the TRM's Eq. 7 linking:
cosine of the cached pooled features + ``alpha`` x box IoU, Hungarian, ``gamma``, ``beta``), and
every candidate gets the descriptor m_i (``M`` numbers) of the track it belongs to:

====  ==========================================================================================
0, 1  velocity (v_x, v_y) in 1/100 of the frame width (height) per frame: the least-squares slope
      of the track's box centres over its frame numbers (y grows downwards: 'up' is v_y < 0)
2     speed |v| in the same unit (what "the faster X" compares)
3, 4  direction v / |v| (zeros below ``STILL``: a static object has no direction)
5, 6  velocity in object sizes per frame x 10 (v / s with s = sqrt(w h) averaged over the track)
7     1 when the track spans at least two frames, else 0 (a lone candidate shows no motion)
8     speed relative to the video's other tracks: log((|v| + 0.05) / (median |v| of the others + 0.05))
====  ==========================================================================================

The frame numbers are the ones processed, so a track over annotated frames only (a few, spread
over the clip) and one over every frame give the same velocity; train videos detected with
``--train-frames annotated`` therefore describe motion as test videos detected on every frame do.
The head appends m_i to p_i (``HeadConfig.motion``) and scores it against the sentence.

Mirror (``flip_motion``): v_x, the x direction and the size-relative v_x change sign.
Pure numpy; no file I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clawcrane.pipeline import tracking as trm

M = 9
"""Width of the motion descriptor m_i."""
NAMES = ("v_x", "v_y", "speed", "dir_x", "dir_y", "v_x_rel", "v_y_rel", "moving", "speed_vs_others")
SPEED_COLUMN = 2
"""Index of |v| in m_i (the text-guided ranks compare it within a category)."""
STILL = 0.05
"""Speeds (1/100 frame per frame) below this have no direction."""
LINK_GAMMA, LINK_BETA, LINK_ALPHA = 0.8, 3, 1.0
"""Eq. 7's threshold, gap and IoU weight for the sentence-free linking (box IoU, pooled features)."""


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, 4) x (L, 4) boxes x1, y1, x2, y2 -> (K, L) IoU."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def track_descriptor(frames: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(k,) frame numbers and (k, >=8) p_i of one track's members -> (M,) float32 m_i."""
    frames = np.asarray(frames, np.float64)
    pos = np.asarray(pos, np.float64)
    out = np.zeros(M, np.float32)
    if len(frames) < 2 or np.ptp(frames) == 0:
        return out
    f = frames - frames.mean()
    centre = pos[:, 4:6] - pos[:, 4:6].mean(axis=0)  # (k, 2) x_c, y_c
    v = (f[:, None] * centre).sum(axis=0) / (f**2).sum()  # (2,) frame units per frame
    size = float(np.sqrt(np.clip(pos[:, 6] * pos[:, 7], 0, None)).mean())
    v100 = 100.0 * v
    speed = float(np.hypot(*v100))
    direction = v100 / speed if speed >= STILL else np.zeros(2)
    rel = 10.0 * v / max(size, 1e-3)
    out[:8] = [v100[0], v100[1], speed, direction[0], direction[1], rel[0], rel[1], 1.0]
    return out


def video_motion(
    frames: Sequence[int],
    pos: Sequence[np.ndarray],
    feat: Sequence[np.ndarray],
    *,
    gamma: float = LINK_GAMMA,
    beta: int = LINK_BETA,
    alpha: float = LINK_ALPHA,
) -> list[np.ndarray]:
    """m_i of every candidate of one video.

    ``frames`` (T,) processed frame numbers, ascending; ``pos[t]`` (K_t, >=8) p_i and ``feat[t]``
    (K_t, C) pooled features of frame position t. Returns per frame position a (K_t, M) float32
    array: each candidate carries its track's descriptor.
    """
    T = len(frames)
    if len(pos) != T or len(feat) != T:
        raise ValueError(f"{T} frames but {len(pos)} position and {len(feat)} feature arrays")
    boxes = [np.asarray(p, np.float64).reshape(-1, np.shape(p)[-1] if np.size(p) else 10)[:, :4] for p in pos]
    tracks = trm.link_tracks([np.asarray(x, np.float32) for x in feat], iou=lambda s, t: box_iou(boxes[s], boxes[t]),
                             gamma=gamma, beta=beta, alpha=alpha)
    out = [np.zeros((len(p), M), np.float32) for p in pos]
    fr = np.asarray(frames, np.float64)
    desc = []
    for tr in tracks:
        ts = np.array([t for t, _ in tr.members])
        members = np.stack([np.asarray(pos[t], np.float64)[k] for t, k in tr.members])
        desc.append(track_descriptor(fr[ts], members))
    speeds = np.array([d[SPEED_COLUMN] for d in desc])
    spans = np.array([d[7] > 0 for d in desc], bool)
    for i, (tr, d) in enumerate(zip(tracks, desc)):
        others = spans.copy()
        others[i] = False
        if d[7] > 0 and others.any():
            d[8] = np.log((speeds[i] + 0.05) / (np.median(speeds[others]) + 0.05))
        for t, k in tr.members:
            out[t][k] = d
    return out


def flip_motion(m: np.ndarray) -> np.ndarray:
    """(K, M) m_i -> m_i of the horizontally mirrored video."""
    out = np.array(m, np.float32, copy=True)
    out[..., [0, 3, 5]] *= -1.0
    return out


def candidate_motion(frames: Sequence[int], rows: Sequence[np.ndarray], pos: np.ndarray, feat: np.ndarray) -> np.ndarray:
    """(R, M) m_i of every candidate row of one video.

    ``frames`` (T,) processed frame numbers, ascending; ``rows[t]`` the candidate rows of frame
    position t; ``pos`` (R, >=8) and ``feat`` (R, C) indexed by row. Rows of no listed frame get zeros.
    """
    out = np.zeros((len(pos), M), np.float32)
    per_frame = video_motion(frames, [pos[r] for r in rows], [feat[r] for r in rows])
    for r, m in zip(rows, per_frame):
        out[np.asarray(r, np.int64)] = m
    return out
