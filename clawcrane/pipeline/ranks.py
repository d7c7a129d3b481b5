"""Text-guided ranks (not in the paper): where a candidate stands among the objects that look like it.

The PRM's r_x is a rank among *all* candidates of a frame, so it cannot say "the leftmost star"
when a circle is further left, nor "the second square from the right". This module ranks each
candidate n among its look-alikes, as the sentence defines "alike", without a class list:

1. look-alike weights: w_nm = sigmoid(b - sum_k gamma_k(L) (a_nk - a_mk)^2), where a_n = W_a f_n
   (L2-normalised, H numbers) is an appearance code of candidate n's pooled feature and
   gamma(L) = softplus(W_g L + c) >= 0 lets the sentence choose which differences count (colour
   and shape for "the leftmost orange triangle", shape alone for "the leftmost triangle");
2. soft counts along each axis a (x_c, y_c, log box area, and with motion the speed |v|):
   before_a(n) = sum_{m != n} w_nm sigmoid((v_a(n) - v_a(m)) / kappa_a): how many look-alikes
   lie left of (above, smaller than, slower than) n; after_a(n) the same the other way;
3. g_n = [before_a, after_a, (before_a - after_a) / (1 + total_n), total_n, soft bins of each count
   at 0, 1, 2 (so "second" is one feature, not a narrow band of a count)] per candidate, and
   the rank term <MLP(g_n), W_k L> / sqrt(H) is added to the candidate's score (as the motion
   term is), so the sentence picks "before = 0" (leftmost), "after = 1" (second from the right) or
   "before = after" (middle), while the cosine picks the category: the second orange triangle from
   the top is the orange triangle with one look-alike above it.

A first version selected one candidate set per sentence, w_m = sigmoid(<W_c f_m, W_s L>), trained
only through the retrieval loss; it learned to select nearly everything (w_m 0.8-1.0 for every
candidate on hard-full), which reduces to the PRM's ranks. Comparing each candidate with the
others needs no such selection to be learned first: alike objects have close codes from the start.
Added to the object's embedding instead of the score, the rank features were drowned by the
appearance part after normalisation (hard-full validation, seed 0: half of the "second from"
sentences still wrong).

Padded candidates (``valid`` False) weigh 0, so padding leaves the real candidates' outputs alone.
Mirroring a frame swaps before_x and after_x, as it swaps 'left' and 'right' in the sentence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KAPPA = (0.01, 0.01, 0.05, 0.05)
"""Softness of 'before' per axis: x_c and y_c (frame units: 3 px at 320), log area, speed (1/100 frame)."""
ALIKE_GAMMA, ALIKE_BIAS = 10.0, 2.0
"""Initial weight of every code difference and the bias of w_nm: identical codes start at
sigmoid(2) = 0.88, codes at squared distance 0.2 (of at most 4) at 0.5, orthogonal ones at sigmoid(-18)."""
ORDINALS, ORDINAL_WIDTH = (0.0, 1.0, 2.0), 0.3
"""Soft bins of each count: exp(-(count - k)^2 / (2 width^2)) for k = 0, 1, 2 ('first', 'second', 'third')."""


def axis_values(pos: torch.Tensor, speed: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, >=8) p_i (and (B, N) speeds) -> (B, N, A) values ranked: x_c, y_c, log area (, speed)."""
    area = (pos[..., 6] * pos[..., 7]).clamp(min=1e-6)
    cols = [pos[..., 4], pos[..., 5], torch.log(area)]
    if speed is not None:
        cols.append(speed)
    return torch.stack(cols, dim=-1)


def soft_counts(values: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor,
                kappa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(before, after) (B, N, A) weighted counts of the other candidates, and their total weight (B, N).

    ``values`` (B, N, A); ``weights`` (B, N, N) in [0, 1], [b, n, m] the weight of m seen from n
    (or (B, N): the same for every n); ``valid`` (B, N) bool; ``kappa`` (A,).
    """
    B, N, A = values.shape  # (B, N, A) batch, candidates, axes
    if weights.dim() == 2:
        weights = weights[:, None, :].expand(B, N, N)
    diff = values[:, :, None, :] - values[:, None, :, :]  # (B, N, N, A) [b, n, m] = v(n) - v(m)
    below = torch.sigmoid(diff / kappa)  # m lies before n on the axis
    others = valid[:, None, :] & ~torch.eye(N, dtype=torch.bool, device=values.device)[None]  # (B, N, N)
    w = (weights * others)[..., None]  # (B, N, N, 1) weight of m seen from n
    before = (w * below).sum(dim=2)
    after = (w * (1.0 - below)).sum(dim=2)
    return before, after, w.squeeze(-1).sum(dim=2)


class TextGuidedRanks(nn.Module):
    """The rank term of each candidate's score: where it stands among its look-alikes, read by the sentence."""

    def __init__(self, *, feat_dim: int, embed_dim: int, axes: int = 3, hidden: int = 64, code: int = 32):
        super().__init__()
        if not 1 <= axes <= len(KAPPA):
            raise ValueError(f"axes must be in 1..{len(KAPPA)}, got {axes}")
        self.axes = axes
        self.w_a = nn.Linear(feat_dim, code)
        self.w_g = nn.Linear(embed_dim, code)
        nn.init.zeros_(self.w_g.weight)
        nn.init.constant_(self.w_g.bias, math.log(math.expm1(ALIKE_GAMMA)))
        self.bias = nn.Parameter(torch.tensor(ALIKE_BIAS))
        self.register_buffer("kappa", torch.tensor(KAPPA[:axes]), persistent=False)
        self.register_buffer("ordinals", torch.tensor(ORDINALS), persistent=False)
        n_in = 3 * axes + 1 + 2 * axes * len(ORDINALS)
        self.hidden = hidden
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden))
        self.w_k = nn.Linear(embed_dim, hidden)

    def alike(self, feat: torch.Tensor, sent: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, N, N) look-alike weights w_nm in (0, 1) (0 towards padding).

        ``feat`` (B, N, C) pooled features, ``sent`` (B, D) L2-normalised sentence embeddings.
        """
        a = F.normalize(self.w_a(feat), dim=-1)  # (B, N, H) appearance codes
        gamma = F.softplus(self.w_g(sent))  # (B, H) which differences count
        d = ((a[:, :, None, :] - a[:, None, :, :]) ** 2 * gamma[:, None, None, :]).sum(-1)  # (B, N, N)
        return torch.sigmoid(self.bias - d) * valid[:, None, :]

    def features(self, feat: torch.Tensor, sent: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor,
                 speed: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, 3A + 1 + 6A) g_n: counts, balance, total, then the counts' ordinal bins."""
        w = self.alike(feat, sent, valid)  # (B, N, N)
        values = axis_values(pos, speed if self.axes > 3 else None)[..., : self.axes]
        before, after, total = soft_counts(values, w, valid, self.kappa)
        balance = (before - after) / (1.0 + total[..., None])
        counts = torch.cat([before, after], dim=-1)[..., None]  # (B, N, 2A, 1)
        bins = torch.exp(-(counts - self.ordinals) ** 2 / (2 * ORDINAL_WIDTH**2)).flatten(-2)  # (B, N, 2A K)
        return torch.cat([before, after, balance, total[..., None], bins], dim=-1)

    def forward(self, feat: torch.Tensor, sent: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor,
                speed: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) rank term to add to the candidates' scores; zeros on padding.

        ``feat`` (B, N, C) pooled features, ``sent`` (B, D) L2-normalised sentence embeddings,
        ``pos`` (B, N, >=8) p_i, ``valid`` (B, N), ``speed`` (B, N) or None.
        """
        g = self.features(feat, sent, pos, valid, speed)  # (B, N, 9A + 1)
        score = torch.einsum("bnh,bh->bn", self.mlp(g), self.w_k(sent)) / math.sqrt(self.hidden)
        return score * valid
