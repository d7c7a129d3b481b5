"""Shared by the head benchmarks: build the synthetic benchmark and its caches through the CLI.

Each step is skipped when its output exists, so a second run reuses the data and the caches.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path


def clawcrane(*args: str) -> None:
    """Run one `clawcrane` command in a subprocess (the user's path through the stages)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "clawcrane", "--log-level", "warning", *args]
    print("$ clawcrane " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, env=env)


def synthetic_caches(work: Path, *, preset: str, seed: int = 0, backbone: str = "auto", levels: str = "") -> tuple[Path, Path]:
    """(dataset folder, feature artifact folder) of the synthetic ``preset``, oracle candidates, flips.

    ``levels``: the extract levels (comma-separated; '' = the backbone's default).
    """
    data = work / f"synth-{preset}-{seed}"
    cache = work / f"cache-{preset}-{seed}-{backbone}-{levels.replace(',', '+') or 'default'}"
    if not (data / "text_annotations").is_dir():
        clawcrane("data", "synth", str(data), "--preset", preset, "--seed", str(seed))
    if not list(cache.glob("detect-*/meta.json")):
        clawcrane("detect", str(data), "--detector", "oracle", "--cache", str(cache))
    if not list(cache.glob("extract-*/meta.json")):
        clawcrane("extract", "--cache", str(cache), "--backbone", backbone, "--with-flip", *(["--levels", levels] if levels else []))
    (features,) = [p.parent for p in cache.glob("extract-*/meta.json")]
    return data, features


def quiet_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("CLAWCRANE_PROGRESS", "0")
