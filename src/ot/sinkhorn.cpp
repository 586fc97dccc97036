// Log-domain Sinkhorn iterations with eps annealing (KL convention).
//
//   f_i = -eps LSE_j (log b_j + (g_j - C_ij) / eps),   g_j = -eps LSE_i (log a_i + (f_i - C_ij) /
//   eps)
//
// After the g update the plan has the exact column marginal b, and its row marginal is
// a_i exp((f_i - f'_i) / eps), where f' is the next f update. The stopping test uses that error, so
// the returned (f, g) is the pair whose error is reported.
#include "ot_internal.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>

namespace birdflow
{
namespace ot_detail
{
namespace
{
// sum_i w_i |1 - exp((f_i - f_next_i) / eps)|, the L1 error of the row marginal. Collective.
PetscErrorCode RowMarginalError(OTSolver::Impl &impl, const std::vector<double> &w,
                                const std::vector<double> &f, const std::vector<double> &f_next,
                                double *error)
{
  double local = 0;

  PetscFunctionBeginUser;
  for (size_t i = 0; i < f.size(); ++i)
    if (w[i] > 0) local += w[i] * std::fabs(1.0 - std::exp((f[i] - f_next[i]) / impl.eps));
  PetscCall(SumOverRanks(impl.layout.comm, local, error));
  PetscCheck(!std::isnan(*error), impl.layout.comm, PETSC_ERR_FP,
             "Sinkhorn produced NaN potentials at eps = %g km^2", impl.eps);
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Runs Sinkhorn at the kernel's eps from impl.f_row until the marginal error is below tol.
PetscErrorCode SinkhornStage(OTSolver::Impl &impl, double tol, PetscInt max_iterations,
                             SinkhornStats *stats)
{
  std::vector<double> f_next(impl.f_row.size());

  PetscFunctionBeginUser;
  stats->converged = false;
  for (PetscInt it = 1; it <= max_iterations; ++it) {
    PetscCall(UpdateColumnPotential(impl, impl.f_row, &impl.g_col));
    PetscCall(UpdateRowPotential(impl, impl.g_col, &f_next));
    PetscCall(RowMarginalError(impl, impl.a_row, impl.f_row, f_next, &stats->marginal_error));
    stats->iterations++;
    if (stats->marginal_error < tol) {
      stats->converged = true;
      break;
    }
    if (it < max_iterations) impl.f_row.swap(f_next);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Runs the averaged symmetric iteration f <- (f + T(f)) / 2 at the kernel's eps.
PetscErrorCode SymmetricStage(OTSolver::Impl &impl, const std::vector<double> &log_w_row,
                              const std::vector<double> &w_row, double tol, PetscInt max_iterations,
                              std::vector<double> *f_row, SinkhornStats *stats)
{
  std::vector<double> t_row(f_row->size());

  PetscFunctionBeginUser;
  stats->converged = false;
  for (PetscInt it = 1; it <= max_iterations; ++it) {
    PetscCall(SymmetricTransform(impl, log_w_row, *f_row, &t_row));
    PetscCall(RowMarginalError(impl, w_row, *f_row, t_row, &stats->marginal_error));
    stats->iterations++;
    if (stats->marginal_error < tol) {
      stats->converged = true;
      break;
    }
    for (size_t i = 0; i < f_row->size(); ++i)
      (*f_row)[i] = 0.5 * ((*f_row)[i] + t_row[i]);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

PetscErrorCode UpdateRowPotential(OTSolver::Impl &impl, const std::vector<double> &g_col,
                                  std::vector<double> *f_row)
{
  const double eps = impl.eps;
  std::vector<double> in(g_col.size() + 1);

  PetscFunctionBeginUser;
  for (size_t j = 0; j < g_col.size(); ++j)
    in[j] = impl.log_b_col[j] + g_col[j] / eps;
  f_row->resize(impl.layout.n_row_layout);
  PetscCall(LogApplyFromColumns(impl, 1, KernelWeight::kPlain, in.data(), f_row->data()));
  for (double &value : *f_row)
    value *= -eps;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode UpdateColumnPotential(OTSolver::Impl &impl, const std::vector<double> &f_row,
                                     std::vector<double> *g_col)
{
  const double eps = impl.eps;
  std::vector<double> in(f_row.size() + 1);

  PetscFunctionBeginUser;
  for (size_t i = 0; i < f_row.size(); ++i)
    in[i] = impl.log_a_row[i] + f_row[i] / eps;
  g_col->resize(impl.layout.n_col_layout);
  PetscCall(LogApplyFromRows(impl, 1, KernelWeight::kPlain, in.data(), g_col->data()));
  for (double &value : *g_col)
    value *= -eps;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode SymmetricTransform(OTSolver::Impl &impl, const std::vector<double> &log_w_row,
                                  const std::vector<double> &f_row, std::vector<double> *t_row)
{
  const double eps = impl.eps;
  std::vector<double> in(f_row.size() + 1), out_col(impl.layout.n_col_layout + 1);

  PetscFunctionBeginUser;
  for (size_t i = 0; i < f_row.size(); ++i)
    in[i] = log_w_row[i] + f_row[i] / eps;
  PetscCall(LogApplyFromRows(impl, 1, KernelWeight::kPlain, in.data(), out_col.data()));
  t_row->resize(impl.layout.n_row_layout);
  PetscCall(TransposeColumnsToRows(impl, 1, out_col.data(), t_row->data()));
  for (double &value : *t_row)
    value *= -eps;
  PetscFunctionReturn(PETSC_SUCCESS);
}

std::vector<double> EpsSchedule(const OTSolver::Impl &impl, const OTSettings &settings, bool warm)
{
  const SlabLayout &L = impl.layout;
  std::vector<double> schedule;
  const bool anneal =
      settings.anneal_factor > 0 && settings.anneal_factor < 1 && (!warm || settings.anneal_warm);
  if (anneal) {
    double span2 = (double)(L.nrow - 1) * (L.nrow - 1) + (double)(L.ncol - 1) * (L.ncol - 1);
    double start = settings.anneal_init > 0 ? settings.anneal_init
                                            : L.cell_size * L.cell_size * std::max(1.0, span2);
    for (double e = start; e > impl.eps && schedule.size() < 200; e *= settings.anneal_factor)
      schedule.push_back(e);
  }
  schedule.push_back(impl.eps);
  return schedule;
}

PetscErrorCode SolveSinkhorn(OTSolver::Impl &impl, const OTSettings &settings, bool warm,
                             SinkhornStats *stats)
{
  const double target = impl.eps;
  std::vector<double> schedule = EpsSchedule(impl, settings, warm);

  PetscFunctionBeginUser;
  PetscCall(PetscLogEventBegin(impl.events.sinkhorn, 0, 0, 0, 0));
  if (!warm) impl.f_row.assign(impl.layout.n_row_layout, 0.0);
  *stats = SinkhornStats();
  for (size_t s = 0; s < schedule.size(); ++s) {
    const bool last = s + 1 == schedule.size();
    impl.eps = schedule[s];
    PetscCall(SetKernelEps(impl, impl.eps));
    double tol =
        last ? settings.tolerance : std::max(settings.anneal_tolerance, settings.tolerance);
    PetscCall(SinkhornStage(impl, tol, settings.max_iterations, stats));
    stats->stages++;
  }
  impl.eps = target;
  PetscCall(PetscLogEventEnd(impl.events.sinkhorn, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode SolveSymmetric(OTSolver::Impl &impl, const OTSettings &settings,
                              const std::vector<double> &log_w_row, bool warm,
                              std::vector<double> *f_row, SinkhornStats *stats)
{
  const double target = impl.eps;
  std::vector<double> schedule = EpsSchedule(impl, settings, warm);
  std::vector<double> w_row(log_w_row.size());

  PetscFunctionBeginUser;
  PetscCall(PetscLogEventBegin(impl.events.symmetric, 0, 0, 0, 0));
  for (size_t i = 0; i < w_row.size(); ++i)
    w_row[i] = std::exp(log_w_row[i]);
  if (!warm) f_row->assign(impl.layout.n_row_layout, 0.0);
  *stats = SinkhornStats();
  for (size_t s = 0; s < schedule.size(); ++s) {
    const bool last = s + 1 == schedule.size();
    impl.eps = schedule[s];
    PetscCall(SetKernelEps(impl, impl.eps));
    double tol =
        last ? settings.tolerance : std::max(settings.anneal_tolerance, settings.tolerance);
    PetscCall(SymmetricStage(impl, log_w_row, w_row, tol, settings.max_iterations, f_row, stats));
    stats->stages++;
  }
  impl.eps = target;
  PetscCall(PetscLogEventEnd(impl.events.symmetric, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace ot_detail
} // namespace birdflow
