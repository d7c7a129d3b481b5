"""Intra-frame object relations: the TSRM (paper Eq. 5-6, Figure 3) and its ablations (Table 3).

Every module maps the spatially enhanced object features f_V (B, N, D) of a frame's candidates to
relation-enhanced features F_o (B, N, D). Padded candidates (``valid`` False) are never attended
to, so adding padding rows leaves the real candidates' outputs unchanged.

- ``none``: F_o = f_V (the plain top-down pipeline).
- ``vanilla``: F_o = f_v + softmax(f_q f_k^T / sqrt(d_k)) f_v with q, k, v all from f_V (row 5).
- ``text`` (TSRM as the paper describes it): f_o = ReLU(LayerNorm(W_o Concat(f_V, f_t))) with the
  sentence feature f_t broadcast to every object; f_q = W_q f_V, f_k = W_k f_o, f_v = W_v f_o;
  F_o = f_v + softmax(f_q f_k^T / sqrt(d_k)) f_v. The nonlinearity mixes object and sentence, so the
  sentence changes *whom* each object attends to (Fig. 3, Fig. 4 (f)).
- ``text-linear`` (Eq. 5 read literally): the same with a linear f_o = W_o Concat(f_V, f_t).
- ``text-geo`` (TSRM with relative geometry; not in the paper): Eq. 5's f_o, keys and values as
  ``text``, plus three changes that let a target carry *its neighbour's* look (what "the X above
  the Y" needs):

  1. the attention logit of object n on object m gains a text-guided geometry term
     g(Delta_nm) . (w_0 + W_t f_t), where Delta_nm is m's box relative to n's (centre offsets and
     edge gaps in units of n's size, log size ratios; ``pair_geometry``) and g a small MLP, so
     the sentence picks the direction and distance to look in ("above", "next to");
  2. an object does not attend to itself;
  3. its own feature enters through its own projection: F_o = W_s f_V + softmax(...) f_v, so
     "X next to Y" and "Y next to X" stay apart.

  The geometry is read from the boxes in p_i whatever the head's ``position`` choice, so
  ``position='none', relation='text-geo'`` still sees where the candidates are (relative to
  each other only).

Why the literal (``text-linear``) form cannot use the sentence to choose *whom* to attend to: with a linear W_o,
f_k(m) = W_k A f_V(m) + W_k B f_t, and the f_t part adds the same number q_n . W_k B f_t to every
logit of row n, which softmax cancels; the sentence only shifts the values
(``test_linear_tsrm_attention_weights_do_not_depend_on_the_sentence``). The nonlinear ``text`` has no
such cancellation (``test_tsrm_attention_weights_follow_the_sentence``). ``text-geo`` keeps the
linear fusion it was measured with. What each measures: the README's Table 3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from clawcrane.config import RELATIONS

GEOMETRY = 8
"""Width of the pairwise geometry Delta_nm (``pair_geometry``)."""


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_k)) v over the valid keys of each frame.

    q, k: (B, N, D); v: (B, N, D); valid: (B, N) bool. A frame without any valid candidate gets
    zeros (instead of NaN) so an empty frame in a batch cannot poison the others.
    """
    B, N, D = k.shape  # (B, N, D) batch, candidates, key width d_k
    logits = torch.einsum("bnd,bmd->bnm", q, k) / math.sqrt(D)  # (B, N, N) query n, key m
    logits = logits.masked_fill(~valid[:, None, :], float("-inf"))
    attn = torch.softmax(logits, dim=-1)
    attn = torch.where(valid.any(dim=1)[:, None, None], attn, torch.zeros_like(attn))
    return torch.einsum("bnm,bmd->bnd", attn, v)


def pair_geometry(pos: torch.Tensor) -> torch.Tensor:
    """(B, N, 10) p_i -> (B, N, N, 8) Delta_nm: where key m sits relative to query n.

    (dx, dy, gap_x, gap_y) / s_n, then dx, dy, log(w_m / w_n), log(h_m / h_n), clamped to
    [-10, 10]; dx, dy are centre offsets (m minus n, y down), gap_x (gap_y) the horizontal
    (vertical) edge gap, negative where the boxes overlap in x (y), s_n = sqrt(w_n h_n).
    """
    B, N, _ = pos.shape  # (B, N, 10) batch, candidates, p_i
    x1, y1, x2, y2, xc, yc, w, h = pos[..., :8].unbind(-1)  # each (B, N)
    s_n = torch.sqrt(w * h).clamp(min=1e-3)[:, :, None]  # (B, N, 1) query scale
    dx = xc[:, None, :] - xc[:, :, None]  # (B, N, N) [b, n, m] = x_c(m) - x_c(n)
    dy = yc[:, None, :] - yc[:, :, None]
    gap_x = torch.maximum(x1[:, None, :] - x2[:, :, None], x1[:, :, None] - x2[:, None, :])
    gap_y = torch.maximum(y1[:, None, :] - y2[:, :, None], y1[:, :, None] - y2[:, None, :])
    log_w = torch.log((w[:, None, :] + 1e-3) / (w[:, :, None] + 1e-3))
    log_h = torch.log((h[:, None, :] + 1e-3) / (h[:, :, None] + 1e-3))
    out = torch.stack([dx / s_n, dy / s_n, gap_x / s_n, gap_y / s_n, dx, dy, log_w, log_h], dim=-1)
    return out.clamp(-10.0, 10.0)  # (B, N, N, 8)


class VanillaRelation(nn.Module):
    """Plain object self-attention (Table 3 row 5): q, k, v are projections of f_V alone."""

    def __init__(self, dim: int):
        super().__init__()
        self.w_q = nn.Linear(dim, dim)
        self.w_k = nn.Linear(dim, dim)
        self.w_v = nn.Linear(dim, dim)

    def forward(self, f_V: torch.Tensor, valid: torch.Tensor, f_t: torch.Tensor | None = None,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        f_v = self.w_v(f_V)  # (B, N, D)
        return f_v + masked_attention(self.w_q(f_V), self.w_k(f_V), f_v, valid)


class TextGuidedRelation(nn.Module):
    """TSRM (Eq. 5-6): keys and values come from objects fused with the sentence feature f_t.

    ``nonlinear``: f_o = ReLU(LayerNorm(W_o [f_V; f_t])) (``text``); else the linear W_o (``text-linear``).
    W_o [f_V; f_t] = W_oV f_V + W_ot f_t: the first half and W_q f_V do not depend on the sentence, so
    ``context`` computes them once per frame and ``forward_with`` adds each sentence's part.
    """

    def __init__(self, dim: int, nonlinear: bool = False):
        super().__init__()
        self.w_o = nn.Linear(2 * dim, dim)
        self.fuse_act = nn.Sequential(nn.LayerNorm(dim), nn.ReLU()) if nonlinear else None
        self.w_q = nn.Linear(dim, dim)
        self.w_k = nn.Linear(dim, dim)
        self.w_v = nn.Linear(dim, dim)

    def context(self, f_V: torch.Tensor, valid: torch.Tensor, pos: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The sentence-free tensors of ``forward`` for B frames: ``q`` = W_q f_V and ``o`` = W_oV f_V, each (B, N, D)."""
        B, N, D = f_V.shape  # (B, N, D) batch, candidates, channels
        return {"q": self.w_q(f_V), "o": f_V @ self.w_o.weight[:, :D].T}

    def fuse_with(self, ctx: dict[str, torch.Tensor], f_t: torch.Tensor | None) -> torch.Tensor:
        """Eq. 5 from a ``context``: f_o (B, N, D) = W_oV f_V + W_ot f_t + b, f_t (B, D) broadcast to every object."""
        if f_t is None:
            raise ValueError("the text-guided relation module needs the sentence feature f_t")
        D = ctx["o"].shape[-1]
        f_o = ctx["o"] + F.linear(f_t, self.w_o.weight[:, D:], self.w_o.bias)[:, None, :]
        return f_o if self.fuse_act is None else self.fuse_act(f_o)

    def fuse(self, f_V: torch.Tensor, f_t: torch.Tensor | None) -> torch.Tensor:
        """Eq. 5: f_o = W_o(Concat(f_V, f_t)) (B, N, D) (then LayerNorm + ReLU when nonlinear), f_t broadcast to every object."""
        D = f_V.shape[-1]
        return self.fuse_with({"o": f_V @ self.w_o.weight[:, :D].T}, f_t)

    def attention(self, f_V: torch.Tensor, f_t: torch.Tensor, valid: torch.Tensor,
                  pos: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, N) the softmax weights of Eq. 6 (for inspection; ``forward`` does not call it)."""
        B, N, D = f_V.shape  # (B, N, D) batch, candidates, channels
        f_o = self.fuse(f_V, f_t)
        logits = torch.einsum("bnd,bmd->bnm", self.w_q(f_V), self.w_k(f_o)) / math.sqrt(D)
        return torch.softmax(logits.masked_fill(~valid[:, None, :], float("-inf")), dim=-1)

    def forward_with(self, ctx: dict[str, torch.Tensor], valid: torch.Tensor, f_t: torch.Tensor | None) -> torch.Tensor:
        """``forward`` from a ``context`` of the same frames."""
        f_o = self.fuse_with(ctx, f_t)  # (B, N, D)
        f_v = self.w_v(f_o)
        return f_v + masked_attention(ctx["q"], self.w_k(f_o), f_v, valid)

    def forward(self, f_V: torch.Tensor, valid: torch.Tensor, f_t: torch.Tensor | None = None,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_with(self.context(f_V, valid, pos), valid, f_t)


class GeometricTextRelation(TextGuidedRelation):
    """TSRM + text-guided relative geometry, no self-attention, separate self projection (``text-geo``)."""

    def __init__(self, dim: int, geo_hidden: int = 32):
        super().__init__(dim)
        H = geo_hidden
        self.w_s = nn.Linear(dim, dim)
        self.geo = nn.Sequential(nn.Linear(GEOMETRY, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU())
        self.geo_w = nn.Linear(H, 1)  # w_0: the sentence-independent part
        self.geo_t = nn.Linear(dim, H)  # W_t: the sentence picks direction and distance

    def context(self, f_V: torch.Tensor, valid: torch.Tensor, pos: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The parent's ``q``, ``o`` plus ``s`` = W_s f_V (B, N, D), the pair codes ``g`` (B, N, N, H), their
        sentence-free logit ``g0`` (B, N, N) and ``others`` (B, N, N): the valid candidates other than n."""
        if pos is None:
            raise ValueError("the text-geo relation module needs the candidates' positions p_i")
        B, N, D = f_V.shape  # (B, N, D) batch, candidates, channels
        g = self.geo(pair_geometry(pos))  # (B, N, N, H)
        others = valid[:, None, :] & ~torch.eye(N, dtype=torch.bool, device=f_V.device)[None]  # (B, N, N)
        return {**super().context(f_V, valid, pos), "s": self.w_s(f_V), "g": g, "g0": self.geo_w(g).squeeze(-1),
                "others": others}

    def weights_with(self, ctx: dict[str, torch.Tensor], f_o: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        """(B, N, N) softmax weights of object n (row) over the *other* valid candidates m; a row without any is zeros."""
        D = f_o.shape[-1]
        content = torch.einsum("bnd,bmd->bnm", ctx["q"], self.w_k(f_o)) / math.sqrt(D)
        geometry = ctx["g0"] + torch.einsum("bnmh,bh->bnm", ctx["g"], self.geo_t(f_t))
        others = ctx["others"]
        attn = torch.softmax((content + geometry).masked_fill(~others, float("-inf")), dim=-1)
        return torch.where(others.any(dim=-1, keepdim=True), attn, torch.zeros_like(attn))  # alone: no context

    def attention(self, f_V: torch.Tensor, f_t: torch.Tensor, valid: torch.Tensor,
                  pos: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, N) the weights ``forward`` uses (geometry term and self-exclusion included)."""
        ctx = self.context(f_V, valid, pos)
        return self.weights_with(ctx, self.fuse_with(ctx, f_t), f_t)

    def forward_with(self, ctx: dict[str, torch.Tensor], valid: torch.Tensor, f_t: torch.Tensor | None) -> torch.Tensor:
        """``forward`` from a ``context`` of the same frames."""
        f_o = self.fuse_with(ctx, f_t)  # (B, N, D)
        attn = self.weights_with(ctx, f_o, f_t)  # (B, N, N)
        return ctx["s"] + torch.einsum("bnm,bmd->bnd", attn, self.w_v(f_o))


def build_relation(kind: str, dim: int) -> nn.Module | None:
    """The relation module of an ablation choice; None for 'none' (no parameters at all)."""
    if kind == "none":
        return None
    if kind == "vanilla":
        return VanillaRelation(dim)
    if kind == "text":
        return TextGuidedRelation(dim, nonlinear=True)
    if kind == "text-linear":
        return TextGuidedRelation(dim)
    if kind == "text-geo":
        return GeometricTextRelation(dim)
    raise ValueError(f"relation must be one of {RELATIONS}, got {kind!r}")
