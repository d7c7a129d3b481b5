"""The retrieval head: object embedding (Eq. 2 MLP + PRM Eq. 4), TSRM (Eq. 5-6), sentence (Eq. 1).

``RetrievalHead.forward(text, lengths, feat, pos, valid) -> sim (B, N)``: cosine similarity of
each candidate's L2-normalised embedding V^r_i with the L2-normalised sentence embedding L
(Eq. 8's V^rT L), ``-inf`` on padded candidates. Inputs:

- ``text``: word ids (B, L) long (``lstm``) or cached token states (B, L, S) float (``minilm``)
- ``lengths``: (B,) words (tokens) per sentence
- ``feat``: (B, N, C) mask-max-pooled features (the cache's ``feat``), ``pos``: (B, N, 10) p_i
- ``valid``: (B, N) bool, False on padding rows
- with ``motion`` on, ``pos`` is (B, N, 10 + M): p_i followed by the candidate's track motion m_i
  (``pipeline.motion``), and the score gains the text-conditioned motion term
  <MLP(m_i), W_m L> / sqrt(H) (not in the paper): sim = cos(V^r_i, L) + motion term
- with ``ranks`` on, the score gains the text-guided rank term of ``pipeline.ranks`` (not in the paper)

Ablations of the paper's Table 3: ``position`` none / absolute (the 8 box numbers of p_i) /
relative (r_x, r_y) / full (all 10); ``relation`` none / vanilla / text / text-linear / text-geo (see
``relations``).
With ``position='none', relation='none'`` the model is the plain top-down pipeline and owns no
positional or relational parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from clawcrane.config import TEXT_RELATIONS, HeadConfig
from clawcrane.pipeline.language import CachedWordStates, LSTMWordStates, SentenceEncoder, mlp
from clawcrane.pipeline.motion import SPEED_COLUMN
from clawcrane.pipeline.motion import M as MOTION_DIM
from clawcrane.pipeline.ranks import TextGuidedRanks
from clawcrane.pipeline.relations import build_relation

P = 10
_POSITION_DIMS = {"none": slice(0, 0), "absolute": slice(0, 8), "relative": slice(8, 10), "full": slice(0, 10)}
"""Which entries of p_i = (x_min, y_min, x_max, y_max, x_c, y_c, w, h, r_x, r_y) each choice feeds W_p."""


class ObjectEncoder(nn.Module):
    """Eq. 2's MLP over the pooled feature, plus the PRM term W_p(p_i) of Eq. 4."""

    def __init__(self, *, feat_dim: int, embed_dim: int, position: str, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.mlp = mlp(feat_dim, embed_dim)
        self.pos_slice = _POSITION_DIMS[position]
        n_pos = self.pos_slice.stop - self.pos_slice.start
        self.w_p = nn.Linear(n_pos, embed_dim) if n_pos else None

    def forward(self, feat: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        B, N, C = feat.shape  # (B, N, C) batch, candidates, channels
        v = self.mlp(self.drop(feat))  # (B, N, D)
        if self.w_p is not None:
            v = v + self.w_p(pos[..., self.pos_slice])
        return v


@dataclass(frozen=True)
class FrameContext:
    """The sentence-free part of the head's per-sentence terms for B frames (``RetrievalHead.frame_context``).

    A session that asks many sentences of one video computes it once; ``relate_with`` and
    ``rank_with`` then do only the work that depends on the sentence.
    """

    valid: torch.Tensor
    """(B, N) bool, False on padding rows."""
    f_V: torch.Tensor
    """(B, N, D) object features (Eq. 2, 4), after the relation module when it ignores the sentence."""
    relation: dict[str, torch.Tensor] = field(default_factory=dict)
    """The TSRM's ``context`` (empty unless the relation reads the sentence)."""
    ranks: dict[str, torch.Tensor] = field(default_factory=dict)
    """The rank term's ``context`` (empty without ranks)."""

    def select(self, index: torch.Tensor | slice) -> "FrameContext":
        """The context of frames ``index`` (a slice views, an index tensor gathers)."""
        return FrameContext(valid=self.valid[index], f_V=self.f_V[index],
                            relation={k: v[index] for k, v in self.relation.items()},
                            ranks={k: v[index] for k, v in self.ranks.items()})


class MotionTerm(nn.Module):
    """The text-conditioned motion score <MLP(m_i), W_m L> / sqrt(H) of each candidate's track motion."""

    def __init__(self, *, embed_dim: int, hidden: int = 64):
        super().__init__()
        self.hidden = hidden
        self.mlp = nn.Sequential(nn.Linear(MOTION_DIM, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden))
        self.w_m = nn.Linear(embed_dim, hidden)

    def forward(self, motion: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        """``motion`` (B, N, M), ``sent`` (B, D) -> (B, N); or (T, N, M) with (Q, D) -> (Q, T, N) via ``grid``."""
        return torch.einsum("bnh,bh->bn", self.mlp(motion), self.w_m(sent)) / math.sqrt(self.hidden)

    def grid(self, motion: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        """(T, N, M) one video's motion and (Q, D) its sentences -> (Q, T, N)."""
        return torch.einsum("tnh,qh->qtn", self.mlp(motion), self.w_m(sent)) / math.sqrt(self.hidden)


class RetrievalHead(nn.Module):
    """Sentence encoder + object encoder + relation module; scores candidates by cosine similarity."""

    def __init__(self, *, config: HeadConfig, vocab_size: int, feat_dim: int):
        super().__init__()
        self.config = config
        D = config.embed_dim
        if config.text_encoder == "lstm":
            states: nn.Module = LSTMWordStates(
                vocab_size=vocab_size, word_dim=config.word_dim, hidden=config.lstm_hidden, dropout=config.dropout
            )
        else:
            states = CachedWordStates(state_dim=config.text_dim)
        self.text = SentenceEncoder(states=states, embed_dim=D, with_relation_feature=config.relation in TEXT_RELATIONS)
        self.objects = ObjectEncoder(feat_dim=feat_dim, embed_dim=D, position=config.position, dropout=config.dropout)
        self.relation = build_relation(config.relation, D)
        self.ranks = (TextGuidedRanks(feat_dim=feat_dim, embed_dim=D, axes=4 if config.motion else 3)
                      if config.ranks else None)
        self.motion = MotionTerm(embed_dim=D) if config.motion else None

    @property
    def pos_width(self) -> int:
        """Columns of ``pos`` the head reads: p_i (10), plus m_i with motion on."""
        return P + (MOTION_DIM if self.motion is not None else 0)

    @property
    def per_sentence_objects(self) -> bool:
        """Whether V^r depends on the sentence (a text relation): computed per (query, frame)."""
        return self.config.relation in TEXT_RELATIONS

    def speed(self, pos: torch.Tensor) -> torch.Tensor | None:
        """(B, N) track speed |v| from the motion columns, or None without motion."""
        return pos[..., P + SPEED_COLUMN] if self.motion is not None else None

    def relate(self, f_V, valid, f_t, pos) -> torch.Tensor:
        """(B, N, D) L2-normalised V^r from f_V: the relation module, then L2 norm (zeros on padding)."""
        F_o = f_V if self.relation is None else self.relation(f_V, valid, f_t, pos)
        return F.normalize(F_o, dim=-1) * valid[..., None]

    def rank_term(self, feat, sent, pos, valid) -> torch.Tensor:
        """(B, N) text-guided rank term of the score (zeros without ranks); ``sent`` (B, D) normalised."""
        if self.ranks is None:
            return torch.zeros(valid.shape, device=valid.device)
        return self.ranks(feat, sent, pos, valid, self.speed(pos))

    def frame_context(self, f_V, feat, pos, valid) -> FrameContext:
        """The sentence-free tensors of ``relate`` and ``rank_term`` for B frames; ``f_V`` (B, N, D) as ``relate`` takes it."""
        relation = self.relation.context(f_V, valid, pos) if self.per_sentence_objects else {}
        ranks = self.ranks.context(feat, pos, valid, self.speed(pos)) if self.ranks is not None else {}
        return FrameContext(valid=valid, f_V=f_V, relation=relation, ranks=ranks)

    def relate_with(self, ctx: FrameContext, f_t) -> torch.Tensor:
        """``relate`` from a ``frame_context`` (``f_t`` (B, D) or None)."""
        F_o = self.relation.forward_with(ctx.relation, ctx.valid, f_t) if ctx.relation else ctx.f_V
        return F.normalize(F_o, dim=-1) * ctx.valid[..., None]

    def rank_with(self, ctx: FrameContext, sent) -> torch.Tensor:
        """``rank_term`` from a ``frame_context`` (``sent`` (B, D) normalised)."""
        if self.ranks is None:
            return torch.zeros(ctx.valid.shape, device=ctx.valid.device)
        return self.ranks.forward_with(ctx.ranks, sent, ctx.valid)

    def encode(self, text, lengths, feat, pos, valid) -> tuple[torch.Tensor, torch.Tensor]:
        """(objects (B, N, D), sentence (B, D)), both L2-normalised; padded objects are zeros."""
        sent, f_t = self.text(text, lengths)  # (B, D), (B, D) or None
        sent = F.normalize(sent, dim=-1)
        f_V = self.objects(feat, pos)  # (B, N, D)
        return self.relate(f_V, valid, f_t, pos), sent

    def embed_objects(self, text, lengths, feat, pos, valid) -> torch.Tensor:
        """(B, N, D) L2-normalised V^r (the TSRM makes them depend on the sentence)."""
        return self.encode(text, lengths, feat, pos, valid)[0]

    def embed_text(self, text, lengths) -> torch.Tensor:
        """(B, D) L2-normalised sentence embedding L."""
        return F.normalize(self.text(text, lengths)[0], dim=-1)

    def forward(self, text, lengths, feat, pos, valid) -> torch.Tensor:
        obj, sent = self.encode(text, lengths, feat, pos, valid)
        sim = torch.einsum("bnd,bd->bn", obj, sent)  # (B, N) cosine similarity
        if self.ranks is not None:
            sim = sim + self.rank_term(feat, sent, pos, valid)
        if self.motion is not None:
            sim = sim + self.motion(pos[..., P : P + MOTION_DIM], sent)
        return sim.masked_fill(~valid, float("-inf"))
