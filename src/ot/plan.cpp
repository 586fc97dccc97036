// Products with the entropic plan and its relatives, computed through the log-domain kernel.
//
// Every product here has the form out_i = exp(row_log_i) sum_j K_ij exp(col_log_j) z_j with K the
// (possibly cost-weighted) Gibbs kernel. A signed z is split into its positive and negative parts,
// which travel as two fields of one log-domain application.
#include "ot_internal.hpp"

#include "birdflow/petsc_compat.hpp"

#include <cmath>

namespace birdflow
{
namespace ot_detail
{
namespace
{
// Fills two fields: log(max(z, 0)) + base and log(max(-z, 0)) + base.
void SplitSigned(PetscInt n, const double *base, const double *z, double *fields)
{
  for (PetscInt i = 0; i < n; ++i) {
    fields[i] = z[i] > 0 ? base[i] + std::log(z[i]) : kNegInf;
    fields[n + i] = z[i] < 0 ? base[i] + std::log(-z[i]) : kNegInf;
  }
}

// out = exp(out_log + t0) - exp(out_log + t1) from the two result fields t.
void CombineSigned(PetscInt n, const double *out_log, const double *t, double *out)
{
  for (PetscInt i = 0; i < n; ++i) {
    double positive = t[i] == kNegInf ? 0.0 : std::exp(out_log[i] + t[i]);
    double negative = t[n + i] == kNegInf ? 0.0 : std::exp(out_log[i] + t[n + i]);
    out[i] = positive - negative;
  }
}

// out = exp(out_log + t0) + exp(out_log + t1) from two single-field results.
void CombineSum(PetscInt n, const double *out_log, const double *t0, const double *t1, double *out)
{
  for (PetscInt i = 0; i < n; ++i) {
    double first = t0[i] == kNegInf ? 0.0 : std::exp(out_log[i] + t0[i]);
    double second = t1[i] == kNegInf ? 0.0 : std::exp(out_log[i] + t1[i]);
    out[i] = first + second;
  }
}
} // namespace

PetscErrorCode SumOverRanks(MPI_Comm comm, double local, double *global)
{
  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Allreduce(&local, global, 1, MPI_DOUBLE, MPI_SUM, comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode SignedApplyFromColumns(OTSolver::Impl &impl, KernelWeight weight,
                                      const std::vector<double> &row_log,
                                      const std::vector<double> &col_log, const double *z_col,
                                      double *out_row)
{
  const PetscInt n_col = impl.layout.n_col_layout, n_row = impl.layout.n_row_layout;
  std::vector<double> fields(2 * n_col + 1), result(2 * n_row + 1);

  PetscFunctionBeginUser;
  SplitSigned(n_col, col_log.data(), z_col, fields.data());
  PetscCall(LogApplyFromColumns(impl, 2, weight, fields.data(), result.data()));
  CombineSigned(n_row, row_log.data(), result.data(), out_row);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode SignedApplyFromRows(OTSolver::Impl &impl, KernelWeight weight,
                                   const std::vector<double> &row_log,
                                   const std::vector<double> &col_log, const double *z_row,
                                   double *out_col)
{
  const PetscInt n_col = impl.layout.n_col_layout, n_row = impl.layout.n_row_layout;
  std::vector<double> fields(2 * n_row + 1), result(2 * n_col + 1);

  PetscFunctionBeginUser;
  SplitSigned(n_row, row_log.data(), z_row, fields.data());
  PetscCall(LogApplyFromRows(impl, 2, weight, fields.data(), result.data()));
  CombineSigned(n_col, col_log.data(), result.data(), out_col);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode SignedApplyRowsToRows(OTSolver::Impl &impl, const std::vector<double> &out_log,
                                     const std::vector<double> &in_log, const double *z_row,
                                     double *out_row)
{
  const PetscInt n_col = impl.layout.n_col_layout, n_row = impl.layout.n_row_layout;
  std::vector<double> fields(2 * n_row + 1), result_col(2 * n_col + 1), result_row(2 * n_row + 1);

  PetscFunctionBeginUser;
  SplitSigned(n_row, in_log.data(), z_row, fields.data());
  PetscCall(LogApplyFromRows(impl, 2, KernelWeight::kPlain, fields.data(), result_col.data()));
  PetscCall(TransposeColumnsToRows(impl, 2, result_col.data(), result_row.data()));
  CombineSigned(n_row, out_log.data(), result_row.data(), out_row);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CostWeightedFromColumns(OTSolver::Impl &impl, const std::vector<double> &row_log,
                                       const std::vector<double> &col_log, double *out_row)
{
  const PetscInt n_row = impl.layout.n_row_layout;
  std::vector<double> t0(n_row + 1), t1(n_row + 1);

  PetscFunctionBeginUser;
  PetscCall(LogApplyFromColumns(impl, 1, KernelWeight::kCostInRowPass, col_log.data(), t0.data()));
  PetscCall(
      LogApplyFromColumns(impl, 1, KernelWeight::kCostInColumnPass, col_log.data(), t1.data()));
  CombineSum(n_row, row_log.data(), t0.data(), t1.data(), out_row);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CostWeightedFromRows(OTSolver::Impl &impl, const std::vector<double> &row_log,
                                    const std::vector<double> &col_log, double *out_col)
{
  const PetscInt n_col = impl.layout.n_col_layout;
  std::vector<double> t0(n_col + 1), t1(n_col + 1);

  PetscFunctionBeginUser;
  PetscCall(LogApplyFromRows(impl, 1, KernelWeight::kCostInRowPass, row_log.data(), t0.data()));
  PetscCall(LogApplyFromRows(impl, 1, KernelWeight::kCostInColumnPass, row_log.data(), t1.data()));
  CombineSum(n_col, col_log.data(), t0.data(), t1.data(), out_col);
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace ot_detail
} // namespace birdflow
