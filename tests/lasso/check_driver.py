"""End-to-end runs of lasso-hyper: rank-count agreement, HDF5 input, and the plot script.

Usage: check_driver.py ranks | hdf5 | plot
"""
import csv
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from lasso_reference import driver

DATA = os.environ.get("BIRDFLOW_DATA_DIR", "")


def read_trials(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def best(rows, method):
    return min(float(r["validation_loss"]) for r in rows if r["method"] == method)


def compare_runs(one, two, ranks):
    """Exit unless the trials of a 1-rank run and a run on `ranks` ranks agree."""
    # Grid and random search evaluate fixed alphas: every trial must agree. The gradient methods
    # decide line-search steps on rounding-level differences near a kink, so only their best
    # validation losses are compared.
    for method in ("grid", "random"):
        a_rows = [r for r in one if r["method"] == method]
        b_rows = [r for r in two if r["method"] == method]
        if len(a_rows) != len(b_rows):
            sys.exit(f"{method}: {len(a_rows)} trials on 1 rank, {len(b_rows)} on {ranks} ranks")
        for a, b in zip(a_rows, b_rows):
            for key in ("alpha", "validation_loss"):
                x, y = float(a[key]), float(b[key])
                if abs(x - y) > 1e-9 * abs(x):
                    sys.exit(f"{method} {key} differs on {ranks} ranks: {x} vs {y}")
    for method in ("unrolled", "implicit"):
        a_best, b_best = best(one, method), best(two, method)
        if abs(a_best - b_best) > 1e-8 * a_best:
            sys.exit(f"{method} best loss differs on {ranks} ranks: {a_best} vs {b_best}")


def check_ranks(folder):
    outputs = {}
    for ranks in (1, 2, 3):
        path = os.path.join(folder, f"trials_np{ranks}.csv")
        run = driver("--dataset", "diabetes", "--seed", "3", "--method", "all", "--output", path,
                     ranks=ranks)
        if run.returncode != 0:
            sys.exit(f"lasso-hyper on {ranks} ranks failed: {run.stderr}")
        if "best alpha" not in run.stdout:
            sys.exit(f"lasso-hyper printed no best alpha: {run.stdout}")
        outputs[ranks] = read_trials(path)
    for ranks in (2, 3):
        compare_runs(outputs[1], outputs[ranks], ranks)
    grid, found = best(outputs[1], "grid"), best(outputs[1], "implicit")
    print(f"grid best {grid:.6f}, implicit best {found:.6f}")
    if found > grid:
        sys.exit("the implicit method did not reach the grid's best validation loss")


def check_hdf5(folder):
    """The diabetes data from an HDF5 file give the same trials as the gzip-compressed text."""
    import gzip
    with gzip.open(os.path.join(DATA, "lasso", "diabetes_data_raw.csv.gz"), "rt") as f:
        X = np.loadtxt(f)
    with gzip.open(os.path.join(DATA, "lasso", "diabetes_target.csv.gz"), "rt") as f:
        y = np.loadtxt(f)
    data = os.path.join(folder, "diabetes.h5")
    with h5py.File(data, "w") as f:
        f["features"] = X
        f["y"] = y
    text_trials = os.path.join(folder, "text.csv")
    hdf5_trials = os.path.join(folder, "hdf5.csv")
    for args, path in (([ "--dataset", "diabetes"], text_trials),
                       (["--x", data + ":features", "--y", data], hdf5_trials)):
        run = driver(*args, "--method", "grid", "--output", path, "-lasso_grid_size", "10")
        if run.returncode != 0:
            sys.exit(f"lasso-hyper {args} failed: {run.stderr}")
    text, hdf5 = read_trials(text_trials), read_trials(hdf5_trials)
    for a, b in zip(text, hdf5):
        if a["alpha"] != b["alpha"] or a["validation_loss"] != b["validation_loss"]:
            sys.exit(f"HDF5 input differs from text input: {a} vs {b}")
    print(f"{len(hdf5)} trials equal")


def check_plot(folder):
    trials = os.path.join(folder, "trials.csv")
    coefficients = os.path.join(folder, "coef.csv")
    run = driver("--dataset", "diabetes", "--seed", "3", "--method", "all", "--output", trials,
                 "--coefficients", coefficients)
    if run.returncode != 0:
        sys.exit(f"lasso-hyper failed: {run.stderr}")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "plot_lasso.py")
    prefix = os.path.join(folder, "lasso")
    subprocess.run([sys.executable, script, "--trials", trials, "--coefficients", coefficients,
                    "--output-prefix", prefix], check=True, timeout=120)
    for suffix in ("-validation.png", "-path.png"):
        if os.path.getsize(prefix + suffix) < 1000:
            sys.exit(f"{prefix + suffix} is empty")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        {"ranks": check_ranks, "hdf5": check_hdf5, "plot": check_plot}[sys.argv[1]](tmp)
