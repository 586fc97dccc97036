"""Runs birdflow-w2 on 2 ranks with bad input and checks each run for a non-zero exit, exactly one
"birdflow-w2: error:" line that names the problem, and no output file (partial or final).
Also checks the accepted variants: a cell masked in a only, and --normalize."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BIN = os.environ["BIRDFLOW_BIN_DIR"]
DATA = os.environ["BIRDFLOW_DATA_DIR"]
MPIEXEC = os.environ.get("BIRDFLOW_MPIEXEC", "mpiexec")
MPI_FLAGS = [f for f in os.environ.get("BIRDFLOW_MPIEXEC_FLAGS", "").split(";") if f]
FAILURES = []


def pair(nrow=5, ncol=4):
    a = np.full((nrow, ncol), 1.0 / (nrow * ncol))
    b = np.zeros((nrow, ncol))
    b[nrow - 1, ncol - 1] = 0.5
    b[0, ncol - 1] = 0.5
    return a, b


def write(folder, name, **datasets):
    path = os.path.join(folder, name)
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


def run(folder, args):
    out = os.path.join(folder, "out.h5")
    cmd = [MPIEXEC, "-n", "2", *MPI_FLAGS, os.path.join(BIN, "birdflow-w2"), *args,
           "--output", out]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    exists = os.path.exists(out) or os.path.exists(os.path.join(folder, ".out.h5.partial"))
    if os.path.exists(out):
        os.remove(out)
    return proc, exists


def expect_error(folder, name, args, fragment):
    proc, exists = run(folder, args)
    lines = [l for l in proc.stderr.splitlines() if l.startswith("birdflow-w2: error:")]
    ok = proc.returncode != 0 and len(lines) == 1 and fragment in lines[0] and not exists
    detail = lines[0] if lines else f"exit {proc.returncode}, stderr: {proc.stderr.strip()[:300]}"
    print(("ok    " if ok else "FAIL  ") + name + ": " + detail)
    if not ok:
        FAILURES.append(name)


def expect_success(folder, name, args):
    proc, exists = run(folder, args)
    ok = proc.returncode == 0 and exists
    print(("ok    " if ok else "FAIL  ") + name + ": " + (proc.stdout.strip().splitlines() or
                                                        [proc.stderr.strip()])[-1])
    if not ok:
        FAILURES.append(name)


def main():
    common = ["--cell-size", "10", "--epsilon", "100"]
    species = os.path.join(DATA, "sstspa", "sstspa_2023_100km_preprocessed.hdf5")
    with tempfile.TemporaryDirectory() as folder:
        a, b = pair()
        good = write(folder, "good.h5", a=a, b=b)
        expect_success(folder, "valid input", ["--input", good, *common, "--gradient"])

        masked_a_only = a.copy()
        masked_a_only[0, 0] = np.nan
        masked_a_only /= np.nansum(masked_a_only)
        path = write(folder, "masked_a.h5", a=masked_a_only, b=b)
        expect_success(folder, "NaN in a only (masked for a)", ["--input", path, *common])

        negative = a.copy()
        negative[1, 2] = -0.01
        path = write(folder, "negative.h5", a=negative, b=b)
        expect_error(folder, "negative entry", ["--input", path, *common],
                     "a is -0.01 at cell (row 1, column 2)")

        infinite = b.copy()
        infinite[2, 1] = np.inf
        path = write(folder, "infinite.h5", a=a, b=infinite)
        expect_error(folder, "infinite entry", ["--input", path, *common], "b is inf at cell")

        mask = np.ones(a.shape, dtype=np.int8)
        mask[4, 0] = 0
        nan_active = a.copy()
        nan_active[3, 3] = np.nan
        path = write(folder, "nan_active.h5", a=nan_active, b=b, mask=mask)
        expect_error(folder, "NaN at an active cell of mask", ["--input", path, *common],
                     "a is NaN at cell (row 3, column 3), which dataset mask marks active")

        path = write(folder, "sum.h5", a=a * 1.05, b=b)
        expect_error(folder, "sum far from 1", ["--input", path, *common],
                     "a sums to 1.05, not 1 (tolerance 1e-06); pass --normalize")
        expect_success(folder, "sum far from 1 with --normalize",
                       ["--input", path, *common, "--normalize"])

        path = write(folder, "zero.h5", a=np.zeros_like(a), b=b)
        expect_error(folder, "no mass", ["--input", path, *common, "--normalize"], "a has no mass")

        path = write(folder, "shape.h5", a=a, b=pair(5, 5)[1])
        expect_error(folder, "shape mismatch", ["--input", path, *common],
                     "datasets a (5 x 4) and b (5 x 5) differ in shape")

        path = write(folder, "missing.h5", a=a)
        expect_error(folder, "missing dataset", ["--input", path, *common], "dataset b not found")

        path = write(folder, "one_d.h5", a=a.ravel(), b=b.ravel())
        expect_error(folder, "1D datasets", ["--input", path, *common], "expected a 2D array")

        expect_error(folder, "missing file", ["--input", os.path.join(folder, "none.h5"), *common],
                     "file not found")
        text = os.path.join(folder, "text.h5")
        with open(text, "w") as f:
            f.write("not hdf5\n")
        expect_error(folder, "not HDF5", ["--input", text, *common], "not an HDF5 file")

        for eps in ("0", "-5"):
            expect_error(folder, f"epsilon {eps}",
                         ["--input", good, "--cell-size", "10", "--epsilon", eps],
                         "give a positive eps in km^2")
        expect_error(folder, "cell size 0", ["--input", good, "--cell-size", "0", "--epsilon", "1"],
                     "--cell-size")
        expect_error(folder, "input and species", ["--input", good, "--species", species,
                                                   "--weeks", "1,2", "--epsilon", "1e4"],
                     "exactly one of --input and --species")
        expect_error(folder, "week out of range",
                     ["--species", species, "--weeks", "10,99", "--epsilon", "1e4"],
                     "week 99 is outside")
        expect_success(folder, "species weeks", ["--species", species, "--weeks", "10,11",
                                                 "--epsilon", "1e4", "--gradient"])

    if FAILURES:
        print("failed: " + ", ".join(FAILURES))
        sys.exit(1)


if __name__ == "__main__":
    main()
