#include "broadcast.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>

namespace birdflow::io
{
PetscErrorCode Packer::Broadcast(MPI_Comm comm, int root)
{
  unsigned long long size = buffer_.size();

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, root, comm));
  buffer_.resize(size);
  // MPI counts are int, so send a large buffer in pieces of at most 1 GiB.
  const unsigned long long piece = 1ull << 30;
  for (unsigned long long start = 0; start < size; start += piece) {
    int count = (int)std::min(piece, size - start);
    PetscCallMPI(MPI_Bcast(buffer_.data() + start, count, MPI_CHAR, root, comm));
  }
  offset_ = 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

namespace
{
PetscErrorCode BroadcastErrorFrom(MPI_Comm comm, int root, PetscErrorCode code,
                                  const std::string &message)
{
  Packer packer;

  PetscFunctionBeginUser;
  packer.Put((int)code);
  packer.Put(message);
  PetscCall(packer.Broadcast(comm, root));
  int shared_code = 0;
  std::string shared_message;
  packer.Get(&shared_code);
  packer.Get(&shared_message);
  PetscCheck(shared_code == 0, comm, (PetscErrorCode)shared_code, "%s", shared_message.c_str());
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

PetscErrorCode BroadcastError(MPI_Comm comm, PetscErrorCode code, const std::string &message)
{
  PetscFunctionBeginUser;
  PetscCall(BroadcastErrorFrom(comm, 0, code, message));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ShareFirstError(MPI_Comm comm, PetscErrorCode code, const std::string &message)
{
  PetscMPIInt rank, size;
  int first = 0;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  int candidate = code ? rank : size;
  PetscCallMPI(MPI_Allreduce(&candidate, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first < size) PetscCall(BroadcastErrorFrom(comm, first, code, message));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::io
