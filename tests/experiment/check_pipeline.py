"""Checks the L2-versus-W2 experiment scripts: the paired bootstrap, then a tiny end-to-end run.

1. scripts/bootstrap_ll.py: a table compared with itself gives a difference of exactly 0; a
   synthetic shift is recovered, and the percentile interval has the width of the normal
   approximation (mean +- 1.96 sd / sqrt(n)) within 10%; --scored-set b rejects a model that
   leaves out intervals the baseline scores.
2. scripts/run_experiment.sh --mode tiny (3 Adam steps per run on sstspa and rewbla) into a
   temporary folder: every run trains and evaluates, aggregate.py fills the generated blocks of
   the results page (metrics, published comparison, weight search, W2 against L2, with each W2
   or mixed run paired with the L2 run of its weights) and plot_experiment.py draws the maps and
   loss curves as PNG files.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import bootstrap_ll  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_table(path, values, excluded=()):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["interval_id", "log_likelihood", "exclude"])
        for i, value in enumerate(values):
            flagged = i in excluded
            writer.writerow([f"id{i}", "NA" if flagged else repr(float(value)),
                             "TRUE" if flagged else "FALSE"])


def check_bootstrap(tmp, failures):
    rng = np.random.default_rng(5)
    base = rng.normal(-3.0, 1.0, size=400)
    shift = rng.normal(0.2, 0.5, size=400)
    path_b = os.path.join(tmp, "b.csv")
    path_a = os.path.join(tmp, "a.csv")
    write_table(path_b, base)
    write_table(path_a, base + shift)

    same = bootstrap_ll.compare(path_b, path_b, resamples=2000)
    if (same["difference"], same["ci_low"], same["ci_high"]) != (0.0, 0.0, 0.0):
        failures.append(f"self-comparison is not exactly 0: {same}")

    result = bootstrap_ll.compare(path_a, path_b, resamples=20000, seed=3)
    if abs(result["difference"] - shift.mean()) > 1e-12:
        failures.append(f"mean difference {result['difference']} != {shift.mean()}")
    normal_width = 2 * 1.96 * shift.std(ddof=1) / np.sqrt(shift.size)
    width = result["ci_high"] - result["ci_low"]
    if abs(width / normal_width - 1) > 0.1:
        failures.append(f"CI width {width} is not within 10% of the normal width {normal_width}")
    if not result["ci_low"] < shift.mean() < result["ci_high"]:
        failures.append(f"CI {result} does not contain the mean difference")

    write_table(path_a, base + shift, excluded={7})
    try:
        bootstrap_ll.compare(path_a, path_b, scored_set="b")
        failures.append("--scored-set b accepted a model that leaves out a scored interval")
    except SystemExit as error:
        if "does not score 1 intervals" not in str(error):
            failures.append(f"unexpected message for a missing interval: {error}")
    both = bootstrap_ll.compare(path_a, path_b, scored_set="both", resamples=100)
    if both["n"] != 399:
        failures.append(f"--scored-set both kept {both['n']} intervals instead of 399")


def check_pipeline(tmp, failures):
    out = os.path.join(tmp, "experiment")
    doc = os.path.join(tmp, "l2-vs-w2.md")
    figures = os.path.join(tmp, "figures")
    env = dict(os.environ)
    env["BUILD"] = os.path.dirname(os.environ["BIRDFLOW_BIN_DIR"])
    env["MPIEXEC"] = os.environ["BIRDFLOW_MPIEXEC"]
    env["MPIEXEC_FLAGS"] = " ".join(
        x for x in os.environ.get("BIRDFLOW_MPIEXEC_FLAGS", "").split(";") if x)
    env["PYTHON"] = sys.executable
    command = [os.path.join(ROOT, "scripts", "run_experiment.sh"), "--mode", "tiny", "--out",
               out, "--doc", doc, "--figures", figures]
    # The run gets its own process group, so a timeout ends its trainers too.
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate()
        failures.append(f"run_experiment.sh timed out after 240 s:\n{stderr[-2000:]}")
        return
    completed = subprocess.CompletedProcess(command, process.returncode, None, stderr)
    if completed.returncode != 0:
        failures.append(f"run_experiment.sh failed ({completed.returncode}):\n"
                        f"{completed.stderr[-2000:]}")
        return

    with open(os.path.join(out, "tasks.tsv")) as handle:
        tasks = list(csv.DictReader(handle, delimiter="\t"))
    for task in tasks:
        summary = os.path.join(out, "runs", task["task"], "summary.csv")
        if not os.path.exists(summary):
            failures.append(f"task {task['task']} left no {summary}")

    with open(doc) as handle:
        text = handle.read()
    for block in ("metrics", "published", "search", "w2"):
        if f"<!-- generated:{block} -->" not in text:
            failures.append(f"the results page has no generated block {block}")
    for task in tasks:
        if task["group"] in ("base", "search") and f"| {task['species']} | L2 |" not in text:
            failures.append(f"the metrics table has no row for {task['task']}")

    with open(os.path.join(out, "aggregate.json")) as handle:
        result = json.load(handle)
    published = result["published"]["by_interval"]
    if published["n"] != 1372:
        failures.append(f"published comparison uses {published['n']} intervals, not the 1372 "
                        "the reference scores")
    if abs(published["mean_b"] - (-2.8549095765368016)) > 1e-9:
        failures.append(f"published mean LL {published['mean_b']} != -2.8549095765")
    if not published["ci_low"] <= published["difference"] <= published["ci_high"]:
        failures.append(f"published CI {published} does not contain the difference")

    # Every W2 run, alone or mixed with L2, is compared with the L2 run of the same weights.
    expected = {t["task"]: f"{t['species']}-l2-base" for t in tasks if t["loss"] in ("w2", "mix")}
    compared = {row["task"]: row["l2_task"] for row in result.get("w2", [])}
    if compared != expected:
        failures.append(f"W2 runs compared with L2 runs {compared}, expected {expected}")

    for species in ("sstspa", "rewbla"):
        for kind in ("maps", "loss"):
            path = os.path.join(figures, f"{species}_{kind}.png")
            if not os.path.exists(path):
                failures.append(f"figure {path} was not written")
                continue
            with open(path, "rb") as handle:
                if handle.read(8) != PNG_SIGNATURE:
                    failures.append(f"figure {path} is not a PNG file")


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        check_bootstrap(tmp, failures)
        check_pipeline(tmp, failures)
    for failure in failures:
        print("FAIL:", failure)
    print("experiment pipeline checks:", "failed" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
