"""Mask files shared by the stages that write them (`export`, `segment`'s overlays): one-channel PNGs, safe names."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from clawcrane.atomic import atomic_path
from clawcrane.errors import DataError


def write_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write an (H, W) bool mask atomically as a single-channel PNG, 0 / 255."""
    ok, buf = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
    if not ok:
        raise DataError(f"{path}: OpenCV could not encode the mask as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def safe_name(name: str, what: str, pred_path: Path) -> str:
    """``name`` as one path component, or a one-line error."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise DataError(f"{pred_path}: {what} {name!r} cannot be a folder name; rename it in the predictions")
    return name
