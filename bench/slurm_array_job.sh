#!/bin/bash
# The README's array job ("## Cluster use"): one task per shard of `clawcrane detect` or
# `clawcrane extract`. Task i of the array is shard i of N: the tool reads SLURM_ARRAY_TASK_ID
# (minus SLURM_ARRAY_TASK_MIN) and SLURM_ARRAY_TASK_COUNT when --shard is not given, so the
# same file serves every stage and array size. Options given to sbatch override these lines.
#
#   sbatch --wait bench/slurm_array_job.sh detect /data/a2d_sentences --detector runs/det/final.pt --cache /scratch/cc
#   clawcrane cache merge /scratch/cc/detect-<key>
#   sbatch --wait bench/slurm_array_job.sh extract --cache /scratch/cc
#   clawcrane cache merge /scratch/cc/extract-<key>
#
# bench/slurm_e2e.sh submits exactly this file (with --array=0-3 --cpus-per-task=1 on a
# one-node test cluster) and checks the merged caches against a single-process run.
#SBATCH --job-name=clawcrane
#SBATCH --array=0-15
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:1
#SBATCH --output=clawcrane-%A_%a.out
set -euo pipefail
echo "clawcrane $1: array task ${SLURM_ARRAY_TASK_ID:-?} (min ${SLURM_ARRAY_TASK_MIN:-?}, count ${SLURM_ARRAY_TASK_COUNT:-unset}) on $(hostname)"
exec clawcrane "$@"
