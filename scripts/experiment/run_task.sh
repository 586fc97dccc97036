#!/usr/bin/env bash
# Trains and evaluates one run of the L2-versus-W2 experiment: line INDEX (0-based, header not
# counted) of a task table written by scripts/experiment/tasks.py.
#
#   scripts/experiment/run_task.sh results/experiment/tasks.tsv 0
#
# Writes into $OUT/runs/<task>/ (OUT defaults to results/experiment):
#   fitted.hdf5   the model (birdflow-train), train.log its output, train.seconds the wall time;
#   eval.csv      per-interval metrics (birdflow-eval; a header-only table for species without
#                 banding data, so only the distribution metrics are filled), summary.csv;
#   eval.log, eval.seconds.
# A run whose summary.csv exists is skipped unless FORCE=1, so an interrupted experiment resumes;
# a run whose lock folder exists (another launcher is training it) is skipped too.
#
# Environment: BUILD (./build), OUT (results/experiment), NP (MPI ranks per run, 1), MPIEXEC
# (mpiexec), MPIEXEC_FLAGS (empty), LAUNCHER (overrides "$MPIEXEC -n $NP $MPIEXEC_FLAGS", e.g.
# "srun" in a SLURM job), TRAIN_FLAGS (extra birdflow-train options, e.g. PETSc -ot_ knobs).
set -euo pipefail

tasks=${1:?usage: run_task.sh TASKS.tsv INDEX}
index=${2:?usage: run_task.sh TASKS.tsv INDEX}
BUILD=${BUILD:-./build}
OUT=${OUT:-results/experiment}
NP=${NP:-1}
MPIEXEC=${MPIEXEC:-mpiexec}
LAUNCHER=${LAUNCHER:-"$MPIEXEC -n $NP ${MPIEXEC_FLAGS:-}"}

line=$(sed -n "$((index + 2))p" "$tasks")
if [ -z "$line" ]; then
  echo "run_task.sh: $tasks has no task $index (the table has $(($(wc -l <"$tasks") - 1)))" >&2
  exit 2
fi
IFS=$'\t' read -r task species loss group steps input intervals options <<<"$line"
run_dir="$OUT/runs/$task"
mkdir -p "$run_dir"
if [ -s "$run_dir/summary.csv" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "run_task.sh: $task already done ($run_dir/summary.csv); FORCE=1 reruns it" >&2
  exit 0
fi
# A lock folder keeps two launchers from training the same run at once.
if ! mkdir "$run_dir/lock" 2>/dev/null; then
  echo "run_task.sh: $task is running elsewhere ($run_dir/lock exists; remove it if stale)" >&2
  exit 0
fi
trap 'rmdir "$run_dir/lock"' EXIT

# 1. Train.
rm -f "$run_dir/summary.csv"
start=$(date +%s.%N)
# shellcheck disable=SC2086
$LAUNCHER "$BUILD/bin/birdflow-train" --input "$input" --output "$run_dir/fitted.hdf5" \
  --steps "$steps" $options -train_progress_interval 50 ${TRAIN_FLAGS:-} >"$run_dir/train.log" 2>&1 || {
  echo "run_task.sh: training $task failed; see $run_dir/train.log:" >&2
  tail -n 5 "$run_dir/train.log" >&2
  exit 1
}
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f\n", b - a }' >"$run_dir/train.seconds"

# 2. Evaluate: the species' banding intervals, or a header-only table for the distribution
# metrics alone.
if [ "$intervals" = - ]; then
  intervals="$run_dir/no_intervals.csv"
  echo "interval_id,t1,t2,i1,i2" >"$intervals"
fi
start=$(date +%s.%N)
$LAUNCHER "$BUILD/bin/birdflow-eval" --model "$run_dir/fitted.hdf5" --intervals "$intervals" \
  --output "$run_dir/eval.csv" --summary "$run_dir/summary.csv" >"$run_dir/eval.log" 2>&1 || {
  echo "run_task.sh: evaluating $task failed; see $run_dir/eval.log:" >&2
  tail -n 5 "$run_dir/eval.log" >&2
  rm -f "$run_dir/summary.csv"
  exit 1
}
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f\n", b - a }' >"$run_dir/eval.seconds"
echo "run_task.sh: $task done in $(cat "$run_dir/train.seconds") s training," \
  "$(cat "$run_dir/eval.seconds") s evaluation" >&2
