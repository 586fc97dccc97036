#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (ctest: every MPI suite at 1 and
# 2 ranks, some at 3, plus the Python reference checks and the driver runs on real data).
# Extra arguments go to ctest, e.g. scripts/test.sh -L ot
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
source "$root/scripts/mpi-env.sh"
cd "$root/build"
ctest --output-on-failure --timeout 1200 "$@"
