#!/usr/bin/python3
"""Benchmark: lasso-hyper's implicit search against scikit-learn's lasso_path plus selection.

Both choose alpha by the validation MSE on the same synthetic problem (dense X, p = 5000) with the
same train/validation split and standardisation. scikit-learn computes a warm-started path over 100
alphas from alpha_max down to 1e-3 alpha_max (default tol 1e-4) and takes the best. lasso-hyper runs
its gradient search on log(alpha) within the same bounds.

The target loss is the validation MSE at scikit-learn's selected alpha with the Lasso solved to a
duality gap of 1e-12 (untimed), so both sides are compared as exact Lasso solutions and the race
measures the choice of alpha; the loss of scikit-learn's own inexact path coefficients is printed
too. The ratio is the scikit-learn time divided by the time lasso-hyper needs until one of its
trials has a validation loss equal or lower than the target.

Run from the repository root after building (Debian's python3 has scikit-learn and h5py):
  /usr/bin/python3 bench/lasso/bench_lasso.py [--n 1000] [--p 5000] [--ranks 1 2]
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import warnings

import h5py
import numpy as np
from sklearn.linear_model import Lasso, lasso_path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "lasso"))
from lasso_reference import split  # noqa: E402


def make_data(n, p, informative, noise, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[rng.choice(p, informative, replace=False)] = rng.choice([-1.0, 1.0], informative)
    y = X @ w + noise * rng.standard_normal(n)
    return X, y


def sklearn_selection(X, y, fraction, seed, n_alphas):
    train, val = split(len(y), fraction, seed)
    start = time.perf_counter()
    mean, scale = X[train].mean(axis=0), X[train].std(axis=0)
    Xt, Xv = (X[train] - mean) / scale, (X[val] - mean) / scale
    y_mean = y[train].mean()
    yt, yv = y[train] - y_mean, y[val] - y_mean
    alphas, coefs, _ = lasso_path(Xt, yt, eps=1e-3, n_alphas=n_alphas)
    losses = ((Xv @ coefs - yv[:, None]) ** 2).mean(axis=0)
    seconds = time.perf_counter() - start
    best = int(np.argmin(losses))
    exact = Lasso(alpha=alphas[best], fit_intercept=False, tol=1e-12, max_iter=1_000_000)
    exact.fit(Xt, yt)
    exact_loss = np.mean((Xv @ exact.coef_ - yv) ** 2)
    return alphas[best], losses[best], exact_loss, seconds


def run_driver(binary, data, fraction, seed, ranks, folder, extra):
    trials = os.path.join(folder, f"trials_np{ranks}.csv")
    command = [binary, "--x", data + ":X", "--y", data + ":y", "--validation-fraction",
               str(fraction), "--seed", str(seed), "--method", "implicit", "--output", trials,
               "-lasso_alpha_min_ratio", "1e-3", *extra]
    if ranks > 1:
        command = ["mpiexec", "-n", str(ranks), "--bind-to", "none", *command]
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(run.stderr)
    with open(trials) as f:
        rows = list(csv.DictReader(f))
    return rows, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--p", type=int, default=5000)
    parser.add_argument("--informative", type=int, default=20)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--binary", default=os.path.join("build", "bin", "lasso-hyper"))
    parser.add_argument("--driver-options", default="-lasso_tol 1e-8",
                        help="extra PETSc options for lasso-hyper")
    args = parser.parse_args()

    warnings.simplefilter("ignore")  # scikit-learn warns about unconverged path points
    X, y = make_data(args.n, args.p, args.informative, args.noise, args.seed)
    alpha_sk, path_loss, loss_sk, seconds_sk = sklearn_selection(X, y, args.fraction, args.seed,
                                                                 100)
    print(f"scikit-learn lasso_path + selection (100 alphas): best alpha {alpha_sk:.6g}, "
          f"validation MSE {path_loss:.6f} (path coefficients), {loss_sk:.6f} (exact solution), "
          f"{seconds_sk:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        data = os.path.join(folder, "data.h5")
        with h5py.File(data, "w") as f:
            f["X"] = X
            f["y"] = y
        for ranks in args.ranks:
            rows, wall = run_driver(args.binary, data, args.fraction, args.seed, ranks, folder,
                                    args.driver_options.split())
            best = min(float(r["validation_loss"]) for r in rows)
            reached = [float(r["seconds"]) for r in rows if float(r["validation_loss"]) <= loss_sk]
            total = float(rows[-1]["seconds"])
            if reached:
                ratio = f"{seconds_sk / reached[0]:.1f}x"
                when = f"{reached[0]:.2f} s"
            else:
                ratio, when = "not reached", "-"
            print(f"lasso-hyper implicit, {ranks} rank(s): best validation MSE {best:.6f}, "
                  f"{len(rows)} inner solves, search {total:.2f} s, process {wall:.2f} s; "
                  f"reaches scikit-learn's loss after {when}; speed-up {ratio}")


if __name__ == "__main__":
    main()
