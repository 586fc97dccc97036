#!/usr/bin/env bash
# Reruns the whole L2-versus-W2 experiment on one machine: writes the task table, trains and
# evaluates every run (skipping runs already done), bootstraps, plots and writes the tables of
# docs/results/l2-vs-w2.md.
#
#   scripts/run_experiment.sh            # the runs of docs/results/l2-vs-w2.md
#   scripts/run_experiment.sh --quick    # fewer runs: no weight search, no amewoo, one W2 point
#   scripts/run_experiment.sh --mode tiny --out /tmp/exp --doc /tmp/exp/l2-vs-w2.md \
#       --figures /tmp/exp/figures       # a few steps per run (the pipeline test)
#
# Options: --mode full|quick|tiny|cluster, --quick (= --mode quick), --jobs N (runs at a time,
# default 2), --np N (MPI ranks per run, default 1), --out DIR (results/experiment), --doc FILE,
# --figures DIR, --groups LIST (train only these groups of tasks.py, default base,search,w2,seeds),
# --only-aggregate (skip training and evaluation). Fitted models stay under --out
# (results/ is not in git). Needs build/bin/birdflow-train and birdflow-eval (scripts/build.sh)
# and a Python with numpy, h5py and matplotlib (PYTHON, default /usr/bin/python3).
# On a cluster use jobscripts/l2_vs_w2.sbatch instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

mode=full jobs=2 np=1 out=results/experiment
doc=docs/results/l2-vs-w2.md figures=docs/results/figures only_aggregate=0
groups=base,search,w2,seeds
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --mode) mode=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --np) np=$2; shift ;;
    --out) out=$2; shift ;;
    --doc) doc=$2; shift ;;
    --figures) figures=$2; shift ;;
    --only-aggregate) only_aggregate=1 ;;
    --groups) groups=$2; shift ;;
    *) echo "run_experiment.sh: unknown option $1; see the header of $0" >&2; exit 2 ;;
  esac
  shift
done
PYTHON=${PYTHON:-/usr/bin/python3}
export BUILD=${BUILD:-$root/build} OUT=$out NP=$np
if [ "$(id -u)" -eq 0 ]; then
  source "$root/scripts/mpi-env.sh"
fi
for driver in birdflow-train birdflow-eval; do
  if [ ! -x "$BUILD/bin/$driver" ]; then
    echo "run_experiment.sh: $BUILD/bin/$driver not found; build first with scripts/build.sh" >&2
    exit 1
  fi
done

# 1. The task table.
mkdir -p "$out"
"$PYTHON" scripts/experiment/tasks.py --mode "$mode" --output "$out/tasks.tsv"
n_tasks=$(($(wc -l <"$out/tasks.tsv") - 1))
echo "run_experiment.sh: mode $mode, $n_tasks runs, $jobs at a time, $np rank(s) each, in $out" >&2

# 2. Train and evaluate every run; a failed run is reported and left out of the tables.
start=$(date +%s)
if [ "$only_aggregate" = 0 ]; then
  awk -F'\t' -v groups=",$groups," 'NR > 1 && index(groups, "," $4 ",") { print NR - 2 }' \
    "$out/tasks.tsv" |
    xargs -P "$jobs" -I{} sh -c 'scripts/experiment/run_task.sh "$0" {} || true' "$out/tasks.tsv"
fi
echo "run_experiment.sh: runs finished in $(($(date +%s) - start)) s" >&2

# 3. Tables, bootstrap intervals and figures.
"$PYTHON" scripts/experiment/aggregate.py --tasks "$out/tasks.tsv" --out "$out" --doc "$doc" \
  --figures "$figures"
