// OTSolver: input checks, the three quantities, gauge fixing and gradients.
#include "ot_internal.hpp"

#include "birdflow/petsc_compat.hpp"

#include <cmath>
#include <limits>

namespace birdflow
{
namespace
{
using ot_detail::kNegInf;

constexpr double kSumTolerance = 1e-6;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Checks one distribution collectively: entries NaN (masked) or finite and >= 0, sum within
// kSumTolerance of 1. Returns the sum over all ranks.
PetscErrorCode CheckDistribution(const ot_detail::SlabLayout &L, const char *name,
                                 const double *values, double *sum)
{
  PetscInt first_bad = PETSC_MAX_INT, global_bad;
  double local_sum = 0, bad_value = 0, global_value;

  PetscFunctionBeginUser;
  for (PetscInt i = 0; i < L.n_row_layout; ++i) {
    double v = values[i];
    if (std::isnan(v)) continue;
    if (!(v >= 0) || std::isinf(v)) {
      if (first_bad == PETSC_MAX_INT) {
        first_bad = L.row_start[L.rank] * L.ncol + i;
        bad_value = v;
      }
      continue;
    }
    local_sum += v;
  }
  PetscCallMPI(MPI_Allreduce(&first_bad, &global_bad, 1, MPIU_INT, MPI_MIN, L.comm));
  if (global_bad != PETSC_MAX_INT) {
    double mine = first_bad == global_bad ? bad_value : 0;
    PetscCallMPI(MPI_Allreduce(&mine, &global_value, 1, MPI_DOUBLE, MPI_SUM, L.comm));
    SETERRQ(L.comm, PETSC_ERR_ARG_OUTOFRANGE,
            "%s has the value %g at cell (row %" PetscInt_FMT ", column %" PetscInt_FMT
            "); entries must be non-negative and finite, or NaN for a masked cell",
            name, global_value, global_bad / L.ncol, global_bad % L.ncol);
  }
  PetscCall(ot_detail::SumOverRanks(L.comm, local_sum, sum));
  PetscCheck(std::fabs(*sum - 1.0) <= kSumTolerance, L.comm, PETSC_ERR_ARG_OUTOFRANGE,
             "%s sums to %.10g over its cells, not 1 (tolerance %g); normalise it first", name,
             *sum, kSumTolerance);
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Stores a distribution divided by its sum: values, logs, mask, and the count of unmasked cells.
PetscErrorCode StoreDistribution(const ot_detail::SlabLayout &L, const double *values, double sum,
                                 std::vector<double> *w, std::vector<double> *log_w,
                                 std::vector<char> *masked, PetscInt *domain_cells)
{
  PetscInt local = 0;

  PetscFunctionBeginUser;
  w->resize(L.n_row_layout);
  log_w->resize(L.n_row_layout);
  masked->resize(L.n_row_layout);
  for (PetscInt i = 0; i < L.n_row_layout; ++i) {
    (*masked)[i] = std::isnan(values[i]);
    (*w)[i] = (*masked)[i] ? 0.0 : values[i] / sum;
    (*log_w)[i] = (*w)[i] > 0 ? std::log((*w)[i]) : kNegInf;
    local += !(*masked)[i];
  }
  PetscCallMPI(MPI_Allreduce(&local, domain_cells, 1, MPIU_INT, MPI_SUM, L.comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// sum_i w_i x_i over all ranks, skipping w_i = 0.
PetscErrorCode Dot(MPI_Comm comm, const std::vector<double> &w, const std::vector<double> &x,
                   double *result)
{
  double local = 0;

  PetscFunctionBeginUser;
  for (size_t i = 0; i < w.size(); ++i)
    if (w[i] > 0) local += w[i] * x[i];
  PetscCall(ot_detail::SumOverRanks(comm, local, result));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Subtracts the mean over unmasked cells and writes NaN at masked cells.
PetscErrorCode Centre(MPI_Comm comm, const std::vector<char> &masked, PetscInt domain_cells,
                      std::vector<double> *x)
{
  double local = 0, total;

  PetscFunctionBeginUser;
  for (size_t i = 0; i < x->size(); ++i)
    if (!masked[i]) local += (*x)[i];
  PetscCall(ot_detail::SumOverRanks(comm, local, &total));
  const double mean = total / (double)domain_cells;
  for (size_t i = 0; i < x->size(); ++i)
    (*x)[i] = masked[i] ? kNaN : (*x)[i] - mean;
  PetscFunctionReturn(PETSC_SUCCESS);
}

void MaskWithNaN(const std::vector<char> &masked, std::vector<double> *x)
{
  for (size_t i = 0; i < x->size(); ++i)
    if (masked[i]) (*x)[i] = kNaN;
}

std::vector<double> Difference(const std::vector<double> &x, const std::vector<double> &y)
{
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = x[i] - y[i];
  return out;
}
} // namespace

OTSolver::OTSolver() = default;

OTSolver::~OTSolver()
{
  if (impl_) ot_detail::DestroySlabLayout(&impl_->layout);
}

PetscErrorCode OTSolver::Setup(MPI_Comm comm, PetscInt nrow, PetscInt ncol, double cell_size_km)
{
  PetscFunctionBeginUser;
  PetscCheck(nrow > 0 && ncol > 0, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "grid shape %" PetscInt_FMT " x %" PetscInt_FMT " must have at least one cell", nrow,
             ncol);
  PetscCheck(cell_size_km > 0 && std::isfinite(cell_size_km), comm, PETSC_ERR_ARG_OUTOFRANGE,
             "cell size %g km must be positive", cell_size_km);
  if (impl_) PetscCall(ot_detail::DestroySlabLayout(&impl_->layout));
  impl_ = std::make_unique<Impl>();
  PetscCall(ot_detail::RegisterEvents(&impl_->events));
  PetscCall(ot_detail::SetupSlabLayout(comm, nrow, ncol, cell_size_km, &impl_->layout));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode OTSolver::SetFromOptions()
{
  PetscFunctionBeginUser;
  PetscCheck(impl_, PETSC_COMM_SELF, PETSC_ERR_ORDER, "call OTSolver::Setup first");
  MPI_Comm comm = impl_->layout.comm;
  OTSettings &s = settings_;
  PetscOptionsBegin(comm, nullptr, "Entropic optimal transport", "OTSolver");
  PetscCall(PetscOptionsReal("-ot_tol", "L1 marginal error that stops Sinkhorn", "OTSolver",
                             s.tolerance, &s.tolerance, nullptr));
  PetscCall(PetscOptionsInt("-ot_max_it", "Maximum Sinkhorn iterations per eps stage", "OTSolver",
                            s.max_iterations, &s.max_iterations, nullptr));
  PetscCall(PetscOptionsReal("-ot_anneal_factor", "eps ratio between annealing stages (1: none)",
                             "OTSolver", s.anneal_factor, &s.anneal_factor, nullptr));
  PetscCall(PetscOptionsReal("-ot_anneal_init", "First eps of the annealing, km^2 (0: diameter^2)",
                             "OTSolver", s.anneal_init, &s.anneal_init, nullptr));
  PetscCall(PetscOptionsReal("-ot_anneal_tol", "Marginal error that ends an annealing stage",
                             "OTSolver", s.anneal_tolerance, &s.anneal_tolerance, nullptr));
  PetscCall(PetscOptionsBool("-ot_anneal_warm", "Anneal also from warm-started potentials",
                             "OTSolver", s.anneal_warm, &s.anneal_warm, nullptr));
  PetscCall(PetscOptionsReal("-ot_omega", "Over-relaxation in [1, 2); 0 adapts it", "OTSolver",
                             s.omega, &s.omega, nullptr));
  PetscOptionsEnd();
  PetscCheck(s.omega == 0 || (s.omega >= 1 && s.omega < 2), comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ot_omega %g must be 0 (adaptive) or in [1, 2)", s.omega);
  PetscCheck(s.tolerance > 0, comm, PETSC_ERR_ARG_OUTOFRANGE, "-ot_tol %g must be positive",
             s.tolerance);
  PetscCheck(s.max_iterations > 0, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ot_max_it %" PetscInt_FMT " must be positive", s.max_iterations);
  PetscCheck(s.anneal_factor > 0 && s.anneal_factor <= 1, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-ot_anneal_factor %g must be in (0, 1]", s.anneal_factor);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscInt OTSolver::RowStart() const
{
  return impl_ ? impl_->layout.row_start[impl_->layout.rank] : 0;
}

PetscInt OTSolver::LocalRows() const
{
  return impl_ ? impl_->layout.local_rows : 0;
}

PetscInt OTSolver::LocalSize() const
{
  return impl_ ? impl_->layout.n_row_layout : 0;
}

PetscErrorCode OTSolver::Evaluate(OTQuantity quantity, const double *a, const double *b, double eps,
                                  bool gradient, OTWarmStart *warm, OTResult *result)
{
  PetscFunctionBeginUser;
  PetscCheck(impl_, PETSC_COMM_SELF, PETSC_ERR_ORDER, "call OTSolver::Setup first");
  Impl &impl = *impl_;
  const ot_detail::SlabLayout &L = impl.layout;
  MPI_Comm comm = L.comm;
  const size_t n_row = (size_t)L.n_row_layout;
  double sum_a, sum_b;

  // 1. Check and store the inputs; b also goes to the column layout.
  PetscCheck(eps > 0 && std::isfinite(eps), comm, PETSC_ERR_ARG_OUTOFRANGE,
             "eps = %g km^2 must be positive and finite", eps);
  PetscCall(CheckDistribution(L, "a", a, &sum_a));
  PetscCall(CheckDistribution(L, "b", b, &sum_b));
  impl.eps = eps;
  impl.have_divergence = false;
  PetscCall(StoreDistribution(L, a, sum_a, &impl.a_row, &impl.log_a_row, &impl.a_masked,
                              &impl.a_domain_cells));
  PetscCall(StoreDistribution(L, b, sum_b, &impl.b_row, &impl.log_b_row, &impl.b_masked,
                              &impl.b_domain_cells));
  impl.b_col.resize(L.n_col_layout);
  impl.log_b_col.resize(L.n_col_layout);
  PetscCall(ot_detail::TransposeRowsToColumns(impl, 1, impl.b_row.data(), impl.b_col.data()));
  PetscCall(
      ot_detail::TransposeRowsToColumns(impl, 1, impl.log_b_row.data(), impl.log_b_col.data()));

  // 2. OT(a, b), warm-started when the caller kept potentials of this grid.
  ot_detail::SinkhornStats stats;
  const bool warm_ab = warm && warm->f.size() == n_row;
  if (warm_ab) impl.f_row = warm->f;
  PetscCall(ot_detail::SolveSinkhorn(impl, settings_, warm_ab, &stats));
  *result = OTResult();
  result->report.iterations = stats.iterations;
  result->report.marginal_error = stats.marginal_error;
  result->report.converged = stats.converged ? PETSC_TRUE : PETSC_FALSE;
  result->report.eps_stages = stats.stages;

  // 3. Fix the gauge (f + t, g - t) by <a, f> = <b, g>; OT_eps(a, b) = <a, f> + <b, g>.
  double af, bg;
  PetscCall(Dot(comm, impl.a_row, impl.f_row, &af));
  PetscCall(Dot(comm, impl.b_col, impl.g_col, &bg));
  const double shift = 0.5 * (bg - af);
  for (double &v : impl.f_row)
    v += shift;
  for (double &v : impl.g_col)
    v -= shift;
  const double ot_ab = af + bg;
  std::vector<double> g_row(n_row);
  PetscCall(ot_detail::TransposeColumnsToRows(impl, 1, impl.g_col.data(), g_row.data()));

  // 4. The requested quantity and its gradient.
  switch (quantity) {
  case OTQuantity::kEntropic:
    result->value = ot_ab;
    if (gradient) {
      result->gradient_a = impl.f_row;
      result->gradient_b = g_row;
    }
    break;
  case OTQuantity::kDivergence: {
    double a_faa, b_fbb;
    const bool warm_aa = warm && warm->f_aa.size() == n_row,
               warm_bb = warm && warm->f_bb.size() == n_row;
    if (warm_aa) impl.f_aa = warm->f_aa;
    if (warm_bb) impl.f_bb = warm->f_bb;
    PetscCall(
        ot_detail::SolveSymmetric(impl, settings_, impl.log_a_row, warm_aa, &impl.f_aa, &stats));
    result->report.iterations_aa = stats.iterations;
    result->report.marginal_error_aa = stats.marginal_error;
    bool converged = stats.converged;
    PetscCall(
        ot_detail::SolveSymmetric(impl, settings_, impl.log_b_row, warm_bb, &impl.f_bb, &stats));
    result->report.iterations_bb = stats.iterations;
    result->report.marginal_error_bb = stats.marginal_error;
    converged = converged && stats.converged && result->report.converged;
    result->report.converged = converged ? PETSC_TRUE : PETSC_FALSE;
    impl.have_divergence = true;
    PetscCall(Dot(comm, impl.a_row, impl.f_aa, &a_faa));
    PetscCall(Dot(comm, impl.b_row, impl.f_bb, &b_fbb));
    result->value = ot_ab - a_faa - b_fbb;
    if (gradient) {
      result->gradient_a = Difference(impl.f_row, impl.f_aa);
      result->gradient_b = Difference(g_row, impl.f_bb);
    }
    break;
  }
  case OTQuantity::kSharp: {
    std::vector<double> f_log(n_row), col_log(L.n_col_layout), w_row(n_row);
    for (size_t i = 0; i < n_row; ++i)
      f_log[i] = impl.f_row[i] / eps;
    for (size_t j = 0; j < col_log.size(); ++j)
      col_log[j] = impl.log_b_col[j] + impl.g_col[j] / eps;
    PetscCall(ot_detail::CostWeightedFromColumns(impl, f_log, col_log, w_row.data()));
    PetscCall(Dot(comm, impl.a_row, w_row, &result->value));
    if (gradient)
      PetscCall(ot_detail::SharpCostGradient(impl, &result->gradient_a, &result->gradient_b,
                                             &result->report));
    break;
  }
  }

  // 5. Outputs in row layout: NaN at masked cells, centred gradients.
  result->f = impl.f_row;
  result->g = g_row;
  MaskWithNaN(impl.a_masked, &result->f);
  MaskWithNaN(impl.b_masked, &result->g);
  if (gradient) {
    PetscCall(Centre(comm, impl.a_masked, impl.a_domain_cells, &result->gradient_a));
    PetscCall(Centre(comm, impl.b_masked, impl.b_domain_cells, &result->gradient_b));
  }
  if (warm) {
    warm->f = impl.f_row;
    if (impl.have_divergence) {
      warm->f_aa = impl.f_aa;
      warm->f_bb = impl.f_bb;
    }
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode OTSolver::HessianVectorProduct(const double *v, double *hv, OTReport *report)
{
  PetscFunctionBeginUser;
  PetscCheck(impl_ && impl_->have_divergence, impl_ ? impl_->layout.comm : PETSC_COMM_SELF,
             PETSC_ERR_ORDER,
             "call Evaluate(OTQuantity::kDivergence, ...) before HessianVectorProduct");
  Impl &impl = *impl_;
  MPI_Comm comm = impl.layout.comm;
  std::vector<double> v_row(v, v + impl.layout.n_row_layout), hv_row;

  // Project v on the zero-sum directions over the cells not masked in a.
  for (size_t i = 0; i < v_row.size(); ++i)
    if (impl.a_masked[i]) v_row[i] = 0;
  PetscCall(Centre(comm, impl.a_masked, impl.a_domain_cells, &v_row));
  for (size_t i = 0; i < v_row.size(); ++i)
    if (impl.a_masked[i]) v_row[i] = 0;

  *report = OTReport();
  PetscCall(ot_detail::SetKernelEps(impl, impl.eps));
  PetscCall(ot_detail::DivergenceHessianProduct(impl, v_row, &hv_row, report));
  PetscCall(Centre(comm, impl.a_masked, impl.a_domain_cells, &hv_row));
  for (size_t i = 0; i < hv_row.size(); ++i)
    hv[i] = hv_row[i];
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
