#include "birdflow/implicit.hpp"

#include "birdflow/petsc_compat.hpp"

#include <cmath>

namespace birdflow::implicit
{
namespace
{
PetscLogEvent adjoint_solve_event = 0;

PetscErrorCode RegisterEvents()
{
  static bool registered = false;
  PetscClassId classid;

  PetscFunctionBeginUser;
  if (!registered) {
    PetscCall(PetscClassIdRegister("Bilevel", &classid));
    PetscCall(PetscLogEventRegister("HypergradSolve", classid, &adjoint_solve_event));
    registered = true;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Returns the shift of the fallback solve: 1e-8 times the largest diagonal entry of A.
PetscErrorCode FallbackShift(Mat A, Vec like, double *shift)
{
  PetscBool has_diagonal;
  Vec diagonal;
  PetscReal max_diagonal = 0.0;

  PetscFunctionBeginUser;
  *shift = 1e-8;
  PetscCall(MatHasOperation(A, MATOP_GET_DIAGONAL, &has_diagonal));
  if (!has_diagonal) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(VecDuplicate(like, &diagonal));
  PetscCall(MatGetDiagonal(A, diagonal));
  PetscCall(VecNorm(diagonal, NORM_INFINITY, &max_diagonal));
  PetscCall(VecDestroy(&diagonal));
  if (max_diagonal > 0) *shift = 1e-8 * max_diagonal;
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

PetscErrorCode HypergradientSolver::Create(MPI_Comm comm, const char *prefix)
{
  PC pc;

  PetscFunctionBeginUser;
  PetscCall(RegisterEvents());
  prefix_ = prefix;
  PetscCall(KSPCreate(comm, &ksp_));
  PetscCall(KSPSetOptionsPrefix(ksp_, prefix));
  PetscCall(KSPSetType(ksp_, KSPCG));
  PetscCall(KSPGetPC(ksp_, &pc));
  PetscCall(PCSetType(pc, PCNONE));
  PetscCall(KSPSetTolerances(ksp_, 1e-10, 1e-50, PETSC_DEFAULT, 1000));
  PetscCall(KSPSetFromOptions(ksp_));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode HypergradientSolver::SolveOnce(Mat A, Vec rhs, bool nonzero_guess,
                                              SolveReport *report)
{
  PetscReal norm;

  PetscFunctionBeginUser;
  // The operator may change size between calls (a Lasso support does), which KSP only accepts
  // after a reset; the type, prefix and options stay.
  PetscCall(KSPReset(ksp_));
  PetscCall(KSPSetOperators(ksp_, A, A));
  PetscCall(KSPSetInitialGuessNonzero(ksp_, nonzero_guess ? PETSC_TRUE : PETSC_FALSE));
  PetscCall(KSPSolve(ksp_, rhs, z_));
  PetscCall(KSPGetIterationNumber(ksp_, &report->iterations));
  PetscCall(KSPGetConvergedReason(ksp_, &report->reason));
  PetscCall(KSPGetResidualNorm(ksp_, &norm));
  report->residual_norm = norm;
  PetscCall(VecNorm(z_, NORM_2, &norm));
  if (!std::isfinite(norm) && report->reason > 0) report->reason = KSP_DIVERGED_NANORINF;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode HypergradientSolver::Compute(Mat A, Vec grad_w_outer,
                                            const std::vector<double> &grad_theta_outer,
                                            const CrossTransposeFn &cross_transpose,
                                            std::vector<double> *hypergradient, SolveReport *report,
                                            Vec initial_guess)
{
  MPI_Comm comm;
  std::vector<double> cross;

  PetscFunctionBeginUser;
  PetscCall(PetscObjectGetComm((PetscObject)ksp_, &comm));
  PetscCall(PetscLogEventBegin(adjoint_solve_event, 0, 0, 0, 0));
  PetscCall(VecDestroy(&z_));
  PetscCall(VecDuplicate(grad_w_outer, &z_));
  if (initial_guess) PetscCall(VecCopy(initial_guess, z_));
  report->shift = 0.0;
  PetscCall(SolveOnce(A, grad_w_outer, initial_guess != nullptr, report));

  // 1. A singular A (collinear columns of a Lasso support, say) stalls or breaks CG: retry once
  //    with a small shift, which gives the minimum-norm-like solution on the range of A.
  if (report->reason < 0) {
    PetscCall(FallbackShift(A, grad_w_outer, &report->shift));
    PetscCall(PetscInfo(ksp_, "adjoint solve failed (%s); retrying with shift %g\n",
                        KSPConvergedReasons[report->reason], report->shift));
    PetscCall(MatShift(A, report->shift));
    PetscCall(VecZeroEntries(z_));
    PetscCall(SolveOnce(A, grad_w_outer, false, report));
    PetscCall(MatShift(A, -report->shift));
  }
  PetscCheck(report->reason > 0, comm, PETSC_ERR_NOT_CONVERGED,
             "hypergradient: the adjoint solve failed (%s after %" PetscInt_FMT
             " iterations, also with shift %g); check -%sksp_type and -%sksp_max_it",
             KSPConvergedReasons[report->reason], report->iterations, report->shift,
             prefix_.c_str(), prefix_.c_str());

  // 2. grad_theta = d_theta L - B^T z.
  PetscCall(cross_transpose(z_, &cross));
  PetscCheck(cross.size() == grad_theta_outer.size(), comm, PETSC_ERR_ARG_SIZ,
             "hypergradient: B^T z has %zu entries but there are %zu hyperparameters", cross.size(),
             grad_theta_outer.size());
  hypergradient->resize(cross.size());
  for (size_t k = 0; k < cross.size(); ++k) {
    (*hypergradient)[k] = grad_theta_outer[k] - cross[k];
    PetscCheck(std::isfinite((*hypergradient)[k]), comm, PETSC_ERR_FP,
               "hypergradient: entry %zu is not finite", k);
  }
  PetscCall(PetscLogEventEnd(adjoint_solve_event, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode HypergradientSolver::Destroy()
{
  PetscFunctionBeginUser;
  PetscCall(KSPDestroy(&ksp_));
  PetscCall(VecDestroy(&z_));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::implicit
