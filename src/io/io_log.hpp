// PETSc profiling stage and events of the species-file I/O (internal to src/io).
#pragma once

#include <petscsys.h>

namespace birdflow::io
{
/* The I/O stage and events shown by -log_view. */
struct IoLog
{
  PetscLogStage stage;
  PetscLogEvent read;      // rank 0 reads a species file
  PetscLogEvent broadcast; // rank 0 sends what it read to every rank
  PetscLogEvent validate;  // shape, value and mask checks on every rank
  PetscLogEvent copy;      // rank 0 copies the input file into the output file
  PetscLogEvent write;     // every rank writes its rows of the marginals
};

/* Registers the stage and events on first use and returns them. Not collective, but call it on
   every rank so the stages line up in -log_view. */
PetscErrorCode GetIoLog(const IoLog **log);
} // namespace birdflow::io
