"""End-to-end checks of birdflow-eval on the rewbla data.

1. Bad input (missing column, unparsable value, cell outside the grid, week out of range, a model
   without marginals) ends with one error line naming the file, line and value, a non-zero exit
   and no output file.
2. On the published rewbla model, the per-interval distance metrics agree with an independent
   numpy computation from the marginals, the stored great-circle distances of the preprocessed
   file and the definitions of BirdFlowR's calc_interval_metrics().
"""
import csv
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

DATA = os.environ["BIRDFLOW_DATA_DIR"]
DRIVER = os.path.join(os.environ["BIRDFLOW_BIN_DIR"], "birdflow-eval")
MPIEXEC = os.environ["BIRDFLOW_MPIEXEC"]
MPI_FLAGS = [f for f in os.environ.get("BIRDFLOW_MPIEXEC_FLAGS", "").split(";") if f]
MODEL = os.path.join(DATA, "rewbla", "rewbla_2021_250km_fitted.hdf5")
PREPROCESSED = os.path.join(DATA, "rewbla", "rewbla_2021_250km_preprocessed.hdf5")
INTERVALS = os.path.join(DATA, "rewbla", "rewbla_banding_intervals.csv")
failures = []


def run_driver(ranks, model, intervals, output, *extra):
    command = [MPIEXEC, "-n", str(ranks), *MPI_FLAGS, DRIVER, "--model", model,
               "--intervals", intervals, "--output", output, *extra]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL:", message)


def write_variant(folder, name, edit):
    """Writes a copy of the rewbla interval table with `edit` applied to its lines."""
    with open(INTERVALS) as source:
        lines = source.read().splitlines()
    path = os.path.join(folder, name)
    with open(path, "w") as out:
        out.write("\n".join(edit(lines)) + "\n")
    return path


def replace_field(line, column_index, value):
    fields = line.split(",")
    fields[column_index] = value
    return ",".join(fields)


def check_bad_input(folder):
    header = open(INTERVALS).readline().strip().split(",")
    t2, i1 = header.index("t2"), header.index("i1")
    cases = [
        ("missing_column.csv", lambda ls: [",".join(l.split(",")[:i1] + l.split(",")[i1 + 1:])
                                           for l in ls], None, ["missing column i1", ":1:"]),
        ("unparsable.csv", lambda ls: ls[:5] + [replace_field(ls[5], t2, "week3")] + ls[6:],
         None, [":6:", "\"week3\"", "t2"]),
        ("outside_grid.csv", lambda ls: ls[:9] + [replace_field(ls[9], i1, "338")] + ls[10:],
         None, [":10:", "cell 338", "i1"]),
        ("week_range.csv", lambda ls: ls[:3] + [replace_field(ls[3], t2, "53")] + ls[4:],
         None, [":4:", "week 53", "t2"]),
        ("no_marginals", lambda ls: ls, PREPROCESSED, ["rewbla_2021_250km_preprocessed.hdf5",
                                                        "marginals"]),
    ]
    for ranks, (name, edit, model, expected) in zip([1, 2, 1, 2, 2], cases):
        intervals = write_variant(folder, name if name.endswith(".csv") else name + ".csv", edit)
        output = os.path.join(folder, name + "_out.csv")
        result = run_driver(ranks, model or MODEL, intervals, output)
        errors = [l for l in result.stderr.splitlines() if "error" in l]
        print(f"{name} ({ranks} ranks): exit {result.returncode}: {errors}")
        check(result.returncode != 0, f"{name}: exit status 0")
        check(len(errors) == 1, f"{name}: expected one error line, got {result.stderr!r}")
        for text in expected:
            check(any(text in l for l in errors), f"{name}: {text!r} not in {errors}")
        if model is None:
            check(any(intervals in l for l in errors), f"{name}: file name not in {errors}")
        check(not os.path.exists(output), f"{name}: output file exists")
        partial = os.path.join(folder, "." + os.path.basename(output) + ".partial")
        check(not os.path.exists(partial), f"{name}: partial file exists")


def dense_marginals(f, n):
    dm = f["geom/dynamic_mask"][:].astype(bool)
    weeks = dm.shape[1] - 1
    transitions = []
    for k in range(weeks):
        m = f[f"marginals/Week{k + 1}_to_{k + 2}"][:].astype(np.float64)
        full = np.zeros((n, n))
        full[np.ix_(np.where(dm[:, k])[0], np.where(dm[:, k + 1])[0])] = m
        sums = full.sum(axis=1, keepdims=True)
        transitions.append(np.divide(full, sums, out=np.zeros_like(full), where=sums > 0))
    return transitions, weeks


def check_metrics(folder):
    output = os.path.join(folder, "rewbla_metrics.csv")
    summary = os.path.join(folder, "rewbla_summary.csv")
    result = run_driver(2, MODEL, INTERVALS, output, "--summary", summary)
    print(result.stdout)
    check(result.returncode == 0, f"rewbla run failed: {result.stderr}")
    if result.returncode != 0:
        return
    check("mean_ll" in result.stdout and "mean_null_ll" in result.stdout, "summary lines missing")
    values = {r["metric"]: float(r["value"]) for r in csv.DictReader(open(summary))}
    check(abs(values["mean_ll"] - (-2.855)) < 5e-4, f"mean_ll {values['mean_ll']}")
    check(abs(values["mean_null_ll"] - (-5.143)) < 5e-4, f"mean_null_ll {values['mean_null_ll']}")

    # One rank writes the same bytes as two.
    output_one_rank = os.path.join(folder, "rewbla_metrics_np1.csv")
    check(run_driver(1, MODEL, INTERVALS, output_one_rank).returncode == 0, "1-rank run failed")
    with open(output, "rb") as two, open(output_one_rank, "rb") as one:
        check(two.read() == one.read(), "outputs on 1 and 2 ranks differ")

    with h5py.File(MODEL, "r") as f:
        distr = f["distr"][:]
        n = distr.shape[0]
        transitions, weeks = dense_marginals(f, n)
    with h5py.File(PREPROCESSED, "r") as f:
        packed = f["distances"][:]
    G = np.zeros((n, n))
    G[np.triu_indices(n, k=1)] = packed
    G = G + G.T

    rows = list(csv.DictReader(open(output)))
    inputs = {r["interval_id"]: r for r in csv.DictReader(open(INTERVALS))}
    check(len(rows) == 1500, f"expected 1500 rows, found {len(rows)}")
    worst = {}
    for row in rows:
        if row["log_likelihood"] == "NA" and row["sparse"] == "FALSE":
            continue
        source = inputs[row["interval_id"]]
        t1, t2 = int(source["t1"]) - 1, int(source["t2"]) - 1
        i1, i2 = int(source["i1"]) - 1, int(source["i2"]) - 1
        p = np.zeros(n)
        p[i1] = 1.0
        week = t1
        for _ in range(int(row["lag"])):
            p = transitions[week].T @ p
            week = (week + 1) % weeks
        s = distr[:, t2]
        g = G[:, i2]
        expected = {
            "pred": p @ g,
            "st": s @ g,
            "win_prob": np.sum(p * ((g[None, :] > g[:, None]) @ s)),
            "energy_score_bf": p @ g - 0.5 * p @ G @ p,
            "energy_score_st": s @ g - 0.5 * s @ G @ s,
            "pred_elapsed_dist_by_pred": p @ G[:, i1],
            "ll_offset": math.log(p[i2] + 1e-8),
        }
        for name, value in expected.items():
            difference = abs(float(row[name]) - value) / max(1.0, abs(value))
            worst[name] = max(worst.get(name, 0.0), difference)
    print("max relative differences to numpy:", worst)
    for name, difference in worst.items():
        # The computed cell distances agree with the stored ones to about 1e-9 km.
        check(difference < 1e-9, f"{name}: relative difference {difference:.3e}")


with tempfile.TemporaryDirectory() as folder:
    check_bad_input(folder)
    check_metrics(folder)
if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("all checks passed")
