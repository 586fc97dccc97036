"""Trains Saltmarsh Sparrow with birdflow-train on 2 ranks and checks the fitted file.

The run takes BirdFlowPy's hyperparameters of the bundled fit from a --config file. Its output
must pass tests/io/check_fitted_file.py and record the hyperparameters and our run settings. Its
last logged loss must be at most 1% above BirdFlowPy's, and its distribution correlation with S&T
at least BirdFlowPy's minus 0.005. It also checks that
scripts/distribution_correlation.py reproduces BirdFlowR's value for BirdFlowPy's fit.
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from distribution_correlation import weekly_correlations  # noqa: E402

CONFIG = """# BirdFlowPy's hyperparameters of the bundled sstspa fit
steps = 600
learning-rate = 0.1
obs-weight = 1.0
dist-weight = 0.047847
ent-weight = 0.0047847
dist-pow = 0.9
seed = 17
"""


def read_reference_correlation(csv_path):
    with open(csv_path) as f:
        header = f.readline().strip().replace('"', "").split(",")
        values = f.readline().strip().split(",")
    return float(values[header.index("mean_distr_cor")])


def main():
    data = os.environ["BIRDFLOW_DATA_DIR"]
    source = os.path.join(data, "sstspa", "sstspa_2023_100km_preprocessed.hdf5")
    reference = os.path.join(data, "sstspa", "sstspa_2023_100km_fitted.hdf5")
    reference_cor = read_reference_correlation(
        os.path.join(data, "sstspa", "sstspa_2023_100km_distribution_performance.csv"))
    failures = []

    ours = float(np.mean(weekly_correlations(reference)))
    if abs(ours - reference_cor) > 1e-6:
        failures.append(f"correlation of BirdFlowPy's fit {ours} differs from BirdFlowR's "
                        f"{reference_cor}")

    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "sstspa.toml")
        with open(config, "w") as f:
            f.write(CONFIG)
        output = os.path.join(tmp, "sstspa_fitted.hdf5")
        flags = [x for x in os.environ.get("BIRDFLOW_MPIEXEC_FLAGS", "").split(";") if x]
        command = [os.environ["BIRDFLOW_MPIEXEC"], "-n", "2", *flags,
                   os.path.join(os.environ["BIRDFLOW_BIN_DIR"], "birdflow-train"),
                   "--input", source, "--output", output, "--config", config,
                   "-train_progress_interval", "100"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        print(result.stdout)
        if result.returncode != 0:
            print(result.stderr)
            return 1

        check = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "io",
                                                             "check_fitted_file.py"), output],
                               capture_output=True, text=True)
        if check.returncode != 0:
            failures.append("check_fitted_file.py: " + check.stdout.strip())

        with h5py.File(output, "r") as fitted, h5py.File(reference, "r") as birdflowpy:
            ours_loss = fitted["metadata/loss_values/total"][-1]
            theirs = birdflowpy["metadata/loss_values/total"][-1]
            print(f"last logged loss {ours_loss:.6f}, BirdFlowPy {theirs:.6f}, "
                  f"ratio {ours_loss / theirs:.5f}")
            if not ours_loss <= 1.01 * theirs:
                failures.append(f"last loss {ours_loss} is more than 1% above {theirs}")
            hyper = fitted["metadata/hyperparameters"]
            for name, value in [("dist_weight", 0.047847), ("ent_weight", 0.0047847),
                                ("dist_pow", 0.9), ("training_steps", 600), ("rng_seed", 17)]:
                if hyper[name][()] != value:
                    failures.append(f"hyperparameter {name} is {hyper[name][()]}, not {value}")
            extra = fitted["metadata/birdflow_hpc"]
            for name, value in [("location_loss", "l2"), ("mpi_ranks", "2")]:
                stored = extra[name][()]
                stored = stored.decode() if isinstance(stored, bytes) else str(stored)
                if stored != value:
                    failures.append(f"metadata/birdflow_hpc/{name} is {stored!r}, not {value!r}")

        correlation = float(np.mean(weekly_correlations(output)))
        print(f"mean_distr_cor {correlation:.6f}, BirdFlowPy {reference_cor:.6f}")
        if correlation < reference_cor - 0.005:
            failures.append(f"mean_distr_cor {correlation} is below {reference_cor} - 0.005")

    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
