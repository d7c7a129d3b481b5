"""Per-query-type validation accuracy of the paper's Table 3 ablations on the synthetic benchmark.

    PYTHONPATH=. python bench/head_ablation.py [--preset small] [--epochs 30] [--size small]

Builds the synthetic ``--preset`` with oracle candidates and a flip-augmented feature cache
(through the CLI, levels C3,C4,C5,head by default; reused when present under ``--work``), then trains `train-head` five times
(plain top-down; +PRM; +PRM + vanilla attention; +PRM + TSRM; +PRM + TSRM-geo) and prints, per query type, the
share of test samples whose top-scored candidate is the referred one (best epoch of each run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from _head_bench import quiet_logging, synthetic_caches

from clawcrane.config import TrainHeadConfig
from clawcrane.datasets import open_dataset
from clawcrane.stages import train_head

ROWS = (
    ("plain top-down", "none", "none"),
    ("+PRM", "full", "none"),
    ("+PRM +vanilla attention", "full", "vanilla"),
    ("+PRM +TSRM", "full", "text"),
    ("+PRM +TSRM-geo (not in the paper)", "full", "text-geo"),
)
SIZES = {"paper": (256, 1000, 1000), "small": (128, 128, 128)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("bench_out"))
    ap.add_argument("--preset", default="small")
    ap.add_argument("--backbone", default="auto")
    ap.add_argument("--levels", default="C3,C4,C5,head",
                    help="extract --levels: with EfficientNet-Lite0 the default 'head' level alone keeps too little colour "
                         "for appearance queries (a linear probe reads an object's colour from it ~60%% of the time, "
                         "from C3 ~93%%), so the finer levels are pooled too")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: a tiny head gains nothing from more, and they spin on a busy machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_logging()
    data_dir, features = synthetic_caches(args.work, preset=args.preset, backbone=args.backbone, levels=args.levels)
    dataset = open_dataset(data_dir)
    D, E, hidden = SIZES[args.size]
    results = {}
    for name, position, relation in ROWS:
        out = args.work / "runs" / f"{args.preset}-{position}-{relation}-{args.size}-e{args.epochs}-s{args.seed}"
        shutil.rmtree(out, ignore_errors=True)
        cfg = TrainHeadConfig(position=position, relation=relation, embed_dim=D, word_dim=E, lstm_hidden=hidden,
                              epochs=args.epochs, lr=args.lr, seed=args.seed, device=args.device)
        t0 = time.perf_counter()
        res = train_head.run(cfg, dataset, features=features, out=out)
        results[name] = dict(res.best_metrics, seconds=time.perf_counter() - t0)
        print(f"{name}: {res.best_metrics['accuracy']:.3f} in {results[name]['seconds']:.0f} s", flush=True)
    types = sorted({t for r in results.values() for t in r["per_type"]})
    print()
    print(f"synthetic `{args.preset}`, oracle candidates, head size {args.size}, {args.epochs} epochs, lr {args.lr}, seed {args.seed}")
    print("| model | " + " | ".join(types) + " | all |")
    print("|---|" + "---|" * (len(types) + 1))
    for name, r in results.items():
        cells = [f"{r['per_type'][t]['accuracy']:.3f}" if t in r["per_type"] else "-" for t in types]
        print(f"| {name} | " + " | ".join(cells) + f" | {r['accuracy']:.3f} |")
    counts = next(iter(results.values()))["per_type"]
    print("test samples: " + ", ".join(f"{t} {counts[t]['samples']}" for t in types))
    (args.work / f"head_ablation_{args.preset}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
