#!/usr/bin/env python3
"""Prints the distribution correlation of fitted BirdFlow models with eBird Status & Trends.

For each week t of the year (t = 1 .. n_timesteps - 1 of the file, which repeats week 1 at the
end), the model's marginal distribution is the row sums of M_1 for t = 1 and the column sums of
M_{t-1} otherwise. Its Pearson correlation with distr over the week's dynamic-mask cells is
averaged over the weeks; this is BirdFlowR's mean_distr_cor for the season "all".

Usage: distribution_correlation.py FITTED.hdf5 [FITTED.hdf5 ...]
Prints one line per file: path, mean and minimum correlation over the weeks.
"""
import sys

import h5py
import numpy as np


def weekly_correlations(path):
    """Returns the list of per-week Pearson correlations of one fitted file."""
    with h5py.File(path, "r") as f:
        distr = f["distr"][:]
        mask = f["geom/dynamic_mask"][:].astype(bool)
        n_weeks = distr.shape[1] - 1
        correlations = []
        for t in range(n_weeks):
            if t == 0:
                model = f["marginals/Week1_to_2"][:].astype(np.float64).sum(axis=1)
            else:
                model = f[f"marginals/Week{t}_to_{t + 1}"][:].astype(np.float64).sum(axis=0)
            target = distr[mask[:, t], t]
            correlations.append(np.corrcoef(model, target)[0, 1])
    return correlations


def main(paths):
    for path in paths:
        correlations = weekly_correlations(path)
        print(f"{path}: mean_distr_cor {np.mean(correlations):.6f} "
              f"min_distr_cor {np.min(correlations):.6f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
