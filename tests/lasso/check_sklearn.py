"""Compare lasso-hyper's coefficients along a grid with scikit-learn's Lasso at the same alphas."""
import csv
import os
import sys
import tempfile

import numpy as np
from sklearn.linear_model import Lasso

from lasso_reference import diabetes, driver


def main():
    seed = 3
    X, y, X_val, y_val = diabetes(0.3, seed)
    with tempfile.TemporaryDirectory() as folder:
        trials = os.path.join(folder, "trials.csv")
        coefficients = os.path.join(folder, "coef.csv")
        run = driver("--dataset", "diabetes", "--seed", str(seed), "--method", "grid",
                     "--output", trials, "--coefficients", coefficients,
                     "-lasso_grid_size", "12", "-lasso_tol", "1e-14")
        if run.returncode != 0:
            sys.exit(f"lasso-hyper failed: {run.stderr}")
        with open(coefficients) as f:
            rows = list(csv.DictReader(f))
        with open(trials) as f:
            losses = [float(r["validation_loss"]) for r in csv.DictReader(f)]

    worst = 0.0
    for row, loss in zip(rows, losses):
        alpha = float(row["alpha"])
        w = np.array([float(row[f"w{j + 1}"]) for j in range(X.shape[1])])
        reference = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
        reference.fit(X, y)
        scale = max(1.0, np.abs(reference.coef_).max())
        error = np.abs(w - reference.coef_).max() / scale
        worst = max(worst, error)
        val_loss = np.mean((X_val @ reference.coef_ - y_val) ** 2)
        print(f"alpha {alpha:.6g}: max |w - w_sklearn| / max(1, |w_sklearn|) = {error:.2e}, "
              f"validation MSE {loss:.6f} (sklearn {val_loss:.6f})")
        if error > 1e-6:
            sys.exit(f"coefficients differ from scikit-learn at alpha {alpha}: {error:.3e}")
        if abs(loss - val_loss) > 1e-6 * val_loss:
            sys.exit(f"validation MSE differs from scikit-learn at alpha {alpha}")
    print(f"largest relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
