"""Sharding by video, shared by every sharded stage (`detect`, `extract`).

``--shard I/N`` (0-based I) owns the sorted video ids at positions i with i % N == I: disjoint,
deterministic, and the same split for every stage, so shard I of `extract` reads exactly what
shard I of `detect` wrote. Without ``--shard``, SLURM array variables decide (task ids need not
start at 0: ``SLURM_ARRAY_TASK_MIN`` is subtracted, and a stepped range such as ``--array=0-6:2``
is divided by ``SLURM_ARRAY_TASK_STEP``); outside SLURM it is 0/1.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from clawcrane.errors import ConfigError


MAX_SHARDS = 9999
"""Most shards one run may be split into (``cache merge`` names shard files with four digits)."""


def parse_shard(text: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """'I/N' (0-based I) -> (I, N); None or '': from SLURM array variables, else (0, 1)."""
    env = os.environ if env is None else env
    if not text:
        if "SLURM_ARRAY_TASK_ID" not in env:
            return 0, 1
        names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP")
        try:
            raw = [env.get(k) or d for k, d in zip(names, ("", "", "0", "1"))]
            if not all(re.fullmatch(r"-?[0-9]+", v.strip()) for v in raw):  # int() would read '１', '1_0', '+1'
                raise ValueError
            task, n, low, step = (int(v) for v in raw)
        except ValueError:
            shown = ", ".join(f"{k}={env.get(k)!r}" for k in names if k in env)
            raise ConfigError(f"SLURM array variables {shown} cannot give a shard (SLURM_ARRAY_TASK_ID and "
                              f"SLURM_ARRAY_TASK_COUNT are both needed, as integers); run inside an sbatch --array job, or pass "
                              f"--shard I/N explicitly") from None
        if n < 1:
            raise ConfigError(f"SLURM_ARRAY_TASK_COUNT={n}: an array job has at least one task; run inside an sbatch "
                              f"--array job, or pass --shard I/N explicitly")
        step = max(step, 1)  # --array=0-6:2 runs tasks 0, 2, 4, 6
        i, off = divmod(task - low, step)
        if off or not 0 <= i < n:  # e.g. --array=1,4,5: the task ids are no evenly stepped range
            raise ConfigError(f"SLURM array task {task} (min {low}, step {step}, count {n}) does not map to one of "
                              f"{n} shards; submit an evenly stepped range such as --array=0-{n - 1}, or pass "
                              f"--shard I/N explicitly")
    else:
        if not re.fullmatch(r"[0-9]+/[0-9]+", text.strip()):
            raise ConfigError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. --shard 0/4")
        i, n = (int(t) for t in text.strip().split("/"))
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard {i}/{n}: expected I/N with 0 <= I < N (I is 0-based)")
    if n > MAX_SHARDS:
        raise ConfigError(f"--shard {i}/{n}: at most {MAX_SHARDS} shards (shard files are named shard-IIII-of-NNNN.h5); "
                          f"use fewer array tasks, each taking more videos")
    return i, n


def shard_videos(video_ids: Iterable[str], shard: tuple[int, int]) -> list[str]:
    """The videos shard (I, N) owns: sorted ids at positions i with i % N == I."""
    I, N = shard
    return sorted(video_ids)[I::N]
