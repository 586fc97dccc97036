"""Runs birdflow-w2 on the amewoo species grid (42 x 48, 80 km cells) on 1, 2 and 3 ranks.

The values must agree to 1e-10 relative, the potentials and gradients to 1e-7 of their largest
entry, and the iteration counts exactly."""
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
SPECIES = os.path.join(DATA, "amewoo", "amewoo_2019_80km_preprocessed.hdf5")


def run(folder, ranks, quantity):
    out = os.path.join(folder, f"{quantity}_{ranks}.h5")
    cmd = [MPIEXEC, "-n", str(ranks), *MPI_FLAGS, os.path.join(BIN, "birdflow-w2"),
           "--species", SPECIES, "--weeks", "10,20", "--epsilon", "6400", "--quantity", quantity,
           "--gradient", "--output", out, "-ot_tol", "1e-11"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with h5py.File(out, "r") as f:
        return {k: f[k][()] for k in f}


def close_fields(x, y):
    both = ~np.isnan(x)
    if not np.array_equal(both, ~np.isnan(y)):
        return False, float("inf")
    scale = np.max(np.abs(x[both]))
    diff = np.max(np.abs(x[both] - y[both]))
    return diff <= 1e-7 * scale, diff / scale


def main():
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        for quantity in ("divergence", "sharp"):
            reference = run(folder, 1, quantity)
            for ranks in (2, 3):
                other = run(folder, ranks, quantity)
                checks = [("value", abs(other["value"] - reference["value"])
                           <= 1e-10 * abs(reference["value"]),
                           f"{other['value']:.12g} vs {reference['value']:.12g}"),
                          ("iterations", other["iterations"] == reference["iterations"],
                           f"{other['iterations']} vs {reference['iterations']}")]
                for field in ("f", "g", "gradient_a", "gradient_b"):
                    ok, relative = close_fields(other[field], reference[field])
                    checks.append((field, ok, f"max relative difference {relative:.1e}"))
                for name, ok, detail in checks:
                    label = f"{quantity}, {ranks} ranks against 1: {name}"
                    print(("ok    " if ok else "FAIL  ") + label + ": " + detail)
                    if not ok:
                        failures.append(label)
    if failures:
        print("failed: " + "; ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
