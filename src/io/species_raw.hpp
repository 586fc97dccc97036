// A species file's contents as stored, before validation (internal to src/io).
#pragma once

#include "birdflow/species.hpp"

#include <string>
#include <vector>

namespace birdflow::io
{
/* Contents of a species file as rank 0 reads them, before any check. Shapes are HDF5 dimensions
   (empty for a scalar), and -1 marks a metadata value that the file does not contain. */
struct RawSpecies
{
  std::string path, species_code, common_name, scientific_name, crs;
  double ebird_version_year = 0;
  std::vector<double> nrow, ncol, res, ext;
  std::vector<long long> mask, dynamic_mask;
  std::vector<unsigned long long> mask_shape, dynamic_mask_shape, distr_shape;
  std::vector<double> distr;
  long long metadata_n_active = -1, metadata_n_timesteps = -1;
  bool has_distances = false, has_marginals = false;
  std::vector<std::string> missing_import_paths;
};

/* Tolerance on |sum of distr over the cells of a week - 1|. BirdFlowR normalises every week in
   double precision; the bundled sstspa, rewbla and amewoo files are within 2e-15. */
constexpr double kWeekSumTolerance = 1e-6;

/* ValidateSpecies - Checks shapes, values and masks of `raw` and fills `species`. Collective:
   every rank has the same `raw`, so every rank reaches the same verdict. */
PetscErrorCode ValidateSpecies(MPI_Comm comm, const RawSpecies &raw, SpeciesData *species);
} // namespace birdflow::io
