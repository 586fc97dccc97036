#!/usr/bin/env bash
# The main job: installs what is missing, builds, and trains the bundled American Woodcock model
# (1,090 cells, 14.6 M parameters) on 2 MPI ranks with BirdFlowPipeline's averaged
# hyperparameters, writing results/amewoo_2019_80km_fitted.hdf5 and printing the run summary.
# Extra arguments go to birdflow-train (for example --steps 50 for a short run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
source "$root/scripts/mpi-env.sh"

cd "$root"
mkdir -p results
start=$(date +%s)
mpiexec -n 2 build/bin/birdflow-train \
  --input data/amewoo/amewoo_2019_80km_preprocessed.hdf5 \
  --output results/amewoo_2019_80km_fitted.hdf5 \
  --dist-weight 0.008177 --ent-weight 0.001924 --dist-pow 0.4167 --steps 600 \
  -train_progress_interval 20 "$@"
echo "demo: done in $(($(date +%s) - start)) s; fitted model: results/amewoo_2019_80km_fitted.hdf5"
