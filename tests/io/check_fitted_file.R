# Read a fitted BirdFlow HDF5 file with rhdf5 the way BirdFlowR's import_birdflow() does (file
# version 3) and stop with a message at the first step that import would fail on.
#
# Usage: Rscript check_fitted_file.R FITTED.hdf5
#
# BirdFlowR itself is not installable on the test machine, so this script repeats the reads and
# checks of its importer with Debian's r-bioc-rhdf5: the list of required paths, the version, the
# group reads of geom, species, metadata, hyperparameters, loss_values, dates and marginals (with
# native = TRUE where import uses it), the marginal names and shapes, and the removal of the
# repeated last week from dates, distr and dynamic_mask. Prints "ok" when every step passes.

suppressPackageStartupMessages(library(rhdf5))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript check_fitted_file.R FITTED.hdf5")
path <- args[1]
if (!file.exists(path)) stop(path, ": file not found")

fail <- function(...) stop(path, ": ", ..., call. = FALSE)

required <- c(
  "geom", paste0("geom/", c("nrow", "ncol", "res", "ext", "crs", "mask")),
  "transitions", "dates", "distr", "species",
  paste0("species/", c(
    "species_code", "scientific_name", "common_name",
    outer(c("breeding", "nonbreeding", "postbreeding_migration", "prebreeding_migration"),
          c("quality", "start", "end"), paste, sep = "_"))),
  "metadata",
  paste0("metadata/", c(
    "has_marginals", "has_transitions", "has_distr", "n_transitions", "n_active",
    "n_timesteps", "ebird_version_year", "ebird_release_year", "ebird_access_end_date",
    "birdflow_preprocess_date", "birdflow_model_date", "is_sparse")),
  "metadata/hyperparameters", "metadata/loss_values", "marginals")

# 1. Required contents, as h5ls lists them.
listing <- h5ls(path)
contents <- gsub("^/*", "", paste0(listing$group, "/", listing$name))
absent <- setdiff(required, contents)
if (length(absent) > 0) fail("missing ", paste(absent, collapse = ", "))

# 2. Version 3.
version <- as.vector(h5read(path, "metadata/birdflow_version"))
if (version != 3) fail("metadata/birdflow_version is ", version, "; expected 3")

# 3. Whole-group reads, which must succeed for every type the file contains.
geom <- h5read(path, "geom", native = TRUE)
species <- h5read(path, "species")
metadata <- h5read(path, "metadata")
if (!is.character(as.vector(metadata$birdflow_model_date)) ||
    !nzchar(as.vector(metadata$birdflow_model_date)))
  fail("metadata/birdflow_model_date is not a non-empty string")

# 4. Hyperparameters: rhdf5 reads an enum bool as a factor with levels FALSE and TRUE. Import
#    accepts an empty group (BirdFlowR's own rewbla file has one), so only a group with members
#    is checked.
hyper <- h5read(path, "metadata/hyperparameters")
if (length(hyper) > 0) {
  for (name in c("obs_weight", "ent_weight", "dist_weight", "dist_pow", "learning_rate",
                 "training_steps", "rng_seed", "normalized")) {
    if (is.null(hyper[[name]])) fail("metadata/hyperparameters/", name, " is missing")
  }
  normalized <- hyper$normalized
  if (!is.factor(normalized) || !all(tolower(levels(normalized)) %in% c("true", "false")))
    fail("metadata/hyperparameters/normalized is not read as a logical factor")
  if (is.na(as.logical(as.character(normalized))))
    fail("metadata/hyperparameters/normalized does not convert to TRUE or FALSE")
  for (name in c("obs_weight", "ent_weight", "dist_weight", "dist_pow", "learning_rate"))
    if (!is.numeric(hyper[[name]]) || length(hyper[[name]]) != 1)
      fail("metadata/hyperparameters/", name, " is not one number")
}

# 5. Loss values become a data.frame, so every column must have the same length.
loss <- h5read(path, "metadata/loss_values")
lengths <- vapply(loss, length, integer(1))
if (length(unique(lengths)) > 1)
  fail("metadata/loss_values lengths differ: ", paste(names(lengths), lengths, collapse = ", "))
loss <- as.data.frame(lapply(loss, as.vector))

# 6. Dates and the column that names the time steps.
dates <- h5read(path, "dates")
year <- as.vector(metadata$ebird_version_year)
time_column <- if (year < 2022) "interval" else "timestep"
if (!time_column %in% colnames(dates)) fail("dates has no ", time_column, " column")

# 7. Marginals: Week1_to_2 .. Week{nt}_to_{nt+1}, rows and columns from the dynamic mask.
marginals <- h5read(path, "marginals", native = TRUE)
nt <- length(marginals)
expected_names <- paste0("Week", seq_len(nt), "_to_", seq_len(nt) + 1)
if (!setequal(names(marginals), expected_names))
  fail("marginal names are not Week1_to_2 .. Week", nt, "_to_", nt + 1)
dynamic_mask <- geom$dynamic_mask
storage.mode(dynamic_mask) <- "logical"
counts <- colSums(dynamic_mask)
for (i in seq_len(nt)) {
  m <- marginals[[expected_names[i]]]
  if (!identical(as.integer(dim(m)), as.integer(c(counts[i], counts[i + 1]))))
    fail(expected_names[i], " is ", paste(dim(m), collapse = " x "), "; dynamic_mask gives ",
         counts[i], " x ", counts[i + 1])
  if (any(!is.finite(m)) || any(m < 0) || abs(sum(m) - 1) > 1e-4)
    fail(expected_names[i], " is not a joint distribution (sum ", sum(m), ")")
}

# 8. The repeated week: import drops the duplicated date row and the last column of distr and
#    dynamic_mask, and stops unless that column equals the first exactly.
n_timesteps <- sum(!duplicated(dates$date))
distr <- h5read(path, "distr", native = TRUE)
if (ncol(distr) == n_timesteps + 1 && !all(distr[, 1] == distr[, ncol(distr)]))
  fail("distr column ", ncol(distr), " differs from column 1")
if (ncol(dynamic_mask) == n_timesteps + 1 &&
    !all(dynamic_mask[, 1] == dynamic_mask[, ncol(dynamic_mask)]))
  fail("dynamic_mask column ", ncol(dynamic_mask), " differs from column 1")
circular <- nt == length(unique(dates$date))
if (circular && nt != n_timesteps) fail("a cyclic model needs ", n_timesteps, " marginals")
if (!circular && nt != n_timesteps - 1)
  fail(nt, " marginals for ", n_timesteps, " time steps; expected ", n_timesteps - 1)

h5closeAll()
cat(path, ": ok (", nt, " marginals, ", if (circular) "cyclic" else "open", ", ",
    nrow(loss), " loss values)\n", sep = "")
