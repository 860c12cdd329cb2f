#!/bin/bash
# A Slurm job array that runs one smmsim batch on 8 nodes, one slice per array task.
#
#   sbatch scenarios/cluster/slurm-batch.sh
#   # when every task has ended:
#   smmsim merge results-*-of-8.jsonl -o all.jsonl
#
# smmsim reads SLURM_ARRAY_TASK_ID, _MIN, _STEP and _COUNT, runs slice
# K = (ID - MIN) / STEP + 1 of N = COUNT, and writes results-K-of-N.jsonl in the working
# directory, so --array=0-7 and --array=1-8 both work. Every task must expand the same
# inputs the same way: submit from the directory that holds scenarios/, with the same
# arguments for all. A task re-queued after a node failure resumes its own file.
#SBATCH --job-name=smmsim-hotadd
#SBATCH --array=0-7
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --time=02:00:00
#SBATCH --output=slurm-%A_%a.log

set -euo pipefail
smmsim batch scenarios/matrices/hotadd.toml \
    --jobs "${SLURM_CPUS_PER_TASK:-1}" \
    --resume \
    --traces traces
