"""Sharding by video, shared by every sharded stage (`detect`, `extract`).

``--shard I/N`` (0-based I) owns the sorted video ids at positions i with i % N == I: disjoint,
deterministic, and the same split for every stage, so shard I of `extract` reads exactly what
shard I of `detect` wrote. Without ``--shard``, SLURM array variables decide (task ids need not
start at 0: ``SLURM_ARRAY_TASK_MIN`` is subtracted); outside SLURM it is 0/1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from clawcrane.errors import ConfigError


def parse_shard(text: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """'I/N' (0-based I) -> (I, N); None or '': from SLURM array variables, else (0, 1)."""
    env = os.environ if env is None else env
    if not text:
        if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
            return 0, 1
        i = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        n = int(env["SLURM_ARRAY_TASK_COUNT"])
    else:
        try:
            i, n = (int(t) for t in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. --shard 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard {i}/{n}: expected I/N with 0 <= I < N (I is 0-based)")
    return i, n


def shard_videos(video_ids: Iterable[str], shard: tuple[int, int]) -> list[str]:
    """The videos shard (I, N) owns: sorted ids at positions i with i % N == I."""
    I, N = shard
    return sorted(video_ids)[I::N]
