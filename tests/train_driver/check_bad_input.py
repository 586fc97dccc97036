"""Runs birdflow-train on bad input files and nonsense options, on 1 and 2 ranks.

Each case must end with exactly one line "birdflow-train: error: ..." naming what is wrong and
where, a non-zero exit status, no output file and no partial file, within the time limit (no rank
left hanging). The bad files come from tests/scripts/make_species_variants.py.

Environment: BIRDFLOW_BIN_DIR, BIRDFLOW_DATA_DIR, BIRDFLOW_PYTHON, BIRDFLOW_MPIEXEC and
BIRDFLOW_MPIEXEC_FLAGS (a CMake list), as ctest sets them.
"""
import os
import subprocess
import sys
import tempfile

TIME_LIMIT_SECONDS = 60
SOURCE = "sstspa/sstspa_2023_100km_preprocessed.hdf5"

# (case, extra arguments, words the error line must contain). The input file of a file case is
# <variants>/<case>.hdf5; an option case uses the good source file.
FILE_CASES = [
    ("not_hdf5", [], ["not_hdf5.hdf5"]),
    ("missing_distr", [], ["missing_distr.hdf5", "distr"]),
    ("wrong_shape", [], ["wrong_shape.hdf5", "dynamic_mask"]),
    ("nan_distr", [], ["nan_distr.hdf5", "distr", "nan"]),
    ("negative_distr", [], ["negative_distr.hdf5", "distr"]),
    ("zero_week", [], ["zero_week.hdf5", "21"]),
    ("mask_disagrees", [], ["mask_disagrees.hdf5", "dynamic_mask"]),
    ("n_active_mismatch", [], ["n_active_mismatch.hdf5", "n_active"]),
]
OPTION_CASES = [
    ("steps_zero", ["--steps", "0"], ["--steps", "0"]),
    ("learning_rate_zero", ["--learning-rate", "0"], ["--learning-rate", "0"]),
    ("learning_rate_negative", ["--learning-rate", "-1"], ["--learning-rate", "-1"]),
    ("dist_pow_zero", ["--dist-pow", "0"], ["--dist-pow", "0"]),
    ("ent_weight_negative", ["--ent-weight", "-0.5"], ["--ent-weight", "-0.5"]),
    ("output_folder_missing", ["--output", "/nonexistent-folder/model.hdf5"],
     ["--output", "/nonexistent-folder"]),
]


def run_case(ranks, input_path, output_path, extra):
    mpiexec = os.environ["BIRDFLOW_MPIEXEC"]
    flags = [f for f in os.environ.get("BIRDFLOW_MPIEXEC_FLAGS", "").split(";") if f]
    driver = os.path.join(os.environ["BIRDFLOW_BIN_DIR"], "birdflow-train")
    defaults = {"--input": input_path, "--output": output_path, "--steps": "2"}
    arguments = [token for option, value in defaults.items() if option not in extra
                 for token in (option, value)]
    command = [mpiexec, "-n", str(ranks), *flags, driver, *arguments, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS)


def check(name, ranks, result, words, output_path):
    """Returns a list of failure messages for one run."""
    problems = []
    lines = [l for l in result.stderr.splitlines() if l.startswith("birdflow-train:")]
    if result.returncode == 0:
        problems.append("exit status 0")
    if len(lines) != 1:
        problems.append(f"{len(lines)} error lines: {lines!r}")
    elif not lines[0].startswith("birdflow-train: error: "):
        problems.append(f"unexpected line {lines[0]!r}")
    else:
        missing = [w for w in words if w not in lines[0]]
        if missing:
            problems.append(f"error line {lines[0]!r} does not name {missing}")
    folder, base = os.path.split(output_path)
    # An option case may write elsewhere; look for any file it could have left.
    leftovers = [f for f in os.listdir(folder) if base in f] if os.path.isdir(folder) else []
    if leftovers:
        problems.append(f"left files {leftovers}")
    return [f"{name} on {ranks} rank(s): {p}" for p in problems]


def main():
    data = os.environ["BIRDFLOW_DATA_DIR"]
    source = os.path.join(data, SOURCE)
    here = os.path.dirname(os.path.abspath(__file__))
    maker = os.path.join(here, "..", "scripts", "make_species_variants.py")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = os.path.join(tmp, "variants")
        subprocess.run([os.environ["BIRDFLOW_PYTHON"], maker, source, variants], check=True,
                       capture_output=True)
        cases = [(name, os.path.join(variants, name + ".hdf5"), extra, words)
                 for name, extra, words in FILE_CASES]
        cases.append(("missing_file", os.path.join(tmp, "absent.hdf5"), [], ["absent.hdf5"]))
        cases += [(name, source, extra, words) for name, extra, words in OPTION_CASES]
        for ranks in (1, 2):
            for name, input_path, extra, words in cases:
                output_path = os.path.join(tmp, f"{name}_{ranks}.hdf5")
                try:
                    result = run_case(ranks, input_path, output_path, extra)
                except subprocess.TimeoutExpired:
                    failures.append(f"{name} on {ranks} rank(s): no exit in {TIME_LIMIT_SECONDS} s")
                    continue
                found = check(name, ranks, result, words, output_path)
                failures += found
                status = "FAIL" if found else "ok"
                line = [l for l in result.stderr.splitlines() if l.startswith("birdflow-train:")]
                print(f"{status:4} {name} ({ranks} rank(s)): {line[0] if line else '(no line)'}")
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
