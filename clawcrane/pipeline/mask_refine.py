"""Boundary refinement of candidate masks at frame resolution (issue 16 item 4).

A Mask R-CNN mask is predicted on a 28 x 28 grid inside its box and pasted up to the frame, so its
outline is smooth and can be off by a pixel or two: at IoU 0.9 that decides. The refinement
re-labels only a thin band around each mask's outline from the frame's own colours, with OpenCV's
GrabCut (Gaussian-mixture colour models of the object and its surroundings + a graph cut):

- pixels deeper than ``band`` inside the mask are fixed as object, pixels further than ``band``
  outside are fixed as background (so a candidate can move its outline by at most ``band``
  pixels and never jumps to another object);
- the band between them starts as 'probably object' (inside the mask) or 'probably background'
  and GrabCut decides, on a crop around the mask (``band`` * 4 pixels of context);
- masks too thin to have an inside (nothing left after eroding by ``band``) are kept as they are.

Pure: an RGB frame and boolean masks in, boolean masks out. Each mask is refined on its own, so
the result does not depend on the other candidates.
"""

from __future__ import annotations

import cv2
import numpy as np

REFINE_METHODS = ("none", "grabcut")
"""Values of `detect --refine-masks`."""
DEFAULT_BAND = 2
"""Pixels the outline may move either way."""
DEFAULT_ITERATIONS = 1
"""GrabCut iterations (colour model + graph cut rounds)."""


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def refine_mask(frame: np.ndarray, mask: np.ndarray, *, band: int = DEFAULT_BAND,
                iterations: int = DEFAULT_ITERATIONS) -> np.ndarray:
    """``mask`` (H, W) bool with its outline re-decided by GrabCut within ``band`` pixels, on ``frame`` (H, W, 3) uint8."""
    H, W = mask.shape  # (H, W) frame height, width
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return mask
    pad = 4 * band + 2
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, H)
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, W)
    m = mask[y0:y1, x0:x1].astype(np.uint8)
    inner = cv2.erode(m, _disk(band), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    outer = cv2.dilate(m, _disk(band))
    if not inner.any() or outer.all():  # too thin to keep a core, or no background left in the crop
        return mask
    gc = np.full(m.shape, cv2.GC_BGD, np.uint8)
    gc[outer > 0] = cv2.GC_PR_BGD
    gc[m > 0] = cv2.GC_PR_FGD
    gc[inner > 0] = cv2.GC_FGD
    crop = np.ascontiguousarray(frame[y0:y1, x0:x1, :3])
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(crop, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # a degenerate colour model (e.g. a flat crop): keep the mask as predicted
        return mask
    out = mask.copy()
    out[y0:y1, x0:x1] = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    return out


def refine_masks(frame: np.ndarray, masks: np.ndarray, *, method: str = "grabcut", band: int = DEFAULT_BAND,
                 iterations: int = DEFAULT_ITERATIONS) -> np.ndarray:
    """(K, H, W) bool masks refined one by one (``method`` 'none' returns them unchanged)."""
    if method not in REFINE_METHODS:
        raise ValueError(f"refine method {method!r}: expected one of {', '.join(REFINE_METHODS)}")
    if method == "none" or len(masks) == 0:
        return masks
    K, H, W = masks.shape  # (K, H, W) candidates, frame height, width
    if frame.shape[:2] != (H, W):
        raise ValueError(f"frame is {frame.shape[:2]} but the masks are {(H, W)}")
    return np.stack([refine_mask(frame, m, band=band, iterations=iterations) for m in masks])
