"""A trained head over one whole video: every candidate of every frame, for each of its queries.

``score_video`` gives, per query, the text-guided embeddings V^r (what the TRM links, Eq. 7) and
the candidates' cosine similarity with the sentence (what ranks them, Eq. 8), equal to
``RetrievalHead.embed_objects`` / ``forward`` of each (query, frame) pair but without redoing the
query-independent work:

* the object MLP + PRM term ``f_V`` (Eq. 2, 4) runs once per video, over all its frames;
* the sentence encoder (Eq. 1) runs once per query;
* the relation module runs once per frame when it ignores the sentence (none, vanilla), and once
  per (query, frame) pair for the TSRM (it conditions on the sentence, Eq. 5) or the text-guided
  ranks, in batches of ``batch_size`` pairs;
* the motion term (with ``motion`` on) is added to the cosine, as in ``RetrievalHead.forward``.

Tensors in, tensors out; no file I/O.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clawcrane.pipeline.head import P, RetrievalHead
from clawcrane.pipeline.motion import M as MOTION_DIM


def _pairs(Q: int, T: int, batch_size: int, device):
    """Batches of the (query, frame) pairs, p = q * T + t: (start, (B,) query ids, (B,) frame positions)."""
    q_of = torch.arange(Q, device=device).repeat_interleave(T)
    t_of = torch.arange(T, device=device).repeat(Q)
    for start in range(0, Q * T, batch_size):
        yield start, q_of[start : start + batch_size], t_of[start : start + batch_size]


def video_objects(model: RetrievalHead, feat: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(T, N, D) f_V of a video's candidates, as ``score_video`` computes it (padding zeroed first)."""
    device = next(model.parameters()).device
    model.eval()
    m = valid.to(device)[..., None].float()
    with torch.no_grad():
        return model.objects(feat.to(device, torch.float32) * m, pos.to(device, torch.float32) * m)


@torch.no_grad()
def score_video(
    model: RetrievalHead,
    text: torch.Tensor,
    lengths: torch.Tensor,
    feat: torch.Tensor,
    pos: torch.Tensor,
    valid: torch.Tensor,
    *,
    batch_size: int = 512,
    objects: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings and scores of one video's candidates for Q queries.

    ``text`` (Q, L) word ids or (Q, L, S) token states, ``lengths`` (Q,); ``feat`` (T, N, C),
    ``pos`` (T, N, 10) (or 10 + M with motion), ``valid`` (T, N) bool: the video's frames with their candidates padded
    to N. Returns ``emb`` (Q, T, N, D) L2-normalised V^r (zeros on padding) and ``sim`` (Q, T, N)
    cosine similarities (-inf on padding). Runs on the model's device. ``objects``: the video's
    f_V from ``video_objects`` (query-independent), so a session that asks many sentences computes it once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    model.eval()
    Q = int(lengths.shape[0])  # queries
    T, N, C = feat.shape  # (T, N, C) frames, candidates, channels
    valid = valid.to(device)
    m = valid[..., None].float()
    feat = feat.to(device, torch.float32) * m
    pos = pos.to(device, torch.float32) * m
    text = text.to(device)
    text = text.float() if text.is_floating_point() else text

    sent, f_t = model.text(text, lengths.to(device))  # (Q, D), (Q, D) or None
    sent = F.normalize(sent, dim=-1)
    f_V = model.objects(feat, pos) if objects is None else objects.to(device)  # (T, N, D), query-independent
    D = f_V.shape[-1]
    if model.relation is not None and f_t is None:
        f_V = model.relation(f_V, valid, None, pos)  # vanilla attention: no sentence, once per frame
    if not model.per_sentence_objects:
        obj = F.normalize(f_V, dim=-1) * m  # (T, N, D)
        emb = obj.unsqueeze(0).expand(Q, T, N, D)
    else:
        emb = torch.empty(Q, T, N, D, device=device)
        flat = emb.view(Q * T, N, D)
        with_relation = f_t is not None
        for start, q, t in _pairs(Q, T, batch_size, device):
            f_tq = f_t[q] if f_t is not None else None
            flat[start : start + len(q)] = model.relate(f_V[t], valid[t], f_tq, pos[t], relation=with_relation)  # (B, N, D)
    sim = torch.einsum("qtnd,qd->qtn", emb, sent)  # (Q, T, N)
    if model.ranks is not None:
        ranks = torch.empty(Q * T, N, device=device)
        for start, q, t in _pairs(Q, T, batch_size, device):
            ranks[start : start + len(q)] = model.rank_term(feat[t], sent[q], pos[t], valid[t])
        sim = sim + ranks.view(Q, T, N)
    if model.motion is not None:
        sim = sim + model.motion.grid(pos[..., P : P + MOTION_DIM], sent)
    sim = sim.masked_fill(~valid.unsqueeze(0), float("-inf"))
    return emb, sim
