"""Latency of one new sentence on a cached video: head + TRM only, through the Python API.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/new_sentence_latency.py [--work bench_out] [--size small]

A cached 100-frame video (``track_rank_speed.moving_world``, C = ``--channels`` feature channels: K boxes moving in straight lines,
every frame detected, planted features; the head's work does not depend on the values) is opened
once as a ``clawcrane.api.VideoSession``; then ``--sentences`` sentences it has not seen are asked
one at a time. Prints the session's opening time (reading the caches and loading the head, once
per video), and the median and 90th percentile of one sentence's latency (tokenise, head, TRM,
ranking) for K in {5, 10, 20} candidates per frame, against issue 16's goal of 50 ms on a CPU
(the ratio printed is median / 50 ms: below 1 meets it). `segment`'s second call on a video adds
writing the outputs (mask PNGs, overlay mp4) to this; the API returns before any of that.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from track_rank_speed import COLOURS, SHAPES, moving_world, say  # noqa: E402

from clawcrane.api import VideoSession  # noqa: E402
from clawcrane.build.heads import BEST, sized  # noqa: E402
from clawcrane.config import HEAD_SIZES, TrainHeadConfig  # noqa: E402
from clawcrane.stages import train_head  # noqa: E402

GOAL_MS = 50.0
PLACES = ("left", "right", "top", "bottom", "middle")


def sentences(n: int) -> list[str]:
    """``n`` distinct sentences in the world's words (new to the session: nothing is cached per sentence)."""
    out = []
    for i in range(n):
        c, s, p = COLOURS[i % len(COLOURS)], SHAPES[(i // len(COLOURS)) % len(SHAPES)], PLACES[i % len(PLACES)]
        out.append(f"the {c} {s} at the {p} moving {'left' if i % 2 else 'right'} number {i}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("bench_out"))
    ap.add_argument("--size", choices=sorted(HEAD_SIZES), default="small", help="Width of the head.")
    ap.add_argument("--frames", type=int, default=100, help="Frames of the cached video.")
    ap.add_argument("--sentences", type=int, default=30, help="New sentences asked per world.")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels", type=int, default=1752,
                    help="Feature channels C (1752: EfficientNet-Lite0 C3..head, extract's default).")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("clawcrane.api").setLevel(logging.ERROR)  # 'number 7' is unknown to the head: no warning per call
    os.environ.setdefault("CLAWCRANE_PROGRESS", "0")
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    say(f"machine: {os.cpu_count()} CPUs, load average {load:.1f}, torch threads {torch.get_num_threads()}, "
        f"device {args.device}")
    C = args.channels
    base_ds, base_feat = moving_world(args.work / f"latency-c{C}", videos=4, T=25, K=5, channels=C)
    head = args.work / f"latency-c{C}" / f"head-{args.size}"
    if not (head / BEST).is_file():
        train_head.run(TrainHeadConfig(head=sized(args.size), epochs=1, flip=False, device=args.device), base_ds,
                       features=base_feat, out=head)
    asked = sentences(args.sentences)
    say(f"\none new sentence on a cached {args.frames}-frame video ({args.size} head, TRM on, {len(asked)} sentences)")
    say("| K | open (s) | median (ms) | p90 (ms) | median / 50 ms | median without the per-video head context (ms) |")
    say("|---|---|---|---|---|---|")
    for K in (5, 10, 20):
        ds, feat = moving_world(args.work / f"latency-c{C}", videos=1, T=args.frames, K=K, channels=C)
        t0 = time.perf_counter()
        session = VideoSession(head=head, features=feat, video_id="v000", dataset=ds, device=args.device)
        opened = time.perf_counter() - t0
        session.query("warm up the kernels")
        ms = []
        for s in asked:
            t = time.perf_counter()
            r = session.query(s)
            ms.append(1000 * (time.perf_counter() - t))
            assert len(r.frames) == args.frames
        uncached = []
        for s in asked:  # as if the session kept none of the head's sentence-free work
            session._context = None
            t = time.perf_counter()
            session.query(s)
            uncached.append(1000 * (time.perf_counter() - t))
        med, p90 = statistics.median(ms), statistics.quantiles(ms, n=10)[-1]
        say(f"| {K} | {opened:.2f} | {med:.1f} | {p90:.1f} | {med / GOAL_MS:.2f} | {statistics.median(uncached):.1f} |")


if __name__ == "__main__":
    sys.exit(main())
