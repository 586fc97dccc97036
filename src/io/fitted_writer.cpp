#include "birdflow/species.hpp"

#include "birdflow/petsc_compat.hpp"

namespace birdflow
{
PetscErrorCode WriteFittedModel(MPI_Comm comm, const SpeciesData &, const std::string &output_path,
                                const std::vector<MarginalRows> &, const TrainingRecord &)
{
  PetscFunctionBeginUser;
  // TODO: the parallel HDF5 writer is not written yet; this placeholder keeps callers linking.
  SETERRQ(comm, PETSC_ERR_SUP, "%s: writing fitted models is not implemented yet",
          output_path.c_str());
}
} // namespace birdflow
