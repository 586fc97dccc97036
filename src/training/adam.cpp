#include "birdflow/petsc_compat.hpp"
#include "birdflow/training.hpp"

#include <cmath>

namespace birdflow
{
PetscErrorCode AdamOptionsSetFromOptions(MPI_Comm comm, AdamOptions *options)
{
  PetscFunctionBeginUser;
  PetscOptionsBegin(comm, "adam_", "Adam optimiser", "training");
  PetscCall(PetscOptionsReal("-beta1", "Decay rate of the first moment", "Adam", options->beta1,
                             &options->beta1, nullptr));
  PetscCall(PetscOptionsReal("-beta2", "Decay rate of the second moment", "Adam", options->beta2,
                             &options->beta2, nullptr));
  PetscCall(PetscOptionsReal("-epsilon", "Term added to the root of the second moment", "Adam",
                             options->epsilon, &options->epsilon, nullptr));
  PetscOptionsEnd();
  PetscCheck(options->beta1 >= 0 && options->beta1 < 1, comm, PETSC_ERR_USER_INPUT,
             "invalid -adam_beta1 %g: use a value in [0, 1)", options->beta1);
  PetscCheck(options->beta2 >= 0 && options->beta2 < 1, comm, PETSC_ERR_USER_INPUT,
             "invalid -adam_beta2 %g: use a value in [0, 1)", options->beta2);
  PetscCheck(options->epsilon > 0, comm, PETSC_ERR_USER_INPUT,
             "invalid -adam_epsilon %g: use a positive value", options->epsilon);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode AdamCreate(Vec theta, const AdamOptions &options, Adam *adam)
{
  PetscFunctionBeginUser;
  adam->options = options;
  adam->step = 0;
  PetscCall(VecDuplicate(theta, &adam->first_moment));
  PetscCall(VecDuplicate(theta, &adam->second_moment));
  PetscCall(VecSet(adam->first_moment, 0.0));
  PetscCall(VecSet(adam->second_moment, 0.0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode AdamDestroy(Adam *adam)
{
  PetscFunctionBeginUser;
  PetscCall(VecDestroy(&adam->first_moment));
  PetscCall(VecDestroy(&adam->second_moment));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode AdamUpdate(Adam *adam, Vec grad, Vec theta)
{
  const AdamOptions &o = adam->options;
  const PetscScalar *g;
  PetscScalar *x, *m, *v;
  PetscInt n;

  PetscFunctionBeginUser;
  adam->step += 1;
  // theta -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - beta1^s), v_hat likewise.
  const double m_scale = 1.0 / (1.0 - std::pow(o.beta1, (double)adam->step));
  const double v_scale = 1.0 / (1.0 - std::pow(o.beta2, (double)adam->step));
  PetscCall(VecGetLocalSize(theta, &n));
  PetscCall(VecGetArrayRead(grad, &g));
  PetscCall(VecGetArray(theta, &x));
  PetscCall(VecGetArray(adam->first_moment, &m));
  PetscCall(VecGetArray(adam->second_moment, &v));
  for (PetscInt i = 0; i < n; ++i) {
    m[i] = o.beta1 * m[i] + (1.0 - o.beta1) * g[i];
    v[i] = o.beta2 * v[i] + (1.0 - o.beta2) * g[i] * g[i];
    x[i] -= o.learning_rate * (m[i] * m_scale) / (std::sqrt(v[i] * v_scale) + o.epsilon);
  }
  PetscCall(VecRestoreArray(adam->second_moment, &v));
  PetscCall(VecRestoreArray(adam->first_moment, &m));
  PetscCall(VecRestoreArray(theta, &x));
  PetscCall(VecRestoreArrayRead(grad, &g));
  PetscCall(PetscLogFlops(12.0 * n));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
