"""Training and validation of the retrieval head on in-memory tensors (no file I/O).

``SplitTensors`` holds one split: every needed candidate row once (features, positions and their
flipped variants), the sentence table (word ids or cached token states, with each sentence's
mirrored version), and per sample the padded row indices of its frame, the referred candidate,
its sentence and its query type. Batches are gathered by indexing, so an epoch never touches a
file or decodes a frame. ``Trainer`` runs Adam + ReduceLROnPlateau (paper §4.2) over epochs and
hands each epoch's state to a callback (the stage writes checkpoints from it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

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
def evaluate(model: RetrievalHead, data: SplitTensors, batch_size: int = 256) -> dict[str, Any]:
    """Share of samples whose top-scored candidate is the referred one, overall and per query type."""
    model.eval()
    correct = torch.zeros(len(data), dtype=torch.bool, device=data.target.device)
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=data.target.device)
        b = data.batch(idx)
        sim = model(b["text"], b["lengths"], b["feat"], b["pos"], b["valid"])
        correct[idx] = top1_correct(sim, b["valid"], b["target"])
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
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        if weight_decay > 0:  # decoupled decay; with 0 this is the paper's Adam
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        else:
            self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="min", patience=lr_patience, factor=lr_factor)
        self.tau, self.batch_size, self.flip = tau, batch_size, flip
        self.generator = torch.Generator().manual_seed(seed)
        self.best: float | None = None
        self.history: list[dict[str, Any]] = []

    # ---- state for checkpoints (tensors, numbers, strings only: weights_only loading) ---------
    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout draws from the global generator
            "best": self.best,
            "history": self.history,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["rng"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        self.best = state.get("best")
        self.history = list(state.get("history", []))

    def train_epoch(self, data: SplitTensors, desc: str = "train") -> tuple[float, float]:
        """One pass over ``data`` in a seeded random order; returns (mean loss, top-1 accuracy)."""
        self.model.train()
        S = len(data)  # samples
        order = torch.randperm(S, generator=self.generator)
        flips = torch.rand(S, generator=self.generator) < 0.5
        use_flip = self.flip and data.can_flip
        total_loss, total_correct, seen = 0.0, 0, 0
        bar = progress(range(0, S, self.batch_size), desc=desc, unit="batch")
        for start in bar:
            idx = order[start : start + self.batch_size].to(self.device)
            flip = flips[start : start + self.batch_size].to(self.device) if use_flip else None
            b = data.batch(idx, flip)
            sim = self.model(b["text"], b["lengths"], b["feat"], b["pos"], b["valid"])
            loss = contrastive_loss(sim, b["valid"], b["target"], self.tau)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            B = len(idx)
            total_loss += float(loss.detach()) * B
            total_correct += int(top1_correct(sim.detach(), b["valid"], b["target"]).sum())
            seen += B
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{total_correct / seen:.3f}", refresh=False)
        return total_loss / max(seen, 1), total_correct / max(seen, 1)

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
            val = evaluate(self.model, val_data) if val_data is not None and len(val_data) else None
            score = val["accuracy"] if val is not None else -loss
            is_best = self.best is None or score > self.best
            if is_best:
                self.best = score
            lr = float(self.optimizer.param_groups[0]["lr"])
            record = {"epoch": epoch, "train_loss": loss, "train_accuracy": acc, "lr": lr, "validation": val}
            self.history.append(record)
            log.info(
                "epoch %d: loss %.4f, train acc %.3f, lr %.1e%s", epoch, loss, acc, lr,
                f", val acc {val['accuracy']:.3f}" if val is not None else "",
            )
            if on_epoch_end is not None:
                on_epoch_end(EpochState(epoch=epoch, train_loss=loss, train_accuracy=acc, lr=lr, validation=val, is_best=is_best))
        return self.history
