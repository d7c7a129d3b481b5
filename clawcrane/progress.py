"""Progress bars (tqdm) for long loops; silenced with CLAWCRANE_PROGRESS=0, when logging is quiet, and on
torchrun ranks other than 0."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled() -> bool:
    if os.environ.get("CLAWCRANE_PROGRESS", "1") == "0":
        return False
    if os.environ.get("RANK", "0") not in ("", "0"):  # under torchrun only rank 0 shows progress
        return False
    return logging.getLogger("clawcrane").getEffectiveLevel() <= logging.INFO


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, unit: str = "it", **kw) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr (a plain iterator when disabled)."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not enabled(), dynamic_ncols=True, **kw)
