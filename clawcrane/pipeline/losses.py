"""The contrastive retrieval loss (paper Eq. 8-9) and top-1 accuracy.

s_i = exp(V_i^rT L / tau) / sum_j exp(V_j^rT L / tau) over the frame's real candidates;
loss = -log s_gt, averaged over the batch. Inputs are cosine similarities of L2-normalised
embeddings (``RetrievalHead.forward``); padded candidates are excluded from the sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clawcrane.config import TrainHeadConfig

TAU = TrainHeadConfig.tau
"""The paper's temperature, as `train-head` defaults it."""


def contrastive_loss(sim: torch.Tensor, valid: torch.Tensor, target: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """Mean cross-entropy of the softmax over ``sim / tau`` on the referred candidate ``target``.

    sim (B, N) cosine similarities, valid (B, N) bool, target (B,) long index of a valid candidate.
    """
    B, N = sim.shape  # (B, N) batch, candidates
    if not bool(valid[torch.arange(B, device=sim.device), target].all()):
        raise ValueError("a target index points at a padded candidate")
    logits = (sim / tau).masked_fill(~valid, float("-inf"))
    return F.cross_entropy(logits, target)


def top1_correct(sim: torch.Tensor, valid: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the highest-scored real candidate is the referred one."""
    return sim.masked_fill(~valid, float("-inf")).argmax(dim=-1) == target
