"""The contrastive retrieval loss (paper Eq. 8-9) and top-1 accuracy.

s_i = exp(V_i^rT L / tau) / sum_j exp(V_j^rT L / tau) over the frame's real candidates;
loss = -log s_gt, averaged over the batch. Inputs are cosine similarities of L2-normalised
embeddings (``RetrievalHead.forward``); padded candidates are excluded from the sum.

Data parallelism: the negatives of a sample are the other candidates of ITS OWN frame, never
another sample of the batch, so the loss is a mean of independent per-sample terms and nothing
has to be gathered across processes. A process holding n_r of the B samples of the global batch
takes loss_r = (W / B) * sum of its n_r terms; DistributedDataParallel averages the gradients,
(1 / W) * sum_r grad loss_r = grad((1 / B) * sum over all B terms), the single-process gradient of
the global batch mean, also when B does not split evenly (the epoch's last batch). The model
itself couples no two samples either (no BatchNorm; attention and padding stay within a frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clawcrane.config import TrainHeadConfig

TAU = TrainHeadConfig.tau
"""The paper's temperature, as `train-head` defaults it."""


def contrastive_loss(sim: torch.Tensor, valid: torch.Tensor, target: torch.Tensor, tau: float = TAU,
                     reduction: str = "mean") -> torch.Tensor:
    """Mean cross-entropy of the softmax over ``sim / tau`` on the referred candidate ``target``.

    sim (B, N) cosine similarities, valid (B, N) bool, target (B,) long index of a valid candidate.
    ``reduction`` 'none' gives the (B,) per-sample terms, 'sum' their sum.
    """
    B, N = sim.shape  # (B, N) batch, candidates
    if not bool(valid[torch.arange(B, device=sim.device), target].all()):
        raise ValueError("a target index points at a padded candidate")
    logits = (sim / tau).masked_fill(~valid, float("-inf"))
    return F.cross_entropy(logits, target, reduction=reduction)


def top1_correct(sim: torch.Tensor, valid: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the highest-scored real candidate is the referred one."""
    return sim.masked_fill(~valid, float("-inf")).argmax(dim=-1) == target
