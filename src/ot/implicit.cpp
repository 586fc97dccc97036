// Implicit differentiation through the Sinkhorn fixed point.
//
// With P = diag(a) E diag(b), E_ij = exp((f_i + g_j - C_ij) / eps), mu = P 1 and nu = P^T 1, the
// linearised optimality conditions are J [x; y] = r with the symmetric PSD block matrix
// J = [[diag(mu), P], [P^T, diag(nu)]], whose null space is (1, -1). We eliminate y and solve the
// Schur complement on the support of a, scaled by the marginals:
//   (I - K K^T) x~ = diag(mu)^{-1/2} (r1 - P diag(1/nu) r2),  K = diag(mu)^{-1/2} P
//   diag(nu)^{-1/2},
// with x = diag(mu)^{-1/2} x~ and y = diag(1/nu) (r2 - P^T x). The scaled operator is a MatShell
// (one P^T and one P product per multiplication) solved by KSPCG with the null vector sqrt(mu).
// Cells with zero mass are dropped from the system; their derivatives follow from the row
// conditions sum_j b_j E_ij = 1, which hold at every cell, including zero-mass ones.
#include "ot_internal.hpp"

#include "birdflow/petsc_compat.hpp"

#include <cmath>

namespace birdflow
{
namespace ot_detail
{
namespace
{
/* Operator data of one implicit solve. */
struct ImplicitSystem
{
  OTSolver::Impl *impl = nullptr;
  bool symmetric = false;        // (I + K) of the self-transport, else (I - K K^T)
  std::vector<PetscInt> support; // row-layout indices with mu > 0
  std::vector<double> sqrt_mu;   // per support entry
  std::vector<double> row_log;   // log a + f / eps (row layout)
  std::vector<double> col_log;   // log b + g / eps (column layout; unused when symmetric)
  std::vector<double> nu_col;    // P^T 1 (column layout; unused when symmetric)
};

// z_row = 0 off the support, v / sqrt(mu) on it.
void ScatterScaled(const ImplicitSystem &sys, const PetscScalar *v, std::vector<double> *z_row)
{
  z_row->assign(sys.impl->layout.n_row_layout, 0.0);
  for (size_t k = 0; k < sys.support.size(); ++k)
    (*z_row)[sys.support[k]] = v[k] / sys.sqrt_mu[k];
}

PetscErrorCode SchurMult(Mat A, Vec v, Vec out)
{
  ImplicitSystem *sys;
  const PetscScalar *v_array;
  PetscScalar *out_array;
  std::vector<double> z_row, w_col, q_row;

  PetscFunctionBeginUser;
  PetscCall(MatShellGetContext(A, &sys));
  OTSolver::Impl &impl = *sys->impl;
  PetscCall(PetscLogEventBegin(impl.events.hess_mult, 0, 0, 0, 0));
  PetscCall(VecGetArrayRead(v, &v_array));
  ScatterScaled(*sys, v_array, &z_row);
  q_row.resize(impl.layout.n_row_layout);
  if (sys->symmetric) {
    PetscCall(SignedApplyRowsToRows(impl, sys->row_log, sys->row_log, z_row.data(), q_row.data()));
  } else {
    w_col.resize(impl.layout.n_col_layout);
    PetscCall(SignedApplyFromRows(impl, KernelWeight::kPlain, sys->row_log, sys->col_log,
                                  z_row.data(), w_col.data()));
    for (size_t j = 0; j < w_col.size(); ++j)
      w_col[j] = sys->nu_col[j] > 0 ? w_col[j] / sys->nu_col[j] : 0;
    PetscCall(SignedApplyFromColumns(impl, KernelWeight::kPlain, sys->row_log, sys->col_log,
                                     w_col.data(), q_row.data()));
  }
  PetscCall(VecGetArray(out, &out_array));
  const double sign = sys->symmetric ? 1.0 : -1.0;
  for (size_t k = 0; k < sys->support.size(); ++k)
    out_array[k] = v_array[k] + sign * q_row[sys->support[k]] / sys->sqrt_mu[k];
  PetscCall(VecRestoreArray(out, &out_array));
  PetscCall(VecRestoreArrayRead(v, &v_array));
  PetscCall(PetscLogEventEnd(impl.events.hess_mult, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Fills the support and sqrt(mu) from the row marginal mu_row.
void SetSupport(const std::vector<double> &mu_row, ImplicitSystem *sys)
{
  sys->support.clear();
  sys->sqrt_mu.clear();
  for (size_t i = 0; i < mu_row.size(); ++i)
    if (mu_row[i] > 0) {
      sys->support.push_back((PetscInt)i);
      sys->sqrt_mu.push_back(std::sqrt(mu_row[i]));
    }
}

// Solves the scaled system for the right-hand side rhs_row (row layout, only the support is read)
// and returns x_row (row layout, 0 off the support). Collective.
PetscErrorCode SolveImplicit(ImplicitSystem &sys, const std::vector<double> &rhs_row,
                             std::vector<double> *x_row, OTReport *report)
{
  OTSolver::Impl &impl = *sys.impl;
  MPI_Comm comm = impl.layout.comm;
  const PetscInt m = (PetscInt)sys.support.size();
  Vec rhs, x, null_vector;
  Mat A;
  KSP ksp;
  PC pc;
  MatNullSpace null_space = nullptr;
  PetscScalar *array;
  PetscInt iterations;
  KSPConvergedReason reason;

  PetscFunctionBeginUser;
  PetscCall(PetscLogEventBegin(impl.events.implicit_solve, 0, 0, 0, 0));
  PetscCall(VecCreateMPI(comm, m, PETSC_DETERMINE, &rhs));
  PetscCall(VecDuplicate(rhs, &x));
  PetscCall(VecGetArray(rhs, &array));
  for (PetscInt k = 0; k < m; ++k)
    array[k] = rhs_row[sys.support[k]] / sys.sqrt_mu[k];
  PetscCall(VecRestoreArray(rhs, &array));

  PetscCall(MatCreateShell(comm, m, m, PETSC_DETERMINE, PETSC_DETERMINE, &sys, &A));
  PetscCall(MatShellSetOperation(A, MATOP_MULT, (void (*)(void))SchurMult));
  PetscCall(MatSetOption(A, MAT_SYMMETRIC, PETSC_TRUE));
  if (!sys.symmetric) {
    PetscCall(VecDuplicate(rhs, &null_vector));
    PetscCall(VecGetArray(null_vector, &array));
    for (PetscInt k = 0; k < m; ++k)
      array[k] = sys.sqrt_mu[k];
    PetscCall(VecRestoreArray(null_vector, &array));
    PetscCall(VecNormalize(null_vector, nullptr));
    PetscCall(MatNullSpaceCreate(comm, PETSC_FALSE, 1, &null_vector, &null_space));
    PetscCall(MatSetNullSpace(A, null_space));
    PetscCall(MatNullSpaceRemove(null_space, rhs));
    PetscCall(VecDestroy(&null_vector));
  }

  PetscCall(KSPCreate(comm, &ksp));
  PetscCall(KSPSetOptionsPrefix(ksp, "ot_hess_"));
  PetscCall(KSPSetOperators(ksp, A, A));
  PetscCall(KSPSetType(ksp, KSPCG));
  PetscCall(KSPGetPC(ksp, &pc));
  PetscCall(PCSetType(pc, PCNONE));
  PetscCall(KSPSetTolerances(ksp, 1e-10, 1e-50, PETSC_DEFAULT, 10000));
  PetscCall(KSPSetFromOptions(ksp));
  PetscCall(KSPSolve(ksp, rhs, x));
  PetscCall(KSPGetIterationNumber(ksp, &iterations));
  PetscCall(KSPGetConvergedReason(ksp, &reason));
  report->ksp_iterations += iterations;
  if (report->ksp_reason >= 0) report->ksp_reason = reason;

  x_row->assign(impl.layout.n_row_layout, 0.0);
  PetscCall(VecGetArray(x, &array));
  for (PetscInt k = 0; k < m; ++k)
    (*x_row)[sys.support[k]] = array[k] / sys.sqrt_mu[k];
  PetscCall(VecRestoreArray(x, &array));

  PetscCall(KSPDestroy(&ksp));
  PetscCall(MatNullSpaceDestroy(&null_space));
  PetscCall(MatDestroy(&A));
  PetscCall(VecDestroy(&x));
  PetscCall(VecDestroy(&rhs));
  PetscCall(PetscLogEventEnd(impl.events.implicit_solve, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Prepares the (I - K K^T) system of OT(a, b): logs of the plan factors and both marginals.
PetscErrorCode SetupTransportSystem(OTSolver::Impl &impl, ImplicitSystem *sys)
{
  const double eps = impl.eps;
  const std::vector<double> ones_row(impl.layout.n_row_layout, 1.0);
  std::vector<double> mu_row(impl.layout.n_row_layout);

  PetscFunctionBeginUser;
  sys->impl = &impl;
  sys->symmetric = false;
  sys->row_log.resize(impl.f_row.size());
  for (size_t i = 0; i < impl.f_row.size(); ++i)
    sys->row_log[i] = impl.log_a_row[i] + impl.f_row[i] / eps;
  sys->col_log.resize(impl.g_col.size());
  for (size_t j = 0; j < impl.g_col.size(); ++j)
    sys->col_log[j] = impl.log_b_col[j] + impl.g_col[j] / eps;
  sys->nu_col.resize(impl.g_col.size());
  PetscCall(SignedApplyFromRows(impl, KernelWeight::kPlain, sys->row_log, sys->col_log,
                                ones_row.data(), sys->nu_col.data()));
  const std::vector<double> ones_col(impl.layout.n_col_layout, 1.0);
  PetscCall(SignedApplyFromColumns(impl, KernelWeight::kPlain, sys->row_log, sys->col_log,
                                   ones_col.data(), mu_row.data()));
  SetSupport(mu_row, sys);
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Solves J [x; y] = [r1; r2] through the Schur complement. Collective.
PetscErrorCode SolveTransportSystem(ImplicitSystem &sys, const std::vector<double> &r1_row,
                                    const std::vector<double> &r2_col, std::vector<double> *x_row,
                                    std::vector<double> *y_col, OTReport *report)
{
  OTSolver::Impl &impl = *sys.impl;
  std::vector<double> scaled_col(r2_col.size()), q_row(r1_row.size()), rhs_row(r1_row.size());

  PetscFunctionBeginUser;
  for (size_t j = 0; j < r2_col.size(); ++j)
    scaled_col[j] = sys.nu_col[j] > 0 ? r2_col[j] / sys.nu_col[j] : 0;
  PetscCall(SignedApplyFromColumns(impl, KernelWeight::kPlain, sys.row_log, sys.col_log,
                                   scaled_col.data(), q_row.data()));
  for (size_t i = 0; i < r1_row.size(); ++i)
    rhs_row[i] = r1_row[i] - q_row[i];
  PetscCall(SolveImplicit(sys, rhs_row, x_row, report));
  y_col->resize(r2_col.size());
  PetscCall(SignedApplyFromRows(impl, KernelWeight::kPlain, sys.row_log, sys.col_log, x_row->data(),
                                y_col->data()));
  for (size_t j = 0; j < r2_col.size(); ++j)
    (*y_col)[j] = sys.nu_col[j] > 0 ? (r2_col[j] - (*y_col)[j]) / sys.nu_col[j] : 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

std::vector<double> Scaled(const std::vector<double> &values, double factor)
{
  std::vector<double> out(values);
  for (double &v : out)
    v *= factor;
  return out;
}
} // namespace

PetscErrorCode SharpCostGradient(OTSolver::Impl &impl, std::vector<double> *gradient_a_row,
                                 std::vector<double> *gradient_b_row, OTReport *report)
{
  const double eps = impl.eps;
  const PetscInt n_row = impl.layout.n_row_layout, n_col = impl.layout.n_col_layout;
  const std::vector<double> f_log = Scaled(impl.f_row, 1.0 / eps),
                            g_log = Scaled(impl.g_col, 1.0 / eps);
  ImplicitSystem sys;
  std::vector<double> w_row(n_row), w_col(n_col), r1(n_row), r2(n_col), x_row, y_col;
  std::vector<double> t_row(n_row), t_col(n_col), grad_b_col(n_col);

  PetscFunctionBeginUser;
  PetscCall(SetupTransportSystem(impl, &sys));

  // 1. w_i = sum_j C_ij b_j E_ij and w'_j = sum_i C_ij a_i E_ij; the right-hand side is
  //    r = (a w, b w'), the row and column sums of P o C.
  PetscCall(CostWeightedFromColumns(impl, f_log, sys.col_log, w_row.data()));
  PetscCall(CostWeightedFromRows(impl, sys.row_log, g_log, w_col.data()));
  for (PetscInt i = 0; i < n_row; ++i)
    r1[i] = impl.a_row[i] * w_row[i];
  for (PetscInt j = 0; j < n_col; ++j)
    r2[j] = impl.b_col[j] * w_col[j];

  // 2. One implicit solve.
  PetscCall(SolveTransportSystem(sys, r1, r2, &x_row, &y_col, report));

  // 3. d<C,P>/da_i = w_i - sum_j E_ij b_j y_j and d<C,P>/db_j = w'_j - sum_i E_ij a_i x_i.
  PetscCall(SignedApplyFromColumns(impl, KernelWeight::kPlain, f_log, sys.col_log, y_col.data(),
                                   t_row.data()));
  gradient_a_row->resize(n_row);
  for (PetscInt i = 0; i < n_row; ++i)
    (*gradient_a_row)[i] = w_row[i] - t_row[i];
  PetscCall(SignedApplyFromRows(impl, KernelWeight::kPlain, sys.row_log, g_log, x_row.data(),
                                t_col.data()));
  for (PetscInt j = 0; j < n_col; ++j)
    grad_b_col[j] = w_col[j] - t_col[j];
  gradient_b_row->resize(n_row);
  PetscCall(TransposeColumnsToRows(impl, 1, grad_b_col.data(), gradient_b_row->data()));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode DivergenceHessianProduct(OTSolver::Impl &impl, const std::vector<double> &v_row,
                                        std::vector<double> *hv_row, OTReport *report)
{
  const double eps = impl.eps;
  const PetscInt n_row = impl.layout.n_row_layout, n_col = impl.layout.n_col_layout;
  const std::vector<double> f_log = Scaled(impl.f_row, 1.0 / eps);
  const std::vector<double> ones_row(n_row, 1.0), ones_col(n_col, 1.0);
  ImplicitSystem sys, sym;
  std::vector<double> s_col(n_col), zero_row(n_row, 0.0), r2(n_col), x_row, y_col;
  std::vector<double> df_ab(n_row), row_sum(n_row);

  PetscFunctionBeginUser;
  // 1. OT(a, b): J [df; dg] = [0; -eps s] with s_j = b_j sum_i E_ij v_i, then
  //    df_i = -(E diag(b) dg)_i / (E diag(b) 1)_i at every cell.
  PetscCall(SetupTransportSystem(impl, &sys));
  PetscCall(SignedApplyFromRows(impl, KernelWeight::kPlain, f_log, sys.col_log, v_row.data(),
                                s_col.data()));
  for (PetscInt j = 0; j < n_col; ++j)
    r2[j] = -eps * s_col[j];
  PetscCall(SolveTransportSystem(sys, zero_row, r2, &x_row, &y_col, report));
  PetscCall(SignedApplyFromColumns(impl, KernelWeight::kPlain, f_log, sys.col_log, y_col.data(),
                                   df_ab.data()));
  PetscCall(SignedApplyFromColumns(impl, KernelWeight::kPlain, f_log, sys.col_log, ones_col.data(),
                                   row_sum.data()));
  for (PetscInt i = 0; i < n_row; ++i)
    df_ab[i] = -df_ab[i] / row_sum[i];

  // 2. OT(a, a) / 2: (diag(mu) + P) z = -eps diag(a) E v on the support, then
  //    df_i = (-eps (E v)_i - (E diag(a) z)_i) / (E a)_i at every cell.
  const std::vector<double> faa_log = Scaled(impl.f_aa, 1.0 / eps);
  std::vector<double> ev(n_row), ea(n_row), mu(n_row), rhs(n_row), z_row, ez(n_row);
  sym.impl = &impl;
  sym.symmetric = true;
  sym.row_log.resize(n_row);
  for (PetscInt i = 0; i < n_row; ++i)
    sym.row_log[i] = impl.log_a_row[i] + faa_log[i];
  PetscCall(SignedApplyRowsToRows(impl, faa_log, sym.row_log, ones_row.data(), ea.data()));
  for (PetscInt i = 0; i < n_row; ++i)
    mu[i] = impl.a_row[i] * ea[i];
  SetSupport(mu, &sym);
  PetscCall(SignedApplyRowsToRows(impl, faa_log, faa_log, v_row.data(), ev.data()));
  for (PetscInt i = 0; i < n_row; ++i)
    rhs[i] = -eps * impl.a_row[i] * ev[i];
  PetscCall(SolveImplicit(sym, rhs, &z_row, report));
  PetscCall(SignedApplyRowsToRows(impl, faa_log, sym.row_log, z_row.data(), ez.data()));

  hv_row->resize(n_row);
  for (PetscInt i = 0; i < n_row; ++i) {
    double df_aa = (-eps * ev[i] - ez[i]) / ea[i];
    (*hv_row)[i] = df_ab[i] - df_aa;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace ot_detail
} // namespace birdflow
