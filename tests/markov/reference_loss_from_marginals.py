"""Prints the BirdFlow loss parts of the chain defined by a fitted file's marginals.

The chain is pi = row sums of M_1 (normalised) and P_k = M_k / row sums, propagated forward with
numpy in float64; the numbers are the expected values of ChainSstspa.LossAtFittedMarginals.
Usage: reference_loss_from_marginals.py FITTED.hdf5 DIST_WEIGHT ENT_WEIGHT DIST_POW
"""
import sys

import h5py
import numpy as np


def xlogx(p):
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def main(path, dist_weight, ent_weight, dist_pow):
    with h5py.File(path, "r") as f:
        distr = f["distr"][:]
        mask = f["geom/dynamic_mask"][:].astype(bool)
        n_steps = distr.shape[1]
        marginals = [f[f"marginals/Week{k}_to_{k + 1}"][:].astype(np.float64)
                     for k in range(1, n_steps)]
        packed = f["distances"][:] if "distances" in f else None
    n = distr.shape[0]
    if packed is None:
        with h5py.File(path.replace("_fitted", "_preprocessed"), "r") as f:
            packed = f["distances"][:]
    full = np.zeros((n, n))
    full[np.triu_indices(n, k=1)] = packed
    full = full + full.T
    cost = (full / 100.0) ** dist_pow

    mu = marginals[0].sum(axis=1)
    mu = mu / mu.sum()
    obs = dist = ent = 0.0
    for t in range(n_steps):
        cells = np.flatnonzero(mask[:, t])
        obs += np.sum((mu - distr[cells, t]) ** 2)
        ent += np.sum(xlogx(mu))
        if t + 1 == n_steps:
            break
        nxt = np.flatnonzero(mask[:, t + 1])
        p = marginals[t] / marginals[t].sum(axis=1, keepdims=True)
        m = mu[:, None] * p
        dist += np.sum(m * cost[np.ix_(cells, nxt)])
        ent -= np.sum(xlogx(m))
        mu = m.sum(axis=0)
    total = obs + dist_weight * dist - ent_weight * ent
    print(f"obs {obs!r} dist {dist!r} ent {ent!r} total {total!r}")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
