"""Data-parallel training math: which samples a process takes, sums across processes, synced BatchNorm.

The training loops (``pipeline.trainer``, ``pipeline.detector_training``) run the SAME global batch
whatever the number of processes W: every process draws the same seeded epoch order, takes the
global batch of a step, and keeps the positions ``rank, rank + W, ...`` of it (``shard``; what
``torch.utils.data.DistributedSampler`` does over an epoch's order, step by step). Gradients are
averaged by ``DistributedDataParallel``; each loop scales its per-process loss so that the average
is the gradient of the single-process loss of the global batch (see the loops for how).

Nothing here starts or reads a process group's environment (``build.distributed`` does); with
W = 1 every function is the identity and no collective is called.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def active() -> bool:
    """A process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shard(idx: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This process's part of a global batch: positions rank, rank + world, ... (all of it when world is 1)."""
    return idx if world == 1 else idx[rank::world]


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the processes, in place (no gradient); ``t`` itself when there is one process."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_max(t: torch.Tensor) -> torch.Tensor:
    """``t``'s element-wise maximum over the processes, in place (no gradient)."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


class _SumOverProcesses(torch.autograd.Function):
    """y = sum_r x_r on every process. Each process's loss L_r depends on y, and the objective is
    sum_r L_r, so dL/dx_r = sum_r' dL_r'/dy: the backward is the same sum of the incoming gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        g = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        return g


def sum_over_processes(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``x`` over the processes (``x`` when there is one)."""
    return _SumOverProcesses.apply(x) if active() else x


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch (every process's images).

    With one process it is ``nn.BatchNorm2d``. With several, the per-channel sum and count, then the
    centred sum of squares, are summed over the processes (two passes, as a single process computes
    the variance), so each image is normalised exactly as in a single-process run of the global batch
    (up to float summation order). Unlike ``nn.SyncBatchNorm`` it also runs on CPU (gloo); it keeps
    BatchNorm2d's parameter and buffer names, so its state dict loads into a plain model.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        self._check_input_dim(x)
        dims = (0, 2, 3)
        n = torch.tensor([float(x.numel() // x.shape[1])], device=x.device, dtype=x.dtype)
        n = all_sum(n)  # values per channel over the global batch
        mean = sum_over_processes(x.sum(dim=dims)) / n
        xc = x - mean[None, :, None, None]
        var = sum_over_processes((xc * xc).sum(dim=dims)) / n  # biased, as BatchNorm normalises
        y = xc * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * (n / (n - 1).clamp(min=1))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every plain ``nn.BatchNorm2d`` replaced (in place) by a ``GlobalBatchNorm2d``
    holding the same parameters and buffers. Frozen BatchNorm (torchvision's) is left alone."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            bn = GlobalBatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                                   track_running_stats=child.track_running_stats)
            bn.load_state_dict(child.state_dict())
            bn.to(device=next(child.buffers(), torch.empty(0)).device)
            bn.train(child.training)
            if child.affine:
                bn.weight.requires_grad_(child.weight.requires_grad)
                bn.bias.requires_grad_(child.bias.requires_grad)
            setattr(module, name, bn)
        else:
            sync_batchnorm(child)
    return module


def plain_state(state: dict) -> dict:
    """A state dict without DDP's ``module.`` prefix, so it loads into a single-process model."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state
