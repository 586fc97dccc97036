"""Shared helpers of the Lasso script tests: the driver's split and standardisation in numpy."""
import gzip
import os
import subprocess

import numpy as np

MASK = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def split(rows, fraction, seed):
    """Return (train, validation) row indices exactly as lasso-hyper splits them."""
    keys = [splitmix64(((seed << 32) + i) & MASK) for i in range(rows)]
    order = sorted(range(rows), key=lambda i: (keys[i], i))
    n_val = int(np.floor(fraction * rows + 0.5))
    return sorted(order[n_val:]), sorted(order[:n_val])


def diabetes(fraction=0.3, seed=0):
    """Return standardised training and validation data of the diabetes set."""
    folder = os.path.join(os.environ["BIRDFLOW_DATA_DIR"], "lasso")
    with gzip.open(os.path.join(folder, "diabetes_data_raw.csv.gz"), "rt") as f:
        X = np.loadtxt(f)
    with gzip.open(os.path.join(folder, "diabetes_target.csv.gz"), "rt") as f:
        y = np.loadtxt(f)
    train, val = split(len(y), fraction, seed)
    mean, scale = X[train].mean(axis=0), X[train].std(axis=0)
    y_mean = y[train].mean()
    standardise = lambda rows: (X[rows] - mean) / scale
    return standardise(train), y[train] - y_mean, standardise(val), y[val] - y_mean


def driver(*args, ranks=1):
    """Run lasso-hyper and return the completed process (output captured as text)."""
    command = [os.path.join(os.environ["BIRDFLOW_BIN_DIR"], "lasso-hyper"), *args]
    if ranks > 1:
        flags = [f for f in os.environ.get("BIRDFLOW_MPIEXEC_FLAGS", "").split(";") if f]
        command = [os.environ["BIRDFLOW_MPIEXEC"], "-n", str(ranks), *flags, *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)
