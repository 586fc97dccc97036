#!/usr/bin/env python3
"""Write the task table of the L2-versus-W2 experiment: one training run per line.

Every run uses the same seed, number of Adam steps, learning rate, distance exponent and (unless
the run is part of the weight search) the same distance and entropy weights: BirdFlowPipeline's
averaged hyperparameters. The groups are

  base    L2 location loss with the averaged weights, on every species;
  search  L2 on rewbla over dist_weight and ent_weight at factors 1/3, 1 and 3 of the averaged
          values (the 3 x 3 grid; the centre is `base`), plus dist_weight at 10 and 30 times
          the averaged value, the L2 partners of the W2 runs at those distance weights;
  w2      W2 location loss (debiased Sinkhorn divergence), alone or mixed with the L2 term, over
          a grid of location-loss weight, eps and dist_weight, on the species and grid points
          that the mode lists;
  seeds   L2 on rewbla with the averaged weights and other seeds, and W2 at one setting with
          the same seeds.

Modes:
  full     what docs/results/l2-vs-w2.md reports (sized for a 2-core machine);
  quick    a smaller W2 grid, no amewoo W2 and no weight search;
  tiny     3 steps on sstspa and rewbla (W2 on sstspa only), for the pipeline test;
  cluster  the full grid for a cluster job array (see jobscripts/l2_vs_w2.sbatch).

Output: a tab-separated file with the header `task species loss group steps input intervals
options`; intervals is "-" for a species without banding data, and options are the extra
birdflow-train options of the run.

Usage: tasks.py --mode full|quick|tiny|cluster [--output results/experiment/tasks.tsv]
"""
import argparse
import itertools
import sys

# Species: preprocessed input and the interval table ("-" where there are no banding data).
SPECIES = {
    "sstspa": ("data/sstspa/sstspa_2023_100km_preprocessed.hdf5", "-"),
    "rewbla": ("data/rewbla/rewbla_2021_250km_preprocessed.hdf5",
               "data/rewbla/rewbla_banding_intervals.csv"),
    "amewoo": ("data/amewoo/amewoo_2019_80km_preprocessed.hdf5", "-"),
}

# BirdFlowPipeline's averaged hyperparameters (batch_species()).
AVERAGED = {"obs_weight": 1.0, "dist_weight": 0.008177, "ent_weight": 0.001924,
            "dist_pow": 0.4167, "learning_rate": 0.1, "seed": 17}
SEARCH_FACTORS = (1.0 / 3.0, 1.0, 3.0)

# W2 grid, in run order: (species, loss, location-loss weight, eps / h^2, dist_weight factor[,
# ent_weight factor, default 1]).
# The weight multiplies sum_t S_eps(mu_t, y_t) in km^2. Loss "mix" keeps the L2 term at
# obs_weight 1 and adds the W2 term. 1e-5 is the trainer's default weight, and 1e-6 and 1e-7 let
# the distance and entropy terms weigh more. The dist_weight factors 3, 10 and 30 test whether a
# heavier distance penalty offsets the longer moves that the stronger W2 weights favour (in full
# mode only w2_weight 1e-6 gets the factor 30). A smaller eps needs more Sinkhorn iterations, so
# most points keep eps/h^2 = 1. The long amewoo run comes first so that it overlaps the short
# ones.
JOINT_DIST_FACTORS = (1.0, 3.0, 10.0, 30.0)
W2_GRIDS = {
    "full": ([("amewoo", "w2", 1e-5, 1.0, 1.0), ("rewbla", "w2", 1e-5, 1.0, 1.0)]
             + [("rewbla", "w2", w, 1.0, d) for d in (3.0, 10.0) for w in (1e-5, 1e-6)]
             + [("rewbla", "w2", 1e-6, 1.0, 30.0)]
             + [("sstspa", "w2", 1e-5, 1.0, 1.0), ("sstspa", "w2", 1e-6, 1.0, 1.0),
                ("sstspa", "w2", 1e-5, 0.25, 1.0)]
             + [("rewbla", "w2", 1e-6, 1.0, 1.0), ("rewbla", "w2", 1e-7, 1.0, 1.0)]
             # One smaller eps, and W2 at the weights that the L2 search chose.
             + [("rewbla", "w2", 1e-6, 0.5, 1.0), ("rewbla", "w2", 1e-7, 1.0, 3.0, 3.0)]),
    "quick": [("sstspa", "w2", 1e-5, 1.0, 1.0), ("rewbla", "w2", 1e-5, 1.0, 1.0)],
    "tiny": [("sstspa", "w2", 1e-5, 1.0, 1.0), ("sstspa", "mix", 1e-5, 1.0, 1.0)],
    "cluster": [(species, "w2", w, eps, d) for species in ("sstspa", "rewbla", "amewoo")
                for w in (3e-8, 1e-7, 3e-7, 1e-6, 3e-6, 1e-5) for eps in (0.25, 0.5, 1.0)
                for d in JOINT_DIST_FACTORS]
               + [("rewbla", "mix", w, 1.0, 1.0) for w in (1e-8, 1e-7, 1e-6)],
}
# Seeds of extra rewbla L2 runs with the averaged weights: the spread of their interval
# log-likelihood shows how much of a difference between two runs the seed alone can make.
SEED_REPLICATES = {"full": (18, 19), "quick": (), "tiny": (), "cluster": (18, 19, 20, 21)}
# The W2 setting rerun with those seeds: the best interval log-likelihood on the selection half
# of the birds among w2_weight 1e-5, 1e-6 and 1e-7 at the averaged weights.
SEED_REPLICATE_W2 = (1e-7, 1.0)
# L2 runs at dist_weight factors beyond the search grid, as partners of the joint W2 grid.
EXTRA_DIST_FACTORS = {"full": (10.0, 30.0), "quick": (), "tiny": (), "cluster": (10.0, 30.0)}
# The setting that the maps show and that every species of the cluster grid has.
HEADLINE_W2 = (1e-5, 1.0)
# Sinkhorn stopping tolerance (L1 marginal error) of the W2 runs; 1e-5 gives the same loss
# curve as the default 1e-9 to 6 digits on sstspa with 37% fewer iterations.
W2_SOLVER_OPTIONS = "-ot_tol 1e-5"

STEPS = {"full": 600, "quick": 600, "tiny": 3, "cluster": 600}
SPECIES_BY_MODE = {"full": ("sstspa", "rewbla", "amewoo"), "quick": ("sstspa", "rewbla"),
                   "tiny": ("sstspa", "rewbla"), "cluster": ("sstspa", "rewbla", "amewoo")}


def format_number(value):
    """Return the value with 6 significant digits, the form passed to birdflow-train."""
    return f"{value:.6g}"


def common_options(dist_weight, ent_weight, seed=AVERAGED["seed"]):
    return (f"--obs-weight {format_number(AVERAGED['obs_weight'])} "
            f"--dist-weight {format_number(dist_weight)} "
            f"--ent-weight {format_number(ent_weight)} "
            f"--dist-pow {format_number(AVERAGED['dist_pow'])} "
            f"--learning-rate {format_number(AVERAGED['learning_rate'])} "
            f"--seed {seed}")


def w2_options(loss, weight, eps_rel):
    return (f"--location-loss {loss} --w2-weight {format_number(weight)} "
            f"--epsilon-relative {eps_rel:g} {W2_SOLVER_OPTIONS}")


def build_tasks(mode):
    """Return the list of (task, species, loss, group, steps, options) tuples, in run order."""
    steps = STEPS[mode]
    species_list = SPECIES_BY_MODE[mode]
    base_options = common_options(AVERAGED["dist_weight"], AVERAGED["ent_weight"])
    tasks = []
    for species in species_list:
        tasks.append((f"{species}-l2-base", species, "l2", "base", steps,
                      base_options))
    for species, loss, weight, eps_rel, dist_factor, *ent in W2_GRIDS[mode]:
        ent_factor = ent[0] if ent else 1.0
        tag = f"w{weight:g}-eps{eps_rel:g}" + ("" if dist_factor == 1.0 else f"-d{dist_factor:g}")
        tag += "" if ent_factor == 1.0 else f"-e{ent_factor:g}"
        options = common_options(AVERAGED["dist_weight"] * dist_factor,
                                 AVERAGED["ent_weight"] * ent_factor)
        tasks.append((f"{species}-{loss}-{tag}", species, loss, "w2", steps,
                      options + " " + w2_options(loss, weight, eps_rel)))
    if mode in ("full", "cluster", "tiny"):
        for dist_factor, ent_factor in itertools.product(SEARCH_FACTORS, SEARCH_FACTORS):
            if dist_factor == 1.0 and ent_factor == 1.0:
                continue
            if mode == "tiny" and (dist_factor, ent_factor) != (1.0 / 3.0, 1.0 / 3.0):
                continue
            options = common_options(AVERAGED["dist_weight"] * dist_factor,
                                     AVERAGED["ent_weight"] * ent_factor)
            tag = f"d{dist_factor:.3g}-e{ent_factor:.3g}"
            tasks.append((f"rewbla-l2-search-{tag}", "rewbla", "l2", "search", steps,
                          options))
        for dist_factor in EXTRA_DIST_FACTORS[mode]:
            options = common_options(AVERAGED["dist_weight"] * dist_factor, AVERAGED["ent_weight"])
            tasks.append((f"rewbla-l2-search-d{dist_factor:.3g}-e1", "rewbla", "l2", "search",
                          steps, options))
    for seed in SEED_REPLICATES[mode]:
        options = common_options(AVERAGED["dist_weight"], AVERAGED["ent_weight"], seed)
        tasks.append((f"rewbla-l2-seed{seed}", "rewbla", "l2", "seeds", steps, options))
    for seed in SEED_REPLICATES[mode]:
        weight, eps_rel = SEED_REPLICATE_W2
        options = common_options(AVERAGED["dist_weight"], AVERAGED["ent_weight"], seed)
        tasks.append((f"rewbla-w2-w{weight:g}-eps{eps_rel:g}-seed{seed}", "rewbla", "w2",
                      "seeds", steps, options + " " + w2_options("w2", weight, eps_rel)))
    return tasks


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=sorted(STEPS), default="full")
    parser.add_argument("--output", default="-", help="TSV to write (default: standard output)")
    args = parser.parse_args(argv)
    lines = ["task\tspecies\tloss\tgroup\tsteps\tinput\tintervals\toptions"]
    for task, species, loss, group, steps, options in build_tasks(args.mode):
        data_path, intervals = SPECIES[species]
        lines.append(f"{task}\t{species}\t{loss}\t{group}\t{steps}\t{data_path}\t{intervals}\t"
                     f"{options}")
    text = "\n".join(lines) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
