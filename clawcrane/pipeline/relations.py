"""Intra-frame object relations: the TSRM (paper Eq. 5-6, Figure 3) and its ablations (Table 3).

Every module maps the spatially enhanced object features f_V (B, N, D) of a frame's candidates to
relation-enhanced features F_o (B, N, D). Padded candidates (``valid`` False) are never attended
to, so adding padding rows leaves the real candidates' outputs unchanged.

- ``none``: F_o = f_V (the plain top-down pipeline).
- ``vanilla``: F_o = f_v + softmax(f_q f_k^T / sqrt(d_k)) f_v with q, k, v all from f_V (row 5).
- ``text`` (TSRM): f_o = W_o(Concat(f_V, f_t)) with the sentence feature f_t broadcast to every
  object; f_q = W_q f_V, f_k = W_k f_o, f_v = W_v f_o; F_o = f_v + softmax(f_q f_k^T / sqrt(d_k)) f_v.
"""

from __future__ import annotations

import math

import torch
from torch import nn

RELATIONS = ("none", "vanilla", "text")


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


class VanillaRelation(nn.Module):
    """Plain object self-attention (Table 3 row 5): q, k, v are projections of f_V alone."""

    def __init__(self, dim: int):
        super().__init__()
        self.w_q = nn.Linear(dim, dim)
        self.w_k = nn.Linear(dim, dim)
        self.w_v = nn.Linear(dim, dim)

    def forward(self, f_V: torch.Tensor, valid: torch.Tensor, f_t: torch.Tensor | None = None) -> torch.Tensor:
        f_v = self.w_v(f_V)  # (B, N, D)
        return f_v + masked_attention(self.w_q(f_V), self.w_k(f_V), f_v, valid)


class TextGuidedRelation(nn.Module):
    """TSRM (Eq. 5-6): keys and values come from objects fused with the sentence feature f_t."""

    def __init__(self, dim: int):
        super().__init__()
        self.w_o = nn.Linear(2 * dim, dim)
        self.w_q = nn.Linear(dim, dim)
        self.w_k = nn.Linear(dim, dim)
        self.w_v = nn.Linear(dim, dim)

    def forward(self, f_V: torch.Tensor, valid: torch.Tensor, f_t: torch.Tensor | None = None) -> torch.Tensor:
        B, N, D = f_V.shape  # (B, N, D) batch, candidates, channels
        if f_t is None:
            raise ValueError("the text-guided relation module needs the sentence feature f_t")
        f_o = self.w_o(torch.cat([f_V, f_t[:, None, :].expand(B, N, f_t.shape[-1])], dim=-1))  # (B, N, D)
        f_v = self.w_v(f_o)
        return f_v + masked_attention(self.w_q(f_V), self.w_k(f_o), f_v, valid)


def build_relation(kind: str, dim: int) -> nn.Module | None:
    """The relation module of an ablation choice; None for 'none' (no parameters at all)."""
    if kind == "none":
        return None
    if kind == "vanilla":
        return VanillaRelation(dim)
    if kind == "text":
        return TextGuidedRelation(dim)
    raise ValueError(f"relation must be one of {RELATIONS}, got {kind!r}")
