"""Runs birdflow-train with the W2 location loss on Saltmarsh Sparrow and checks the results.

- `--location-loss w2` for 6 steps on 2 ranks: the progress lines show the W2 part and the
  Sinkhorn and KSP counts, the loss decreases, and the fitted file passes
  tests/io/check_fitted_file.py and records the location loss, weights, eps and quantity.
- `--location-loss mix --w2-quantity sharp --epsilon 40000` for 2 steps: KSP iterations appear
  and the record contains eps = 4 h^2.
- Bad W2 options end with one error line, a non-zero exit and no output file.
"""
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def run_train(ranks, arguments):
    flags = [x for x in os.environ.get("BIRDFLOW_MPIEXEC_FLAGS", "").split(";") if x]
    command = [os.environ["BIRDFLOW_MPIEXEC"], "-n", str(ranks), *flags,
               os.path.join(os.environ["BIRDFLOW_BIN_DIR"], "birdflow-train"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def text_of(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def read_extra(path):
    with h5py.File(path, "r") as fitted:
        group = fitted["metadata/birdflow_hpc"]
        extra = {name: text_of(group[name][()]) for name in group if name != "loss_w2"}
        total = np.array(fitted["metadata/loss_values/total"])
        w2 = np.array(group["loss_w2"]) if "loss_w2" in group else None
        obs_weight = float(np.ravel(fitted["metadata/hyperparameters/obs_weight"])[0])
    return extra, total, obs_weight, w2


def check_w2_run(source, tmp, failures):
    output = os.path.join(tmp, "sstspa_w2.hdf5")
    result = run_train(2, ["--input", source, "--output", output, "--location-loss", "w2",
                           "--w2-weight", "1e-5", "--epsilon-relative", "1", "--steps", "6",
                           "--dist-weight", "0.047847", "--ent-weight", "0.0047847",
                           "--dist-pow", "0.9", "-ot_tol", "1e-7"])
    print(result.stdout)
    if result.returncode != 0:
        failures.append("w2 run failed: " + result.stderr.strip())
        return
    steps = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    pattern = re.compile(r"w2 \S+ .*sinkhorn (\d+)  ksp 0 ")
    if len(steps) != 6 or not all(pattern.search(line) for line in steps):
        failures.append("progress lines lack the w2 part or the Sinkhorn and KSP counts")
    elif int(pattern.search(steps[1]).group(1)) >= int(pattern.search(steps[0]).group(1)):
        failures.append("the warm-started second step needs as many Sinkhorn iterations as the "
                        "first")
    if "Sinkhorn iterations" not in result.stdout:
        failures.append("the summary lacks the Sinkhorn total")

    check = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "io",
                                                         "check_fitted_file.py"), output],
                           capture_output=True, text=True)
    if check.returncode != 0:
        failures.append("check_fitted_file.py: " + check.stdout.strip())
    extra, total, obs_weight, w2 = read_extra(output)
    expected = {"location_loss": "w2", "w2_weight": "1e-05", "w2_quantity": "divergence",
                "w2_epsilon_km2": "10000", "w2_epsilon_relative": "1", "obs_weight": "0",
                "w2_groups": "2", "ot_tol": "1e-07"}
    for key, value in expected.items():
        if extra.get(key) != value:
            failures.append(f"metadata/birdflow_hpc/{key} is {extra.get(key)!r}, not {value!r}")
    if obs_weight != 0:
        failures.append(f"hyperparameters/obs_weight is {obs_weight}, not 0 for a W2-only loss")
    if len(total) != 6 or not total[-1] < total[0]:
        failures.append(f"loss_values/total {total}: expected 6 values, the last below the first")
    if w2 is None or len(w2) != 6 or not w2[-1] < w2[0]:
        failures.append(f"birdflow_hpc/loss_w2 {w2}: expected 6 values, the last below the first")


def check_mix_sharp_run(source, tmp, failures):
    output = os.path.join(tmp, "sstspa_mix.hdf5")
    result = run_train(2, ["--input", source, "--output", output, "--location-loss", "mix",
                           "--w2-quantity", "sharp", "--epsilon", "40000", "--steps", "2",
                           "-ot_tol", "1e-7", "-w2_groups", "1"])
    print(result.stdout)
    if result.returncode != 0:
        failures.append("mix run failed: " + result.stderr.strip())
        return
    if not re.search(r"ksp [1-9]\d*", result.stdout):
        failures.append("the sharp run reports no KSP iterations")
    extra, _, obs_weight, _ = read_extra(output)
    for key, value in {"location_loss": "mix", "w2_quantity": "sharp", "w2_epsilon_km2": "40000",
                       "w2_epsilon_relative": "4", "w2_groups": "1"}.items():
        if extra.get(key) != value:
            failures.append(f"metadata/birdflow_hpc/{key} is {extra.get(key)!r}, not {value!r}")
    if obs_weight != 1:
        failures.append(f"hyperparameters/obs_weight is {obs_weight}, not 1 for the mix")


def check_bad_options(source, tmp, failures):
    cases = [
        (["--epsilon", "1e4", "--epsilon-relative", "1"], "excludes"),
        (["--epsilon", "-5"], "--epsilon"),
        (["--w2-weight", "-1"], "--w2-weight"),
        (["--w2-quantity", "exact"], "--w2-quantity"),
        (["-w2_groups", "3"], "-w2_groups"),
    ]
    for arguments, word in cases:
        output = os.path.join(tmp, "bad.hdf5")
        result = run_train(2, ["--input", source, "--output", output, "--location-loss", "w2",
                               "--steps", "1", *arguments])
        message = result.stderr + result.stdout
        if result.returncode == 0 or word not in message or os.path.exists(output):
            failures.append(f"{' '.join(arguments)}: exit {result.returncode}, output exists "
                            f"{os.path.exists(output)}, message {message.strip()[-300:]!r}")


def main():
    source = os.path.join(os.environ["BIRDFLOW_DATA_DIR"], "sstspa",
                          "sstspa_2023_100km_preprocessed.hdf5")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        check_w2_run(source, tmp, failures)
        check_mix_sharp_run(source, tmp, failures)
        check_bad_options(source, tmp, failures)
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
