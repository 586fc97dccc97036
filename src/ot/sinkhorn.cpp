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

// Over-relaxation: with the per-iteration error ratio r of plain Sinkhorn, the two-block SOR
// optimum is 2 / (1 + sqrt(1 - r)), capped at kMaxOmega. For omega up to that optimum, SOR
// contracts by rho with (rho + omega - 1)^2 = rho omega^2 r, so each window of kRateWindow
// iterations re-estimates r from the observed rho and moves omega towards the optimum.
constexpr double kMaxOmega = 1.95;
constexpr PetscInt kRateWindow = 20;

double OptimalOmega(double ratio)
{
  return std::min(kMaxOmega, 2.0 / (1.0 + std::sqrt(1.0 - ratio)));
}

double PlainRatio(double rho, double omega)
{
  return (rho + omega - 1.0) * (rho + omega - 1.0) / (rho * omega * omega);
}

// Runs Sinkhorn at the kernel's eps from impl.f_row until the marginal error is below tol.
//
// With settings.omega = 0 the iteration starts plain and, after each window of kRateWindow
// iterations, sets omega from the estimated plain rate; both updates are then over-relaxed in the
// log domain, f <- f + omega (T_f(g) - f) and g <- g + omega (T_g(f) - g). When the error doubles,
// omega is halved towards 1. Only a plain iteration may stop the loop, so the reported error is
// always that of the returned pair (f, g = T_g(f)).
PetscErrorCode SinkhornStage(OTSolver::Impl &impl, const OTSettings &settings, double tol,
                             PetscInt max_iterations, SinkhornStats *stats)
{
  std::vector<double> f_next(impl.f_row.size()), g_next;
  const bool adaptive = settings.omega == 0;
  double omega = adaptive ? 1.0 : settings.omega, error = 0, previous = INFINITY;
  double window_start_error = 0;
  PetscInt window = 0;

  PetscFunctionBeginUser;
  stats->converged = false;
  for (PetscInt it = 1; it <= max_iterations; ++it) {
    // 1. g update (relaxed unless omega = 1), then the f candidate and the row-marginal error.
    PetscCall(UpdateColumnPotential(impl, impl.f_row, &g_next));
    if (omega == 1.0 || impl.g_col.size() != g_next.size())
      impl.g_col.swap(g_next);
    else
      for (size_t j = 0; j < g_next.size(); ++j)
        impl.g_col[j] += omega * (g_next[j] - impl.g_col[j]);
    PetscCall(UpdateRowPotential(impl, impl.g_col, &f_next));
    PetscCall(RowMarginalError(impl, impl.a_row, impl.f_row, f_next, &error));
    stats->iterations++;
    stats->marginal_error = error;

    // 2. Stop after a plain iteration; a relaxed one that meets tol hands over to plain ones.
    if (error < tol && omega == 1.0) {
      stats->converged = true;
      break;
    }
    if (it == max_iterations) break;
    if (error < tol || (omega > 1.0 && error > 2.0 * previous)) {
      omega = error < tol ? 1.0 : 1.0 + 0.5 * (omega - 1.0);
      if (omega < 1.05) omega = 1.0;
      window = 0;
    }

    // 3. Re-estimate the plain rate from the last window and move omega to its optimum.
    if (adaptive && error >= tol) {
      if (window == 0) window_start_error = error;
      if (++window == kRateWindow + 1) {
        double rho = std::pow(error / window_start_error, 1.0 / kRateWindow);
        if (rho > 0 && rho < 1) {
          double ratio = std::min(1.0, PlainRatio(rho, omega));
          if (ratio > 0.5) omega = std::max(omega, OptimalOmega(ratio));
          PetscCall(PetscInfo(nullptr, "Sinkhorn: rate %g at omega %g, plain rate %g\n", rho, omega,
                              ratio));
        }
        window = 0;
      }
    }

    // 4. f update.
    if (omega == 1.0)
      impl.f_row.swap(f_next);
    else
      for (size_t i = 0; i < f_next.size(); ++i)
        impl.f_row[i] += omega * (f_next[i] - impl.f_row[i]);
    previous = error;
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
  impl.g_col.clear();
  *stats = SinkhornStats();
  for (size_t s = 0; s < schedule.size(); ++s) {
    const bool last = s + 1 == schedule.size();
    impl.eps = schedule[s];
    PetscCall(SetKernelEps(impl, impl.eps));
    double tol =
        last ? settings.tolerance : std::max(settings.anneal_tolerance, settings.tolerance);
    const PetscInt before = stats->iterations;
    PetscCall(SinkhornStage(impl, settings, tol, settings.max_iterations, stats));
    stats->stages++;
    PetscCall(PetscInfo(nullptr,
                        "Sinkhorn stage %" PetscInt_FMT ": eps %g km^2, %" PetscInt_FMT
                        " iterations, marginal error %g\n",
                        stats->stages, impl.eps, stats->iterations - before,
                        stats->marginal_error));
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
