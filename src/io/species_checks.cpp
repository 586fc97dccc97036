// Validation of a species file's contents. Every rank runs these checks on the same broadcast
// data, so every rank fails with the same message or none does.
#include "species_raw.hpp"

#include "birdflow/petsc_compat.hpp"

#include <cmath>
#include <cstdio>
#include <string>

namespace birdflow::io
{
namespace
{
std::string ShapeText(const std::vector<unsigned long long> &shape)
{
  if (shape.empty()) return "a scalar";
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + ")";
}

// Formats a number for a message; PETSc's own %g would print "nan." and "3." for nan and 3.
std::string Number(double value)
{
  char text[64];
  std::snprintf(text, sizeof(text), "%.10g", value);
  return text;
}

// Returns the value of a one-element grid dimension as a positive integer, or -1.
PetscInt GridDimension(const std::vector<double> &values)
{
  if (values.size() != 1 || !(values[0] >= 1) || values[0] != std::floor(values[0])) return -1;
  return (PetscInt)values[0];
}

PetscErrorCode CheckDistrShape(MPI_Comm comm, const RawSpecies &raw)
{
  PetscFunctionBeginUser;
  PetscCheck(raw.distr_shape.size() == 2 && raw.distr_shape[0] >= 1 && raw.distr_shape[1] >= 2,
             comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset distr has shape %s; expected (n_active, n_timesteps) with at least one "
             "cell and two weeks",
             raw.path.c_str(), ShapeText(raw.distr_shape).c_str());
  PetscCheck(raw.dynamic_mask_shape == raw.distr_shape, comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset geom/dynamic_mask has shape %s but distr has %s; both must be "
             "(n_active, n_timesteps)",
             raw.path.c_str(), ShapeText(raw.dynamic_mask_shape).c_str(),
             ShapeText(raw.distr_shape).c_str());
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CheckStaticMask(MPI_Comm comm, const RawSpecies &raw)
{
  const char *path = raw.path.c_str();
  PetscInt nrow = GridDimension(raw.nrow), ncol = GridDimension(raw.ncol);

  PetscFunctionBeginUser;
  PetscCheck(nrow > 0, comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset geom/nrow is %s; expected one positive whole number", path,
             raw.nrow.size() == 1 ? Number(raw.nrow[0]).c_str() : "not a single value");
  PetscCheck(ncol > 0, comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset geom/ncol is %s; expected one positive whole number", path,
             raw.ncol.size() == 1 ? Number(raw.ncol[0]).c_str() : "not a single value");
  std::vector<unsigned long long> expected{(unsigned long long)nrow, (unsigned long long)ncol};
  PetscCheck(raw.mask_shape == expected, comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset geom/mask has shape %s but geom/nrow and geom/ncol give %s; the file is "
             "inconsistent, re-export it with BirdFlowR",
             path, ShapeText(raw.mask_shape).c_str(), ShapeText(expected).c_str());

  long long active = 0;
  for (size_t k = 0; k < raw.mask.size(); ++k) {
    PetscCheck(raw.mask[k] == 0 || raw.mask[k] == 1, comm, PETSC_ERR_FILE_UNEXPECTED,
               "%s: dataset geom/mask has %lld at row %zu, column %zu (1-based); expected a "
               "logical, 0 or 1 (NA is not allowed)",
               path, raw.mask[k], k / (size_t)ncol + 1, k % (size_t)ncol + 1);
    active += raw.mask[k];
  }
  long long n_active = (long long)raw.distr_shape[0];
  PetscCheck(active == n_active, comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset geom/mask has %lld TRUE cells but distr has %lld rows; both must "
             "count the same active cells",
             path, active, n_active);
  PetscCheck(raw.metadata_n_active < 0 || raw.metadata_n_active == n_active, comm,
             PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset metadata/n_active is %lld but distr has %lld rows; the file is "
             "inconsistent, re-export it with BirdFlowR",
             path, raw.metadata_n_active, n_active);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CheckExtent(MPI_Comm comm, const RawSpecies &raw)
{
  const char *path = raw.path.c_str();

  PetscFunctionBeginUser;
  PetscCheck(raw.res.size() == 2 && raw.res[0] > 0 && raw.res[1] > 0, comm,
             PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset geom/res must hold two positive cell sizes (xres, yres); it has %zu "
             "values, the first %s",
             path, raw.res.size(), raw.res.empty() ? "none" : Number(raw.res[0]).c_str());
  PetscCheck(raw.ext.size() == 4, comm, PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset geom/ext has %zu values; expected 4 (xmin, xmax, ymin, ymax)", path,
             raw.ext.size());
  double width = raw.ext[1] - raw.ext[0], height = raw.ext[3] - raw.ext[2];
  // The extent must hold the grid exactly; allow a relative 1e-6 for rounding in the file.
  double ncol = raw.ncol[0], nrow = raw.nrow[0];
  PetscCheck(std::fabs(ncol * raw.res[0] - width) <= 1e-6 * std::fabs(width), comm,
             PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset geom/ext spans %s in x, but geom/ncol * xres = %s * %s; expected the "
             "order xmin, xmax, ymin, ymax",
             path, Number(width).c_str(), Number(ncol).c_str(), Number(raw.res[0]).c_str());
  PetscCheck(std::fabs(nrow * raw.res[1] - height) <= 1e-6 * std::fabs(height), comm,
             PETSC_ERR_FILE_UNEXPECTED,
             "%s: dataset geom/ext spans %s in y, but geom/nrow * yres = %s * %s; expected the "
             "order xmin, xmax, ymin, ymax",
             path, Number(height).c_str(), Number(nrow).c_str(), Number(raw.res[1]).c_str());
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CheckDistrValues(MPI_Comm comm, const RawSpecies &raw)
{
  const char *path = raw.path.c_str();
  size_t n = raw.distr_shape[0], weeks = raw.distr_shape[1];

  PetscFunctionBeginUser;
  for (size_t t = 0; t < weeks; ++t) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      double value = raw.distr[i * weeks + t];
      PetscCheck(std::isfinite(value), comm, PETSC_ERR_USER_INPUT,
                 "%s: dataset distr is %s at active cell %zu, week %zu (1-based); expected a "
                 "finite relative abundance (BirdFlowR writes 0 for NA)",
                 path, Number(value).c_str(), i + 1, t + 1);
      PetscCheck(value >= 0, comm, PETSC_ERR_USER_INPUT,
                 "%s: dataset distr is %s at active cell %zu, week %zu (1-based); relative "
                 "abundance cannot be negative",
                 path, Number(value).c_str(), i + 1, t + 1);
      sum += value;
    }
    PetscCheck(sum > 0, comm, PETSC_ERR_USER_INPUT,
               "%s: dataset distr sums to 0 in week %zu (1-based); every week needs a "
               "distribution, so re-run preprocess_species() or drop the week",
               path, t + 1);
    PetscCheck(std::fabs(sum - 1) <= kWeekSumTolerance, comm, PETSC_ERR_USER_INPUT,
               "%s: dataset distr sums to %s in week %zu (1-based); each week must sum to 1 "
               "within %s, so normalise the columns",
               path, Number(sum).c_str(), t + 1, Number(kWeekSumTolerance).c_str());
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CheckDynamicMask(MPI_Comm comm, const RawSpecies &raw)
{
  const char *path = raw.path.c_str();
  size_t n = raw.distr_shape[0], weeks = raw.distr_shape[1];

  PetscFunctionBeginUser;
  for (size_t i = 0; i < n; ++i) {
    for (size_t t = 0; t < weeks; ++t) {
      long long flag = raw.dynamic_mask[i * weeks + t];
      double value = raw.distr[i * weeks + t];
      PetscCheck(flag == 0 || flag == 1, comm, PETSC_ERR_FILE_UNEXPECTED,
                 "%s: dataset geom/dynamic_mask has %lld at active cell %zu, week %zu "
                 "(1-based); expected a logical, 0 or 1 (NA is not allowed)",
                 path, flag, i + 1, t + 1);
      PetscCheck((flag == 1) == (value > 0), comm, PETSC_ERR_USER_INPUT,
                 "%s: dataset geom/dynamic_mask is %s at active cell %zu, week %zu (1-based) but "
                 "distr is %s there; the mask must equal distr > 0",
                 path, flag ? "TRUE" : "FALSE", i + 1, t + 1, Number(value).c_str());
    }
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

// A full-year file repeats week 1 as its last column, and BirdFlowR's import_birdflow() rejects a
// model whose last column differs from the first, so catch that before any training.
PetscErrorCode CheckRepeatedWeek(MPI_Comm comm, const RawSpecies &raw)
{
  size_t n = raw.distr_shape[0], weeks = raw.distr_shape[1];

  PetscFunctionBeginUser;
  if (raw.metadata_n_timesteps < 0 || (long long)weeks != raw.metadata_n_timesteps + 1)
    PetscFunctionReturn(PETSC_SUCCESS);
  for (size_t i = 0; i < n; ++i) {
    double first = raw.distr[i * weeks], last = raw.distr[i * weeks + weeks - 1];
    PetscCheck(first == last, comm, PETSC_ERR_USER_INPUT,
               "%s: dataset distr has %zu columns, metadata/n_timesteps + 1, so column %zu must "
               "repeat week 1 exactly, but active cell %zu has %s and %s",
               raw.path.c_str(), weeks, weeks, i + 1, Number(first).c_str(), Number(last).c_str());
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

void FillSpecies(const RawSpecies &raw, SpeciesData *species)
{
  species->path = raw.path;
  species->species_code = raw.species_code;
  species->common_name = raw.common_name;
  species->scientific_name = raw.scientific_name;
  species->ebird_version_year = raw.ebird_version_year;
  species->has_distances = raw.has_distances;
  species->has_marginals = raw.has_marginals;
  species->missing_import_paths = raw.missing_import_paths;

  Grid &grid = species->grid;
  grid.nrow = (PetscInt)raw.nrow[0];
  grid.ncol = (PetscInt)raw.ncol[0];
  grid.xres = raw.res[0];
  grid.yres = raw.res[1];
  grid.xmin = raw.ext[0];
  grid.xmax = raw.ext[1];
  grid.ymin = raw.ext[2];
  grid.ymax = raw.ext[3];
  grid.crs = raw.crs;
  grid.active_cells.clear();
  for (size_t k = 0; k < raw.mask.size(); ++k)
    if (raw.mask[k]) grid.active_cells.push_back((PetscInt)k);

  species->n_active = (PetscInt)raw.distr_shape[0];
  species->n_timesteps = (PetscInt)raw.distr_shape[1];
  species->distr = raw.distr;
  species->dynamic_mask.assign(raw.dynamic_mask.begin(), raw.dynamic_mask.end());
  species->week_cells.assign(species->n_timesteps, {});
  for (PetscInt t = 0; t < species->n_timesteps; ++t)
    for (PetscInt i = 0; i < species->n_active; ++i)
      if (species->dynamic_mask[i * species->n_timesteps + t]) species->week_cells[t].push_back(i);
}
} // namespace

PetscErrorCode ValidateSpecies(MPI_Comm comm, const RawSpecies &raw, SpeciesData *species)
{
  PetscFunctionBeginUser;
  PetscCall(CheckDistrShape(comm, raw));
  PetscCall(CheckStaticMask(comm, raw));
  PetscCall(CheckExtent(comm, raw));
  PetscCall(CheckDistrValues(comm, raw));
  PetscCall(CheckDynamicMask(comm, raw));
  PetscCall(CheckRepeatedWeek(comm, raw));
  FillSpecies(raw, species);
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::io
