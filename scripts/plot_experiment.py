#!/usr/bin/env python3
"""Draw the figures of the L2-versus-W2 experiment with matplotlib.

For each species with finished runs:

* `<species>_maps.png`: the weekly distribution of the S&T data, of the L2 model and of the W2
  model, for a spring and an autumn week. A week's marginal is placed on the raster: geom/mask
  gives the active cells in row-major order, geom/dynamic_mask the week's cells among them. The
  three maps of a week share one colour scale.
* `<species>_loss.png`: the loss curves of the L2 base run and every W2 run: the total loss and
  the L2 error sum_t ||mu_t - y_t||^2 per Adam step (metadata/loss_values/total and obs of the
  fitted file; the trainer records the L2 error in W2 runs too), and the W2 loss sum_t S_eps
  (km^2) of the W2 runs every 50 steps, read from the progress lines of train.log because the
  fitted file does not store it.

The spring and autumn weeks are the middle weeks of the species' prebreeding and postbreeding
migration seasons (species/*_migration_start and _end in the file). A file without these dates
(amewoo) gets weeks 11 and 43 (mid-March and late October).

Usage: plot_experiment.py --tasks OUT/tasks.tsv [--out results/experiment]
                          [--figures docs/results/figures] [--w2-task SPECIES=TASK ...]
"""
import argparse
import csv
import datetime
import os
import re
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "experiment"))
from tasks import HEADLINE_W2  # noqa: E402

FALLBACK_WEEKS = {"spring": 11, "autumn": 43}


def read_text(f, path):
    if path not in f:
        return ""
    value = f[path][()]
    value = value[0] if np.ndim(value) else value
    return value.decode() if isinstance(value, bytes) else str(value)


def season_week(f, season):
    """Return the 1-based week in the middle of the species' migration season."""
    prefix = {"spring": "prebreeding", "autumn": "postbreeding"}[season]
    start = read_text(f, f"species/{prefix}_migration_start")
    end = read_text(f, f"species/{prefix}_migration_end")
    try:
        first = datetime.date.fromisoformat(start)
        last = datetime.date.fromisoformat(end)
    except ValueError:
        return FALLBACK_WEEKS[season]
    middle = first + (last - first) / 2
    dates = [datetime.date.fromisoformat(d.decode()) for d in f["dates"]["date"][:-1]]
    offsets = [abs((d.replace(year=middle.year) - middle).days) for d in dates]
    return int(np.argmin(offsets)) + 1


def week_marginal(f, week):
    """Return the model's distribution of a 1-based week over that week's dynamic-mask cells."""
    if week == 1:
        return f["marginals/Week1_to_2"][:].astype(np.float64).sum(axis=1)
    return f[f"marginals/Week{week - 1}_to_{week}"][:].astype(np.float64).sum(axis=0)


def rasterise(f, values, week):
    """Place one week's values (over its dynamic-mask cells) on the nrow x ncol raster."""
    mask = f["geom/mask"][:].astype(bool)
    dynamic = f["geom/dynamic_mask"][:, week - 1].astype(bool)
    active = np.flatnonzero(mask.ravel())
    raster = np.full(mask.size, np.nan)
    raster[active] = 0.0
    raster[active[dynamic]] = values
    return raster.reshape(mask.shape)


def draw_maps(species, l2_path, w2_path, figure_path):
    models = [("L2", l2_path)] + ([("W2", w2_path)] if w2_path else [])
    with h5py.File(l2_path, "r") as f:
        weeks = {season: season_week(f, season) for season in ("spring", "autumn")}
        extent = f["geom/ext"][:]
        dates = [d.decode() for d in f["dates"]["date"]]
    n_columns = 1 + 2 * len(models)
    fig, axes = plt.subplots(2, n_columns, figsize=(2.9 * n_columns, 6.4), squeeze=False,
                             layout="constrained")
    for row, (season, week) in enumerate(weeks.items()):
        with h5py.File(l2_path, "r") as f:
            dynamic = f["geom/dynamic_mask"][:, week - 1].astype(bool)
            target = rasterise(f, f["distr"][dynamic, week - 1], week)
        maps = [("S&T", target)]
        for name, path in models:
            with h5py.File(path, "r") as f:
                maps.append((f"{name} model", rasterise(f, week_marginal(f, week), week)))
        differences = [(f"{title} − S&T", raster - target) for title, raster in maps[1:]]
        vmax = max(np.nanmax(raster) for _, raster in maps)
        dmax = max(np.nanmax(np.abs(raster)) for _, raster in differences)
        panels = [(title, raster, "viridis", 0.0, vmax) for title, raster in maps]
        panels += [(title, raster, "RdBu_r", -dmax, dmax) for title, raster in differences]
        images = []
        for column, (title, raster, cmap, low, high) in enumerate(panels):
            ax = axes[row, column]
            images.append(ax.imshow(raster, extent=(extent[0], extent[1], extent[2], extent[3]),
                                    origin="upper", cmap=cmap, vmin=low, vmax=high,
                                    interpolation="nearest"))
            ax.set_title(f"{title}\nweek {week} ({dates[week - 1]})", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(images[0], ax=list(axes[row, :len(maps)]), shrink=0.8,
                     label="share of birds")
        fig.colorbar(images[-1], ax=list(axes[row, len(maps):]), shrink=0.8,
                     label="model − S&T")
    fig.suptitle(f"{species}: weekly distribution, models versus eBird S&T "
                 f"(spring week {weeks['spring']}, autumn week {weeks['autumn']})")
    fig.savefig(figure_path, dpi=100)
    plt.close(fig)


def read_w2_progress(log_path):
    """Return (steps, W2 loss in km^2) from the progress lines of a birdflow-train log."""
    steps, values = [], []
    pattern = re.compile(r"^step\s+(\d+)/\d+\s.*\sw2 ([0-9.eE+-]+)")
    with open(log_path, errors="replace") as handle:
        for line in handle:
            match = pattern.match(line)
            if match:
                steps.append(int(match.group(1)))
                values.append(float(match.group(2)))
    return np.array(steps), np.array(values)


def draw_loss(species, runs, figure_path):
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for label, path in runs:
        with h5py.File(path, "r") as f:
            total = f["metadata/loss_values/total"][:]
            l2_error = f["metadata/loss_values/obs"][:]
        steps = np.arange(1, total.size + 1)
        line, = axes[0].plot(steps, np.abs(total), label=label, lw=1)
        axes[1].plot(steps, l2_error, lw=1, color=line.get_color())
        w2_steps, w2_values = read_w2_progress(os.path.join(os.path.dirname(path), "train.log"))
        if w2_steps.size:
            axes[2].plot(w2_steps, w2_values, "o-", ms=3, lw=1, color=line.get_color())
    axes[0].set_title("|total loss|")
    axes[1].set_title("L2 error sum_t ||mu_t - y_t||²")
    axes[2].set_title("W2 loss sum_t S_eps(mu_t, y_t) (km²)")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("Adam step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{species}: loss curves")
    fig.tight_layout()
    fig.savefig(figure_path, dpi=110)
    plt.close(fig)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", required=True)
    parser.add_argument("--out", default="results/experiment")
    parser.add_argument("--figures", default="docs/results/figures")
    parser.add_argument("--w2-task", action="append", default=[],
                        help="SPECIES=TASK: the W2 run shown on the maps (default: the run with "
                        "tasks.py's HEADLINE_W2 setting, else the last W2 run of the species)")
    args = parser.parse_args(argv)
    chosen = dict(item.split("=", 1) for item in args.w2_task)
    with open(args.tasks, newline="") as handle:
        tasks = list(csv.DictReader(handle, delimiter="\t"))
    os.makedirs(args.figures, exist_ok=True)

    def fitted(task):
        path = os.path.join(args.out, "runs", task["task"], "fitted.hdf5")
        done = os.path.exists(os.path.join(args.out, "runs", task["task"], "summary.csv"))
        return path if done else None

    for species in dict.fromkeys(t["species"] for t in tasks):
        base = next((t for t in tasks if t["species"] == species and t["group"] == "base"), None)
        if base is None or fitted(base) is None:
            continue
        w2_tasks = [t for t in tasks if t["species"] == species and t["loss"] in ("w2", "mix")
                    and fitted(t)]
        headline = f"{species}-w2-w{HEADLINE_W2[0]:g}-eps{HEADLINE_W2[1]:g}"
        w2_map = next((t for t in w2_tasks if t["task"] == chosen.get(species, headline)),
                      w2_tasks[-1] if w2_tasks else None)
        draw_maps(species, fitted(base), fitted(w2_map) if w2_map else None,
                  os.path.join(args.figures, f"{species}_maps.png"))
        curves = [("L2 base", fitted(base))]
        # Only W2 runs with the base run's distance and entropy weights get loss curves, because
        # runs with other weights have other total losses.
        same_weights = [t for t in w2_tasks if t["options"].split(" --location-loss")[0]
                        == base["options"]]
        curves += [(t["task"].split("-", 1)[1].replace("-", " ", 1), fitted(t))
                   for t in same_weights]
        draw_loss(species, curves, os.path.join(args.figures, f"{species}_loss.png"))
        print(f"plot_experiment.py: {species}: maps (W2 run: "
              f"{w2_map['task'] if w2_map else 'none'}) and loss curves in {args.figures}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
