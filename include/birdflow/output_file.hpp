// Output files that appear complete or not at all.
//
// A driver writes to a partial file beside the final path and renames it at the end. So a crash or
// an error never leaves a half-written result under the final name, and an existing file of that
// name stays untouched until the new one is complete.
#pragma once

#include <petscsys.h>

#include <string>

namespace birdflow
{
/* Returns the partial path used while `path` is written: "<dir>/.<name>.partial". Not collective. */
std::string PartialPath(const std::string &path);

/* CheckOutputPath - Fails with PETSC_ERR_FILE_OPEN when the folder of `path` does not exist or is
   not writable, or when `path` is a folder. Call it before the expensive work starts. Collective:
   rank 0 checks and every rank returns the same error. */
PetscErrorCode CheckOutputPath(MPI_Comm comm, const std::string &path, const char *option_name);

/* CheckOutputNotInput - Fails with PETSC_ERR_USER_INPUT when `path` (given by `option_name`) names
   the same existing file as `input` (given by `input_option`), also through links or "..", so a
   run never replaces its own input. Collective: every rank reaches the same verdict. */
PetscErrorCode CheckOutputNotInput(MPI_Comm comm, const std::string &path, const char *option_name,
                                   const std::string &input, const char *input_option);

/* CommitOutputFile - Renames PartialPath(path) to path on rank 0. Collective. */
PetscErrorCode CommitOutputFile(MPI_Comm comm, const std::string &path);

/* DiscardOutputFile - Removes PartialPath(path) if it exists, on rank 0. Not collective, so it is
   safe to call on an error path. */
void DiscardOutputFile(MPI_Comm comm, const std::string &path);
} // namespace birdflow
