#include "birdflow/lasso.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace birdflow::lasso
{
namespace
{
PetscLogEvent solve_event = 0, gram_event = 0, cd_event = 0;

PetscErrorCode RegisterEvents()
{
  static bool registered = false;
  PetscClassId classid;

  PetscFunctionBeginUser;
  if (!registered) {
    PetscCall(PetscClassIdRegister("Lasso", &classid));
    PetscCall(PetscLogEventRegister("LassoSolve", classid, &solve_event));
    PetscCall(PetscLogEventRegister("LassoGram", classid, &gram_event));
    PetscCall(PetscLogEventRegister("LassoCD", classid, &cd_event));
    registered = true;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

double SoftThreshold(double x, double t)
{
  if (x > t) return x - t;
  if (x < -t) return x + t;
  return 0.0;
}

// Returns the distance of the gradient entry q = X_j^T r / n to alpha * subdifferential of |w_j|.
double KktViolation(double w, double q, double alpha)
{
  if (w > 0) return std::fabs(q - alpha);
  if (w < 0) return std::fabs(q + alpha);
  return std::max(0.0, std::fabs(q) - alpha);
}

// Reduces `values` to rank 0 and broadcasts the sum, so every rank has bitwise equal results. An
// all-reduce may associate the sum differently on different ranks.
PetscErrorCode SumToAll(MPI_Comm comm, std::vector<double> *values)
{
  std::vector<double> sum(values->size());

  PetscFunctionBeginUser;
  PetscMPIInt count = static_cast<PetscMPIInt>(values->size());
  PetscCallMPI(MPI_Reduce(values->data(), sum.data(), count, MPI_DOUBLE, MPI_SUM, 0, comm));
  PetscCallMPI(MPI_Bcast(sum.data(), count, MPI_DOUBLE, 0, comm));
  *values = sum;
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Returns the Lasso objective on a working set up to a constant: x^T G x / 2 - c^T x + alpha |x|_1,
// and writes G x to `gx`.
double WorkingSetObjective(const std::vector<double> &G, const std::vector<double> &c,
                           const std::vector<double> &x, double alpha, std::vector<double> *gx)
{
  const size_t m = x.size();
  double value = 0.0;
  for (size_t a = 0; a < m; ++a) {
    double sum = 0.0;
    for (size_t b = 0; b < m; ++b)
      sum += G[a * m + b] * x[b];
    (*gx)[a] = sum;
    value += 0.5 * x[a] * sum - c[a] * x[a] + alpha * std::fabs(x[a]);
  }
  return value;
}

// Anderson extrapolation of the last K+1 coordinate-descent iterates (Bertrand and Massias,
// "Anderson acceleration of coordinate descent", AISTATS 2021, arXiv:2011.10065):
// with U the K differences of consecutive iterates, solve (U^T U) z = 1, set coefficients
// z / sum(z) and combine the last K iterates. Returns false when U^T U is numerically singular.
bool AndersonPoint(const std::vector<std::vector<double>> &history, std::vector<double> *point)
{
  const size_t K = history.size() - 1, m = history[0].size();
  std::vector<double> M(K * K, 0.0), z(K, 1.0);
  for (size_t i = 0; i < K; ++i)
    for (size_t j = 0; j <= i; ++j) {
      double dot = 0.0;
      for (size_t a = 0; a < m; ++a)
        dot += (history[i + 1][a] - history[i][a]) * (history[j + 1][a] - history[j][a]);
      M[i * K + j] = M[j * K + i] = dot;
    }
  double trace = 0.0;
  for (size_t i = 0; i < K; ++i)
    trace += M[i * K + i];
  if (!(trace > 0.0)) return false;

  // Gaussian elimination with partial pivoting on the K x K system.
  for (size_t col = 0; col < K; ++col) {
    size_t pivot = col;
    for (size_t r = col + 1; r < K; ++r)
      if (std::fabs(M[r * K + col]) > std::fabs(M[pivot * K + col])) pivot = r;
    if (std::fabs(M[pivot * K + col]) < 1e-14 * trace) return false;
    for (size_t j = 0; j < K; ++j)
      std::swap(M[col * K + j], M[pivot * K + j]);
    std::swap(z[col], z[pivot]);
    for (size_t r = col + 1; r < K; ++r) {
      const double factor = M[r * K + col] / M[col * K + col];
      for (size_t j = col; j < K; ++j)
        M[r * K + j] -= factor * M[col * K + j];
      z[r] -= factor * z[col];
    }
  }
  for (size_t col = K; col-- > 0;) {
    for (size_t j = col + 1; j < K; ++j)
      z[col] -= M[col * K + j] * z[j];
    z[col] /= M[col * K + col];
  }
  double total = 0.0;
  for (double v : z)
    total += v;
  if (!std::isfinite(total) || total == 0.0) return false;

  point->assign(m, 0.0);
  for (size_t k = 0; k < K; ++k)
    for (size_t a = 0; a < m; ++a)
      (*point)[a] += (z[k] / total) * history[k + 1][a];
  return true;
}

// Optimality measures of w at alpha from the full gradient X^T r / n.
struct Optimality
{
  double l1 = 0.0;           // ||w||_1
  double gradient_max = 0.0; // ||X^T r / n||_inf
  double kkt_max = 0.0;      // largest KKT violation over all features
  PetscInt support = 0;      // nonzero coefficients
};

Optimality MeasureOptimality(const std::vector<double> &w, const std::vector<double> &gradient,
                             double alpha)
{
  Optimality m;
  for (size_t j = 0; j < w.size(); ++j) {
    m.l1 += std::fabs(w[j]);
    m.gradient_max = std::max(m.gradient_max, std::fabs(gradient[j]));
    m.kkt_max = std::max(m.kkt_max, KktViolation(w[j], gradient[j], alpha));
    m.support += w[j] != 0.0;
  }
  return m;
}

// Returns the sorted working set: the support plus the features with the largest |gradient|, `size`
// features in all. Features that violate the optimality conditions have the largest |gradient|.
std::vector<PetscInt> SelectWorkingSet(const std::vector<double> &w,
                                       const std::vector<double> &gradient, PetscInt size)
{
  std::vector<PetscInt> order(w.size());
  std::iota(order.begin(), order.end(), 0);
  auto priority = [&](PetscInt j) { return w[j] != 0.0 ? INFINITY : std::fabs(gradient[j]); };
  std::partial_sort(order.begin(), order.begin() + size, order.end(), [&](PetscInt a, PetscInt b) {
    double pa = priority(a), pb = priority(b);
    return pa > pb || (pa == pb && a < b);
  });
  std::vector<PetscInt> set(order.begin(), order.begin() + size);
  std::sort(set.begin(), set.end());
  return set;
}
} // namespace

PetscErrorCode Solver::Create(const Problem &problem, const char *prefix)
{
  Mat X = problem.X_train;
  PetscBool dense, set;
  PetscInt row_start, row_end;

  PetscFunctionBeginUser;
  PetscCall(RegisterEvents());
  problem_ = &problem;
  PetscCall(PetscOptionsGetReal(nullptr, prefix, "-tol", &options_.tol, &set));
  PetscCall(PetscOptionsGetInt(nullptr, prefix, "-max_it", &options_.max_it, &set));
  PetscCall(PetscOptionsGetInt(nullptr, prefix, "-max_sweeps", &options_.max_sweeps, &set));
  PetscCall(PetscOptionsGetInt(nullptr, prefix, "-ws_min", &options_.ws_min, &set));
  PetscCall(PetscOptionsGetInt(nullptr, prefix, "-anderson", &options_.anderson, &set));
  PetscCheck(options_.tol > 0 && options_.max_it > 0 && options_.max_sweeps > 0 &&
                 options_.ws_min > 0,
             problem.comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-%stol, -%smax_it, -%smax_sweeps and -%sws_min must be positive", prefix, prefix,
             prefix, prefix);
  PetscCheck(options_.anderson >= 0, problem.comm, PETSC_ERR_ARG_OUTOFRANGE,
             "-%sanderson %" PetscInt_FMT " is negative; give 0 to disable extrapolation", prefix,
             options_.anderson);

  // 1. Local rows: a pointer into the dense storage, or a compressed-column copy of AIJ rows.
  PetscCall(MatGetOwnershipRange(X, &row_start, &row_end));
  n_local_ = row_end - row_start;
  PetscCall(PetscObjectTypeCompareAny((PetscObject)X, &dense, MATSEQDENSE, MATMPIDENSE, ""));
  if (dense) {
    PetscCall(MatDenseGetLocalMatrix(X, &dense_local_));
    PetscCall(MatDenseGetLDA(dense_local_, &lda_));
    // The storage stays in place while X is not modified; the restore only clears `values`.
    const PetscScalar *values;
    PetscCall(MatDenseGetArrayRead(dense_local_, &values));
    dense_ = values;
    PetscCall(MatDenseRestoreArrayRead(dense_local_, &values));
  } else {
    csc_start_.assign(problem.p + 1, 0);
    std::vector<std::vector<std::pair<PetscInt, double>>> by_column(problem.p);
    for (PetscInt i = row_start; i < row_end; ++i) {
      PetscInt count;
      const PetscInt *columns;
      const PetscScalar *values;
      PetscCall(MatGetRow(X, i, &count, &columns, &values));
      for (PetscInt k = 0; k < count; ++k)
        by_column[columns[k]].push_back({i - row_start, values[k]});
      PetscCall(MatRestoreRow(X, i, &count, &columns, &values));
    }
    for (PetscInt j = 0; j < problem.p; ++j) {
      csc_start_[j + 1] = csc_start_[j] + static_cast<PetscInt>(by_column[j].size());
      for (auto &entry : by_column[j]) {
        csc_row_.push_back(entry.first);
        csc_value_.push_back(entry.second);
      }
    }
  }
  const PetscScalar *y;
  PetscCall(VecGetArrayRead(problem.y_train, &y));
  y_local_.assign(y, y + n_local_);
  PetscCall(VecRestoreArrayRead(problem.y_train, &y));

  // 2. Work vectors, the gather of the gradient, and alpha_max from the gradient at w = 0.
  PetscCall(MatCreateVecs(X, &w_vec_, &residual_));
  PetscCall(VecDuplicate(w_vec_, &gradient_vec_));
  PetscCall(VecScatterCreateToAll(gradient_vec_, &gather_, &gradient_all_));
  gram_index_.assign(problem.p, -1);
  std::vector<double> gradient;
  double residual_sq, residual_dot_y;
  PetscCall(
      Gradient(std::vector<double>(problem.p, 0.0), &gradient, &residual_sq, &residual_dot_y));
  y_norm_sq_ = residual_sq / problem.n_train;
  alpha_max_ = 0.0;
  for (double g : gradient)
    alpha_max_ = std::max(alpha_max_, std::fabs(g));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Computes the full gradient X^T (y - X w) / n (on every rank), ||y - Xw||^2 and (y - Xw)^T y.
// NOTE: the gradient is gathered on every rank (length p), as is w; fine up to p of about 1e6.
PetscErrorCode Solver::Gradient(const std::vector<double> &w, std::vector<double> *gradient,
                                double *residual_sq, double *residual_dot_y)
{
  PetscInt start, end;
  PetscScalar *local;
  const PetscScalar *all;

  PetscFunctionBeginUser;
  PetscCall(VecGetOwnershipRange(w_vec_, &start, &end));
  PetscCall(VecGetArray(w_vec_, &local));
  for (PetscInt j = start; j < end; ++j)
    local[j - start] = w[j];
  PetscCall(VecRestoreArray(w_vec_, &local));
  PetscCall(MatMult(problem_->X_train, w_vec_, residual_));
  PetscCall(VecAYPX(residual_, -1.0, problem_->y_train));
  PetscCall(VecDot(residual_, residual_, residual_sq));
  PetscCall(VecDot(residual_, problem_->y_train, residual_dot_y));
  PetscCall(MatMultTranspose(problem_->X_train, residual_, gradient_vec_));
  PetscCall(VecScale(gradient_vec_, 1.0 / problem_->n_train));
  PetscCall(VecScatterBegin(gather_, gradient_vec_, gradient_all_, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(gather_, gradient_vec_, gradient_all_, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecGetArrayRead(gradient_all_, &all));
  gradient->assign(all, all + problem_->p);
  PetscCall(VecRestoreArrayRead(gradient_all_, &all));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Writes local column j of X_train, densely, to column[0..n_local).
PetscErrorCode Solver::LocalColumn(PetscInt j, double *column) const
{
  PetscFunctionBeginUser;
  if (dense_) {
    std::copy(dense_ + j * lda_, dense_ + j * lda_ + n_local_, column);
  } else {
    std::fill(column, column + n_local_, 0.0);
    for (PetscInt k = csc_start_[j]; k < csc_start_[j + 1]; ++k)
      column[csc_row_[k]] = csc_value_[k];
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Adds the features not yet cached to the cached Gram matrix and X^T y.
PetscErrorCode Solver::ExtendGram(const std::vector<PetscInt> &features)
{
  std::vector<PetscInt> added;

  PetscFunctionBeginUser;
  for (PetscInt j : features)
    if (gram_index_[j] < 0) added.push_back(j);
  if (added.empty()) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscLogEventBegin(gram_event, 0, 0, 0, 0));
  const size_t old_size = gram_features_.size(), new_size = old_size + added.size();
  std::vector<PetscInt> all = gram_features_;
  all.insert(all.end(), added.begin(), added.end());

  // 1. Local partial products of every added column with every cached or added column, four
  //    added columns at a time so each pass over a cached column serves four dot products.
  std::vector<double> partial(added.size() * (new_size + 1), 0.0);
  std::vector<double> block(4 * n_local_), other(n_local_);
  for (size_t a0 = 0; a0 < added.size(); a0 += 4) {
    const size_t width = std::min<size_t>(4, added.size() - a0);
    std::fill(block.begin(), block.end(), 0.0);
    for (size_t a = 0; a < width; ++a)
      PetscCall(LocalColumn(added[a0 + a], &block[a * n_local_]));
    for (size_t b = 0; b <= new_size; ++b) {
      const double *column = other.data();
      if (b == new_size)
        column = y_local_.data();
      else if (dense_)
        column = dense_ + all[b] * lda_;
      else
        PetscCall(LocalColumn(all[b], other.data()));
      double sum[4] = {0.0, 0.0, 0.0, 0.0};
      for (PetscInt i = 0; i < n_local_; ++i) {
        const double v = column[i];
        sum[0] += block[i] * v;
        sum[1] += block[n_local_ + i] * v;
        sum[2] += block[2 * n_local_ + i] * v;
        sum[3] += block[3 * n_local_ + i] * v;
      }
      for (size_t a = 0; a < width; ++a)
        partial[(a0 + a) * (new_size + 1) + b] = sum[a];
    }
  }
  PetscCall(SumToAll(problem_->comm, &partial));
  PetscCall(PetscLogFlops(2.0 * n_local_ * added.size() * (new_size + 1)));

  // 2. The grown symmetric cache.
  std::vector<double> gram(new_size * new_size, 0.0);
  for (size_t a = 0; a < old_size; ++a)
    std::copy(gram_.begin() + a * old_size, gram_.begin() + (a + 1) * old_size,
              gram.begin() + a * new_size);
  const double scale = 1.0 / problem_->n_train;
  for (size_t a = 0; a < added.size(); ++a) {
    const double *row = partial.data() + a * (new_size + 1);
    size_t r = old_size + a;
    for (size_t b = 0; b < new_size; ++b) {
      gram[r * new_size + b] = row[b] * scale;
      gram[b * new_size + r] = row[b] * scale;
    }
    xty_.push_back(row[new_size] * scale);
    gram_index_[added[a]] = static_cast<PetscInt>(r);
  }
  gram_ = std::move(gram);
  gram_features_ = std::move(all);
  PetscCall(PetscLogEventEnd(gram_event, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Cyclic coordinate descent on the working set `set` until the largest KKT violation on the set is
// at most kkt_target, or max_sweeps. In forward mode the derivative dw/dalpha follows each update.
void Solver::CoordinateDescent(double alpha, const std::vector<PetscInt> &set, double kkt_target,
                               bool forward_mode, Solution *solution, PetscInt *sweeps)
{
  const size_t m = set.size(), cache = gram_features_.size();
  std::vector<double> G(m * m), c(m), x(m), J(m, 0.0), q(m), qJ(m, 0.0);
  for (size_t a = 0; a < m; ++a) {
    PetscInt ia = gram_index_[set[a]];
    for (size_t b = 0; b < m; ++b)
      G[a * m + b] = gram_[ia * cache + gram_index_[set[b]]];
    c[a] = xty_[ia];
    x[a] = solution->w[set[a]];
    if (forward_mode) J[a] = solution->jacobian[set[a]];
  }
  auto refresh = [&]() {
    for (size_t a = 0; a < m; ++a) {
      double gx = 0.0, gj = 0.0;
      for (size_t b = 0; b < m; ++b) {
        gx += G[a * m + b] * x[b];
        gj += G[a * m + b] * J[b];
      }
      q[a] = c[a] - gx; // X_a^T r / n
      qJ[a] = -gj;      // d q_a / d alpha
    }
  };

  // Anderson extrapolation only in plain solves: forward mode differentiates the sweeps themselves.
  const bool accelerate = !forward_mode && options_.anderson > 0 && m > 1;
  std::vector<std::vector<double>> history;
  std::vector<double> extrapolated, gx(m);

  *sweeps = 0;
  for (PetscInt sweep = 0; sweep < options_.max_sweeps; ++sweep) {
    if (sweep % 10 == 0) refresh();
    for (size_t a = 0; a < m; ++a) {
      const double gaa = G[a * m + a];
      if (gaa <= 0.0) continue;
      const double *Ga = G.data() + a * m;
      double updated = SoftThreshold(x[a] + q[a] / gaa, alpha / gaa);
      double delta = updated - x[a];
      if (forward_mode) {
        double dJ = -J[a]; // a coefficient at zero has derivative zero
        if (updated != 0.0) {
          const double sign = updated > 0 ? 1.0 : -1.0;
          dJ = (qJ[a] - sign) / gaa;
        }
        if (dJ != 0.0) {
          J[a] += dJ;
          for (size_t b = 0; b < m; ++b)
            qJ[b] -= dJ * Ga[b];
        }
      }
      if (delta != 0.0) {
        x[a] = updated;
        for (size_t b = 0; b < m; ++b)
          q[b] -= delta * Ga[b];
      }
    }
    ++*sweeps;
    double kkt = 0.0;
    for (size_t a = 0; a < m; ++a)
      kkt = std::max(kkt, KktViolation(x[a], q[a], alpha));
    if (kkt <= kkt_target) break;

    // Every K sweeps, move to the extrapolated point when it lowers the objective.
    if (!accelerate) continue;
    history.push_back(x);
    if (history.size() < static_cast<size_t>(options_.anderson) + 1) continue;
    if (AndersonPoint(history, &extrapolated)) {
      const double current = WorkingSetObjective(G, c, x, alpha, &gx);
      if (WorkingSetObjective(G, c, extrapolated, alpha, &gx) < current) {
        x = extrapolated;
        for (size_t a = 0; a < m; ++a)
          q[a] = c[a] - gx[a];
      }
    }
    history.clear();
  }
  for (size_t a = 0; a < m; ++a) {
    solution->w[set[a]] = x[a];
    if (forward_mode) solution->jacobian[set[a]] = J[a];
  }
  PetscLogFlops(4.0 * m * m * *sweeps);
}

PetscErrorCode Solver::Solve(double alpha, bool forward_mode, Solution *solution)
{
  const PetscInt p = problem_->p;
  std::vector<double> gradient;
  double residual_sq, residual_dot_y;

  PetscFunctionBeginUser;
  PetscCheck(alpha > 0 && std::isfinite(alpha), problem_->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "Lasso: alpha %g must be positive and finite", alpha);
  PetscCall(PetscLogEventBegin(solve_event, 0, 0, 0, 0));
  if (solution->w.size() != static_cast<size_t>(p)) solution->w.assign(p, 0.0);
  if (forward_mode && solution->jacobian.size() != static_cast<size_t>(p))
    solution->jacobian.assign(p, 0.0);
  solution->alpha = alpha;
  solution->sweeps = 0;
  solution->converged = false;
  const double gap_target = options_.tol * 0.5 * y_norm_sq_;
  const double kkt_floor = 1e-13 * std::sqrt(y_norm_sq_);

  for (PetscInt it = 0;; ++it) {
    // 1. Full gradient, duality gap (dual point: the residual scaled into the dual feasible set).
    PetscCall(Gradient(solution->w, &gradient, &residual_sq, &residual_dot_y));
    const Optimality m = MeasureOptimality(solution->w, gradient, alpha);
    const double n = problem_->n_train;
    const double s = m.gradient_max > alpha ? alpha / m.gradient_max : 1.0;
    solution->primal = residual_sq / (2 * n) + alpha * m.l1;
    const double dual = s * residual_dot_y / n - s * s * residual_sq / (2 * n);
    solution->gap = solution->primal - dual;
    solution->outer_iterations = it;
    // The gap is a difference of two numbers of size ||y||^2 / 2n, so at the rounding level it
    // cannot shrink further: a KKT violation at the floor counts as converged as well.
    if (solution->gap <= gap_target || m.kkt_max <= kkt_floor) {
      solution->converged = true;
      break;
    }
    if (it == options_.max_it) break;

    // 2. Working set twice the size of the support (at least ws_min), so the support can grow
    //    until no violating feature remains outside.
    const PetscInt ws_size = std::min<PetscInt>(p, std::max(options_.ws_min, 2 * m.support));
    const std::vector<PetscInt> set = SelectWorkingSet(solution->w, gradient, ws_size);

    // 3. Coordinate descent on the working set, to a tenth of the current violation.
    PetscCall(ExtendGram(set));
    PetscCall(PetscLogEventBegin(cd_event, 0, 0, 0, 0));
    PetscInt sweeps;
    CoordinateDescent(alpha, set, std::max(0.1 * m.kkt_max, 0.5 * kkt_floor), forward_mode,
                      solution, &sweeps);
    solution->sweeps += sweeps;
    PetscCall(PetscLogEventEnd(cd_event, 0, 0, 0, 0));
  }
  PetscCall(PetscLogEventEnd(solve_event, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode Solver::Destroy()
{
  PetscFunctionBeginUser;
  PetscCall(VecDestroy(&w_vec_));
  PetscCall(VecDestroy(&residual_));
  PetscCall(VecDestroy(&gradient_vec_));
  PetscCall(VecDestroy(&gradient_all_));
  PetscCall(VecScatterDestroy(&gather_));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::lasso
