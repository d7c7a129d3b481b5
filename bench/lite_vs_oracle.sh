#!/usr/bin/env bash
# Lite-detector candidates against oracle candidates on one synthetic world, end to end:
# generate the world, train the lite Mask R-CNN, detect with both sources, extract, and run the
# same ablate rows on each cache. Prints both tables; the lite-vs-oracle gap is the difference of
# their overall P@0.5 (issue 14's target: within 5 points).
#
#   bash bench/lite_vs_oracle.sh WORKDIR [PRESET] [ROWS] [SEEDS] [DEVICE]
#   bash bench/lite_vs_oracle.sh /tmp/lvo hard-full 14 0,1,2        # what the README reports (3 seeds, CPU: ~2 h)
#
# On 2 CPU cores the hard-full run takes about 2.5 hours for one row and 3 seeds (detector 13 min,
# detect 10, two extracts ~25 each, 6 heads ~10-15 each); on one GPU a few minutes.
# CLAWCRANE (default: `clawcrane`) names the command.
set -euo pipefail
W=${1:?usage: bench/lite_vs_oracle.sh WORKDIR [PRESET] [ROWS] [SEEDS] [DEVICE]}
PRESET=${2:-hard-full}
ROWS=${3:-9,14}
SEEDS=${4:-0}
DEVICE=${5:-auto}
CC=${CLAWCRANE:-clawcrane}
mkdir -p "$W"
stamp() { echo "[$(date +%H:%M:%S)] $*"; }

stamp "data synth $PRESET"
[ -e "$W/data/text_annotations" ] || $CC data synth "$W/data" --preset "$PRESET" --seed 0
stamp "train-detector (lite, 1 epoch)"
[ -e "$W/det/final.pt" ] || $CC train-detector "$W/data" --preset lite --epochs 1 --out "$W/det" --device "$DEVICE"
stamp "detect + extract: lite"
$CC detect "$W/data" --detector "$W/det/final.pt" --cache "$W/cache-lite" --train-frames annotated --device "$DEVICE"
$CC extract --cache "$W/cache-lite" --with-flip --backbone efficientnet-lite0 --device "$DEVICE"
stamp "detect + extract: oracle"
$CC detect "$W/data" --detector oracle --cache "$W/cache-oracle"
$CC extract --cache "$W/cache-oracle" --with-flip --backbone efficientnet-lite0 --device "$DEVICE"
for src in oracle lite; do
  stamp "ablate rows $ROWS seeds $SEEDS: $src"
  $CC ablate --cache "$W/cache-$src" --dataset "$W/data" --out "$W/table-$src" --size small --epochs 20 \
    --seeds "$SEEDS" --rows "$ROWS" --device "$DEVICE"
done
for src in oracle lite; do
  echo "== $src candidates"
  cat "$W/table-$src/ablation.md"
done
stamp done
