// The serial part of writing a fitted model (internal to src/io).
#pragma once

#include "birdflow/species.hpp"

#include <string>

namespace birdflow::io
{
/* Creates `partial_path` as a copy of the input file `species.path` without `distances` and
   `marginals`, then writes metadata/hyperparameters, metadata/loss_values,
   metadata/birdflow_model_date and metadata/birdflow_hpc from `record`. HDF5 1.10.8 rejects
   variable-length writes through MPI-IO ("Parallel IO does not support writing VL ... datatypes
   yet"), so this part runs on one rank with the default file driver. Throws FileError. Not
   collective. */
void WriteInputCopyAndMetadata(const SpeciesData &species, const std::string &partial_path,
                               const TrainingRecord &record);

/* Returns the local time as "YYYY-MM-DD HH:MM:SS.ffffff", the form BirdFlowPy writes. */
std::string ModelDate();
} // namespace birdflow::io
