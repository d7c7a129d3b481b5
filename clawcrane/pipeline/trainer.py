"""Training and validation of the retrieval head on in-memory tensors (no file I/O).

``SplitTensors`` holds one split: every needed candidate row once (features, positions and their
flipped variants), the sentence table (word ids or cached token states, with each sentence's
mirrored version), and per sample the padded row indices of its frame, the referred candidate,
its sentence and its query type. Batches are gathered by indexing, so an epoch never touches a
file or decodes a frame. ``Trainer`` runs Adam + ReduceLROnPlateau (paper §4.2) over epochs and
hands each epoch's state to a callback (the stage writes checkpoints from it).

Several processes (``rank``, ``world`` > 1, a running process group) train the same global batch
as one: every process draws the same epoch order and flips, takes its strided share of each
global batch (``pipeline.distributed.shard``), and ``DistributedDataParallel`` averages the
gradients of per-process losses scaled so that the average is the single-process gradient (see
``pipeline.losses``). Losses, accuracies and validation counts are summed over the processes, so
every process sees the same epoch numbers, learning-rate schedule and best epoch. Validation is
sharded the same way (each process scores every W-th sample; the per-sample hits are summed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from clawcrane.pipeline.distributed import all_sum, plain_state, shard
from clawcrane.pipeline.head import RetrievalHead
from clawcrane.pipeline.losses import TAU, contrastive_loss, top1_correct
from clawcrane.progress import progress

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class SplitTensors:
    """One split's samples as tensors (see the module docstring)."""

    feat: torch.Tensor
    """(R, C) float32 pooled features of every candidate row the split needs."""
    pos: torch.Tensor
    """(R, 10) float32 positions p_i."""
    rows: torch.Tensor
    """(S, N) long: sample s's frame candidates as rows of ``feat``, -1 padded (N = largest frame)."""
    target: torch.Tensor
    """(S,) long: the referred candidate's index within ``rows[s]``."""
    sentence: torch.Tensor
    """(S,) long: row of the sentence table."""
    text: torch.Tensor
    """(U, L) long word ids, or (U, L, S) float16/32 token states: the sentence table."""
    text_lengths: torch.Tensor
    """(U,) long words (tokens) per sentence."""
    query_type: torch.Tensor
    """(S,) long index into ``type_names``."""
    type_names: list[str] = field(default_factory=list)
    feat_flip: torch.Tensor | None = None
    """(R, C) features of the mirrored frames, or None (no flip augmentation)."""
    pos_flip: torch.Tensor | None = None
    """(R, 10) positions in the mirrored frames."""
    sentence_flip: torch.Tensor | None = None
    """(S,) long: row of the sentence with 'left' and 'right' swapped."""
    unmatched: int = 0
    """Samples of the split left out for want of a referred candidate (they count as misses in
    ``accuracy_all_samples``)."""
    refs: list[tuple[str, int]] = field(default_factory=list)
    """(video_id, frame) of each sample (for reports and benchmarks; not used in training)."""

    def __len__(self) -> int:
        return int(self.target.shape[0])

    @property
    def can_flip(self) -> bool:
        return self.feat_flip is not None and self.pos_flip is not None and self.sentence_flip is not None

    def to(self, device: torch.device | str) -> SplitTensors:
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return SplitTensors(**moved)

    def batch(self, idx: torch.Tensor, flip: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Gather samples ``idx`` (B,) into padded tensors; ``flip`` (B,) bool picks mirrored inputs."""
        rows = self.rows[idx]  # (B, N_all)
        valid = rows >= 0
        N = int(valid.sum(dim=1).max())  # candidates in the largest frame of the batch
        rows, valid = rows[:, :N], valid[:, :N]  # rows are left-aligned, so trimming drops only padding
        r = rows.clamp(min=0)
        feat, pos, sent = self.feat[r], self.pos[r], self.sentence[idx]  # (B, N, C), (B, N, 10), (B,)
        if flip is not None and self.can_flip:
            feat = torch.where(flip[:, None, None], self.feat_flip[r], feat)
            pos = torch.where(flip[:, None, None], self.pos_flip[r], pos)
            sent = torch.where(flip, self.sentence_flip[idx], sent)
        lengths = self.text_lengths[sent]  # (B,)
        text = self.text[sent][:, : int(lengths.max())]  # (B, L) or (B, L, S)
        if text.is_floating_point():
            text = text.float()
        m = valid[..., None].to(feat.dtype)
        return {
            "text": text, "lengths": lengths, "feat": feat * m, "pos": pos * m, "valid": valid,
            "target": self.target[idx], "query_type": self.query_type[idx],
        }


def build_split(
    *,
    frame_rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]],
    samples: Sequence[tuple[int, int, int, int, int]],
    text: torch.Tensor,
    text_lengths: torch.Tensor,
    type_names: Sequence[str],
) -> SplitTensors:
    """Pack frames and samples into ``SplitTensors``.

    ``frame_rows[f] = (feat (k, C), pos (k, 10), feat_flip or None, pos_flip or None)`` per frame;
    ``samples[s] = (frame f, target, sentence row, mirrored sentence row, query-type index)``.
    Flipped tensors are kept only when every frame has them.
    """
    if not samples:
        raise ValueError("no samples to pack")
    sizes = [len(fr[0]) for fr in frame_rows]
    starts = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    N = max(sizes[f] for f, *_ in samples)  # largest frame among the samples
    rows = torch.full((len(samples), N), -1, dtype=torch.long)
    for s, (f, *_rest) in enumerate(samples):
        rows[s, : sizes[f]] = torch.arange(starts[f], starts[f] + sizes[f])
    cat = lambda arrs: torch.from_numpy(np.concatenate([np.asarray(a, np.float32) for a in arrs]))  # noqa: E731
    has_flip = all(fr[2] is not None and fr[3] is not None for fr in frame_rows)
    col = lambda j: torch.as_tensor([s[j] for s in samples], dtype=torch.long)  # noqa: E731
    return SplitTensors(
        feat=cat(fr[0] for fr in frame_rows),
        pos=cat(fr[1] for fr in frame_rows),
        rows=rows,
        target=col(1),
        sentence=col(2),
        text=text,
        text_lengths=text_lengths,
        query_type=col(4),
        type_names=list(type_names),
        feat_flip=cat(fr[2] for fr in frame_rows) if has_flip else None,
        pos_flip=cat(fr[3] for fr in frame_rows) if has_flip else None,
        sentence_flip=col(3) if has_flip else None,
    )


@torch.no_grad()
def evaluate(model: RetrievalHead, data: SplitTensors, batch_size: int = 256, *, rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Share of samples whose top-scored candidate is the referred one, overall and per query type.

    With ``world`` > 1 processes each scores the samples rank, rank + world, ... and the per-sample
    hits (0/1 integers, so the sum is exact) are summed over the processes: every process returns
    the same numbers, the same ones for any number of processes.
    """
    model.eval()
    mine = torch.arange(rank, len(data), world, device=data.target.device)
    correct = torch.zeros(len(data), dtype=torch.bool if world == 1 else torch.int32, device=data.target.device)
    for start in range(0, len(mine), batch_size):
        idx = mine[start : start + batch_size]
        b = data.batch(idx)
        sim = model(b["text"], b["lengths"], b["feat"], b["pos"], b["valid"])
        correct[idx] = top1_correct(sim, b["valid"], b["target"]).to(correct.dtype)
    if world > 1:
        correct = all_sum(correct) > 0
    per_type = {}
    for t, name in enumerate(data.type_names):
        sel = data.query_type == t
        if bool(sel.any()):
            per_type[name] = {"accuracy": float(correct[sel].float().mean()), "samples": int(sel.sum())}
    n = int(correct.sum())
    return {
        "accuracy": n / len(data), "samples": len(data), "per_type": per_type,
        "unmatched": data.unmatched, "accuracy_all_samples": n / (len(data) + data.unmatched),
    }


@dataclass(kw_only=True)
class EpochState:
    """What the trainer reports after each epoch (the stage checkpoints it)."""

    epoch: int
    """1-based epoch just finished."""
    train_loss: float
    train_accuracy: float
    lr: float
    validation: dict[str, Any] | None
    """``evaluate`` on the validation samples (held out of the train split), or None without them."""
    is_best: bool
    """Validation accuracy (or, without validation, train loss) improved on every earlier epoch."""


class Trainer:
    """Adam + ReduceLROnPlateau on the epoch's training loss, contrastive loss, flip augmentation."""

    def __init__(
        self,
        *,
        model: RetrievalHead,
        lr: float,
        weight_decay: float = 0.0,
        lr_patience: int = 2,
        lr_factor: float = 0.1,
        tau: float = TAU,
        batch_size: int = 16,
        flip: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world: int = 1,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.rank, self.world, self.seed = rank, world, seed
        self.net: torch.nn.Module = self.model
        """What a training step calls: the model, or its DistributedDataParallel wrapper (which averages
        the gradients over the processes in backward). ``self.model`` stays the plain module: its state
        dict has no ``module.`` prefix and loads in a single process."""
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # static_graph: the same parameters take part in every step, and DDP tolerates ones that
            # never do (a head variant's unused branch) without a graph traversal per step
            self.net = DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None,
                                               static_graph=True)
            if rank:  # dropout draws from the global generator: rank 0 keeps the single-process stream,
                torch.manual_seed(_rank_seed(seed, rank, 0))  # the others draw their own masks
        if weight_decay > 0:  # decoupled decay; with 0 this is the paper's Adam
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        else:
            self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="min", patience=lr_patience, factor=lr_factor)
        self.tau, self.batch_size, self.flip = tau, batch_size, flip
        self.generator = torch.Generator().manual_seed(seed)
        self.best: float | None = None
        self.history: list[dict[str, Any]] = []
        self.step_losses: list[float] = []
        """Loss of each step of the last epoch: the mean over the global batch (every process's samples)."""

    # ---- state for checkpoints (tensors, numbers, strings only: weights_only loading) ---------
    def state(self) -> dict[str, Any]:
        """What a checkpoint stores. With several processes every one must call it (it gathers each
        process's dropout generator state); the weights and the rest are the same on every process."""
        out = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout draws from the global generator
            "best": self.best,
            "history": self.history,
        }
        if self.world > 1:
            import torch.distributed as dist

            states: list[Any] = [None] * self.world
            dist.all_gather_object(states, torch.get_rng_state())
            out["torch_rng_ranks"] = states
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(plain_state(state["model"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["rng"])
        ranks = state.get("torch_rng_ranks") or []
        if self.world > 1 and len(ranks) == self.world:  # the same number of processes: each its own stream
            torch.set_rng_state(ranks[self.rank])
        elif self.rank == 0 and "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        elif self.rank:  # another number of processes than the checkpoint's: a fresh stream per rank
            torch.manual_seed(_rank_seed(self.seed, self.rank, len(state.get("history", []))))
        self.best = state.get("best")
        self.history = list(state.get("history", []))

    def train_epoch(self, data: SplitTensors, desc: str = "train") -> tuple[float, float]:
        """One pass over ``data`` in a seeded random order; returns (mean loss, top-1 accuracy).

        The order, the flips and the global batches are the same for any number of processes; each
        process trains its share of every global batch (see the module docstring).
        """
        self.net.train()
        S = len(data)  # samples
        order = torch.randperm(S, generator=self.generator)
        flips = torch.rand(S, generator=self.generator) < 0.5
        use_flip = self.flip and data.can_flip
        total_loss, total_correct, seen = 0.0, 0, 0
        self.step_losses = []
        bar = progress(range(0, S, self.batch_size), desc=desc, unit="batch")
        for start in bar:
            if self.world == 1:
                idx = order[start : start + self.batch_size].to(self.device)
                flip = flips[start : start + self.batch_size].to(self.device) if use_flip else None
                B = len(idx)
                loss, sim, b = self._forward(data, idx, flip)
                self._step(loss)
                batch_loss = float(loss.detach())
                total_loss += batch_loss * B
                total_correct += int(top1_correct(sim.detach(), b["valid"], b["target"]).sum())
            else:
                batch_loss, correct, B = self._distributed_step(data, order, flips if use_flip else None, start)
                total_loss += batch_loss * B
                total_correct += correct
            seen += B
            self.step_losses.append(batch_loss)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{total_correct / seen:.3f}", refresh=False)
        return total_loss / max(seen, 1), total_correct / max(seen, 1)

    def _forward(self, data: SplitTensors, idx: torch.Tensor, flip: torch.Tensor | None, reduction: str = "mean"):
        b = data.batch(idx, flip)
        sim = self.net(b["text"], b["lengths"], b["feat"], b["pos"], b["valid"])
        return contrastive_loss(sim, b["valid"], b["target"], self.tau, reduction=reduction), sim, b

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: gradients averaged over the processes here
        self.optimizer.step()

    def _distributed_step(self, data: SplitTensors, order: torch.Tensor, flips: torch.Tensor | None, start: int) -> tuple[float, int, int]:
        """This process's share of the global batch at ``start``: (global mean loss, global hits, global batch size)."""
        B = min(self.batch_size, len(order) - start)  # the global batch (smaller at the epoch's end)
        mine = shard(torch.arange(start, start + B), self.rank, self.world)
        weight = 1.0
        if len(mine) == 0:  # fewer samples than processes in the last batch: one sample at weight 0 keeps this
            mine, weight = torch.arange(start, start + 1), 0.0  # process in the gradient average (DDP needs every rank)
        idx = order[mine].to(self.device)
        flip = flips[mine].to(self.device) if flips is not None else None
        terms, sim, b = self._forward(data, idx, flip, reduction="none")  # (n_r,) per-sample losses
        # DDP averages over W processes: (1 / W) sum_r (W / B) sum(terms_r) = the mean over the global batch
        self._step(terms.sum() * (weight * self.world / B))
        hits = top1_correct(sim.detach(), b["valid"], b["target"]).sum()
        stats = torch.stack([terms.detach().sum().double(), hits.double()]) * weight
        stats = all_sum(stats.to(self.device)).cpu()
        return float(stats[0]) / B, int(round(float(stats[1]))), B

    def fit(
        self,
        train: SplitTensors,
        val: SplitTensors | None,
        *,
        epochs: int,
        start_epoch: int = 0,
        on_epoch_end: Callable[[EpochState], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train epochs ``start_epoch + 1 .. epochs``, scoring ``val`` after each; returns the history so far."""
        train, val_data = train.to(self.device), (val.to(self.device) if val is not None else None)
        for epoch in range(start_epoch + 1, epochs + 1):
            loss, acc = self.train_epoch(train, desc=f"epoch {epoch}/{epochs}")
            self.scheduler.step(loss)
            val = (evaluate(self.model, val_data, rank=self.rank, world=self.world)
                   if val_data is not None and len(val_data) else None)
            score = val["accuracy"] if val is not None else -loss
            is_best = self.best is None or score > self.best
            if is_best:
                self.best = score
            lr = float(self.optimizer.param_groups[0]["lr"])
            record = {"epoch": epoch, "train_loss": loss, "train_accuracy": acc, "lr": lr, "validation": val,
                      "step_losses": list(self.step_losses)}
            self.history.append(record)
            if self.rank == 0:
                log.info(
                    "epoch %d: loss %.4f, train acc %.3f, lr %.1e%s", epoch, loss, acc, lr,
                    f", val acc {val['accuracy']:.3f}" if val is not None else "",
                )
            if on_epoch_end is not None:
                on_epoch_end(EpochState(epoch=epoch, train_loss=loss, train_accuracy=acc, lr=lr, validation=val, is_best=is_best))
        return self.history


def _rank_seed(seed: int, rank: int, epoch: int) -> int:
    """The dropout seed of a process other than rank 0 (distinct per seed, rank and resumed epoch)."""
    return int(np.random.SeedSequence([seed, rank, epoch, 0xD209]).generate_state(1)[0])
