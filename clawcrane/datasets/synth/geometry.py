"""Pixels of a scene: shape rasterisation, per-frame visible-instance label maps, visibility stats.

Label maps and frames are drawn with the same ``draw_shape`` calls at the same coordinates, so
the ground-truth masks (the visible parts: what later objects in the draw order do not cover)
match the rendered frames pixel for pixel (before video compression).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from clawcrane.datasets.synth.scene import Scene

SHIFT = 4
"""Fixed-point bits for OpenCV drawing: sub-pixel positions give smooth motion."""
MIN_VISIBLE_PX = 20
"""An object with fewer visible pixels in a frame is not annotated there (treated as absent)."""


_UNIT = {
    "square": np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float64) * 0.886,  # area of the circle
    "triangle": 1.3 * np.array([(math.cos(math.radians(a)), math.sin(math.radians(a))) for a in (-90, 30, 150)]),
    "diamond": np.array([(0, -1), (1, 0), (0, 1), (-1, 0)], np.float64) * 1.15,
}
"""Polygon vertices at radius 1 around the centre (the triangle points up, centred on its centroid)."""


def shape_vertices(shape: str, cx: float, cy: float, r: float) -> np.ndarray | None:
    """(V, 2) float polygon of a shape centred at (cx, cy) with radius r; None for a circle."""
    if shape == "circle":
        return None
    if shape not in _UNIT:
        raise ValueError(f"unknown shape {shape!r}")
    return _UNIT[shape] * r + (cx, cy)


def extent(shape: str, r: float) -> float:
    """Half-size of the square that bounds the shape around its centre."""
    return {"circle": r, "square": 0.886 * r, "triangle": 1.3 * r, "diamond": 1.15 * r}[shape]


def draw_shape(img: np.ndarray, shape: str, cx: float, cy: float, r: float, value, origin=(0, 0)) -> None:
    """Fill the shape into ``img`` (any dtype, 1 or 3 channels) with ``value``, in place.

    ``origin`` is the frame position of ``img[0, 0]`` (integers: drawing is then translation
    invariant, so a patch and a full frame get exactly the same pixels). Pixels outside ``img``
    are clipped.
    """
    scale = 1 << SHIFT
    ox, oy = origin
    if shape == "circle":
        c = (int(round((cx - ox) * scale)), int(round((cy - oy) * scale)))
        cv2.circle(img, c, int(round(r * scale)), value, thickness=-1, lineType=cv2.LINE_8, shift=SHIFT)
    else:
        pts = np.round((shape_vertices(shape, cx, cy, r) - (ox, oy)) * scale).astype(np.int32)
        cv2.fillPoly(img, [pts], value, lineType=cv2.LINE_8, shift=SHIFT)


def bounds(shape: str, cx: float, cy: float, r: float, W: int, H: int) -> tuple[slice, slice] | None:
    """Rows and columns of the frame that can hold the shape's pixels; None when off-frame."""
    e = extent(shape, r) + 2
    xa, ya = max(int(math.floor(cx - e)), 0), max(int(math.floor(cy - e)), 0)
    xb, yb = min(int(math.ceil(cx + e)) + 1, W), min(int(math.ceil(cy + e)) + 1, H)
    if xa >= xb or ya >= yb:
        return None
    return slice(ya, yb), slice(xa, xb)


def shape_area(shape: str, r: float) -> int:
    """Pixels of the whole shape (unclipped), rasterised as drawn."""
    e = int(math.ceil(extent(shape, r))) + 3
    patch = np.zeros((2 * e, 2 * e), np.uint8)
    draw_shape(patch, shape, e + 0.5, e + 0.5, r, 1)
    return int(patch.sum())


@dataclass(kw_only=True)
class Geometry:
    """Per-frame facts about every object of a scene (T frames, n objects)."""

    centres: np.ndarray
    """(T, n, 2) float32 true centres (x, y), also outside the frame."""
    full_px: np.ndarray
    """(T, n) int32 pixels of the whole shape (as if the frame had no border and nothing in front)."""
    visible_px: np.ndarray
    """(T, n) int32 visible pixels in the frame."""
    visible_box: np.ndarray
    """(T, n, 4) float32 x1, y1, x2, y2 (exclusive) of the visible pixels; zeros when none."""
    shadow: np.ndarray
    """(T, n) float32 shadow strength at the object's centre (0 lit, 1 fully in shadow)."""
    labels: np.ndarray
    """(T, H, W) uint8: 1 + index of the object visible at each pixel, 0 background.

    Only objects that are ``listed`` in a frame appear in its label map."""

    @property
    def listed(self) -> np.ndarray:
        """(T, n) bool: visible enough to be annotated (>= MIN_VISIBLE_PX pixels)."""
        return self.visible_px >= MIN_VISIBLE_PX

    @property
    def visible_frac(self) -> np.ndarray:
        """(T, n) share of the whole shape that is visible."""
        return self.visible_px / np.maximum(self.full_px, 1)

    def box_centres(self) -> np.ndarray:
        """(T, n, 2) centres of the visible boxes (what a detector's box shows)."""
        b = self.visible_box
        return np.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2], axis=-1)

    def masks(self, t: int, indices) -> np.ndarray:
        """(N, H, W) bool visible masks of objects ``indices`` in frame t."""
        lab = self.labels[t]
        return np.stack([lab == i + 1 for i in indices]) if len(indices) else np.zeros((0,) + lab.shape, bool)


def compute_geometry(scene: Scene, frames=None) -> Geometry:
    """Label maps and visibility statistics of every frame of ``scene`` (or only of ``frames``:
    the other frames' entries then stay zero; used to check a draw cheaply)."""
    W, H, T = scene.width, scene.height, scene.num_frames
    n = len(scene.objects)
    order = scene.by_depth()
    area = np.array([shape_area(o.shape, o.radius) for o in scene.objects], np.int32)
    centres = np.array([[o.centre(t) for o in scene.objects] for t in range(T)], np.float32).reshape(T, n, 2)
    full_px = np.broadcast_to(area, (T, n)).copy()
    visible_px = np.zeros((T, n), np.int32)
    visible_box = np.zeros((T, n, 4), np.float32)
    shadow = np.zeros((T, n), np.float32)
    labels = np.zeros((T, H, W), np.uint8)
    for t in range(T) if frames is None else frames:
        lab = labels[t]
        rois = {}
        for o in order:
            cx, cy = centres[t, o.index]
            if scene.shadow is not None:
                shadow[t, o.index] = scene.shadow.strength(float(cx), float(cy), t)
            b = bounds(o.shape, cx, cy, o.radius, W, H)
            if b is not None:
                draw_shape(lab, o.shape, float(cx), float(cy), o.radius, o.index + 1)
                rois[o.index] = b
        for i, (ys, xs) in rois.items():
            vis = lab[ys, xs] == i + 1
            cnt = int(np.count_nonzero(vis))
            if cnt < MIN_VISIBLE_PX:
                lab[ys, xs][vis] = 0  # too small to annotate: drop from the label map
                continue
            visible_px[t, i] = cnt
            rows, cols = np.flatnonzero(vis.any(axis=1)), np.flatnonzero(vis.any(axis=0))
            visible_box[t, i] = (xs.start + cols[0], ys.start + rows[0], xs.start + cols[-1] + 1, ys.start + rows[-1] + 1)
    return Geometry(centres=centres, full_px=full_px, visible_px=visible_px, visible_box=visible_box,
                    shadow=shadow, labels=labels)
