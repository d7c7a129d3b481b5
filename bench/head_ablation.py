"""Per-query-type validation accuracy of the paper's Table 3 ablations on the synthetic benchmark.

    PYTHONPATH=. python bench/head_ablation.py [--preset small] [--epochs 30] [--size small]
        [--seeds 0,1,2,3,4] [--rows prm,tsrm,tsrm-geo] [--pick best|last]

Builds the synthetic ``--preset`` with oracle candidates and a flip-augmented feature cache
(through the CLI, levels C3,C4,C5,head by default; reused when present under ``--work``), then trains `train-head` five times
(plain top-down; +PRM; +PRM + vanilla attention; +PRM + TSRM; +PRM + TSRM-geo) and prints, per query type, the
share of test samples whose top-scored candidate is the referred one (``--pick best``: the
best epoch of each run, as train-head's best.pt; ``last``: the last epoch, free of selection on
the test split). With several ``--seeds`` every cell is the mean over seeds (min-max in brackets).
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

ROWS = {
    "plain": ("plain top-down", "none", "none"),
    "prm": ("+PRM", "full", "none"),
    "vanilla": ("+PRM +vanilla attention", "full", "vanilla"),
    "tsrm": ("+PRM +TSRM", "full", "text"),
    "tsrm-geo": ("+PRM +TSRM-geo (not in the paper)", "full", "text-geo"),
}
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
    ap.add_argument("--seeds", default="0", help="comma-separated seeds; cells are means over them")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows out of {', '.join(ROWS)}")
    ap.add_argument("--pick", choices=["best", "last"], default="best", help="which epoch of each run is scored")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: a tiny head gains nothing from more, and they spin on a busy machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_logging()
    data_dir, features = synthetic_caches(args.work, preset=args.preset, backbone=args.backbone, levels=args.levels)
    dataset = open_dataset(data_dir)
    D, E, hidden = SIZES[args.size]
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = [ROWS[r.strip()] for r in args.rows.split(",")]
    results: dict[str, list[dict]] = {}
    for name, position, relation in rows:
        for seed in seeds:
            out = args.work / "runs" / f"{args.preset}-{position}-{relation}-{args.size}-e{args.epochs}-s{seed}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = TrainHeadConfig(position=position, relation=relation, embed_dim=D, word_dim=E, lstm_hidden=hidden,
                                  epochs=args.epochs, lr=args.lr, seed=seed, device=args.device)
            t0 = time.perf_counter()
            res = train_head.run(cfg, dataset, features=features, out=out)
            history = json.loads((out / train_head.METRICS).read_text())["history"]
            picked = res.best_metrics if args.pick == "best" else history[-1]["validation"]
            results.setdefault(name, []).append(dict(picked, seed=seed, seconds=time.perf_counter() - t0))
            print(f"{name} seed {seed}: {picked['accuracy']:.3f} in {results[name][-1]['seconds']:.0f} s", flush=True)
    types = sorted({t for runs in results.values() for r in runs for t in r["per_type"]})

    def cell(values: list[float]) -> str:
        mean = sum(values) / len(values)
        return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ({min(values):.2f}-{max(values):.2f})"

    print()
    print(f"synthetic `{args.preset}`, oracle candidates, head size {args.size}, {args.epochs} epochs, lr {args.lr}, "
          f"seeds {args.seeds}, {args.pick} epoch")
    print("| model | " + " | ".join(types) + " | all |")
    print("|---|" + "---|" * (len(types) + 1))
    for name, runs in results.items():
        cells = [cell([r["per_type"][t]["accuracy"] for r in runs]) if t in runs[0]["per_type"] else "-" for t in types]
        print(f"| {name} | " + " | ".join(cells) + f" | {cell([r['accuracy'] for r in runs])} |")
    counts = next(iter(results.values()))[0]["per_type"]
    print("test samples: " + ", ".join(f"{t} {counts[t]['samples']}" for t in types))
    (args.work / f"head_ablation_{args.preset}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
