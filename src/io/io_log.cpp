#include "io_log.hpp"

#include "birdflow/petsc_compat.hpp"

namespace birdflow::io
{
PetscErrorCode GetIoLog(const IoLog **log)
{
  static IoLog events;
  static bool registered = false;

  PetscFunctionBeginUser;
  if (!registered) {
    PetscClassId class_id;
    PetscCall(PetscClassIdRegister("BirdFlow I/O", &class_id));
    PetscCall(PetscLogStageRegister("Species I/O", &events.stage));
    PetscCall(PetscLogEventRegister("IORead", class_id, &events.read));
    PetscCall(PetscLogEventRegister("IOBroadcast", class_id, &events.broadcast));
    PetscCall(PetscLogEventRegister("IOValidate", class_id, &events.validate));
    PetscCall(PetscLogEventRegister("IOCopyInput", class_id, &events.copy));
    PetscCall(PetscLogEventRegister("IOWriteMarg", class_id, &events.write));
    registered = true;
  }
  *log = &events;
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::io
