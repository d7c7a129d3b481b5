"""Does `clawcrane evaluate` score what another group's evaluator scores? One real predictions file, both ways.

    PYTHONPATH=. python bench/evaluator_agreement.py PRED --dataset DATA [--split test] [--top-k 5]

Exports PRED with `export --format coco-rle --top-k K` (every submitted mask with its score, as
a leaderboard submission), scores that file with the independent max-score evaluator of
``tests/helpers/max_score_evaluator.py`` (MTTR's rule: per sample the last of the masks sorted by score)
and compares it with `evaluate` on PRED: P@0.5..0.9, Overall IoU and Mean IoU. Prints both, the
largest difference, how many samples have runner-ups within 1e-6 of their answer's score
(near-ties), and exits 1 when any metric differs by more than 1e-9 (NaN counts as a difference), when the
two score different numbers of samples, or when there is no sample to compare.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.max_score_evaluator import compare, max_score_metrics  # noqa: E402

from clawcrane.cache.predictions import read_predictions  # noqa: E402
from clawcrane.config import EvalConfig, ExportConfig  # noqa: E402
from clawcrane.datasets import open_dataset  # noqa: E402
from clawcrane.datasets.splits import split_queries  # noqa: E402
from clawcrane.stages import evaluate, export  # noqa: E402


def near_ties(path: Path, eps: float = 1e-6) -> tuple[int, int]:
    """(samples with a runner-up within ``eps`` of the answer's score, samples) of an exported file."""
    by: dict[tuple[str, int], list[dict]] = {}
    for it in json.loads(path.read_text()):
        by.setdefault((it["query_id"], it["frame"]), []).append(it)
    n = 0
    for items in by.values():
        ans = [i["score"] for i in items if i["rank"] == 0 and i["score"] is not None]
        others = [i["score"] for i in items if i["rank"] > 0 and i["score"] is not None]
        n += bool(ans and others and max(others) >= ans[0] - eps)
    return n, len(by)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("predictions", type=Path)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--top-k", type=int, default=5)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("CLAWCRANE_PROGRESS", "0")
    dataset = open_dataset(args.dataset)
    with tempfile.TemporaryDirectory() as tmp:
        ours = evaluate.run(EvalConfig(split=args.split, j_and_f="off"), predictions=args.predictions, dataset=dataset,
                            out_dir=Path(tmp) / "eval").metrics
        export.run(ExportConfig(format="coco-rle", top_k=args.top_k), predictions=args.predictions, out_dir=Path(tmp) / "x",
                   dataset=dataset)
        exported = Path(tmp) / "x" / export.COCO_FILE
        queries = split_queries(dataset, args.split, read_predictions(args.predictions).meta.get("validation"))
        gt = {(q.query_id, f): q.gt_mask(f) for q in queries for f in q.frames}
        if not gt:
            print(f"{args.predictions}: no annotated sample in split {args.split!r}; nothing to compare", file=sys.stderr)
            return 1
        theirs = max_score_metrics(exported, gt)
        ties, groups = near_ties(exported)
    print(f"{args.predictions} on {args.dataset} ({args.split}, {len(gt)} samples, top-{args.top_k} export)")
    print("| metric | evaluate | max-score evaluator | difference |")
    print("|---|---|---|---|")
    for k in theirs:
        if k != "samples":
            print(f"| {k} | {ours[k]:.12f} | {theirs[k]:.12f} | {abs(ours[k] - theirs[k]):.1e} |")
    print(f"near-ties (a runner-up within 1e-6 of its answer's score): {ties} of {groups} (query, frame) groups")
    bad = compare(ours, theirs)
    print("agree to 1e-9" if not bad else f"DISAGREE: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
