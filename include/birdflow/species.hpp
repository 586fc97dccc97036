// BirdFlowR species files: the preprocessed (training input) and fitted (model) HDF5 layouts.
//
// Layout facts used here (BirdFlowR export_birdflow() and BirdFlowPy update_hdf.py):
//  - an R matrix a x b is stored with HDF5 shape (a, b), so `distr` is (n_active, T);
//  - active cells are the TRUE cells of geom/mask in row-major raster order;
//  - the cells of week t are the active cells whose geom/dynamic_mask[i, t] is TRUE, in
//    active-cell order; full-year files repeat week 1 as column T = 53;
//  - `distances` is the strict upper triangle of the n_active x n_active great-circle matrix (km)
//    in row-major order (numpy.triu_indices(n, k=1)).
#pragma once

#include <petscsys.h>

#include <map>
#include <string>
#include <vector>

namespace birdflow
{
/* Raster geometry of a species file (the geom group). */
struct Grid {
  PetscInt nrow = 0, ncol = 0;
  double xres = 0, yres = 0;                 // cell size in CRS units (metres)
  double xmin = 0, xmax = 0, ymin = 0, ymax = 0;
  std::string crs;                           // WKT of the projected CRS
  std::vector<PetscInt> active_cells;        // raster index row * ncol + col (0-based) per active cell

  PetscInt Row(PetscInt active) const { return active_cells[active] / ncol; }
  PetscInt Col(PetscInt active) const { return active_cells[active] % ncol; }
  double CentreX(PetscInt active) const { return xmin + (Col(active) + 0.5) * xres; }
  double CentreY(PetscInt active) const { return ymax - (Row(active) + 0.5) * yres; }
};

/* The contents of a species file that training, OT and evaluation use. Every rank keeps a copy:
   it is O(n_active * T), small next to the model. */
struct SpeciesData {
  std::string path;
  std::string species_code, common_name, scientific_name;
  double ebird_version_year = 0;
  Grid grid;
  PetscInt n_active = 0;    // N, rows of distr
  PetscInt n_timesteps = 0; // T, columns of distr (53 for a full-year file)
  std::vector<double> distr;               // N * T, distr[i * T + t]
  std::vector<unsigned char> dynamic_mask; // N * T, same layout, 0 or 1
  std::vector<std::vector<PetscInt>> week_cells; // per t: active indices with dynamic_mask TRUE
  bool has_distances = false;  // the file contains `distances` (preprocessed files do)
  bool has_marginals = false;  // the file contains marginals/Week{t}_to_{t+1} (fitted files do)
  // Paths that BirdFlowR's import_birdflow() requires but the file lacks (for example the
  // metadata and species groups). A fitted model written from this file copies the input, so it
  // would lack them too: drivers should warn before training when this is not empty.
  std::vector<std::string> missing_import_paths;

  PetscInt CellsInWeek(PetscInt t) const { return (PetscInt)week_cells[t].size(); }
  double Distr(PetscInt active, PetscInt t) const { return distr[active * n_timesteps + t]; }
};

/*
  ReadSpecies - Reads and validates the geometry, distr and dynamic mask of a preprocessed or
  fitted BirdFlowR file. Collective: every rank returns the same SpeciesData or the same error.

  Accepts int8 or int32 logicals (and h5py enum bools), fixed or variable-length strings, R scalars stored as length-1
  arrays or as HDF5 scalars, and files without the optional metadata groups.

  Errors, each one line naming the file, the dataset and the offending value:
  - PETSC_ERR_FILE_OPEN: the file is missing, a folder or unreadable;
  - PETSC_ERR_FILE_UNEXPECTED: not an HDF5 file; a missing dataset; a wrong type; shapes that
    disagree (distr, geom/dynamic_mask, geom/mask, geom/nrow, geom/ncol, geom/ext); TRUE cells of
    geom/mask or metadata/n_active that differ from the rows of distr; a logical that is not 0 or 1;
  - PETSC_ERR_USER_INPUT: NaN, infinite or negative distr; a week whose distr sums to 0 or differs
    from 1 by more than 1e-6; a dynamic mask that disagrees with distr > 0; a full-year file whose
    last column does not repeat week 1 exactly.
*/
PetscErrorCode ReadSpecies(MPI_Comm comm, const std::string &path, SpeciesData *species);

/*
  ReadDistances - Reads `distances` (km) as the packed strict upper triangle, validating its length
  n(n-1)/2, finiteness and sign. Collective; every rank gets the whole triangle.
*/
PetscErrorCode ReadDistances(MPI_Comm comm, const SpeciesData &species,
                             std::vector<double> *distances_km);

/* Returns entry (i, j) of the symmetric distance matrix stored as a packed upper triangle. */
inline double PackedDistance(const std::vector<double> &packed, PetscInt n, PetscInt i, PetscInt j)
{
  if (i == j) return 0.0;
  if (i > j) std::swap(i, j);
  // Row i of the strict upper triangle starts after i*n - i*(i+1)/2 entries.
  size_t offset = (size_t)i * (size_t)n - (size_t)i * (size_t)(i + 1) / 2;
  return packed[offset + (size_t)(j - i - 1)];
}

/*
  ReadMarginals - Reads every marginals/Week{t}_to_{t+1} of a fitted file (float32 or float64) into
  row-major n_t x n_{t+1} arrays. Collective; every rank gets all of them. Fails with a message
  naming the file when the group or a dataset is missing or a shape disagrees with the dynamic mask.
*/
PetscErrorCode ReadMarginals(MPI_Comm comm, const SpeciesData &species,
                             std::vector<std::vector<double>> *marginals);

/* The rows of one transition's pairwise marginal M_t held by this rank: rows
   [row_start, row_start + row_count) of the n_t x n_{t+1} matrix, row-major, in double. */
struct MarginalRows {
  PetscInt row_start = 0, row_count = 0, n_cols = 0;
  const double *values = nullptr;
};

/* Hyperparameters, loss history and run settings that a training run records in the fitted file
   besides the marginals. */
struct TrainingRecord {
  double obs_weight = 1, dist_weight = 0, ent_weight = 0, dist_pow = 1, learning_rate = 0.1;
  long long training_steps = 0, rng_seed = 0;
  bool normalized = true;
  // One value per step, evaluated before that step's update (BirdFlowPy's convention).
  std::vector<double> loss_total, loss_obs, loss_dist, loss_ent;
  // The W2 location loss per step (km^2), written as metadata/birdflow_hpc/loss_w2; empty when
  // training used none.
  std::vector<double> loss_w2;
  // Our own settings (location loss, rank count, commit, ...), written as string datasets under
  // metadata/birdflow_hpc/, which BirdFlowR ignores.
  std::map<std::string, std::string> extra;
};

/*
  WriteFittedModel - Writes a fitted model that BirdFlowR's import_birdflow() accepts: a copy of
  the input file without `distances`, with float32 marginals/Week{t}_to_{t+1} written by every rank
  for its own rows through parallel HDF5 (nothing is gathered to one rank), and with
  metadata/hyperparameters, metadata/loss_values, metadata/birdflow_model_date and
  metadata/birdflow_hpc (record.extra plus `build`, the version and git commit).

  `rows[t]` describes this rank's rows of transition t (t = 0 .. T-2); the blocks of all ranks must
  cover every row exactly once. `record` is taken from rank 0. The input file is species.path, so
  it must still exist. The file is written to PartialPath(output_path) and renamed at the end; on
  any error the partial file is removed and an existing file at output_path is left as it was.

  Errors: PETSC_ERR_ARG_WRONG for rows or a record that do not fit the species (also non-finite or
  negative marginals, loss vectors of different lengths); the reader's errors for the input file;
  PETSC_ERR_FILE_OPEN or PETSC_ERR_FILE_WRITE when the output cannot be created or written.
  Collective.
*/
PetscErrorCode WriteFittedModel(MPI_Comm comm, const SpeciesData &species,
                                const std::string &output_path,
                                const std::vector<MarginalRows> &rows,
                                const TrainingRecord &record);
} // namespace birdflow
