"""A trained head over one whole video: every candidate of every frame, for each of its queries.

``score_video`` gives, per query, the text-guided embeddings V^r (what the TRM links, Eq. 7) and
the candidates' cosine similarity with the sentence (what ranks them, Eq. 8), equal to
``RetrievalHead.embed_objects`` / ``forward`` of each (query, frame) pair but without redoing the
query-independent work:

* the object MLP + PRM term ``f_V`` (Eq. 2, 4) runs once per video, over all its frames;
* the sentence encoder (Eq. 1) runs once per query;
* the relation module runs once per frame when it ignores the sentence (none, vanilla); the TSRM
  (it conditions on the sentence, Eq. 5) and the text-guided ranks split into a sentence-free
  ``FrameContext`` (once per frame: ``video_context``, or per chunk of frames) and the per-sentence
  rest, run once per (query, frame) pair in chunks of about ``batch_size`` pairs;
* the motion term (with ``motion`` on) is added to the cosine, as in ``RetrievalHead.forward``.

Tensors in, tensors out; no file I/O.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clawcrane.pipeline.head import P, FrameContext, RetrievalHead
from clawcrane.pipeline.motion import M as MOTION_DIM


def video_context(model: RetrievalHead, feat: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor) -> FrameContext:
    """The sentence-free part of ``score_video`` for a video's T frames (``feat`` (T, N, C), ``pos``, ``valid``).

    A session that asks many sentences of one video passes it as ``score_video(context=...)``; it
    holds (T, N, N, H) pair tensors with the text-geo relation or the ranks (``api.CONTEXT_BUDGET`` bounds it).
    """
    device = next(model.parameters()).device
    model.eval()
    valid = valid.to(device)
    m = valid[..., None].float()
    feat = feat.to(device, torch.float32) * m
    pos = pos.to(device, torch.float32) * m
    with torch.no_grad():
        return model.frame_context(_objects(model, feat, pos, valid), feat, pos, valid)


def _objects(model: RetrievalHead, feat: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(T, N, D) f_V (Eq. 2, 4), after the relation module when it ignores the sentence (vanilla: once per frame)."""
    f_V = model.objects(feat, pos)
    if model.relation is not None and not model.per_sentence_objects:
        f_V = model.relation(f_V, valid, None, pos)
    return f_V


def _frame_chunks(T: int, Q: int, batch_size: int):
    """Slices of the frames such that a chunk's (query, frame) pairs are about ``batch_size`` (at least one frame)."""
    step = max(1, batch_size // max(Q, 1))
    for t0 in range(0, T, step):
        yield slice(t0, min(T, t0 + step))


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
    context: FrameContext | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings and scores of one video's candidates for Q queries.

    ``text`` (Q, L) word ids or (Q, L, S) token states, ``lengths`` (Q,); ``feat`` (T, N, C),
    ``pos`` (T, N, 10) (or 10 + M with motion), ``valid`` (T, N) bool: the video's frames with their candidates padded
    to N. Returns ``emb`` (Q, T, N, D) L2-normalised V^r (zeros on padding) and ``sim`` (Q, T, N)
    cosine similarities (-inf on padding). Runs on the model's device. ``context``: the video's
    ``video_context`` (query-independent), so a session that asks many sentences computes it once;
    without it the per-sentence terms' sentence-free part is computed per chunk of frames, once for all Q queries.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    model.eval()
    Q = int(lengths.shape[0])  # queries
    T, N, _ = feat.shape  # (T, N, C) frames, candidates, channels
    valid = valid.to(device)
    m = valid[..., None].float()
    pos = pos.to(device, torch.float32) * m
    text = text.to(device)
    text = text.float() if text.is_floating_point() else text

    sent, f_t = model.text(text, lengths.to(device))  # (Q, D), (Q, D) or None
    sent = F.normalize(sent, dim=-1)
    if context is None:
        feat = feat.to(device, torch.float32) * m
        f_V = _objects(model, feat, pos, valid)  # (T, N, D), query-independent
    else:
        f_V = context.f_V.to(device)
    D = f_V.shape[-1]
    if model.per_sentence_objects:  # filled chunk by chunk below
        emb, sim = torch.empty(Q, T, N, D, device=device), torch.empty(Q, T, N, device=device)
    else:
        obj = F.normalize(f_V, dim=-1) * m  # (T, N, D)
        emb = obj.unsqueeze(0).expand(Q, T, N, D)
        sim = torch.einsum("tnd,qd->qtn", obj, sent)  # (Q, T, N)
    if model.per_sentence_objects or model.ranks is not None:
        for chunk in _frame_chunks(T, Q, batch_size):
            ctx = context.select(chunk) if context is not None else model.frame_context(
                f_V[chunk], feat[chunk], pos[chunk], valid[chunk])
            Tc = chunk.stop - chunk.start  # frames of the chunk
            q_of = torch.arange(Q, device=device).repeat_interleave(Tc)  # (Q Tc,) pair p = q Tc + t
            pairs = ctx if Q == 1 else ctx.select(torch.arange(Tc, device=device).repeat(Q))
            if model.per_sentence_objects:
                e = model.relate_with(pairs, f_t[q_of]).view(Q, Tc, N, D)
                emb[:, chunk] = e
                sim[:, chunk] = torch.einsum("qtnd,qd->qtn", e, sent)
            if model.ranks is not None:
                sim[:, chunk] += model.rank_with(pairs, sent[q_of]).view(Q, Tc, N)
    if model.motion is not None:
        sim = sim + model.motion.grid(pos[..., P : P + MOTION_DIM], sent)
    sim = sim.masked_fill(~valid.unsqueeze(0), float("-inf"))
    return emb, sim
