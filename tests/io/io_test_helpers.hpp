// Helpers shared by the I/O tests.
#pragma once

#include "birdflow/species.hpp"

#include <petscsys.h>

#include <string>

namespace birdflow::testing
{
/* The error code and message of a call made with PETSc's return-only error handler. */
struct CallResult
{
  PetscErrorCode code = 0;
  std::string message;
};

/* Runs `call` with PETSc's error printing off and returns its code and message. */
template <typename Call> CallResult CaptureError(Call call)
{
  CallResult result;
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  result.code = call();
  PetscPopErrorHandler();
  if (result.code) {
    const char *text = nullptr;
    char *specific = nullptr;
    PetscErrorMessage(result.code, &text, &specific);
    result.message = specific && specific[0] ? specific : (text ? text : "");
  }
  return result;
}

/* Path of a generated species-file variant (see tests/scripts/make_species_variants.py). */
inline std::string VariantPath(const std::string &name)
{
  return std::string(BIRDFLOW_IO_VARIANTS_DIR) + "/" + name + ".hdf5";
}
} // namespace birdflow::testing
