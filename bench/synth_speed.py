"""Time `clawcrane data synth --preset full` (target: under 2 minutes on 2 cores; hard-full: under 3 CPU minutes).

    PYTHONPATH=$PWD python bench/synth_speed.py [--preset full] [--workers 2] [--seed 0]

Writes into a temporary folder (deleted afterwards), prints the wall time, the query counts per
split and type, and the size of what was written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from clawcrane.config import SynthConfig
from clawcrane.stages import synth


def _size(root: Path, pattern: str) -> tuple[int, int]:
    files = [p for p in root.rglob(pattern) if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="full", choices=["tiny", "small", "full", "hard-tiny", "hard", "hard-full"])
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("CLAWCRANE_PROGRESS", "0")
    tmp = Path(tempfile.mkdtemp(prefix="synth_bench_"))
    try:
        load0 = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        res = synth.run(SynthConfig(preset=args.preset, seed=args.seed, workers=args.workers), tmp / "data")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"preset={args.preset} workers={args.workers} cpus={os.cpu_count()} "
              f"load average before/after={load0:.1f}/{os.getloadavg()[0]:.1f}: {wall:.1f} s wall "
              f"(target for full: < 120 s; hard-full: < 180 CPU s); CPU of this process {cpu:.1f} s "
              "(all the work when --workers 1)")
        for split in ("train", "test"):
            print(f"  {split}: {res.counts[split]}  {res.types[split]}")
        print(f"  planned queries not realised: {res.failed}")
        if args.preset == "full":
            tr, te = res.counts["train"]["queries"], res.counts["test"]["queries"]
            print(f"  full-preset targets: train queries {tr} >= 2000: {tr >= 2000}; test queries {te} >= 500: {te >= 500}")
        for name, pattern in (("mp4", "*.mp4"), ("h5", "*.h5"), ("json", "*.json"), ("all", "*")):
            n, size = _size(tmp / "data", pattern)
            print(f"  {name:5s} {n:6d} files {size / 2**20:8.1f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
