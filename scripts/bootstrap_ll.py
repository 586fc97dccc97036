#!/usr/bin/env python3
"""Paired bootstrap of the difference in mean interval log-likelihood between two models.

Both inputs are per-interval CSVs keyed by `interval_id` with the columns `log_likelihood` and
`exclude`: the output of `birdflow-eval --output`, or BirdFlowR's reference table
(data/rewbla/rewbla_interval_ll_reference.csv). The difference is A minus B, so a positive value
means that model A gives the observed end points more probability.

The scored set is chosen by --scored-set:
  both  the intervals that neither table excludes (default);
  b     the intervals that B scores; A must score every one of them, or the script stops.

The bootstrap resamples intervals with replacement (pairs stay together) and reports the
percentile 95% interval of the mean difference. With --cluster-column the resampling unit is the
group named by that column of A instead (e.g. `bird_id`, so that several intervals of one bird
are drawn together). Resamples come from numpy's PCG64 generator with the given seed.

Usage:
  bootstrap_ll.py A.csv B.csv [--scored-set both|b] [--ids IDS.txt] [--resamples 10000]
                  [--seed 20261204] [--cluster-column bird_id] [--json]
"""
import argparse
import csv
import json
import math
import sys

import numpy as np

TRUE_STRINGS = {"TRUE", "True", "true", "1"}


def read_interval_ll(path):
    """Read one per-interval table into {interval_id: (log_likelihood or nan, excluded, row)}."""
    table = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        for column in ("interval_id", "log_likelihood", "exclude"):
            if column not in (reader.fieldnames or []):
                raise SystemExit(f"bootstrap_ll.py: {path}: missing column {column}; "
                                 "expected a birdflow-eval output or BirdFlowR reference table")
        for row in reader:
            text = row["log_likelihood"].strip()
            value = float(text) if text not in ("", "NA", "NaN", "nan") else math.nan
            excluded = row["exclude"].strip() in TRUE_STRINGS or math.isnan(value)
            table[row["interval_id"]] = (value, excluded, row)
    return table


def paired_differences(table_a, table_b, scored_set="both", ids=None):
    """Return (ids, ll_a, ll_b) over the chosen scored set, in B's row order.

    ids, when given, restricts the set further (e.g. to one half of a train/test split).
    """
    chosen, ll_a, ll_b = [], [], []
    missing = []
    for interval_id, (value_b, excluded_b, _) in table_b.items():
        if excluded_b or (ids is not None and interval_id not in ids):
            continue
        entry_a = table_a.get(interval_id)
        excluded_a = entry_a is None or entry_a[1]
        if excluded_a:
            if scored_set == "b":
                missing.append(interval_id)
            continue
        chosen.append(interval_id)
        ll_a.append(entry_a[0])
        ll_b.append(value_b)
    if missing:
        raise SystemExit(f"bootstrap_ll.py: model A does not score {len(missing)} intervals "
                         f"that B scores (first: {missing[0]}); use --scored-set both")
    return chosen, np.array(ll_a), np.array(ll_b)


def bootstrap_mean_difference(differences, resamples=10000, seed=20261204, clusters=None):
    """Return (mean, low, high) of the percentile 95% interval of the mean of `differences`.

    clusters, when given, contains one label per difference; whole clusters are resampled and the
    statistic is the mean over the intervals drawn.
    """
    differences = np.asarray(differences, dtype=np.float64)
    rng = np.random.Generator(np.random.PCG64(seed))
    if clusters is None:
        n = differences.size
        draws = rng.integers(0, n, size=(resamples, n))
        means = differences[draws].mean(axis=1)
    else:
        labels, index = np.unique(np.asarray(clusters), return_inverse=True)
        sums = np.bincount(index, weights=differences, minlength=labels.size)
        counts = np.bincount(index, minlength=labels.size).astype(np.float64)
        draws = rng.integers(0, labels.size, size=(resamples, labels.size))
        means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(differences.mean()), float(low), float(high)


def compare(path_a, path_b, scored_set="both", ids=None, resamples=10000, seed=20261204,
            cluster_column=None):
    """Return a dict with the paired comparison of the models behind two per-interval tables."""
    table_a = read_interval_ll(path_a)
    table_b = read_interval_ll(path_b)
    chosen, ll_a, ll_b = paired_differences(table_a, table_b, scored_set, ids)
    if not chosen:
        raise SystemExit(f"bootstrap_ll.py: no interval is scored by both {path_a} and {path_b}")
    clusters = None
    if cluster_column:
        clusters = [table_a[i][2].get(cluster_column) or table_b[i][2].get(cluster_column)
                    for i in chosen]
        if any(label is None for label in clusters):
            raise SystemExit(f"bootstrap_ll.py: column {cluster_column} is in neither table")
    mean, low, high = bootstrap_mean_difference(ll_a - ll_b, resamples, seed, clusters)
    return {"n": len(chosen), "mean_a": float(ll_a.mean()), "mean_b": float(ll_b.mean()),
            "difference": mean, "ci_low": low, "ci_high": high,
            "a_better_fraction": float(np.mean(ll_a > ll_b)), "resamples": resamples,
            "seed": seed, "cluster_column": cluster_column or "interval_id"}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", help="per-interval CSV of model A")
    parser.add_argument("b", help="per-interval CSV of model B (the baseline)")
    parser.add_argument("--scored-set", choices=("both", "b"), default="both")
    parser.add_argument("--ids", help="file with one interval_id per line to restrict to")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--cluster-column", help="resample groups of this column, e.g. bird_id")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    ids = None
    if args.ids:
        with open(args.ids) as handle:
            ids = {line.strip() for line in handle if line.strip()}
    result = compare(args.a, args.b, args.scored_set, ids, args.resamples, args.seed,
                     args.cluster_column)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"n {result['n']}  mean A {result['mean_a']:.4f}  mean B {result['mean_b']:.4f}  "
              f"A - B {result['difference']:+.4f}  95% CI [{result['ci_low']:+.4f}, "
              f"{result['ci_high']:+.4f}]  ({result['resamples']} resamples of "
              f"{result['cluster_column']}, seed {result['seed']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
