"""TRM parameters vs. accuracy: P@0.5 overall and per query type for a grid of alpha, gamma, beta.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/trm_sweep.py --head RUN --features DIR --dataset DATA
        [--alpha 0 0.5 1 2] [--gamma 0.3 0.5 0.8] [--beta 1 3] [--score-mode mean] [--split val]

Runs `track-rank` (stage API) with one trained head for every combination, plus once without the
TRM, and `evaluate` on each; prints one row per setting, with the share of (query, frame) answers
that come from the best track (the rest are per-frame fallbacks) and the mean number of frames of
the best track. Predictions go under ``--work`` (reused when up to date).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
from pathlib import Path

import numpy as np

from clawcrane.cache.predictions import read_predictions
from clawcrane.config import EvalConfig, TrackRankConfig
from clawcrane.datasets import open_dataset
from clawcrane.stages import evaluate, track_rank


def best_track_stats(path: Path) -> tuple[float, float]:
    """(share of answers taken from the query's best track, mean frames of the best track).

    The best track's answers all carry its track score; a fallback answer carries its own query
    score. So per query the best track is the track of rank-0 rows with one score on all its
    answers and the highest such score (a diagnostic; a one-frame fallback can be mistaken for it).
    """
    rows = [r for r in read_predictions(path).table.to_pylist() if r["rank"] == 0]
    by_query: dict[str, list[dict]] = {}
    for r in rows:
        by_query.setdefault(r["query_id"], []).append(r)
    shares, lengths = [], []
    for answers in by_query.values():
        scores: dict[int, set[float]] = {}
        for r in answers:
            if r["track_id"] >= 0:
                scores.setdefault(r["track_id"], set()).add(round(r["score"], 6))
        single = {t: next(iter(v)) for t, v in scores.items() if len(v) == 1}
        if not single:
            shares.append(0.0)
            lengths.append(0)
            continue
        best = max(single, key=single.get)
        n = sum(1 for r in answers if r["track_id"] == best)
        shares.append(n / len(answers))
        lengths.append(n)
    return float(np.mean(shares)), float(np.mean(lengths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--head", required=True)
    ap.add_argument("--features", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--work", type=Path, default=Path("bench_out/trm_sweep"))
    ap.add_argument("--alpha", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    ap.add_argument("--gamma", type=float, nargs="+", default=[0.3, 0.5, 0.8])
    ap.add_argument("--beta", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--score-mode", default="mean")
    ap.add_argument("--split", default="val", choices=["val", "test", "train", "all"],
                    help="val (default): the head's validation videos; tune there, and report the chosen setting on test once")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("CLAWCRANE_PROGRESS", "0")
    dataset = open_dataset(args.dataset)
    settings = [None] + list(itertools.product(args.alpha, args.gamma, args.beta))
    types = dataset.query_types()
    print("| TRM | alpha | gamma | beta | P@0.5 | mAP (COCO) | mean IoU | " + " | ".join(types) + " | best-track answers | best-track frames |")
    print("|" + "---|" * (9 + len(types)))
    for s in settings:
        if s is None:
            cfg, name = TrackRankConfig(split=args.split, trm=False), "no-trm"
        else:
            a, g, b = s
            cfg = TrackRankConfig(split=args.split, alpha=a, gamma=g, beta=b, score_mode=args.score_mode)
            name = f"a{a}-g{g}-b{b}-{args.score_mode}"
        out = args.work / f"{name}.parquet"
        pred = track_rank.run(cfg, dataset, head=args.head, features=args.features, out=out)
        ev = evaluate.run(EvalConfig(split=args.split, j_and_f="off"), predictions=pred.out, dataset=dataset,
                          out_dir=args.work / f"{name}-eval")
        share, length = best_track_stats(pred.out) if s is not None else (0.0, 0.0)
        m, bt = ev.metrics, ev.by_query_type
        cells = [f"{100 * bt[t]['P@0.5']:.1f}" if t in bt else "-" for t in types]
        head = ["off", "-", "-", "-"] if s is None else ["on", f"{s[0]:g}", f"{s[1]:g}", str(s[2])]
        print("| " + " | ".join(head + [f"{100 * m['P@0.5']:.1f}", f"{100 * m['mAP_coco']:.1f}", f"{100 * m['mean_iou']:.1f}"]
                                + cells + [f"{100 * share:.0f}%", f"{length:.1f}"]) + " |", flush=True)


if __name__ == "__main__":
    main()
