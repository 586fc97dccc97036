"""Compares birdflow-w2 with POT's dense solvers on small grids.

Checks, for a 6 x 5 grid with a zero-mass cell and masked cells:
  - OT_eps in the KL convention and its potentials against ot.sinkhorn(method='sinkhorn_log'),
    converting POT's P log P potentials with f = alpha - eps log a;
  - the sharp cost <C, P_eps> against the same POT plan;
  - S_eps approaching ot.emd2's exact W2^2 as eps decreases (down to eps/h^2 = 0.025).
Runs the driver with BIRDFLOW_MPIEXEC on 2 ranks. Exits non-zero on the first failed check.
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import ot

BIN = os.environ["BIRDFLOW_BIN_DIR"]
MPIEXEC = os.environ.get("BIRDFLOW_MPIEXEC", "mpiexec")
MPI_FLAGS = [f for f in os.environ.get("BIRDFLOW_MPIEXEC_FLAGS", "").split(";") if f]
H = 10.0  # cell size in km
NROW, NCOL = 6, 5
FAILURES = []


def check(name, ok, detail):
    print(("ok    " if ok else "FAIL  ") + name + ": " + detail)
    if not ok:
        FAILURES.append(name)


def problem():
    r, c = np.meshgrid(np.arange(NROW), np.arange(NCOL), indexing="ij")
    a = np.exp(-((r - 1.5) ** 2) / 3 - ((c - 1.2) ** 2) / 2) + 0.01
    b = np.exp(-((r - 4.0) ** 2) / 4 - ((c - 3.2) ** 2) / 2) + 0.02
    a[0, 1] = 0.0  # zero mass in a
    a[5, 4] = np.nan  # masked in a only
    a[2, 0] = b[2, 0] = np.nan  # masked in both
    return a / np.nansum(a), b / np.nansum(b)


def run_driver(folder, a, b, eps, quantity, gradient):
    path_in = os.path.join(folder, "pair.h5")
    path_out = os.path.join(folder, f"out_{quantity}_{eps:g}.h5")
    with h5py.File(path_in, "w") as f:
        f["a"], f["b"] = a, b
    cmd = [MPIEXEC, "-n", "2", *MPI_FLAGS, os.path.join(BIN, "birdflow-w2"), "--input", path_in,
           "--cell-size", str(H), "--epsilon", repr(eps), "--quantity", quantity,
           "--output", path_out, "-ot_tol", "1e-13"]
    if gradient:
        cmd.append("--gradient")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with h5py.File(path_out, "r") as f:
        return {k: f[k][()] for k in f}


def dense_cost():
    r, c = np.meshgrid(np.arange(NROW), np.arange(NCOL), indexing="ij")
    xy = np.stack([c.ravel() * H, -r.ravel() * H], axis=1)
    return ot.dist(xy, xy, metric="sqeuclidean")


def main():
    a, b = problem()
    af, bf = np.nan_to_num(a.ravel()), np.nan_to_num(b.ravel())
    sa, sb = af > 0, bf > 0
    cost = dense_cost()
    m = cost[np.ix_(sa, sb)]
    eps = 1.5 * H * H

    with tempfile.TemporaryDirectory() as folder:
        # 1. Entropic cost and potentials.
        plan, log = ot.sinkhorn(af[sa], bf[sb], m, eps, method="sinkhorn_log", stopThr=1e-14,
                                numItermax=100000, log=True)
        kl = np.sum(plan * np.log(plan / np.outer(af[sa], bf[sb]))) - plan.sum() + 1
        ot_pot = np.sum(plan * m) + eps * kl
        f_pot = eps * log["log_u"] - eps * np.log(af[sa])
        g_pot = eps * log["log_v"] - eps * np.log(bf[sb])
        ours = run_driver(folder, a, b, eps, "ot", True)
        check("OT_eps value", abs(ours["value"] - ot_pot) <= 1e-8 * abs(ot_pot),
              f"ours {ours['value']:.12g}, POT {ot_pot:.12g}")
        f_ours, g_ours = ours["f"].ravel()[sa], ours["g"].ravel()[sb]
        shift = np.mean(f_ours - f_pot)
        f_err = np.max(np.abs(f_ours - f_pot - shift))
        g_err = np.max(np.abs(g_ours - g_pot + shift))
        check("potentials f, g (KL convention)", max(f_err, g_err) <= 1e-7 * H * H,
              f"max |diff| after the gauge shift {shift:.3g}: f {f_err:.2e}, g {g_err:.2e} km^2")
        check("masked cells are NaN", np.isnan(ours["f"][5, 4]) and np.isnan(ours["g"][2, 0])
              and not np.isnan(ours["g"][5, 4]), "f at (5,4), g at (2,0)")
        check("gradient_a is the centred f", np.allclose(
            ours["gradient_a"][~np.isnan(a)], (ours["f"] - np.nanmean(ours["f"]))[~np.isnan(a)],
            atol=1e-9 * H * H), "gradient_a = f - mean over unmasked cells")

        # 2. Sharp cost <C, P>.
        sharp_pot = np.sum(plan * m)
        ours = run_driver(folder, a, b, eps, "sharp", False)
        check("sharp cost <C,P>", abs(ours["value"] - sharp_pot) <= 1e-8 * sharp_pot,
              f"ours {ours['value']:.12g}, POT {sharp_pot:.12g}")

        # 3. S_eps -> W2^2 of ot.emd2 as eps -> 0.
        w2 = ot.emd2(af[sa], bf[sb], m)
        gaps = []
        for ratio in (4.0, 1.0, 0.25, 0.1, 0.05, 0.025):
            ours = run_driver(folder, a, b, ratio * H * H, "divergence", False)
            gaps.append(abs(ours["value"] - w2) / w2)
            print(f"      eps/h^2 {ratio:5}: S_eps {ours['value']:.8g}, W2^2 {w2:.8g}, "
                  f"relative gap {gaps[-1]:.3e}")
        check("S_eps decreases to W2^2", all(x > y for x, y in zip(gaps, gaps[1:])),
              "relative gaps " + ", ".join(f"{g:.2e}" for g in gaps))
        # For these discrete measures the bias is linear in eps: halving eps halves the gap.
        rates = [x / y for x, y in zip(gaps[-3:], gaps[-2:])]
        check("gap to W2^2 is O(eps)", all(1.8 < q < 2.2 for q in rates),
              "gap ratios per halving of eps: " + ", ".join(f"{q:.3f}" for q in rates))
        check("S_eps at eps/h^2 = 0.025 within 0.5% of W2^2", gaps[-1] < 5e-3, f"{gaps[-1]:.2e}")

    if FAILURES:
        print("failed: " + ", ".join(FAILURES))
        sys.exit(1)


if __name__ == "__main__":
    main()
