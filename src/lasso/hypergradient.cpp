#include "birdflow/lasso.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>

namespace birdflow::lasso
{
namespace
{
PetscLogEvent reduced_mult_event = 0;

// Context of the reduced Hessian X_S^T X_S / n as a MatShell on vectors of length |S|. X_S is the
// column submatrix of the training matrix on the support, so a product costs n |S|, not n p.
struct ReducedHessian
{
  Mat X_S = nullptr;
  PetscInt n = 0;
  Vec rows = nullptr;
  Vec diagonal = nullptr;
};

PetscErrorCode ReducedHessianMult(Mat H, Vec z, Vec out)
{
  ReducedHessian *ctx;

  PetscFunctionBeginUser;
  PetscCall(MatShellGetContext(H, &ctx));
  PetscCall(PetscLogEventBegin(reduced_mult_event, 0, 0, 0, 0));
  PetscCall(MatMult(ctx->X_S, z, ctx->rows));
  PetscCall(MatMultTranspose(ctx->X_S, ctx->rows, out));
  PetscCall(VecScale(out, 1.0 / ctx->n));
  PetscCall(PetscLogEventEnd(reduced_mult_event, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ReducedHessianDiagonal(Mat H, Vec diagonal)
{
  ReducedHessian *ctx;

  PetscFunctionBeginUser;
  PetscCall(MatShellGetContext(H, &ctx));
  PetscCall(VecCopy(ctx->diagonal, diagonal));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Creates a vector in the support layout with entries values[S[k]] for the owned k.
PetscErrorCode SupportVector(MPI_Comm comm, const std::vector<PetscInt> &support,
                             const std::vector<double> &values, Vec *v)
{
  PetscInt start, end;
  PetscScalar *local;

  PetscFunctionBeginUser;
  PetscCall(VecCreateMPI(comm, PETSC_DECIDE, static_cast<PetscInt>(support.size()), v));
  PetscCall(VecGetOwnershipRange(*v, &start, &end));
  PetscCall(VecGetArray(*v, &local));
  for (PetscInt k = start; k < end; ++k)
    local[k - start] = values[support[k]];
  PetscCall(VecRestoreArray(*v, &local));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

PetscErrorCode ImplicitHypergradient::Create(const Problem &problem)
{
  PetscFunctionBeginUser;
  problem_ = &problem;
  if (!reduced_mult_event) {
    PetscClassId classid;
    PetscCall(PetscClassIdRegister("LassoHypergrad", &classid));
    PetscCall(PetscLogEventRegister("LassoReducedMult", classid, &reduced_mult_event));
  }
  PetscCall(solver_.Create(problem.comm, "lasso_hyper_"));
  column_norm_sq_.assign(problem.p, 0.0);
  PetscCall(MatGetColumnNorms(problem.X_train, NORM_2, column_norm_sq_.data()));
  for (double &v : column_norm_sq_)
    v = v * v / problem.n_train;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ImplicitHypergradient::Compute(const Solution &solution,
                                              const std::vector<double> &validation_gradient,
                                              HypergradientReport *report)
{
  MPI_Comm comm = problem_->comm;
  std::vector<PetscInt> support;
  std::vector<double> sign(problem_->p, 0.0);
  ReducedHessian ctx;
  Mat H;
  Vec rhs, sign_support;
  IS owned_support, owned_rows;
  PetscInt start, end, row_start, row_end;

  PetscFunctionBeginUser;
  for (PetscInt j = 0; j < problem_->p; ++j)
    if (solution.w[j] != 0.0) {
      support.push_back(j);
      sign[j] = solution.w[j] > 0 ? 1.0 : -1.0;
    }
  report->support_size = static_cast<PetscInt>(support.size());
  report->solve = birdflow::implicit::SolveReport();
  report->value = 0.0;
  if (support.empty()) PetscFunctionReturn(PETSC_SUCCESS);

  // 1. The reduced Hessian on the support as a MatShell, and v_S.
  PetscCall(SupportVector(comm, support, validation_gradient, &rhs));
  PetscCall(SupportVector(comm, support, sign, &sign_support));
  PetscCall(SupportVector(comm, support, column_norm_sq_, &ctx.diagonal));
  PetscCall(VecGetOwnershipRange(rhs, &start, &end));
  PetscCall(ISCreateGeneral(comm, end - start, support.data() + start, PETSC_COPY_VALUES,
                            &owned_support));
  PetscCall(MatGetOwnershipRange(problem_->X_train, &row_start, &row_end));
  PetscCall(ISCreateStride(comm, row_end - row_start, row_start, 1, &owned_rows));
  PetscCall(MatCreateSubMatrix(problem_->X_train, owned_rows, owned_support, MAT_INITIAL_MATRIX,
                               &ctx.X_S));
  ctx.n = problem_->n_train;
  PetscCall(MatCreateVecs(ctx.X_S, nullptr, &ctx.rows));
  PetscCall(MatCreateShell(comm, end - start, end - start, static_cast<PetscInt>(support.size()),
                           static_cast<PetscInt>(support.size()), &ctx, &H));
  PetscCall(MatShellSetOperation(H, MATOP_MULT, (void (*)(void))ReducedHessianMult));
  PetscCall(MatShellSetOperation(H, MATOP_GET_DIAGONAL, (void (*)(void))ReducedHessianDiagonal));
  PetscCall(MatSetOption(H, MAT_SYMMETRIC, PETSC_TRUE));

  // 2. One adjoint solve; with theta = log(alpha), B = d(grad_w)/d theta = alpha sign(w_S).
  const double alpha = solution.alpha;
  auto cross_transpose = [&](Vec z, std::vector<double> *out) -> PetscErrorCode {
    PetscScalar dot;
    PetscFunctionBeginUser;
    PetscCall(VecDot(z, sign_support, &dot));
    out->assign(1, alpha * dot);
    PetscFunctionReturn(PETSC_SUCCESS);
  };
  std::vector<double> hypergradient;
  Vec guess;
  previous_adjoint_.resize(problem_->p, 0.0);
  PetscCall(SupportVector(comm, support, previous_adjoint_, &guess));
  PetscCall(solver_.Compute(H, rhs, {0.0}, cross_transpose, &hypergradient, &report->solve, guess));
  report->value = hypergradient[0];
  PetscCall(VecDestroy(&guess));

  // 3. Keep z by feature for the next call's initial guess.
  Vec all;
  VecScatter gather;
  const PetscScalar *z;
  PetscCall(VecScatterCreateToAll(solver_.Adjoint(), &gather, &all));
  PetscCall(VecScatterBegin(gather, solver_.Adjoint(), all, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(gather, solver_.Adjoint(), all, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecGetArrayRead(all, &z));
  std::fill(previous_adjoint_.begin(), previous_adjoint_.end(), 0.0);
  for (size_t k = 0; k < support.size(); ++k)
    previous_adjoint_[support[k]] = z[k];
  PetscCall(VecRestoreArrayRead(all, &z));
  PetscCall(VecScatterDestroy(&gather));
  PetscCall(VecDestroy(&all));

  PetscCall(MatDestroy(&H));
  PetscCall(MatDestroy(&ctx.X_S));
  PetscCall(ISDestroy(&owned_rows));
  PetscCall(VecDestroy(&ctx.rows));
  PetscCall(VecDestroy(&ctx.diagonal));
  PetscCall(ISDestroy(&owned_support));
  PetscCall(VecDestroy(&rhs));
  PetscCall(VecDestroy(&sign_support));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ImplicitHypergradient::Destroy()
{
  PetscFunctionBeginUser;
  PetscCall(solver_.Destroy());
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::lasso
