#!/usr/bin/python3
"""Plot the output of lasso-hyper: validation loss against alpha with the outer iterates, and the
coefficient path.

Run with Debian's python3 (matplotlib, numpy):
  /usr/bin/python3 scripts/plot_lasso.py --trials trials.csv --coefficients coef.csv \
      --output-prefix docs/lasso-diabetes

writes <prefix>-validation.png and, when --coefficients is given, <prefix>-path.png.
"""
import argparse
import csv
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"grid": ("0.35", "-"), "random": ("tab:green", "o"), "unrolled": ("tab:orange", "s"),
         "implicit": ("tab:red", "x")}


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def plot_validation(rows, path):
    figure, axes = plt.subplots(figsize=(7, 4.5))
    methods = sorted({r["method"] for r in rows}, key=list(STYLE).index)
    for method in methods:
        subset = [r for r in rows if r["method"] == method]
        alpha = [float(r["alpha"]) for r in subset]
        loss = [float(r["validation_loss"]) for r in subset]
        color, marker = STYLE.get(method, ("black", "."))
        if method == "grid":
            axes.plot(alpha, loss, color=color, lw=1.2, label="grid (warm-started path)")
        elif method == "random":
            axes.plot(alpha, loss, marker, color=color, ms=4, ls="none", label="random search")
        else:
            # Iterations of the k-th starting point are numbered from 1000 k.
            starts = sorted({int(r["iteration"]) // 1000 for r in subset})
            for start in starts:
                accepted = [r for r in subset
                            if r["accepted"] == "1" and int(r["iteration"]) // 1000 == start]
                a = [float(r["alpha"]) for r in accepted]
                l = [float(r["validation_loss"]) for r in accepted]
                axes.plot(a, l, marker=marker, color=color, ms=5, lw=0.8, alpha=0.8,
                          label=f"{method}: outer iterates" if start == starts[0] else None)
                axes.plot(a[:1], l[:1], marker="o", mfc="none", color=color, ms=9, ls="none")
        best = min(subset, key=lambda r: float(r["validation_loss"]))
        print(f"{method}: best alpha {float(best['alpha']):.6g}, "
              f"validation MSE {float(best['validation_loss']):.6f}, {len(subset)} inner solves")
    grid = [float(r["validation_loss"]) for r in rows if r["method"] == "grid"]
    if grid:
        low = min(grid)
        axes.set_ylim(low - 0.02 * abs(low), low + 0.6 * (sorted(grid)[len(grid) // 2] - low)
                      + 0.05 * abs(low))
    axes.set_xscale("log")
    axes.set_xlabel("alpha")
    axes.set_ylabel("validation MSE")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_path(rows, trials, path):
    method = "grid" if any(r["method"] == "grid" for r in rows) else rows[0]["method"]
    subset = sorted((r for r in rows if r["method"] == method), key=lambda r: float(r["alpha"]))
    alpha = [float(r["alpha"]) for r in subset]
    names = [k for k in subset[0] if k.startswith("w")]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name in names:
        axes.plot(alpha, [float(r[name]) for r in subset], lw=1.2, label=name)
    if trials:
        best = min(trials, key=lambda r: float(r["validation_loss"]))
        axes.axvline(float(best["alpha"]), color="tab:red", ls="--", lw=1,
                     label=f"best alpha ({best['method']})")
    axes.set_xscale("log")
    axes.set_xlabel("alpha")
    axes.set_ylabel("coefficient (standardised features)")
    axes.set_title(f"coefficient path ({method})")
    axes.legend(fontsize=7, ncol=2)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", required=True, help="CSV written by lasso-hyper --output")
    parser.add_argument("--coefficients", help="CSV written by lasso-hyper --coefficients")
    parser.add_argument("--output-prefix", required=True, help="prefix of the PNG files")
    args = parser.parse_args()
    trials = [r for r in read_rows(args.trials) if not math.isnan(float(r["validation_loss"]))]
    plot_validation(trials, args.output_prefix + "-validation.png")
    if args.coefficients:
        plot_path(read_rows(args.coefficients), trials, args.output_prefix + "-path.png")


if __name__ == "__main__":
    main()
