#!/usr/bin/env python3
"""Collect the runs of the L2-versus-W2 experiment into tables, confidence intervals and figures.

Reads the task table and every run's outputs under OUT/runs/<task>/ (see run_task.sh), then

1. tabulates the metrics and the time of every run per species and loss. Every species gets the
   distribution metrics: correlation with S&T, L2 error and exact W2 distance (POT). Where
   banding intervals exist, the interval log-likelihood, win probability and energy improvement
   are added;
2. compares our L2 model with BirdFlow's published rewbla model on exactly the intervals the
   published model scores (paired bootstrap over intervals);
3. selects the best weights of the L2 search and the best W2 setting on a selection half of the
   rewbla birds and reports their gain on the other half (paired bootstrap);
4. compares every W2 run with the L2 run of the same species: the mean interval log-likelihood
   (rewbla) and the weekly distribution metrics (paired over weeks);
5. calls scripts/plot_experiment.py for the figures.

Results go to OUT/aggregate.json and into the generated blocks of the results page
(`<!-- generated:NAME -->` ... `<!-- /generated:NAME -->`); the text between blocks is kept.

Usage: aggregate.py --tasks OUT/tasks.tsv [--out results/experiment]
                    [--doc docs/results/l2-vs-w2.md] [--figures docs/results/figures]
                    [--resamples 10000] [--seed 20261204] [--no-plots]
"""
import argparse
import csv
import json
import math
import os
import re
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import bootstrap_ll  # noqa: E402  (scripts/bootstrap_ll.py)

PUBLISHED_REFERENCE = "data/rewbla/rewbla_interval_ll_reference.csv"
PUBLISHED_MODEL = "data/rewbla/rewbla_2021_250km_fitted.hdf5"
INTERVAL_SPECIES = "rewbla"


def read_tasks(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def read_summary(path):
    """Read birdflow-eval's --summary CSV (metric,value) into a dict of floats."""
    summary = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                summary[row["metric"]] = float(row["value"])
            except ValueError:
                summary[row["metric"]] = math.nan
    return summary


def parse_option(options, name, default=math.nan):
    match = re.search(rf"--{name}[ =](\S+)", options)
    return float(match.group(1)) if match else default


def read_train_log(path):
    """Return (ms per step, Sinkhorn iterations per step) from a birdflow-train log's summary.

    Either is NaN when the log lacks it (L2 runs do no Sinkhorn iterations).
    """
    ms_per_step, sinkhorn_per_step = math.nan, math.nan
    with open(path, errors="replace") as handle:
        for line in handle:
            match = re.search(r"([0-9.]+) ms per step", line)
            if match:
                ms_per_step = float(match.group(1))
            match = re.search(r"Sinkhorn iterations \(([0-9.]+) per step\)", line)
            if match:
                sinkhorn_per_step = float(match.group(1))
    return ms_per_step, sinkhorn_per_step


def read_float(path):
    try:
        with open(path) as handle:
            return float(handle.read().strip())
    except (OSError, ValueError):
        return math.nan


def marginal_distributions(fitted_path):
    """Return (distr, dynamic_mask, [model distribution of week t over its mask cells])."""
    with h5py.File(fitted_path, "r") as f:
        distr = f["distr"][:]
        mask = f["geom/dynamic_mask"][:].astype(bool)
        n_marginals = len([k for k in f["marginals"].keys() if k.startswith("Week")])
        weeks = []
        for t in range(n_marginals):
            if t == 0:
                weeks.append(f["marginals/Week1_to_2"][:].astype(np.float64).sum(axis=1))
            else:
                weeks.append(f[f"marginals/Week{t}_to_{t + 1}"][:].astype(np.float64).sum(axis=0))
    return distr, mask, weeks


def cell_centres_km(fitted_path):
    """Return the projected x and y (km) of the active cells' centres, in active-cell order."""
    with h5py.File(fitted_path, "r") as f:
        mask = f["geom/mask"][:].astype(bool)
        xmin, _, _, ymax = f["geom/ext"][:]
        xres, yres = f["geom/res"][:]
    rows, cols = np.nonzero(mask)
    return (xmin + (cols + 0.5) * xres) / 1000.0, (ymax - (rows + 0.5) * yres) / 1000.0


def weekly_fit(fitted_path, use_cache=True):
    """Return per-week fit of the model to S&T, for each start week of a transition.

    cor: Pearson correlation over the week's cells (BirdFlowR's distr_cor); l2: the squared L2
    error ||mu_t - y_t||^2; w2_km: the exact 2-Wasserstein distance in km (POT's network simplex,
    no entropy) with the squared distance between projected cell centres as the cost, the cost
    of the W2 training loss. Cached in the run folder as weekly_fit.json unless use_cache is False.
    """
    cache = os.path.join(os.path.dirname(fitted_path), "weekly_fit.json")
    if use_cache and os.path.exists(cache) and os.path.getmtime(cache) > os.path.getmtime(fitted_path):
        with open(cache) as handle:
            return {k: np.array(v) for k, v in json.load(handle).items()}
    import ot  # POT, only needed here

    distr, mask, weeks = marginal_distributions(fitted_path)
    x, y = cell_centres_km(fitted_path)
    fit = {"cor": [], "l2": [], "w2_km": []}
    for t, model in enumerate(weeks):
        cells = mask[:, t]
        target = distr[cells, t]
        fit["cor"].append(np.corrcoef(model, target)[0, 1])
        fit["l2"].append(float(np.sum((model - target) ** 2)))
        cost = (x[cells, None] - x[None, cells]) ** 2 + (y[cells, None] - y[None, cells]) ** 2
        w2_squared = ot.emd2(model / model.sum(), target / target.sum(), cost, numItermax=10**7)
        fit["w2_km"].append(float(np.sqrt(max(w2_squared, 0.0))))
    if use_cache:
        with open(cache, "w") as handle:
            json.dump({k: [float(v) for v in values] for k, values in fit.items()}, handle)
    return {k: np.array(v) for k, v in fit.items()}


def split_birds(intervals_csv, seed):
    """Split interval ids into (selection, report) halves by bird, seeded.

    All intervals of one bird fall in the same half, so the report half is independent of the
    birds used to choose the weights.
    """
    birds = {}
    with open(intervals_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            birds.setdefault(row["bird_id"], []).append(row["interval_id"])
    names = sorted(birds)
    rng = np.random.Generator(np.random.PCG64(seed))
    order = rng.permutation(len(names))
    selection, report = set(), set()
    for rank, position in enumerate(order):
        (selection if rank % 2 == 0 else report).update(birds[names[position]])
    return selection, report


def mean_ll_on(eval_csv, ids):
    table = bootstrap_ll.read_interval_ll(eval_csv)
    values = [v for i, (v, excluded, _) in table.items() if i in ids and not excluded]
    return float(np.mean(values)) if values else math.nan, len(values)


def format_ci(result, digits=3):
    return (f"{result['difference']:+.{digits}f} [{result['ci_low']:+.{digits}f}, "
            f"{result['ci_high']:+.{digits}f}]")


def setting_label(task):
    options = task["options"]
    parts = [f"dist {parse_option(options, 'dist-weight'):.4g}",
             f"ent {parse_option(options, 'ent-weight'):.4g}"]
    if task["loss"] in ("w2", "mix"):
        parts.insert(0, f"eps/h² {parse_option(options, 'epsilon-relative'):g}")
        parts.insert(0, f"w2 {parse_option(options, 'w2-weight'):g}")
    if task["loss"] == "mix":
        parts.insert(0, "L2 +")
    return ", ".join(parts).replace("L2 +,", "L2 +")


def is_w2(run):
    """True for a run whose location loss has a W2 term (alone or mixed with L2)."""
    return run["loss"] in ("w2", "mix")


def l2_partner(run, runs):
    """Return the L2 run of the same species with the same distance and entropy weights, if any."""
    def weights(r):
        return (parse_option(r["options"], "dist-weight"), parse_option(r["options"], "ent-weight"))

    target = weights(run)
    for other in runs:
        if (other["species"] == run["species"] and other["loss"] == "l2"
                and other["group"] != "seeds"
                and all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(weights(other), target))):
            return other
    return None


def collect_runs(tasks, out_dir):
    runs = []
    for task in tasks:
        run_dir = os.path.join(out_dir, "runs", task["task"])
        summary_path = os.path.join(run_dir, "summary.csv")
        if not os.path.exists(summary_path):
            print(f"aggregate.py: {task['task']} has no results yet ({summary_path}); left out",
                  file=sys.stderr)
            continue
        ms_per_step, sinkhorn_per_step = read_train_log(os.path.join(run_dir, "train.log"))
        run = dict(task)
        run.update({"dir": run_dir, "summary": read_summary(summary_path),
                    "train_seconds": read_float(os.path.join(run_dir, "train.seconds")),
                    "eval_seconds": read_float(os.path.join(run_dir, "eval.seconds")),
                    "ms_per_step": ms_per_step, "sinkhorn_per_step": sinkhorn_per_step,
                    "weekly": weekly_fit(os.path.join(run_dir, "fitted.hdf5")),
                    "copied": os.path.exists(os.path.join(run_dir, "PROVENANCE")),
                    "label": setting_label(task)})
        runs.append(run)
    return runs


def metrics_table(runs):
    lines = ["| species | loss | group | setting | mean distr cor | min distr cor | "
             "md traverse cor | mean L2 error | mean W2 (km) | scored | mean LL | mean null LL | "
             "win prob | energy impr. | train s | ms/step | Sinkhorn it./step |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        s = run["summary"]
        has_intervals = s.get("n_scored", 0) > 0

        def interval_value(name, fmt):
            return fmt.format(s[name]) if has_intervals and name in s else "–"

        lines.append(
            f"| {run['species']} | {run['loss'].upper()} | {run['group']} | {run['label']} | "
            f"{s.get('mean_distr_cor', math.nan):.4f} | {s.get('min_distr_cor', math.nan):.4f} | "
            f"{s.get('md_traverse_cor', math.nan):.4f} | {run['weekly']['l2'].mean():.2e} | "
            f"{run['weekly']['w2_km'].mean():.1f} | "
            f"{int(s['n_scored']) if has_intervals else '–'} | "
            f"{interval_value('mean_ll', '{:.4f}')} | {interval_value('mean_null_ll', '{:.4f}')} | "
            f"{interval_value('mean_win_prob', '{:.4f}')} | "
            f"{interval_value('mean_energy_improvement', '{:.1f}')} | "
            f"{run['train_seconds']:.0f}{' †' if run['copied'] else ''} | "
            f"{run['ms_per_step']:.0f} | "
            f"{'–' if math.isnan(run['sinkhorn_per_step']) else round(run['sinkhorn_per_step'])} |")
    return "\n".join(lines)


def published_comparison(base, resamples, seed):
    """Compare the rewbla L2 base run with the reference LLs of the published model."""
    eval_csv = os.path.join(base["dir"], "eval.csv")
    by_interval = bootstrap_ll.compare(eval_csv, PUBLISHED_REFERENCE, "b", None, resamples, seed)
    published_fit = weekly_fit(PUBLISHED_MODEL, use_cache=False)
    result = {"by_interval": by_interval,
              "published_fit": {k: float(v.mean()) for k, v in published_fit.items()},
              "ours_fit": {k: float(v.mean()) for k, v in base["weekly"].items()}}
    return result


def published_block(comparison):
    c = comparison["by_interval"]
    pub, ours = comparison["published_fit"], comparison["ours_fit"]
    lines = ["| model | intervals | mean LL | mean distr cor | mean W2 to S&T (km) |",
             "|---|---|---|---|---|",
             f"| published BirdFlow rewbla model (reference LLs) | {c['n']} | {c['mean_b']:.4f} | "
             f"{pub['cor']:.4f} | {pub['w2_km']:.1f} |",
             f"| ours: L2, averaged weights, 600 steps, seed 17 | {c['n']} | {c['mean_a']:.4f} | "
             f"{ours['cor']:.4f} | {ours['w2_km']:.1f} |",
             "",
             f"Ours minus published: {format_ci(c, 4)} (paired bootstrap 95% CI over intervals, "
             f"{c['resamples']} resamples, seed {c['seed']}). Ours gives the higher likelihood on "
             f"{100 * c['a_better_fraction']:.1f}% of the intervals."]
    return "\n".join(lines)


def select_and_report(candidates, baseline, selection, report, resamples, seed):
    """Pick the candidate with the best mean LL on the selection half; compare on the report half.

    Returns a dict with the per-candidate selection scores, the chosen task and the paired
    bootstrap of chosen minus baseline on the report half.
    """
    scores = []
    for run in candidates:
        mean, n = mean_ll_on(os.path.join(run["dir"], "eval.csv"), selection)
        scores.append({"task": run["task"], "label": run["label"], "selection_mean_ll": mean,
                       "selection_n": n,
                       "report_mean_ll": mean_ll_on(os.path.join(run["dir"], "eval.csv"),
                                                    report)[0],
                       "all_mean_ll": run["summary"].get("mean_ll", math.nan)})
    best = max(scores, key=lambda s: s["selection_mean_ll"])
    chosen = next(run for run in candidates if run["task"] == best["task"])
    comparison = bootstrap_ll.compare(os.path.join(chosen["dir"], "eval.csv"),
                                      os.path.join(baseline["dir"], "eval.csv"), "both", report,
                                      resamples, seed)
    return {"scores": scores, "chosen": best, "report_vs_baseline": comparison}


def search_block(search, published_report):
    lines = ["| setting | mean LL, selection half | mean LL, report half | mean LL, all |",
             "|---|---|---|---|"]
    for score in search["scores"]:
        marker = " (chosen)" if score["task"] == search["chosen"]["task"] else ""
        lines.append(f"| {score['label']}{marker} | {score['selection_mean_ll']:.4f} | "
                     f"{score['report_mean_ll']:.4f} | {score['all_mean_ll']:.4f} |")
    r = search["report_vs_baseline"]
    lines += ["", f"Selection half: {search['scores'][0]['selection_n']} scored intervals; report "
              f"half: {r['n']}. Chosen minus averaged weights on the report half: "
              f"{format_ci(r, 4)} (paired bootstrap 95% CI)."]
    if published_report:
        lines.append(f"Chosen minus published model on the report half (published model's scored "
                     f"set): {format_ci(published_report, 4)}.")
    return "\n".join(lines)


def w2_rows(runs, resamples, seed):
    """Compare each W2 run with the L2 run of its species and of the same weights."""
    rows = []
    for run in runs:
        base = l2_partner(run, runs) if is_w2(run) and run["group"] != "seeds" else None
        if base is None:
            continue
        row = {"task": run["task"], "l2_task": base["task"], "species": run["species"],
               "label": run["label"], "copied": run["copied"],
               "train_seconds": run["train_seconds"],
               "l2_train_seconds": base["train_seconds"],
               "ms_per_step": run["ms_per_step"], "l2_ms_per_step": base["ms_per_step"]}
        for metric in ("cor", "l2", "w2_km"):
            delta = run["weekly"][metric] - base["weekly"][metric]
            row[f"{metric}_difference"] = bootstrap_ll.bootstrap_mean_difference(
                delta, resamples, seed)
        if run["summary"].get("n_scored", 0) > 0:
            row["ll"] = bootstrap_ll.compare(os.path.join(run["dir"], "eval.csv"),
                                             os.path.join(base["dir"], "eval.csv"), "both", None,
                                             resamples, seed)
        rows.append(row)
    return rows


def w2_block(rows):
    lines = ["| species | W2 setting | distr cor | L2 error | W2 to S&T (km) | "
             "interval LL | time W2 / L2 |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = []
        for metric, digits, scale in (("cor", 4, 1.0), ("l2", 2, 1e4), ("w2_km", 1, 1.0)):
            mean, low, high = (scale * v for v in row[f"{metric}_difference"])
            cells.append(f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]")
        ll = format_ci(row["ll"], 3) if "ll" in row else "–"
        ratio = row["train_seconds"] / row["l2_train_seconds"]
        time = (f"{row['train_seconds']:.0f} s † / {row['l2_train_seconds']:.0f} s" if row["copied"]
                else f"{row['train_seconds']:.0f} s / {row['l2_train_seconds']:.0f} s "
                f"({ratio:.1f}x)")
        lines.append(f"| {row['species']} | {row['label']} | {' | '.join(cells)} | {ll} | "
                     f"{time} |")
    lines += ["", "Each cell: mean of W2 run minus L2 run [paired bootstrap 95% CI]. distr cor, "
              "L2 error (in units of 1e-4) and W2 distance to S&T are per-week values paired and "
              "resampled over the 52 weeks; interval LL is paired and resampled over the scored "
              "intervals. Higher is better for distr cor and LL, lower for L2 error and W2. "
              "† marks a run copied from an earlier build that trained on a loaded machine, "
              "whose time is not comparable."]
    return "\n".join(lines)


def joint_block(runs, w2_selected):
    """Tabulate the rewbla runs over location loss (rows) and dist_weight (columns).

    Each cell: mean interval log-likelihood over all scored intervals, mean W2 distance to S&T
    (km) and mean correlation with S&T, at eps/h^2 = 1 and the averaged ent_weight.
    """
    averaged_ent = next(parse_option(r["options"], "ent-weight") for r in runs
                        if r["species"] == INTERVAL_SPECIES and r["group"] == "base")
    cells, rows, dists = {}, [], []
    for run in runs:
        options = run["options"]
        if (run["species"] != INTERVAL_SPECIES or run["group"] == "seeds"
                or run["summary"].get("n_scored", 0) == 0
                or not math.isclose(parse_option(options, "ent-weight"), averaged_ent,
                                    rel_tol=1e-5)
                or (is_w2(run) and parse_option(options, "epsilon-relative") != 1.0)):
            continue
        row = ("L2" if run["loss"] == "l2" else
               f"{'L2 + ' if run['loss'] == 'mix' else ''}W2 {parse_option(options, 'w2-weight'):g}")
        dist = round(parse_option(options, "dist-weight"), 6)
        rows += [row] if row not in rows else []
        dists += [dist] if dist not in dists else []
        marker = " *" if run["task"] == w2_selected["chosen"]["task"] else ""
        cells[row, dist] = (f"{run['summary']['mean_ll']:.3f} / {run['weekly']['w2_km'].mean():.0f}"
                            f" / {run['weekly']['cor'].mean():.4f}{marker}")
    dists.sort()
    lines = ["| location loss | " + " | ".join(f"dist {d:g}" for d in dists) + " |",
             "|---|" + "---|" * len(dists)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(cells.get((row, d), "–") for d in dists) + " |")
    lines += ["", "Each cell: mean interval log-likelihood over the scored intervals / mean W2 "
              "distance to S&T per week (km) / mean correlation with S&T; ent_weight "
              f"{averaged_ent:g}, eps/h² = 1 for W2. * marks the W2 setting chosen on the "
              "selection half."]
    return "\n".join(lines)


def seeds_block(runs, base, resamples, seed):
    """Tabulate the mean interval LL of rewbla runs that differ only in the seed, L2 beside W2.

    The grid runs with the same options apart from the seed (the base run and one W2 run) join
    the seed replicates.
    """
    replicates = [r for r in runs if r["species"] == INTERVAL_SPECIES and r["group"] == "seeds"]
    if not replicates or base is None:
        return None
    def without_seed(run):
        return re.sub(r"--seed \S+", "", run["options"])

    w2_replicates = [r for r in replicates if is_w2(r)]
    w2_grid_runs = [r for r in runs if r["group"] == "w2" and w2_replicates
                    and without_seed(r) == without_seed(w2_replicates[0])]
    by_seed = {}
    for run in [base] + replicates + w2_grid_runs:
        run_seed = int(parse_option(run["options"], "seed"))
        by_seed.setdefault(run_seed, {})["w2" if is_w2(run) else "l2"] = run
    label = w2_replicates[0]["label"] if w2_replicates else "–"
    lines = [f"| seed | L2 mean LL | W2 mean LL ({label}) | W2 minus L2 |", "|---|---|---|---|"]
    l2_values, w2_values, differences = [], [], []
    for run_seed in sorted(by_seed):
        pair = by_seed[run_seed]
        l2 = pair.get("l2")
        w2 = pair.get("w2")
        cells = [f"{l2['summary']['mean_ll']:.4f}" if l2 else "–",
                 f"{w2['summary']['mean_ll']:.4f}" if w2 else "–", "–"]
        if l2:
            l2_values.append(l2["summary"]["mean_ll"])
        if w2:
            w2_values.append(w2["summary"]["mean_ll"])
        if l2 and w2:
            difference = bootstrap_ll.compare(os.path.join(w2["dir"], "eval.csv"),
                                              os.path.join(l2["dir"], "eval.csv"), "both", None,
                                              resamples, seed)
            differences.append(difference["difference"])
            cells[2] = format_ci(difference, 4)
        lines.append(f"| {run_seed} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, values in (("L2", l2_values), ("W2", w2_values), ("W2 minus L2", differences)):
        if len(values) > 1:
            lines.append(f"{name}: mean {np.mean(values):.4f}, standard deviation over "
                         f"{len(values)} seeds {np.std(values, ddof=1):.4f}, range "
                         f"{min(values):.4f} to {max(values):.4f}.")
    lines.append("Each CI covers the intervals at one seed, not the seed.")
    return "\n".join(lines)


def write_blocks(doc_path, blocks):
    """Replace the generated blocks of doc_path (creating a page of bare blocks if needed)."""
    if os.path.exists(doc_path):
        with open(doc_path) as handle:
            text = handle.read()
    else:
        text = "# L2 versus W2 location loss (generated tables)\n"
    for name, body in blocks.items():
        start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        block = f"{start}\n{body}\n{end}"
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text)
        else:
            text += f"\n{block}\n"
    os.makedirs(os.path.dirname(os.path.abspath(doc_path)), exist_ok=True)
    with open(doc_path, "w") as handle:
        handle.write(text)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", required=True)
    parser.add_argument("--out", default="results/experiment")
    parser.add_argument("--doc", default="docs/results/l2-vs-w2.md")
    parser.add_argument("--figures", default="docs/results/figures")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)

    tasks = read_tasks(args.tasks)
    runs = collect_runs(tasks, args.out)
    if not runs:
        raise SystemExit(f"aggregate.py: no finished run under {args.out}/runs; run "
                         "scripts/experiment/run_task.sh first")
    result = {"runs": [{k: v for k, v in run.items() if k != "weekly"} for run in runs]}
    for entry, run in zip(result["runs"], runs):
        entry["weekly"] = {k: v.tolist() for k, v in run["weekly"].items()}
    blocks = {"metrics": metrics_table(runs)}

    # Published model versus our L2 base run.
    base = next((r for r in runs if r["species"] == INTERVAL_SPECIES and r["group"] == "base"),
                None)
    if base is not None and base["summary"].get("n_scored", 0) > 0:
        comparison = published_comparison(base, args.resamples, args.seed)
        result["published"] = comparison
        blocks["published"] = published_block(comparison)

        # Weight search and W2 selection, honest split by bird.
        intervals_csv = next(t["intervals"] for t in tasks if t["species"] == INTERVAL_SPECIES)
        selection, report = split_birds(intervals_csv, args.seed)
        search_runs = [r for r in runs if r["species"] == INTERVAL_SPECIES
                       and r["loss"] == "l2" and r["group"] in ("base", "search")]
        if len(search_runs) > 1:
            search = select_and_report(search_runs, base, selection, report, args.resamples,
                                       args.seed)
            chosen = next(r for r in search_runs if r["task"] == search["chosen"]["task"])
            published_report = bootstrap_ll.compare(os.path.join(chosen["dir"], "eval.csv"),
                                                    PUBLISHED_REFERENCE, "b", report,
                                                    args.resamples, args.seed)
            search["report_vs_published"] = published_report
            result["search"] = search
            blocks["search"] = search_block(search, published_report)
        w2_candidates = [r for r in runs if r["species"] == INTERVAL_SPECIES and is_w2(r)
                         and r["group"] != "seeds" and l2_partner(r, runs) is not None]
        if w2_candidates:
            w2_selected = select_and_report(w2_candidates, base, selection, report,
                                            args.resamples, args.seed)
            # Compare the chosen W2 run with the L2 run of the same weights, not the base run.
            chosen_w2 = next(r for r in w2_candidates
                             if r["task"] == w2_selected["chosen"]["task"])
            partner = l2_partner(chosen_w2, runs)
            w2_selected["report_vs_baseline"] = bootstrap_ll.compare(
                os.path.join(chosen_w2["dir"], "eval.csv"),
                os.path.join(partner["dir"], "eval.csv"), "both", report, args.resamples,
                args.seed)
            blocks["joint"] = joint_block(runs, w2_selected)
            result["w2_selected"] = w2_selected
            r = w2_selected["report_vs_baseline"]
            text = (f"W2 setting chosen on the selection half: {w2_selected['chosen']['label']}. "
                    f"On the report half ({r['n']} intervals) its mean LL minus that of the L2 "
                    f"model with the same weights is {format_ci(r, 4)} (paired bootstrap 95% CI).")
            if "search" in result:
                # Each loss with its own best weights, both chosen on the selection half.
                best_l2 = next(run for run in runs
                               if run["task"] == result["search"]["chosen"]["task"])
                best_w2 = next(run for run in runs
                               if run["task"] == w2_selected["chosen"]["task"])
                head_to_head = bootstrap_ll.compare(os.path.join(best_w2["dir"], "eval.csv"),
                                                    os.path.join(best_l2["dir"], "eval.csv"),
                                                    "both", report, args.resamples, args.seed)
                result["w2_best_vs_l2_best"] = head_to_head
                text += (f" Against the L2 model with the weights chosen by the search "
                         f"({best_l2['label']}), on the same report half: "
                         f"{format_ci(head_to_head, 4)}.")
            blocks["w2-selected"] = text

    seeds = seeds_block(runs, base, args.resamples, args.seed)
    if seeds:
        blocks["seeds"] = seeds

    rows = w2_rows(runs, args.resamples, args.seed)
    if rows:
        result["w2"] = rows
        blocks["w2"] = w2_block(rows)

    with open(os.path.join(args.out, "aggregate.json"), "w") as handle:
        json.dump(result, handle, indent=1, default=float)
    write_blocks(args.doc, blocks)
    print(f"aggregate.py: {len(runs)} runs; wrote {args.doc} and {args.out}/aggregate.json",
          file=sys.stderr)

    if not args.no_plots:
        plot = os.path.join(os.path.dirname(HERE), "plot_experiment.py")
        subprocess.run([sys.executable, plot, "--tasks", args.tasks, "--out", args.out,
                        "--figures", args.figures], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
