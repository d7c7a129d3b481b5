"""Atomic writes: write beside the target under a temporary name, fsync, then rename.

A process killed at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def clean_stale_temps(folder: str | os.PathLike, min_age_s: float = 0.0) -> int:
    """Remove ``.*.tmp`` leftovers of killed runs in ``folder``; returns how many.

    ``min_age_s`` spares temps modified more recently (another process, e.g. a parallel shard,
    may be writing them right now).
    """
    n = 0
    folder = Path(folder)
    if folder.is_dir():
        now = time.time()
        for p in folder.glob(".*.tmp"):
            try:
                if min_age_s and now - p.stat().st_mtime < min_age_s:
                    continue
            except FileNotFoundError:
                continue
            p.unlink(missing_ok=True)
            n += 1
    return n
