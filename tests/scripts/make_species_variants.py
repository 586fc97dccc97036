#!/usr/bin/env python3
"""Write variants of a BirdFlowR preprocessed species file for reader and driver tests.

Usage: make_species_variants.py SOURCE.hdf5 OUTDIR

Writes OUTDIR/<case>.hdf5 for every case below and prints the case names, one per line. Cases
whose name starts with "good_" hold the same model in another storage form that readers must
accept. Every other case must be rejected with a one-line error that names the dataset.

Good variants:
  good_int32_logicals      every logical (geom/mask, geom/dynamic_mask, metadata flags) as int32,
                           as older rhdf5 versions write them
  good_enum_logicals       geom/mask and geom/dynamic_mask as h5py bools (int8 enum FALSE/TRUE)
  good_vlen_strings        every fixed-length string as a variable-length UTF-8 string
  good_true_scalars        every length-1 array (R scalar) as an HDF5 scalar
  good_no_optional_metadata  the metadata and species groups and geom/crs removed

Bad files:
  not_hdf5                 a text file with an .hdf5 name
  missing_distr            the distr dataset removed
  wrong_shape              geom/dynamic_mask with its last week removed, (n_active, T - 1)
  wrong_mask_shape         geom/mask with one column fewer than geom/ncol
  nan_distr                distr is NaN at active cell 6, week 11 (1-based)
  negative_distr           distr is negative at the first non-zero cell of week 11
  zero_week                distr and geom/dynamic_mask all 0 in week 21
  sum_not_one              week 11 of distr multiplied by 1.01
  mask_disagrees           geom/dynamic_mask FALSE at the first cell of week 11 where distr > 0
  n_active_mismatch        metadata/n_active one larger than the rows of distr

The source must be a valid preprocessed file with at least 11 weeks and 6 active cells (the
bundled sstspa, rewbla and amewoo files are).
"""

import os
import shutil
import sys

import h5py
import numpy as np

NAN_CELL, WEEK = 5, 10  # 0-based positions used by the value cases
ZERO_WEEK = 20


def copy_source(source, outdir, case):
    path = os.path.join(outdir, case + ".hdf5")
    shutil.copyfile(source, path)
    return path


def replace_dataset(group, name, data, dtype=None):
    """Replace dataset `name` with `data`, keeping its attributes."""
    attrs = dict(group[name].attrs)
    del group[name]
    dataset = group.create_dataset(name, data=data, dtype=dtype)
    for key, value in attrs.items():
        dataset.attrs[key] = value
    return dataset


def all_datasets(h5):
    names = []
    h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def is_logical(dataset):
    mode = dataset.attrs.get("storage.mode")
    return mode is not None and np.asarray(mode).ravel()[0] in (b"logical", "logical")


def good_int32_logicals(path):
    with h5py.File(path, "r+") as h5:
        for name in all_datasets(h5):
            if is_logical(h5[name]):
                replace_dataset(h5, name, h5[name][()].astype(np.int32))


def good_enum_logicals(path):
    with h5py.File(path, "r+") as h5:
        for name in ("geom/mask", "geom/dynamic_mask"):
            replace_dataset(h5, name, h5[name][()] != 0, dtype=bool)


def good_vlen_strings(path):
    text = h5py.string_dtype(encoding="utf-8")
    with h5py.File(path, "r+") as h5:
        for name in all_datasets(h5):
            dataset = h5[name]
            if dataset.dtype.kind == "S":
                values = [v.decode("utf-8") for v in dataset[()].ravel()]
                replace_dataset(h5, name, np.array(values, dtype=object).reshape(dataset.shape),
                                dtype=text)


def good_true_scalars(path):
    with h5py.File(path, "r+") as h5:
        for name in all_datasets(h5):
            dataset = h5[name]
            if dataset.shape == (1,) and dataset.dtype.names is None:
                replace_dataset(h5, name, dataset[0], dtype=dataset.dtype)


def good_no_optional_metadata(path):
    with h5py.File(path, "r+") as h5:
        for name in ("metadata", "species", "geom/crs"):
            del h5[name]


def not_hdf5(path):
    with open(path, "w") as out:
        out.write("distr,dynamic_mask\n1,TRUE\n")


def missing_distr(path):
    with h5py.File(path, "r+") as h5:
        del h5["distr"]


def wrong_shape(path):
    with h5py.File(path, "r+") as h5:
        replace_dataset(h5, "geom/dynamic_mask", h5["geom/dynamic_mask"][:, :-1])


def wrong_mask_shape(path):
    with h5py.File(path, "r+") as h5:
        replace_dataset(h5, "geom/mask", h5["geom/mask"][:, :-1])


def nan_distr(path):
    with h5py.File(path, "r+") as h5:
        distr = h5["distr"][()]
        distr[NAN_CELL, WEEK] = np.nan
        h5["distr"][...] = distr


def negative_distr(path):
    with h5py.File(path, "r+") as h5:
        distr = h5["distr"][()]
        cell = int(np.flatnonzero(distr[:, WEEK] > 0)[0])
        distr[cell, WEEK] = -distr[cell, WEEK]
        h5["distr"][...] = distr


def zero_week(path):
    with h5py.File(path, "r+") as h5:
        distr = h5["distr"][()]
        mask = h5["geom/dynamic_mask"][()]
        distr[:, ZERO_WEEK] = 0
        mask[:, ZERO_WEEK] = 0
        h5["distr"][...] = distr
        h5["geom/dynamic_mask"][...] = mask


def sum_not_one(path):
    with h5py.File(path, "r+") as h5:
        distr = h5["distr"][()]
        distr[:, WEEK] *= 1.01
        h5["distr"][...] = distr


def mask_disagrees(path):
    with h5py.File(path, "r+") as h5:
        distr = h5["distr"][()]
        mask = h5["geom/dynamic_mask"][()]
        cell = int(np.flatnonzero(distr[:, WEEK] > 0)[0])
        mask[cell, WEEK] = 0
        h5["geom/dynamic_mask"][...] = mask


def n_active_mismatch(path):
    with h5py.File(path, "r+") as h5:
        dataset = h5["metadata/n_active"]
        dataset[...] = dataset[()] + 1


CASES = [
    good_int32_logicals, good_enum_logicals, good_vlen_strings, good_true_scalars,
    good_no_optional_metadata, not_hdf5, missing_distr, wrong_shape, wrong_mask_shape, nan_distr,
    negative_distr, zero_week, sum_not_one, mask_disagrees, n_active_mismatch,
]


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    source, outdir = argv[1], argv[2]
    if not os.path.isfile(source):
        sys.stderr.write(f"make_species_variants.py: error: {source}: file not found\n")
        return 1
    os.makedirs(outdir, exist_ok=True)
    for case in CASES:
        case(copy_source(source, outdir, case.__name__))
        print(case.__name__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
