// Input and output files of birdflow-w2: two distributions on a raster, read from an HDF5 file or
// from two weeks of a BirdFlowR species file, and the result file.
#pragma once

#include "birdflow/ot.hpp"
#include "birdflow/species.hpp"

#include <string>
#include <vector>

namespace birdflow
{
/* Two distributions on an nrow x ncol raster, row-major, NaN at masked cells. Every rank holds a
   copy (the driver reads small grids; see the NOTE in ReadOTInput). */
struct OTInput
{
  std::string source; // file (and weeks) the data came from, for messages
  PetscInt nrow = 0, ncol = 0;
  double cell_size_km = 0; // 0 when the file does not define it
  std::vector<double> a, b;
};

/* Largest |sum - 1| that CheckOTInput accepts without --normalize. */
constexpr double kOTSumTolerance = 1e-6;

/*
  ReadOTInput - Reads the 2D datasets `a` and `b` (any float or integer type, same shape nrow x
  ncol) of an HDF5 file. NaN marks a masked cell of that distribution; a cell may be masked in a
  and not in b. When the file also holds a 2D dataset `mask` of that shape, cells where it is 0 are
  masked in both, and a NaN at a cell where it is non-zero is an error. Rank 0 reads and
  broadcasts. Collective: every rank returns the same data or the same error (PETSC_ERR_FILE_OPEN
  for a missing or unreadable file, PETSC_ERR_FILE_UNEXPECTED for a missing dataset or a shape
  mismatch), each naming the file and dataset.
*/
PetscErrorCode ReadOTInput(MPI_Comm comm, const std::string &path, OTInput *input);

/*
  SpeciesWeekPair - Builds a (week_a) and b (week_b) from `distr` of a species file, weeks
  numbered from 1. Cells outside geom/mask are masked; active cells outside a week's dynamic mask
  have zero mass. The cell size is xres / 1000 km; xres and yres must agree within 1e-6 relative.
  Not collective (every rank holds the species data); errors use comm.
*/
PetscErrorCode SpeciesWeekPair(MPI_Comm comm, const SpeciesData &species, PetscInt week_a,
                               PetscInt week_b, OTInput *input);

/*
  CheckOTInput - Rejects negative or infinite entries and a distribution without mass. A sum
  further than kOTSumTolerance from 1 is an error unless `normalize`, which rescales both
  distributions to sum 1. Not collective (the data are the same on every rank); errors use comm.
*/
PetscErrorCode CheckOTInput(MPI_Comm comm, bool normalize, OTInput *input);

/* What birdflow-w2 writes. The vectors are this rank's row slabs (OTSolver layout). */
struct OTOutputRecord
{
  std::string quantity;
  double epsilon = 0, cell_size_km = 0;
  PetscInt nrow = 0, ncol = 0;
  const OTResult *result = nullptr;
  bool gradient = false, implicit = false; // implicit: ksp_iterations are written
};

/*
  WriteOTOutput - Gathers the slabs on rank 0 and writes `value`, `f`, `g` (nrow x ncol),
  `gradient_a` and `gradient_b` (with a gradient), `iterations`, `marginal_error`, `converged`,
  `epsilon`, `cell_size`, `quantity` and, for an implicit gradient, `ksp_iterations`, to
  PartialPath(path), then renames it to path. On error the partial file is removed. Collective.
*/
PetscErrorCode WriteOTOutput(MPI_Comm comm, const std::string &path, const OTOutputRecord &record);
} // namespace birdflow
