"""Times POT's dense ot.sinkhorn and bench-ot on the same 64 x 64 problem and prints the ratio.

Problem: two Gaussian blobs on the unit square (h = 1/64), eps = 0.01 (eps/h^2 = 40.96), the
squared Euclidean cost. POT 0.8.2 stops when the 2-norm of its column-marginal error, checked
every 10 iterations, falls below stopThr; bench-ot stops when the L1 norm of its row-marginal
error falls below -ot_tol. Both get 1e-9, and the script reports both plans' L1 marginal errors.

Usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/ot/pot_dense.py BIN_DIR
       [--ranks 1,2] [--n 64]
"""
import argparse
import os
import re
import subprocess
import tempfile
import time

import h5py
import numpy as np
import ot


def blobs(n):
    y, x = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
    a = np.exp(-((x - 0.3) ** 2 + (y - 0.35) ** 2) / 0.02)
    b = np.exp(-((x - 0.7) ** 2 + (y - 0.6) ** 2) / 0.03)
    return a / a.sum(), b / b.sum()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--tol", type=float, default=1e-9)
    parser.add_argument("--ranks", default="1,2")
    args = parser.parse_args()
    n, eps = args.n, args.eps
    a, b = blobs(n)

    # 1. POT, dense cost matrix (n^2 x n^2).
    y, x = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    xy = np.stack([x.ravel(), y.ravel()], axis=1)
    cost = ot.dist(xy, xy, metric="sqeuclidean")
    start = time.perf_counter()
    plan, log = ot.sinkhorn(a.ravel(), b.ravel(), cost, eps, stopThr=args.tol, numItermax=100000,
                            log=True)
    pot_seconds = time.perf_counter() - start
    # POT's last update fits the row marginal exactly, so the column marginal carries its error.
    pot_l1 = np.abs(plan.sum(axis=0) - b.ravel()).sum()
    positive = plan > 0
    outer = np.outer(a.ravel(), b.ravel())
    pot_kl = float(np.sum(plan[positive] * np.log(plan[positive] / outer[positive])))
    pot_value = float(np.sum(plan * cost)) + eps * (pot_kl - plan.sum() + 1)
    print(f"POT {ot.__version__} ot.sinkhorn: {pot_seconds:.3f} s, {log['niter']} iterations, "
          f"L1 column-marginal error {pot_l1:.2e}, OT_eps (KL form) {pot_value:.12g}")

    # 2. bench-ot on the same arrays, best of 3.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "pair.h5")
        with h5py.File(path, "w") as f:
            f["a"], f["b"] = a, b
        for ranks in [int(r) for r in args.ranks.split(",")]:
            cmd = ["mpiexec", "-n", str(ranks), "--oversubscribe", "--bind-to", "none",
                   os.path.join(args.bin_dir, "bench-ot"), "--mode", "pair", "--input", path,
                   "--cell-size", repr(1.0 / n), "--epsilon", repr(eps), "--repeat", "3",
                   "-ot_tol", repr(args.tol)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            line = [l for l in out.splitlines() if l.startswith("seconds")][-1]
            seconds = float(re.search(r"seconds (\S+)", line).group(1))
            print(f"bench-ot, {ranks} rank(s): {line}")
            print(f"  POT / bench-ot time ratio: {pot_seconds / seconds:.1f}")


if __name__ == "__main__":
    main()
