#!/usr/bin/env bash
# Runs the W2 benchmarks of docs/results/bench-w2.md: the week-group layouts on 1 and 2 ranks,
# warm against cold Sinkhorn starts, the cost per Adam step at eps = h^2 and 4 h^2, and (only as
# an illustration on a 2-core machine) 4 oversubscribed ranks.
# Usage: bench/w2/run.sh (build first with scripts/build.sh). Prints the machine and the tables.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/scripts/mpi-env.sh"
bench="$root/build/bin/bench-w2"
sstspa=$root/data/sstspa/sstspa_2023_100km_preprocessed.hdf5
rewbla=$root/data/rewbla/rewbla_2021_250km_preprocessed.hdf5
amewoo=$root/data/amewoo/amewoo_2019_80km_preprocessed.hdf5
lscpu | head -15
uptime

echo "## Layouts: one rank, then 2 ranks with one group (all ranks on every grid) and two groups"
for input in "$sstspa:20" "$rewbla:10" "$amewoo:4"; do
  file=${input%:*} steps=${input##*:}
  mpiexec -n 1 --bind-to core "$bench" --input "$file" --groups 1 --steps "$steps" | grep '^| warm'
  mpiexec -n 2 --bind-to core "$bench" --input "$file" --groups 2,1 --steps "$steps" | grep '^| warm'
  uptime
done

echo "## Warm against cold starts (2 ranks, 2 groups)"
mpiexec -n 2 --bind-to core "$bench" --input "$sstspa" --groups 2 --steps 50 --cold | grep '^|'
mpiexec -n 2 --bind-to core "$bench" --input "$rewbla" --groups 2 --steps 20 --cold | grep '^|'

echo "## Cost per Adam step (2 ranks, 2 groups), eps = h^2 and 4 h^2"
for input in "$sstspa:20" "$rewbla:20" "$amewoo:6"; do
  file=${input%:*} steps=${input##*:}
  for eps in 1 4; do
    mpiexec -n 2 --bind-to core "$bench" --input "$file" --groups 2 --steps "$steps" \
      --epsilon-relative "$eps" | grep -v '^|---'
  done
done

echo "## 4 oversubscribed ranks on 2 cores (illustration only)"
mpiexec -n 4 --oversubscribe --bind-to none "$bench" --input "$rewbla" --groups 4,2,1 --steps 6 |
  grep '^| warm'
uptime
