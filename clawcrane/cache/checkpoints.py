"""Model checkpoints: one torch file holding everything needed to rebuild the model alone.

Payload: ``{"kind", "model", "optimizer", "epoch", "config", "vocab", "meta", ...}`` made only of
tensors, numbers, strings, lists and dicts, so ``torch.load(weights_only=True)`` reads it. This
module reads and writes payloads and checks them against caches; it builds no model (``build/``
turns a payload into a module).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from clawcrane import __version__
from clawcrane.atomic import atomic_path
from clawcrane.errors import CacheError, WeightsError
from clawcrane.fingerprint import short

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


def _backbone_id(feature_meta: dict[str, Any]) -> dict[str, Any]:
    """The parts of a feature cache's config that define its feature space (backbone, weights, C)."""
    cfg = feature_meta.get("config", {})
    out = {k: v for k, v in cfg.items() if k == "backbone" or "weight" in k or k in ("channels", "layer")}
    if "channels" in feature_meta:
        out["channels"] = feature_meta["channels"]
    return out


def check_head_features(
    meta: dict[str, Any], feature_key: str, feature_meta: dict[str, Any], feature_path: str | os.PathLike, *, same_dataset: bool
) -> None:
    """Refuse features a head cannot use.

    Always: the backbone (its name, weights and channels) must be the head's. With
    ``same_dataset`` (resuming training) the feature cache must be exactly the one the head was
    trained on. Scoring another dataset with the same backbone is allowed (paper Table 2).
    """
    old = meta.get("feature_meta", {})
    old_id, new_id = _backbone_id(old), _backbone_id(feature_meta)
    if old_id != new_id:
        want = old.get("config", {}).get("backbone", "?")
        have = feature_meta.get("config", {}).get("backbone", "?")
        raise CacheError(
            f"{feature_path}: features were extracted with backbone={have} ({new_id}) but the head expects "
            f"backbone={want} ({old_id}); re-run `clawcrane extract --backbone {want}` or use a head trained on these features"
        )
    want_key = meta.get("feature_key", "")
    if same_dataset and want_key != feature_key:
        old_ds, new_ds = old.get("dataset", {}), feature_meta.get("dataset", {})
        raise CacheError(
            f"{feature_path}: feature cache {short(feature_key)} (dataset {new_ds.get('name', '?')!r}) is not the one this "
            f"run was trained on ({short(want_key)}, dataset {old_ds.get('name', '?')!r}); pass that --features folder "
            "or start a new run without --resume"
        )
