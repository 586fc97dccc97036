"""Bad input to lasso-hyper: a one-line error naming the problem, a non-zero exit, no output file.

Usage: check_bad_input.py CASE
"""
import os
import sys
import tempfile

from lasso_reference import driver

GOOD_X = "1 2 3\n2 1 0\n3 5 1\n4 4 4\n5 0 2\n6 3 3\n7 1 5\n8 2 2\n"
GOOD_Y = "1\n2\n3\n4\n5\n6\n7\n8\n"

# case: (X text, y text, extra options, a piece of the expected message)
CASES = {
    "non_numeric": (GOOD_X.replace("3 5 1", "3 five 1"), GOOD_Y, [], "'five' is not a finite number"),
    "ragged": (GOOD_X.replace("4 4 4", "4 4"), GOOD_Y, [], "line 4 has 2 fields"),
    "length_mismatch": (GOOD_X, GOOD_Y + "9\n", [], "X and y need one row per sample"),
    "constant_column": (GOOD_X.replace("\n", " 7\n"), GOOD_Y, [], "column 4 is constant"),
    "fraction_low": (GOOD_X, GOOD_Y, ["--validation-fraction", "0"], "outside (0,1)"),
    "fraction_high": (GOOD_X, GOOD_Y, ["--validation-fraction", "1.5"], "outside (0,1)"),
    "missing_file": (None, GOOD_Y, [], "cannot open"),
}


def main(case):
    x_text, y_text, extra, expected = CASES[case]
    with tempfile.TemporaryDirectory() as folder:
        x_path = os.path.join(folder, "X.csv")
        y_path = os.path.join(folder, "y.csv")
        if x_text is not None:
            with open(x_path, "w") as f:
                f.write(x_text)
        with open(y_path, "w") as f:
            f.write(y_text)
        output = os.path.join(folder, "trials.csv")
        run = driver("--x", x_path, "--y", y_path, "--output", output, *extra, ranks=2)
        errors = [line for line in run.stderr.splitlines() if "error" in line]
        print(run.stderr)
        if run.returncode == 0:
            sys.exit(f"{case}: lasso-hyper exited with status 0")
        if len(errors) != 1 or expected not in errors[0]:
            sys.exit(f"{case}: expected one error line containing {expected!r}, got {errors}")
        if case != "missing_file" and x_path.split("/")[-1] not in errors[0] and "fraction" not in case:
            sys.exit(f"{case}: the error does not name the file: {errors[0]}")
        if os.path.exists(output) or any(n.endswith(".partial") for n in os.listdir(folder)):
            sys.exit(f"{case}: an output file was left behind")


if __name__ == "__main__":
    main(sys.argv[1])
