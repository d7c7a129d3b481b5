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


def order_pairs(values: torch.Tensor, valid: torch.Tensor, kappa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sentence-free half of ``soft_counts``: ``below`` (B, N, N, A), [b, n, m, a] = sigmoid((v_a(n) - v_a(m)) / kappa_a),
    how surely m lies before n on axis a; and ``others`` (B, N, N) bool, m is another valid candidate than n."""
    B, N, A = values.shape  # (B, N, A) batch, candidates, axes
    diff = values[:, :, None, :] - values[:, None, :, :]  # (B, N, N, A) [b, n, m] = v(n) - v(m)
    others = valid[:, None, :] & ~torch.eye(N, dtype=torch.bool, device=values.device)[None]  # (B, N, N)
    return torch.sigmoid(diff / kappa), others


def counts_from(below: torch.Tensor, others: torch.Tensor,
                weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``soft_counts`` from ``order_pairs``' output and the (B, N, N) or (B, N) weights."""
    B, N, _, A = below.shape  # (B, N, N, A) batch, candidates, candidates, axes
    if weights.dim() == 2:
        weights = weights[:, None, :].expand(B, N, N)
    w = weights * others  # (B, N, N) weight of m seen from n
    before = torch.einsum("bnm,bnma->bna", w, below)
    total = w.sum(dim=2)  # (B, N)
    return before, total[..., None] - before, total


def soft_counts(values: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor,
                kappa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(before, after) (B, N, A) weighted counts of the other candidates, and their total weight (B, N).

    ``values`` (B, N, A); ``weights`` (B, N, N) in [0, 1], [b, n, m] the weight of m seen from n
    (or (B, N): the same for every n); ``valid`` (B, N) bool; ``kappa`` (A,). after = total - before,
    as sigmoid(-x) = 1 - sigmoid(x).
    """
    below, others = order_pairs(values, valid, kappa)
    return counts_from(below, others, weights)


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

    def context(self, feat: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor,
                speed: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The sentence-free tensors of ``forward`` for B frames (a video session computes them once):
        ``a`` (B, N, H) appearance codes, ``below`` (B, N, N, A) and ``others`` (B, N, N) of ``order_pairs``."""
        values = axis_values(pos, speed if self.axes > 3 else None)[..., : self.axes]
        below, others = order_pairs(values, valid, self.kappa)
        return {"a": F.normalize(self.w_a(feat), dim=-1), "below": below, "others": others}

    def alike_with(self, a: torch.Tensor, sent: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, N, N) look-alike weights from the codes ``a`` (B, N, H): sum_h gamma_h (a_nh - a_mh)^2 expanded
        as q_n + q_m - 2 <gamma a_n, a_m>, so no (B, N, N, H) tensor is formed."""
        gamma = F.softplus(self.w_g(sent))  # (B, H) which differences count
        ga = a * gamma[:, None, :]  # (B, N, H)
        q = (ga * a).sum(-1)  # (B, N)
        d = (q[:, :, None] + q[:, None, :] - 2 * torch.einsum("bnh,bmh->bnm", ga, a)).clamp(min=0)  # (B, N, N)
        return torch.sigmoid(self.bias - d) * valid[:, None, :]

    def alike(self, feat: torch.Tensor, sent: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, N, N) look-alike weights w_nm in (0, 1) (0 towards padding).

        ``feat`` (B, N, C) pooled features, ``sent`` (B, D) L2-normalised sentence embeddings.
        """
        return self.alike_with(F.normalize(self.w_a(feat), dim=-1), sent, valid)

    def features_with(self, ctx: dict[str, torch.Tensor], sent: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, N, 3A + 1 + 6A) g_n from a ``context``: counts, balance, total, then the counts' ordinal bins."""
        w = self.alike_with(ctx["a"], sent, valid)  # (B, N, N)
        before, after, total = counts_from(ctx["below"], ctx["others"], w)
        balance = (before - after) / (1.0 + total[..., None])
        counts = torch.cat([before, after], dim=-1)[..., None]  # (B, N, 2A, 1)
        bins = torch.exp(-(counts - self.ordinals) ** 2 / (2 * ORDINAL_WIDTH**2)).flatten(-2)  # (B, N, 2A K)
        return torch.cat([before, after, balance, total[..., None], bins], dim=-1)

    def features(self, feat: torch.Tensor, sent: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor,
                 speed: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, 3A + 1 + 6A) g_n: counts, balance, total, then the counts' ordinal bins."""
        return self.features_with(self.context(feat, pos, valid, speed), sent, valid)

    def forward_with(self, ctx: dict[str, torch.Tensor], sent: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``forward`` from a ``context`` of the same frames."""
        g = self.features_with(ctx, sent, valid)  # (B, N, 9A + 1)
        score = torch.einsum("bnh,bh->bn", self.mlp(g), self.w_k(sent)) / math.sqrt(self.hidden)
        return score * valid

    def forward(self, feat: torch.Tensor, sent: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor,
                speed: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) rank term to add to the candidates' scores; zeros on padding.

        ``feat`` (B, N, C) pooled features, ``sent`` (B, D) L2-normalised sentence embeddings,
        ``pos`` (B, N, >=8) p_i, ``valid`` (B, N), ``speed`` (B, N) or None.
        """
        return self.forward_with(self.context(feat, pos, valid, speed), sent, valid)
