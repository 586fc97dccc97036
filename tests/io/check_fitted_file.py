#!/usr/bin/env python3
"""Check that a fitted BirdFlow HDF5 file is one that BirdFlowR's import_birdflow() accepts.

Usage: check_fitted_file.py FITTED.hdf5 [--reference REF.hdf5] [--birdflowr-only]

BirdFlowR cannot be installed on the test machine, so this script applies the rules that
import_birdflow() (BirdFlowR, file version 3) enforces while it reads a file with rhdf5:

  * metadata/birdflow_version exists and is 3 (import reads it unconditionally, rejects versions
    1 and 2 and warns on others);
  * the paths import_birdflow() reads unconditionally exist: geom and geom/{nrow, ncol, res, ext,
    crs, mask}, transitions, dates, distr, species and its 15 fields, metadata and 12 fields,
    and, because marginals exists, metadata/hyperparameters and metadata/loss_values;
  * geom/dynamic_mask exists and dates has a timestep column (eBird version year >= 2022) or an
    interval column (earlier years);
  * the marginals are named exactly Week{k}_to_{k+1} for k = 1 .. nt, with shape (n_k, n_{k+1})
    where n_k counts the TRUE cells of dynamic_mask column k;
  * the loss_values datasets all have the same length;
  * when distr and dynamic_mask have n_timesteps + 1 columns, the last column equals the first
    exactly (import drops it and stops if it differs);
  * metadata/birdflow_model_date and metadata/birdflow_preprocess_date are non-empty.

Unless --birdflowr-only is given it also checks the layout BirdFlowPy writes, which this
project's writer follows: float32 marginals, f64 and i64 scalar hyperparameters with `normalized`
an int8 enum bool, loss_values of length training_steps, a "YYYY-MM-DD HH:MM:SS.ffffff" model
date, no `distances` dataset, and every marginal finite, non-negative and summing to 1 within
1e-4.

With --reference, every marginal must equal the reference file's marginal rounded to float32.

Prints one line per failed rule and exits with status 1 if any rule fails, else prints "ok".
"""

import argparse
import re
import sys

import h5py
import numpy as np

SPECIES_FIELDS = [
    "species_code", "scientific_name", "common_name",
] + [f"{season}_{part}" for season in ("breeding", "nonbreeding", "prebreeding_migration",
                                        "postbreeding_migration")
     for part in ("quality", "start", "end")]

METADATA_FIELDS = [
    "has_marginals", "has_transitions", "has_distr", "n_transitions", "n_active", "n_timesteps",
    "ebird_version_year", "ebird_release_year", "ebird_access_end_date",
    "birdflow_preprocess_date", "birdflow_model_date", "is_sparse",
]

GEOM_FIELDS = ["nrow", "ncol", "res", "ext", "crs", "mask"]

HYPERPARAMETERS = {
    "obs_weight": "f8", "ent_weight": "f8", "dist_weight": "f8", "dist_pow": "f8",
    "learning_rate": "f8", "training_steps": "i8", "rng_seed": "i8",
}

MARGINAL_NAME = re.compile(r"^Week(\d+)_to_(\d+)$")
MODEL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")


def scalar(h5, name):
    """Return an R scalar (length-1 array) or an HDF5 scalar as a Python value."""
    value = h5[name][()]
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size == 1 else value
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return value


def check_required_paths(h5, fail):
    required = ["geom"] + [f"geom/{name}" for name in GEOM_FIELDS]
    required += ["transitions", "dates", "distr", "species", "metadata", "geom/dynamic_mask"]
    required += [f"species/{name}" for name in SPECIES_FIELDS]
    required += [f"metadata/{name}" for name in METADATA_FIELDS]
    for name in required:
        if name not in h5:
            fail(f"{name} is missing; import_birdflow() stops without it")
    for name in ["marginals", "metadata/hyperparameters", "metadata/loss_values"]:
        if name not in h5:
            fail(f"{name} is missing; a fitted model needs it")


def check_version(h5, fail):
    if "metadata/birdflow_version" not in h5:
        fail("metadata/birdflow_version is missing; import_birdflow() reads it first")
        return
    version = scalar(h5, "metadata/birdflow_version")
    if float(version) != 3:
        fail(f"metadata/birdflow_version is {version}; import_birdflow() reads version 3")


def check_dates(h5, fail):
    if "dates" not in h5 or "metadata/ebird_version_year" not in h5:
        return
    columns = h5["dates"].dtype.names or ()
    year = float(scalar(h5, "metadata/ebird_version_year"))
    needed = "timestep" if year >= 2022 else "interval"
    if needed not in columns:
        fail(f"dates has columns {columns}; eBird version year {year:g} needs '{needed}'")


def week_counts(h5):
    return np.asarray(h5["geom/dynamic_mask"][()] != 0).sum(axis=0)


def check_marginal_names(h5, fail):
    """Return the marginal count nt when the names are Week1_to_2 .. Week{nt}_to_{nt+1}."""
    names = list(h5["marginals"].keys())
    numbers = []
    for name in names:
        match = MARGINAL_NAME.match(name)
        if not match or int(match.group(2)) != int(match.group(1)) + 1:
            fail(f"marginals/{name} is not named Week{{k}}_to_{{k+1}}")
        else:
            numbers.append(int(match.group(1)))
    if sorted(numbers) != list(range(1, len(numbers) + 1)):
        fail(f"marginals are numbered {sorted(numbers)[:3]}...; expected 1, 2, ... without gaps")
    return len(numbers)


def check_marginal_shapes(h5, nt, strict, fail):
    counts = week_counts(h5)
    if nt + 1 > len(counts):
        fail(f"{nt} marginals need {nt + 1} columns of dynamic_mask; it has {len(counts)}")
        return
    for k in range(1, nt + 1):
        dataset = h5[f"marginals/Week{k}_to_{k + 1}"]
        expected = (counts[k - 1], counts[k])
        if dataset.shape != expected:
            fail(f"marginals/Week{k}_to_{k + 1} has shape {dataset.shape}; dynamic_mask gives "
                 f"{expected}")
            continue
        if not strict:
            continue
        if dataset.dtype != np.float32:
            fail(f"marginals/Week{k}_to_{k + 1} is {dataset.dtype}; expected float32")
        values = dataset[()].astype(np.float64)
        if not np.all(np.isfinite(values)) or values.min() < 0:
            fail(f"marginals/Week{k}_to_{k + 1} has NaN, infinite or negative entries")
        elif abs(values.sum() - 1) > 1e-4:
            fail(f"marginals/Week{k}_to_{k + 1} sums to {values.sum():.8g}; expected 1")


def check_cyclic_columns(h5, fail):
    n_timesteps = int(scalar(h5, "metadata/n_timesteps"))
    for name in ("distr", "geom/dynamic_mask"):
        values = h5[name][()]
        if values.shape[1] == n_timesteps + 1 and not np.array_equal(values[:, -1], values[:, 0]):
            fail(f"{name} column {values.shape[1]} differs from column 1; import_birdflow() "
                 "stops")


def check_loss_values(h5, strict, fail):
    group = h5["metadata/loss_values"]
    lengths = {name: group[name].shape[0] for name in group}
    if len(set(lengths.values())) > 1:
        fail(f"metadata/loss_values lengths differ: {lengths}")
    if not strict:
        return
    if sorted(lengths) != ["dist", "ent", "obs", "total"]:
        fail(f"metadata/loss_values has {sorted(lengths)}; expected dist, ent, obs, total")
    for name in group:
        if group[name].dtype != np.float64:
            fail(f"metadata/loss_values/{name} is {group[name].dtype}; expected float64")
    steps_name = "metadata/hyperparameters/training_steps"
    if steps_name in h5 and lengths:
        steps = int(h5[steps_name][()])
        if any(length != steps for length in lengths.values()):
            fail(f"metadata/loss_values lengths {lengths} differ from training_steps {steps}")


def check_hyperparameters(h5, fail):
    group = h5["metadata/hyperparameters"]
    for name, dtype in HYPERPARAMETERS.items():
        if name not in group:
            fail(f"metadata/hyperparameters/{name} is missing")
        elif group[name].shape != () or group[name].dtype != np.dtype(dtype):
            fail(f"metadata/hyperparameters/{name} is {group[name].dtype} with shape "
                 f"{group[name].shape}; expected a {dtype} scalar")
    if "normalized" not in group:
        fail("metadata/hyperparameters/normalized is missing")
        return
    stored = group["normalized"].id.get_type()
    members = {}
    if isinstance(stored, h5py.h5t.TypeEnumID):
        members = {stored.get_member_name(i): stored.get_member_value(i)
                   for i in range(stored.get_nmembers())}
    if members != {b"FALSE": 0, b"TRUE": 1} or stored.get_size() != 1:
        fail("metadata/hyperparameters/normalized is not an int8 enum {FALSE=0, TRUE=1}")


def check_dates_present(h5, strict, fail):
    for name in ("metadata/birdflow_model_date", "metadata/birdflow_preprocess_date"):
        if name in h5 and not str(scalar(h5, name)):
            fail(f"{name} is empty")
    if not strict or "metadata/birdflow_model_date" not in h5:
        return
    dataset = h5["metadata/birdflow_model_date"]
    info = h5py.check_string_dtype(dataset.dtype)
    if dataset.shape != () or info is None or info.length is not None or info.encoding != "utf-8":
        fail("metadata/birdflow_model_date is not a scalar variable-length UTF-8 string")
    if not MODEL_DATE.match(str(scalar(h5, "metadata/birdflow_model_date"))):
        fail(f"metadata/birdflow_model_date is '{scalar(h5, 'metadata/birdflow_model_date')}'; "
             "expected YYYY-MM-DD HH:MM:SS.ffffff")


def compare_with_reference(h5, reference_path, nt, fail):
    with h5py.File(reference_path, "r") as reference:
        for k in range(1, nt + 1):
            name = f"marginals/Week{k}_to_{k + 1}"
            if name not in reference:
                fail(f"{name} is not in the reference {reference_path}")
                continue
            expected = reference[name][()].astype(np.float32)
            written = h5[name][()]
            if written.shape != expected.shape or not np.array_equal(written, expected):
                fail(f"{name} differs from the reference: max |difference| "
                     f"{np.max(np.abs(written.astype(np.float64) - expected)):.3g}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fitted", help="fitted model file to check")
    parser.add_argument("--reference", help="file whose marginals the fitted file must contain")
    parser.add_argument("--birdflowr-only", action="store_true",
                        help="check only what import_birdflow() requires")
    args = parser.parse_args()
    strict = not args.birdflowr_only
    failures = []

    def fail(message):
        failures.append(message)

    with h5py.File(args.fitted, "r") as h5:
        check_required_paths(h5, fail)
        if failures:
            for message in failures:
                print(f"{args.fitted}: {message}")
            return 1
        check_version(h5, fail)
        check_dates(h5, fail)
        nt = check_marginal_names(h5, fail)
        check_marginal_shapes(h5, nt, strict, fail)
        check_cyclic_columns(h5, fail)
        check_loss_values(h5, strict, fail)
        check_dates_present(h5, strict, fail)
        if strict:
            check_hyperparameters(h5, fail)
            if "distances" in h5:
                fail("distances is present; a fitted file drops it")
        if args.reference:
            compare_with_reference(h5, args.reference, nt, fail)

    for message in failures:
        print(f"{args.fitted}: {message}")
    if not failures:
        print(f"{args.fitted}: ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
