"""Text-guided ranks (not in the paper): where a candidate stands among the objects the sentence names.

The PRM's r_x is a rank among *all* candidates of a frame, so it cannot say "the leftmost star"
when a circle is further left, nor "the second square from the right". This module ranks each
candidate among the candidates the sentence's category words select, without a class list:

1. selection: w_m = sigmoid(<W_c f_m, W_s L> / sqrt(H) + b) for every candidate m, from its
   pooled feature f_m and the L2-normalised sentence embedding L (soft weights in (0, 1));
2. soft counts along each axis a (x_c, y_c, log box area, and with motion the speed |v|):
   before_a(n) = sum_{m != n} w_m sigmoid((v_a(n) - v_a(m)) / kappa_a): how many selected objects
   lie left of (above, smaller than, slower than) n; after_a(n) the same the other way;
3. g_n = [before_a, after_a, (before_a - after_a) / (1 + total), w_n, total] per candidate, and
   an MLP turns g_n into a D-vector added to the object's embedding, so the sentence's cosine picks
   "before = 0" (leftmost), "after = 1" (second from the right) or "before = after" (middle).

Padded candidates (``valid`` False) weigh 0, so padding leaves the real candidates' outputs alone.
Mirroring a frame swaps before_x and after_x, as it swaps 'left' and 'right' in the sentence.
"""

from __future__ import annotations

import math

import torch
from torch import nn

KAPPA = (0.01, 0.01, 0.05, 0.05)
"""Softness of 'before' per axis: x_c and y_c (frame units: 3 px at 320), log area, speed (1/100 frame)."""


def axis_values(pos: torch.Tensor, speed: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, >=8) p_i (and (B, N) speeds) -> (B, N, A) values ranked: x_c, y_c, log area (, speed)."""
    area = (pos[..., 6] * pos[..., 7]).clamp(min=1e-6)
    cols = [pos[..., 4], pos[..., 5], torch.log(area)]
    if speed is not None:
        cols.append(speed)
    return torch.stack(cols, dim=-1)


def soft_counts(values: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor,
                kappa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(before, after) (B, N, A) weighted counts of the other candidates, and the total weight (B, N).

    ``values`` (B, N, A), ``weights`` (B, N) in [0, 1], ``valid`` (B, N) bool, ``kappa`` (A,).
    """
    B, N, A = values.shape  # (B, N, A) batch, candidates, axes
    diff = values[:, :, None, :] - values[:, None, :, :]  # (B, N, N, A) [b, n, m] = v(n) - v(m)
    below = torch.sigmoid(diff / kappa)  # m lies before n on the axis
    others = valid[:, None, :] & ~torch.eye(N, dtype=torch.bool, device=values.device)[None]  # (B, N, N)
    w = (weights[:, None, :] * others)[..., None]  # (B, N, N, 1) weight of m seen from n
    before = (w * below).sum(dim=2)
    after = (w * (1.0 - below)).sum(dim=2)
    return before, after, w.squeeze(-1).sum(dim=2)


class TextGuidedRanks(nn.Module):
    """g_n -> D: the rank features of each candidate among the sentence-selected ones."""

    def __init__(self, *, feat_dim: int, embed_dim: int, axes: int = 3, hidden: int = 64):
        super().__init__()
        if not 1 <= axes <= len(KAPPA):
            raise ValueError(f"axes must be in 1..{len(KAPPA)}, got {axes}")
        self.axes = axes
        self.w_c = nn.Linear(feat_dim, hidden)
        self.w_s = nn.Linear(embed_dim, hidden)
        self.bias = nn.Parameter(torch.zeros(()))
        self.register_buffer("kappa", torch.tensor(KAPPA[:axes]), persistent=False)
        n_in = 3 * axes + 2
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, embed_dim))

    def selection(self, feat: torch.Tensor, sent: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, N) soft weights w_m of the candidates the sentence names (0 on padding)."""
        H = self.w_c.out_features
        logits = torch.einsum("bnh,bh->bn", self.w_c(feat), self.w_s(sent)) / math.sqrt(H) + self.bias
        return torch.sigmoid(logits) * valid

    def features(self, feat: torch.Tensor, sent: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor,
                 speed: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, 3A + 2) g_n."""
        w = self.selection(feat, sent, valid)  # (B, N)
        values = axis_values(pos, speed if self.axes > 3 else None)[..., : self.axes]
        before, after, total = soft_counts(values, w, valid, self.kappa)
        balance = (before - after) / (1.0 + total[..., None])
        return torch.cat([before, after, balance, w[..., None], total[..., None]], dim=-1)

    def forward(self, feat: torch.Tensor, sent: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor,
                speed: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, D) to add to the objects' embeddings; zeros on padding.

        ``feat`` (B, N, C) pooled features, ``sent`` (B, D) L2-normalised sentence embeddings,
        ``pos`` (B, N, >=8) p_i, ``valid`` (B, N), ``speed`` (B, N) or None.
        """
        g = self.features(feat, sent, pos, valid, speed)
        return self.mlp(g) * valid[..., None]
