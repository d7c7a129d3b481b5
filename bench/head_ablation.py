"""Per-query-type accuracy of the head rows of the paper's Table 3 on a synthetic preset, over seeds.

    PYTHONPATH=. python bench/head_ablation.py [--preset small] [--epochs 20] [--size small]
        [--seeds 0,1,2] [--rows 1,4,6,8] [--threads 1]

Builds the synthetic ``--preset`` with oracle candidates and a flip-augmented feature cache
(through the CLI, EfficientNet-Lite0 levels C3,C4,C5,head; reused when present under ``--work``),
then runs `clawcrane ablate` for the chosen rows and seeds (without the TRM, P@0.5 with oracle
candidates is the head's top-1 accuracy). Every head selects its best.pt on validation videos
held out of the train split; the test split is only scored. Prints the Table 3 layout, P@0.5 per
query type and per wording, each cell the mean over seeds with the min-max.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _head_bench import quiet_logging, synthetic_caches

from clawcrane.config import HEAD_SIZES, AblateConfig
from clawcrane.datasets import open_dataset
from clawcrane.stages import ablate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("bench_out"))
    ap.add_argument("--preset", default="small")
    ap.add_argument("--backbone", default="auto")
    ap.add_argument("--levels", default="C3,C4,C5,head",
                    help="extract --levels: with EfficientNet-Lite0 the default 'head' level alone keeps too little colour "
                         "for appearance queries (a linear probe reads an object's colour from it ~60%% of the time, "
                         "from C3 ~93%%), so the finer levels are pooled too")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--size", choices=sorted(HEAD_SIZES), default="small")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; cells are means over them (min-max)")
    ap.add_argument("--rows", default="1,4,6,8", help="comma-separated ablate rows (1-9); 1,4,6,8 are the head rows "
                                                      "plain, +PRM, +PRM+TSRM, +PRM+TSRM-geo")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: a tiny head gains nothing from more, and they spin on a busy machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_logging()
    data_dir, features = synthetic_caches(args.work, preset=args.preset, backbone=args.backbone, levels=args.levels)
    dataset = open_dataset(data_dir)
    config = AblateConfig(epochs=args.epochs, size=args.size, seeds=tuple(int(s) for s in args.seeds.split(",")),
                          rows=tuple(r.strip() for r in args.rows.split(",")), device=args.device)
    t0 = time.perf_counter()
    res = ablate.run(config, dataset, cache=features, out=args.work / f"ablate-{args.preset}-{args.size}-e{args.epochs}")
    print(res.markdown)
    print(f"{len(res.rows)} rows x {len(config.seeds)} seeds in {time.perf_counter() - t0:.0f} s; tables in {res.out}")


if __name__ == "__main__":
    main()
