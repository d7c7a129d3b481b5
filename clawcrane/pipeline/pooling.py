"""Mask max-pooling (paper Eq. 2 without the MLP): v^j = Max(F_v ⊙ σ^j) per candidate.

Masks live at the frame's original resolution (H, W); a feature map has h x w cells, each the
image of an (H/h) x (W/w) block of the frame (frames are resized to a square, so cells stay
aligned with the original pixel grid). The mask is brought to the feature grid by **area
resampling**: each cell gets its *coverage*, the fraction of its pixels inside the mask. A cell belongs to the candidate when its coverage is at least
``min(threshold, max coverage of that mask)`` (threshold 0.5 by default): a mask that covers no
cell by half (a one-pixel object, a thin pole) still keeps the cell(s) it covers most, so every
non-empty mask gets a defined, finite feature. An empty mask (none is stored by ``detect``) gets
the zero vector.

The max is taken over the member cells only (features outside are excluded, not zeroed): for
non-negative maps (ReLU/ReLU6 outputs such as ResNet C2..C5 or EfficientNet ``head``) this equals
``Max(F ⊙ σ)`` exactly; for signed maps (EfficientNet C2..C5) it avoids the bias of zeros.
Pooling is vectorised over every candidate of every frame in a batch (one scatter-max).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from clawcrane.config import ExtractConfig

DEFAULT_THRESHOLD = ExtractConfig.mask_threshold


def mask_coverage(masks: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(K, H, W) bool masks -> (K, h, w) float32: fraction of each feature cell inside the mask.

    Cell (i, j) is the pixel block rows [i*H//h, (i+1)*H//h) x cols [j*W//w, (j+1)*W//w) (a
    partition of the frame; exact area resampling when h divides H). Counting by ``reduceat`` is
    ~20x cheaper than average pooling a float copy. Frames smaller than the map (H < h or W < w,
    tiny inputs only) fall back to adaptive average pooling, whose windows overlap.
    """
    m = masks.cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    K, H, W = m.shape  # (K, H, W) candidates, frame height, width
    h, w = int(size[0]), int(size[1])
    if K == 0:
        return torch.zeros(0, h, w)
    if H < h or W < w:
        x = torch.from_numpy(np.ascontiguousarray(m)).reshape(K, 1, H, W).float()
        return F.adaptive_avg_pool2d(x, (h, w)).reshape(K, h, w)
    ys = (np.arange(h) * H) // h  # first row of each cell
    xs = (np.arange(w) * W) // w
    counts = np.add.reduceat(np.add.reduceat(m, ys, axis=1, dtype=np.int32), xs, axis=2)  # (K, h, w)
    area = np.diff(ys, append=H)[:, None] * np.diff(xs, append=W)[None, :]  # (h, w) pixels per cell
    return torch.from_numpy((counts / area).astype(np.float32))


def select_cells(coverage: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """(K, h, w) coverage -> (K, h, w) bool member cells: coverage >= min(threshold, the mask's max).

    Empty masks (max coverage 0) select nothing.
    """
    K, h, w = coverage.shape  # (K, h, w) candidates, feature height, width
    if K == 0:
        return torch.zeros(0, h, w, dtype=torch.bool, device=coverage.device)
    peak = coverage.reshape(K, -1).amax(dim=1)  # (K,)
    cut = torch.clamp(peak, max=threshold).view(K, 1, 1)
    return (coverage >= cut) & (peak.view(K, 1, 1) > 0)


def masked_max_pool(fmaps: torch.Tensor, cells: torch.Tensor, frame_of: torch.Tensor) -> torch.Tensor:
    """Max of each candidate's member cells.

    fmaps (B, C, h, w) feature maps of B frames; cells (K, h, w) bool member cells of K candidates;
    frame_of (K,) long: the frame (0..B-1) each candidate belongs to. Returns (K, C) in the maps'
    dtype; a candidate without member cells gets zeros.
    """
    B, C, h, w = fmaps.shape  # (B, C, h, w) frames, channels, feature height, width
    K = cells.shape[0]
    out = torch.zeros(K, C, dtype=fmaps.dtype, device=fmaps.device)
    if K == 0:
        return out
    table = fmaps.permute(0, 2, 3, 1).reshape(B * h * w, C)  # (B*h*w, C) one row per cell
    cand, cell = torch.nonzero(cells.reshape(K, h * w).to(fmaps.device), as_tuple=True)  # (n,) each
    if cand.numel() == 0:
        return out
    rows = frame_of.to(fmaps.device)[cand] * (h * w) + cell  # (n,) row of each member cell
    src = table.index_select(0, rows)  # (n, C)
    return out.scatter_reduce_(0, cand.view(-1, 1).expand(-1, C), src, reduce="amax", include_self=False)


def pool_levels(fmaps: Sequence[torch.Tensor], cells: Sequence[torch.Tensor], frame_of: torch.Tensor) -> torch.Tensor:
    """Pool every level and concatenate: fmaps[l] (B, C_l, h_l, w_l), cells[l] (K, h_l, w_l) -> (K, sum C_l)."""
    return torch.cat([masked_max_pool(f, c, frame_of) for f, c in zip(fmaps, cells, strict=True)], dim=1)


def pool_masks(fmap: torch.Tensor, masks: np.ndarray | torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """One frame: fmap (C, h, w), masks (K, H, W) bool at frame resolution -> (K, C) pooled features."""
    C, h, w = fmap.shape  # (C, h, w) channels, feature height, width
    cells = select_cells(mask_coverage(masks, (h, w)), threshold)
    return masked_max_pool(fmap.unsqueeze(0), cells, torch.zeros(cells.shape[0], dtype=torch.long))
