#!/usr/bin/env bash
# Benchmarks the trainer's Adam step on amewoo (14.6 M parameters) at 1 and 2 ranks, each run
# with its own STREAM-style triad, and prints the machine and one table row per rank count.
# Usage: bench/train/run.sh [PREPROCESSED.hdf5] (build first with scripts/build.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
input=${1:-$root/data/amewoo/amewoo_2019_80km_preprocessed.hdf5}
source "$root/scripts/mpi-env.sh"
lscpu | head -15
uptime
for ranks in 1 2; do
  mpiexec -n "$ranks" --bind-to core "$root/build/bin/bench-train" --input "$input" --steps 20 |
    grep '^|' | { [ "$ranks" -eq 1 ] && cat || tail -n 1; }
done
