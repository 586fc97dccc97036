#include "double_double.hpp"

#include "birdflow/petsc_compat.hpp"

namespace birdflow
{
namespace
{
void SumDoubleDouble(void *in, void *inout, int *count, MPI_Datatype *)
{
  auto *a = static_cast<DoubleDouble *>(in);
  auto *b = static_cast<DoubleDouble *>(inout);
  for (int i = 0; i < *count; ++i)
    b[i] = Combine(b[i], a[i]);
}

// The datatype and operation live until MPI_Finalize, which frees them.
PetscErrorCode GetDoubleDoubleOp(MPI_Datatype *type, MPI_Op *op)
{
  static MPI_Datatype pair_type = MPI_DATATYPE_NULL;
  static MPI_Op sum_op = MPI_OP_NULL;

  PetscFunctionBeginUser;
  if (pair_type == MPI_DATATYPE_NULL) {
    PetscCallMPI(MPI_Type_contiguous(2, MPI_DOUBLE, &pair_type));
    PetscCallMPI(MPI_Type_commit(&pair_type));
    PetscCallMPI(MPI_Op_create(SumDoubleDouble, 1, &sum_op));
  }
  *type = pair_type;
  *op = sum_op;
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

PetscErrorCode AllreduceDoubleDouble(MPI_Comm comm, DoubleDouble *values, int count)
{
  MPI_Datatype type;
  MPI_Op op;

  PetscFunctionBeginUser;
  PetscCall(GetDoubleDoubleOp(&type, &op));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, values, count, type, op, comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
