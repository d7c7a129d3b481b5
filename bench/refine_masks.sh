#!/usr/bin/env bash
# Sharper lite masks (issue 16 item 4): `detect --refine-masks grabcut` against the detector's own
# masks and against oracle candidates, on one synthetic world.
#
#   bash bench/refine_masks.sh WORKDIR [PRESET] [SEEDS] [EPOCHS]
#   bash bench/refine_masks.sh /tmp/rm hard 0,1,2 6        # what the README reports
#
# 1. data synth PRESET; train-detector --preset lite --epochs EPOCHS (kept in WORKDIR/det);
# 2. detect with the lite detector twice, --refine-masks none and grabcut, each into a fresh cache
#    and timed in this run (the ratio is the detect-time cost; the machine should be otherwise idle);
#    detect --detector oracle;
# 3. bench/mask_quality.py of both lite caches against the oracle masks (no head involved);
# 4. extract each cache (EfficientNet-Lite0, with flip) and `ablate --rows 14` for SEEDS on each:
#    end-to-end P@0.5 / P@0.9 / COCO mAP on the test split, best.pt chosen on validation videos.
# On 2 CPU cores with `hard`: about 15 minutes for the detector, 3 for detect, 25 for the heads.
set -euo pipefail
W=${1:?usage: bench/refine_masks.sh WORKDIR [PRESET] [SEEDS] [EPOCHS]}
PRESET=${2:-hard}
SEEDS=${3:-0,1,2}
EPOCHS=${4:-6}
CC=${CLAWCRANE:-clawcrane}
PY=${PYTHON:-python}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$W"
stamp() { echo "[$(date +%H:%M:%S)] $*"; }

[ -e "$W/data/text_annotations" ] || $CC data synth "$W/data" --preset "$PRESET" --seed 0
[ -e "$W/det/final.pt" ] || $CC train-detector "$W/data" --preset lite --epochs "$EPOCHS" --out "$W/det" --device cpu
$CC detect "$W/data" --detector oracle --cache "$W/cache-oracle"
ORACLE=$(ls -d "$W"/cache-oracle/detect-*)

declare -A SECONDS_OF
for refine in none grabcut; do
  rm -rf "$W/cache-lite-$refine"
  stamp "detect --refine-masks $refine"
  t0=$(date +%s.%N)
  $CC detect "$W/data" --detector "$W/det/final.pt" --cache "$W/cache-lite-$refine" --train-frames annotated \
    --refine-masks "$refine" --device cpu
  SECONDS_OF[$refine]=$(echo "$(date +%s.%N) - $t0" | bc)
done
echo "detect seconds: none ${SECONDS_OF[none]}, grabcut ${SECONDS_OF[grabcut]}, ratio $(echo "scale=3; ${SECONDS_OF[grabcut]} / ${SECONDS_OF[none]}" | bc)"

for refine in none grabcut; do
  echo "== mask quality, --refine-masks $refine (best candidate IoU per true instance)"
  $PY "$HERE/mask_quality.py" --oracle "$ORACLE" --candidates "$(ls -d "$W"/cache-lite-$refine/detect-*)" --dataset "$W/data" \
    --json "$W/mask-quality-$refine.json"
done

for src in oracle lite-none lite-grabcut; do
  stamp "extract + ablate row 14, seeds $SEEDS: $src"
  $CC extract --cache "$W/cache-$src" --with-flip --backbone efficientnet-lite0 --device cpu
  $CC ablate --cache "$W/cache-$src" --dataset "$W/data" --out "$W/table-$src" --size small --epochs 20 \
    --seeds "$SEEDS" --rows 14 --device cpu
done
for src in oracle lite-none lite-grabcut; do
  echo "== $src candidates"
  head -4 "$W/table-$src/ablation.md"
done
stamp done
