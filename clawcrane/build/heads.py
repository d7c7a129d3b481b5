"""Heads from specs and checkpoints: the size registry, fresh heads, trained heads, ``--head`` values.

A head run folder holds ``best.pt`` (the best validation epoch), ``last.pt`` (the latest) and
``metrics.json``. A checkpoint payload (``cache.checkpoints``) stores the head's architecture
as ``head_config`` (a ``HeadConfig``), its vocabulary, the feature width and the weights, so
``head_from_payload`` rebuilds the model from the payload alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import torch

from clawcrane.cache.checkpoints import KIND_HEAD, load_checkpoint
from clawcrane.config import HEAD_SIZES, HeadConfig, from_dict
from clawcrane.errors import CacheError, ConfigError, WeightsError
from clawcrane.pipeline.head import RetrievalHead
from clawcrane.pipeline.language import Vocabulary

log = logging.getLogger(__name__)

BEST, LAST, METRICS = "best.pt", "last.pt", "metrics.json"


def sized(size: str, **fields: Any) -> HeadConfig:
    """The ``HeadConfig`` of a ``--size`` preset, with any other head fields."""
    if size not in HEAD_SIZES:
        raise ConfigError(f"--size {size!r}: expected one of {', '.join(HEAD_SIZES)}")
    D, E, hidden = HEAD_SIZES[size]
    return HeadConfig(**{**fields, "embed_dim": D, "word_dim": E, "lstm_hidden": hidden})


def new_head(config: HeadConfig, *, vocab_size: int, feat_dim: int, seed: int) -> RetrievalHead:
    """A freshly initialised head; the same seed gives the same weights."""
    torch.manual_seed(seed)
    return RetrievalHead(config=config, vocab_size=vocab_size, feat_dim=feat_dim)


PRE_FIELDS = {"ranks": False, "motion": False}
"""HeadConfig fields newer than some checkpoints, with the value those checkpoints were trained with."""


def stored_head_config(payload: dict[str, Any]) -> HeadConfig:
    """The architecture a checkpoint stores (``head_config``; the training ``config`` of older files)."""
    data = dict(payload.get("head_config") or payload.get("config", {}).get("head") or payload.get("config", {}))
    # fields added after a file was written take the value that reproduces it, not today's default
    for name, before in PRE_FIELDS.items():
        data.setdefault(name, before)
    return from_dict(HeadConfig, data)


def resolved_head_config(payload: dict[str, Any]) -> HeadConfig:
    """``stored_head_config`` in today's terms: a ``text`` head trained before `text` became the
    nonlinear TSRM (no fusion norm among its weights) is the linear reading, now ``text-linear``."""
    config = stored_head_config(payload)
    if config.relation == "text" and not any(k.startswith("relation.fuse_act.") for k in payload.get("model", {})):
        config = dataclasses.replace(config, relation="text-linear")
    return config


def resolved_train_config(payload: dict[str, Any]) -> dict[str, Any]:
    """The training ``config`` a checkpoint stores, with its head in today's terms (for comparing options)."""
    out = dict(payload.get("config", {}))
    if isinstance(out.get("head"), dict):
        head = {**PRE_FIELDS, **out["head"]}
        head["relation"] = resolved_head_config(payload).relation
        out["head"] = head
    return out


def head_from_payload(payload: dict[str, Any]) -> tuple[RetrievalHead, HeadConfig, Vocabulary]:
    """Rebuild a head from a checkpoint payload (``head_config``, ``vocab``, ``feat_dim``, ``model``)."""
    config = resolved_head_config(payload)
    vocab = Vocabulary(payload["vocab"])
    model = RetrievalHead(config=config, vocab_size=len(vocab), feat_dim=int(payload["feat_dim"]))
    model.load_state_dict(payload["model"])
    model.eval()
    return model, config, vocab


def load_head(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Rebuild a trained retrieval head from its checkpoint file alone.

    Returns ``(model, config, vocab, meta)``: the ``RetrievalHead`` in eval mode, its
    ``HeadConfig``, its ``Vocabulary``, and the rest of the payload (``feature_key``,
    ``feature_meta``, ``metrics``, ``epoch``, ``train_config``, ``validation``).
    """
    payload = load_checkpoint(path, KIND_HEAD, map_location=map_location)
    try:
        model, config, vocab = head_from_payload(payload)
    except (KeyError, RuntimeError, ValueError) as err:
        raise WeightsError(f"{path}: head checkpoint does not match this version's model ({type(err).__name__}: {err}); "
                           "retrain with `clawcrane train-head`") from None
    meta = {k: v for k, v in payload.items() if k not in ("model", "optimizer", "scheduler", "rng")}
    meta["train_config"] = payload.get("config", {})
    return model, config, vocab, meta


def head_file(head: str | os.PathLike) -> Path:
    """The checkpoint of ``--head``: a .pt file, or a run folder's best.pt.

    A run folder holding only ``last.pt`` is a run killed before it saved its best epoch: refused,
    with the fix (``--resume`` it, or pass its last.pt). A ``last.pt`` passed as a file is used,
    with a warning that it is the latest epoch, not the selected one.
    """
    p = Path(head)
    if p.is_dir():
        if (p / BEST).is_file():
            return p / BEST
        if (p / LAST).is_file():
            raise CacheError(
                f"{p}: holds {LAST} but no {BEST}, so its training run stopped before it saved a selected epoch; finish it "
                f"with `clawcrane train-head --out {p} --resume` (with its options), or pass {p / LAST} to use that "
                "checkpoint as it is"
            )
        raise CacheError(f"{p}: holds no {BEST} or {LAST}; train a head there first (`clawcrane train-head --out {p}`)")
    if p.name == LAST:
        log.warning("%s: using the latest epoch of a training run, not its selected best epoch (%s); pass the run folder "
                    "to use %s", p, BEST, BEST)
    return p
