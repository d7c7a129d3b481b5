"""Model checkpoints: one torch file holding everything needed to rebuild the model alone.

Payload: ``{"kind", "model", "optimizer", "epoch", "config", "vocab", "meta", ...}`` made only of
tensors, numbers, strings, lists and dicts, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from clawcrane import __version__
from clawcrane.cache.atomic import atomic_path
from clawcrane.errors import CacheError, WeightsError

KIND_HEAD = "clawcrane-head"
KIND_DETECTOR = "clawcrane-detector"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (with ``kind``) atomically; adds the package version."""
    if "kind" not in payload:
        raise ValueError("checkpoint payload needs a 'kind'")
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(dict(payload, package_version=__version__), tmp)
    return path


def load_checkpoint(path: str | os.PathLike, kind: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check it is of ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint not found; train one first or check the path")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated file, pickle of foreign objects, not a torch file
        raise CacheError(f"{path}: not a readable ClawCrane checkpoint ({type(err).__name__}); retrain or re-copy it") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise WeightsError(f"{path}: is a {found!r} checkpoint, expected {kind!r}; pass the file the right command wrote")
    return payload
