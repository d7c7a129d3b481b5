#!/usr/bin/env bash
# A real SLURM run (issue 16): the README's array job (bench/slurm_array_job.sh) on a one-node
# SLURM cluster started here, checked against a single-process run.
#
#   1. installs slurm-wlm + munge from Debian's packages when missing (apt-get, non-interactive);
#   2. starts munged, slurmctld and slurmd on this machine (foreground processes, logs, state,
#      spool, munge key and socket all in a temporary folder) and waits until the node is idle;
#   3. `clawcrane data synth --preset tiny`; `sbatch --wait --array=0-3` of the job file for
#      `detect --detector oracle` (4 shards, the shard from the SLURM array variables);
#      `clawcrane cache merge`; the same for `extract --backbone efficientnet-lite0`; merge;
#   4. the same detect + extract in one process into another cache root;
#   5. `clawcrane cache verify` of both roots, then compares the merged artifacts: same keys,
#      same videos, and per video the same attributes and identical arrays (masks as RLE bytes,
#      boxes, scores, features, positions).
# Stops every daemon it started (trap on EXIT) and removes its temporary folder.
# Exit 0: passed, or "skipped: <reason>" when the machine does not allow it (not root, no
# apt-get or no network for the install, the daemons do not start in this container).
# Exit 1: the run failed or the results differ (the message says which).
#
# Environment: PYTHON (default: .venv/bin/python of the repository, else python3; the folder of
# PYTHON must hold the `clawcrane` entry point, which the job file calls), KEEP=1 keeps the
# temporary folder, SLURM_E2E_TIMEOUT (seconds per sbatch, default 600).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOB="$REPO/bench/slurm_array_job.sh"
T0=$(date +%s)

say() { echo "[slurm-e2e $(( $(date +%s) - T0 ))s] $*"; }
skip() { echo "skipped: $*"; exit 0; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "not root (installing and starting SLURM daemons needs root)"

if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=$(command -v python3); fi
fi
[ -x "$PYTHON" ] || fail "no python at $PYTHON (set PYTHON=)"
# absolute (not resolved through the venv symlink): the jobs run in SLURM's spool folder, where a
# relative PATH entry such as .venv/bin finds nothing
PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
# The job file runs `clawcrane`: the entry point of PYTHON's environment, importing this checkout.
export PATH="$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 CLAWCRANE_PROGRESS=0
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_MAX SLURM_ARRAY_TASK_STEP SLURM_JOB_ID
command -v clawcrane >/dev/null || fail "no clawcrane entry point beside $PYTHON (pip install -e . into that environment)"
where=$(clawcrane --help >/dev/null && "$PYTHON" -c 'import clawcrane, os; print(os.path.dirname(os.path.dirname(os.path.abspath(clawcrane.__file__))))')
[ "$where" = "$REPO" ] || fail "python imports clawcrane from $where, not from $REPO"

# --- 1. install -----------------------------------------------------------------------------
need=()
for b in munged slurmctld slurmd sbatch sinfo squeue scancel; do command -v "$b" >/dev/null || need+=("$b"); done
if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || skip "SLURM is not installed (${need[*]} missing) and there is no apt-get"
    say "installing slurm-wlm and munge (missing: ${need[*]})"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq >/dev/null 2>&1 || skip "apt-get update failed (no network?)"
    timeout 600 apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
        || skip "apt-get install slurm-wlm munge failed"
fi
say "$(slurmctld -V)"

# --- 2. a one-node cluster in a temporary folder --------------------------------------------
TMP=$(mktemp -d /tmp/clawcrane-slurm.XXXXXX)
chmod 700 "$TMP"
PIDS=()
SBATCH_PID=""
cleanup() {
    rc=$?
    set +e
    [ -n "$SBATCH_PID" ] && kill "$SBATCH_PID" 2>/dev/null
    if [ "${#PIDS[@]}" -ge 3 ] && [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
        # jobs still queued or running (a failed or interrupted run): this private cluster holds
        # only ours; cancel them so slurmd ends their tasks before it stops
        for j in $(squeue -h -o %A 2>/dev/null | sort -u); do scancel "$j" 2>/dev/null; done
        for _ in $(seq 20); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 1; done
    fi
    for (( k=${#PIDS[@]}-1; k>=0; k-- )); do kill "${PIDS[k]}" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
    done
    if [ "$rc" != 0 ] && [ -d "$TMP/log" ]; then
        echo "--- daemon logs (last lines) ---" >&2
        for f in "$TMP"/log/*.log; do echo "== $f" >&2; tail -n 15 "$f" >&2; done
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$TMP"/{munge,state,spool,log,etc,jobs}

# munge: its own key and socket, so a munged already running here is left alone
KEY="$TMP/munge/munge.key"
if command -v mungekey >/dev/null; then mungekey --create --keyfile="$KEY" >/dev/null 2>&1; fi
[ -s "$KEY" ] || dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none
chmod 400 "$KEY"
SOCK="$TMP/munge/munge.socket"
munged --foreground --force --key-file="$KEY" --socket="$SOCK" --pid-file="$TMP/munge/munged.pid" \
    --seed-file="$TMP/munge/munged.seed" --log-file="$TMP/log/munged.log" --num-threads=2 \
    >>"$TMP/log/munged.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$SOCK" ] && break; kill -0 "${PIDS[-1]}" 2>/dev/null || break; sleep 0.2; done
munge -n -S "$SOCK" 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1 \
    || skip "munged does not start in this container ($(tail -n 1 "$TMP/log/munged.log" 2>/dev/null))"

NODE=$(hostname -s)
# slurmd -C: this machine's CPUs, sockets, cores, threads and memory, as slurmd will report them
HW=$(slurmd -C 2>/dev/null | head -n 1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ RealMemory=[0-9]*//')
[ -n "$HW" ] || HW="CPUs=$(getconf _NPROCESSORS_ONLN)"
read -r CTLD_PORT SLURMD_PORT < <("$PYTHON" - <<'EOF'
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))
EOF
)
export SLURM_CONF="$TMP/etc/slurm.conf"
cat >"$SLURM_CONF" <<EOF
# one-node test cluster of bench/slurm_e2e.sh (no systemd, no cgroups: linuxproc + task/none)
ClusterName=clawcrane-e2e
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/state/slurmctld.pid
SlurmdPidFile=$TMP/spool/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
# one pretend GPU: the job file asks for --gres=gpu:1 (a real cluster's recipe); it also makes
# the array's tasks run one after another on this small machine. The stages run with --device cpu.
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 $HW Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
echo "NodeName=$NODE Name=gpu File=/dev/null Count=1" >"$TMP/etc/gres.conf"

slurmctld -D -i -f "$SLURM_CONF" >>"$TMP/log/slurmctld.stdout.log" 2>&1 &
PIDS+=($!)
slurmd -D -N "$NODE" -f "$SLURM_CONF" >>"$TMP/log/slurmd.stdout.log" 2>&1 &
PIDS+=($!)
state=""
for _ in $(seq 60); do
    state=$(sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n 1)
    [ "$state" = idle ] && break
    kill -0 "${PIDS[1]}" 2>/dev/null && kill -0 "${PIDS[2]}" 2>/dev/null || break
    sleep 1
done
if [ "$state" != idle ]; then
    for f in slurmctld slurmd; do echo "== $f.log"; tail -n 8 "$TMP/log/$f.log" 2>/dev/null; tail -n 3 "$TMP/log/$f.stdout.log" 2>/dev/null; done
    skip "the SLURM daemons do not start in this container (node state '${state:-none}' after 60 s; logs above)"
fi
say "node $NODE idle: $(sinfo -h -N -n "$NODE" -o '%c CPUs, gres %G, partition %P')"

# --- 3. the array jobs --------------------------------------------------------------------
DATA="$TMP/data"
CC_SLURM="$TMP/cc-slurm"
CC_ONE="$TMP/cc-single"
SHARDS=4
DETECT_ARGS=(--detector oracle --device cpu)
EXTRACT_ARGS=(--backbone efficientnet-lite0 --device cpu)

clawcrane data synth "$DATA" --preset tiny --workers 1 >"$TMP/synth.log" 2>&1 || { cat "$TMP/synth.log"; fail "clawcrane data synth"; }
say "dataset: clawcrane data synth --preset tiny -> $DATA"

# one artifact folder of a stage under a cache root (exactly one)
artifact() {
    local found=("$1/$2"-*/)
    [ ${#found[@]} = 1 ] && [ -d "${found[0]}" ] || fail "expected one $2-<key> folder under $1, found: ${found[*]}"
    echo "${found[0]%/}"
}

# sbatch --wait the job file as a $SHARDS-task array; fail (with the task logs) unless every task succeeded
submit() {
    local stage=$1 out
    say "sbatch --wait --array=0-$((SHARDS - 1)) $(basename "$JOB") $*"
    # in the background, so a TERM to this script runs the cleanup at once (not after the job)
    (cd "$TMP/jobs" && exec timeout "${SLURM_E2E_TIMEOUT:-600}" sbatch --wait --parsable \
        --array=0-$((SHARDS - 1)) --cpus-per-task=1 --job-name="cc-$stage" \
        --output="$TMP/jobs/%x-%A_%a.out" "$JOB" "$@") >"$TMP/jobs/sbatch-$stage.txt" 2>&1 &
    SBATCH_PID=$!
    if ! wait "$SBATCH_PID"; then
        for f in "$TMP"/jobs/cc-"$stage"-*.out; do echo "== $f"; tail -n 20 "$f"; done
        fail "the $stage array job failed: $(cat "$TMP/jobs/sbatch-$stage.txt")"
    fi
    SBATCH_PID=""
    out=$(cat "$TMP/jobs/sbatch-$stage.txt")
    local jid=${out%%[;$'\n']*}
    for a in $(seq 0 $((SHARDS - 1))); do
        local log="$TMP/jobs/cc-$stage-${jid}_$a.out"
        [ -f "$log" ] || fail "no log of task $a of job $jid"
        grep -q "array task $a (min 0, count $SHARDS)" "$log" \
            || fail "task $a did not see SLURM_ARRAY_TASK_ID=$a, SLURM_ARRAY_TASK_COUNT=$SHARDS: $(head -n 1 "$log")"
    done
    say "job $jid: $SHARDS tasks done; $(head -n 1 "$TMP/jobs/cc-$stage-${jid}_0.out")"
}

# every shard wrote its own file before the merge (a task that fell back to 0/1 would write data.h5)
check_shards() {
    local dir=$1 a
    for a in $(seq 0 $((SHARDS - 1))); do
        local f
        f=$(printf '%s/shard-%04d-of-%04d.h5' "$dir" "$a" "$SHARDS")
        [ -f "$f" ] || fail "missing $f (files: $(ls "$dir"))"
    done
    [ ! -e "$dir/data.h5" ] || fail "$dir/data.h5 exists before the merge: a task did not shard"
}

merge() {
    local out
    out=$(clawcrane cache merge "$1" 2>&1) || { echo "$out"; fail "clawcrane cache merge $1"; }
    echo "  $out"
}

submit detect "$DATA" "${DETECT_ARGS[@]}" --cache "$CC_SLURM"
DET=$(artifact "$CC_SLURM" detect)
check_shards "$DET"
merge "$DET"
submit extract --cache "$CC_SLURM" "${EXTRACT_ARGS[@]}"
EXT=$(artifact "$CC_SLURM" extract)
check_shards "$EXT"
merge "$EXT"

# --- 4. the same in one process -------------------------------------------------------------
say "single process: detect + extract into $CC_ONE"
clawcrane detect "$DATA" "${DETECT_ARGS[@]}" --cache "$CC_ONE" >"$TMP/single.log" 2>&1 \
    && clawcrane extract --cache "$CC_ONE" "${EXTRACT_ARGS[@]}" >>"$TMP/single.log" 2>&1 \
    || { tail -n 20 "$TMP/single.log"; fail "the single-process detect + extract failed"; }

# --- 5. verify and compare --------------------------------------------------------------------
for root in "$CC_SLURM" "$CC_ONE"; do
    clawcrane cache verify "$root" >"$TMP/verify.out" 2>&1 || { cat "$TMP/verify.out"; fail "cache verify $root"; }
done
say "cache verify: both roots pass"

"$PYTHON" - "$CC_SLURM" "$CC_ONE" <<'EOF' || fail "the SLURM run and the single-process run differ (lines above)"
import sys

import numpy as np

from clawcrane.cache.candidates import open_candidates
from clawcrane.cache.features import open_features

a_root, b_root = sys.argv[1:3]
problems = []


def same(x, y):
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        x, y = np.asarray(x), np.asarray(y)
        return x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
    return list(x) == list(y) if isinstance(x, (list, tuple)) else x == y


for stage, opener in (("detect", open_candidates), ("extract", open_features)):
    a, b = opener(a_root), opener(b_root)
    a.require_complete()
    b.require_complete()
    if a.key != b.key:
        problems.append(f"{stage}: keys differ: {a.key} (SLURM) vs {b.key} (single process)")
    va, vb = a.video_ids(), b.video_ids()
    if va != vb:
        problems.append(f"{stage}: videos differ: {sorted(set(va) ^ set(vb))}")
    rows = 0
    arrays = set()
    for vid in sorted(set(va) & set(vb)):
        ra, rb = a.store.read(vid), b.store.read(vid)
        if ra.attrs != rb.attrs:
            problems.append(f"{stage} {vid}: attributes differ: {ra.attrs} vs {rb.attrs}")
        if set(ra.arrays) != set(rb.arrays):
            problems.append(f"{stage} {vid}: columns differ: {sorted(ra.arrays)} vs {sorted(rb.arrays)}")
        for name in sorted(set(ra.arrays) & set(rb.arrays)):
            arrays.add(name)
            if not same(ra.arrays[name], rb.arrays[name]):
                problems.append(f"{stage} {vid}: column {name!r} differs")
        rows += len(ra.arrays.get("frame", ()))
    print(f"  {stage}: key {a.key[:16]}, {len(va)} videos, {rows} rows, columns {', '.join(sorted(arrays))}: "
          + ("identical" if not [p for p in problems if p.startswith(stage)] else "DIFFERENT"))
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
EOF

say "passed: the $SHARDS-task SLURM array jobs (detect, extract) + cache merge equal the single-process run"
