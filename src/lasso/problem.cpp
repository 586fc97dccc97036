#include "birdflow/lasso.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

namespace birdflow::lasso
{
namespace
{
// Fills `columns` and `values` with the nonzero entries of one row (global row index `row`).
using RowFunction =
    std::function<void(PetscInt row, std::vector<PetscInt> *columns, std::vector<double> *values)>;

// Returns a uniform number in (0, 1) from a 64-bit hash.
double UniformFromHash(std::uint64_t h)
{
  return ((h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Returns a standard normal number from two hashes (Box-Muller).
double NormalFromHashes(std::uint64_t a, std::uint64_t b)
{
  return std::sqrt(-2.0 * std::log(UniformFromHash(a))) * std::cos(2.0 * M_PI * UniformFromHash(b));
}

// Returns the hash of entry (i, j) of stream `stream` for `seed`.
std::uint64_t EntryHash(PetscInt seed, PetscInt stream, PetscInt i, PetscInt j)
{
  std::uint64_t h = SplitMix64(static_cast<std::uint64_t>(seed) * 0x100000001b3ULL + stream);
  h = SplitMix64(h ^ static_cast<std::uint64_t>(i));
  return SplitMix64(h ^ (static_cast<std::uint64_t>(j) << 1));
}

// Builds a matrix with `rows.size()` rows distributed by PETSC_DECIDE and p columns, and the
// vector of responses, generating the locally owned rows with `row_function` (global row
// rows[k] of the source becomes row k). Dense when `dense`, else AIJ with exact preallocation.
PetscErrorCode BuildRows(MPI_Comm comm, const std::vector<PetscInt> &rows, PetscInt p, bool dense,
                         const RowFunction &row_function,
                         const std::function<double(PetscInt row)> &response, Mat *X, Vec *y)
{
  PetscInt n = static_cast<PetscInt>(rows.size()), n_local = PETSC_DECIDE, p_local = PETSC_DECIDE;
  PetscInt row_start = 0, column_start = 0;
  std::vector<std::vector<PetscInt>> columns;
  std::vector<std::vector<double>> values;

  PetscFunctionBeginUser;
  PetscCall(PetscSplitOwnership(comm, &n_local, &n));
  PetscCall(PetscSplitOwnership(comm, &p_local, &p));
  PetscCallMPI(MPI_Exscan(&n_local, &row_start, 1, MPIU_INT, MPI_SUM, comm));
  PetscCallMPI(MPI_Exscan(&p_local, &column_start, 1, MPIU_INT, MPI_SUM, comm));
  PetscMPIInt rank;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) row_start = column_start = 0;

  // 1. Generate the local rows, then preallocate exactly.
  columns.resize(n_local);
  values.resize(n_local);
  std::vector<PetscInt> diagonal_nnz(n_local, 0), off_diagonal_nnz(n_local, 0);
  for (PetscInt k = 0; k < n_local; ++k) {
    row_function(rows[row_start + k], &columns[k], &values[k]);
    for (PetscInt j : columns[k]) {
      bool diagonal_block = j >= column_start && j < column_start + p_local;
      (diagonal_block ? diagonal_nnz : off_diagonal_nnz)[k]++;
    }
  }
  PetscCall(MatCreate(comm, X));
  PetscCall(MatSetSizes(*X, n_local, p_local, n, p));
  PetscCall(MatSetType(*X, dense ? MATDENSE : MATAIJ));
  if (dense) {
    PetscCall(MatSetUp(*X));
  } else {
    PetscCall(MatSeqAIJSetPreallocation(*X, 0, diagonal_nnz.data()));
    PetscCall(MatMPIAIJSetPreallocation(*X, 0, diagonal_nnz.data(), 0, off_diagonal_nnz.data()));
  }

  // 2. Insert the rows and the responses.
  PetscCall(MatCreateVecs(*X, nullptr, y));
  for (PetscInt k = 0; k < n_local; ++k) {
    PetscInt global_row = row_start + k;
    PetscCall(MatSetValues(*X, 1, &global_row, static_cast<PetscInt>(columns[k].size()),
                           columns[k].data(), values[k].data(), INSERT_VALUES));
    PetscCall(VecSetValue(*y, global_row, response(rows[global_row]), INSERT_VALUES));
  }
  PetscCall(MatAssemblyBegin(*X, MAT_FINAL_ASSEMBLY));
  PetscCall(MatAssemblyEnd(*X, MAT_FINAL_ASSEMBLY));
  PetscCall(VecAssemblyBegin(*y));
  PetscCall(VecAssemblyEnd(*y));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Splits `rows` rows into sorted validation and training row lists.
PetscErrorCode SplitRows(MPI_Comm comm, PetscInt rows, double fraction, PetscInt seed,
                         std::vector<PetscInt> *train, std::vector<PetscInt> *validation)
{
  PetscFunctionBeginUser;
  PetscCheck(fraction > 0.0 && fraction < 1.0, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "--validation-fraction %g is outside (0,1); give e.g. 0.3", fraction);
  PetscInt n_val = static_cast<PetscInt>(std::llround(fraction * rows));
  PetscCheck(n_val >= 2 && rows - n_val >= 2, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "--validation-fraction %g of %" PetscInt_FMT " rows leaves %" PetscInt_FMT
             " validation and %" PetscInt_FMT " training rows; each part needs at least 2",
             fraction, rows, n_val, rows - n_val);
  std::vector<PetscInt> order = SplitOrder(rows, seed);
  validation->assign(order.begin(), order.begin() + n_val);
  train->assign(order.begin() + n_val, order.end());
  std::sort(validation->begin(), validation->end());
  std::sort(train->begin(), train->end());
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

std::uint64_t SplitMix64(std::uint64_t x)
{
  std::uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::vector<PetscInt> SplitOrder(PetscInt rows, PetscInt seed)
{
  std::vector<std::uint64_t> key(rows);
  for (PetscInt i = 0; i < rows; ++i)
    key[i] = SplitMix64((static_cast<std::uint64_t>(seed) << 32) + static_cast<std::uint64_t>(i));
  std::vector<PetscInt> order(rows);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&key](PetscInt a, PetscInt b) { return key[a] < key[b]; });
  return order;
}

PetscErrorCode ProblemCreateFromTables(MPI_Comm comm, const Table &X, const Table &y,
                                       const std::string &x_source, const std::string &y_source,
                                       double validation_fraction, PetscInt seed, Problem *problem)
{
  std::vector<PetscInt> train, validation;

  PetscFunctionBeginUser;
  PetscCheck(y.cols == 1, comm, PETSC_ERR_ARG_SIZ,
             "%s has %" PetscInt_FMT " columns; the response needs exactly one", y_source.c_str(),
             y.cols);
  PetscCheck(X.rows == y.rows, comm, PETSC_ERR_ARG_SIZ,
             "%s has %" PetscInt_FMT " rows but %s has %" PetscInt_FMT
             "; X and y need one row per sample",
             x_source.c_str(), X.rows, y_source.c_str(), y.rows);
  PetscCall(SplitRows(comm, X.rows, validation_fraction, seed, &train, &validation));
  const PetscInt p = X.cols;

  // 1. Standardise with statistics of the training rows only, so no validation information leaks
  //    into the fit.
  problem->feature_mean.assign(p, 0.0);
  problem->feature_scale.assign(p, 0.0);
  double y_mean = 0.0;
  for (PetscInt i : train) {
    for (PetscInt j = 0; j < p; ++j)
      problem->feature_mean[j] += X.values[i * p + j];
    y_mean += y.values[i];
  }
  for (PetscInt j = 0; j < p; ++j)
    problem->feature_mean[j] /= train.size();
  y_mean /= train.size();
  for (PetscInt i : train)
    for (PetscInt j = 0; j < p; ++j) {
      double d = X.values[i * p + j] - problem->feature_mean[j];
      problem->feature_scale[j] += d * d;
    }
  for (PetscInt j = 0; j < p; ++j) {
    problem->feature_scale[j] = std::sqrt(problem->feature_scale[j] / train.size());
    double mean = problem->feature_mean[j];
    PetscCheck(problem->feature_scale[j] > 1e-12 * (1.0 + std::fabs(mean)), comm,
               PETSC_ERR_ARG_WRONG,
               "%s: column %" PetscInt_FMT " is constant (%g) on the %zu training rows; remove it",
               x_source.c_str(), j + 1, mean, train.size());
  }
  problem->intercept = y_mean;

  // 2. Distributed dense matrices of the standardised features.
  RowFunction row_function = [&](PetscInt i, std::vector<PetscInt> *columns,
                                 std::vector<double> *values) {
    columns->resize(p);
    values->resize(p);
    for (PetscInt j = 0; j < p; ++j) {
      (*columns)[j] = j;
      (*values)[j] = (X.values[i * p + j] - problem->feature_mean[j]) / problem->feature_scale[j];
    }
  };
  auto response = [&](PetscInt i) { return y.values[i] - y_mean; };
  problem->comm = comm;
  problem->p = p;
  problem->n_train = static_cast<PetscInt>(train.size());
  problem->n_val = static_cast<PetscInt>(validation.size());
  PetscCall(BuildRows(comm, train, p, true, row_function, response, &problem->X_train,
                      &problem->y_train));
  PetscCall(BuildRows(comm, validation, p, true, row_function, response, &problem->X_val,
                      &problem->y_val));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ProblemCreateSynthetic(MPI_Comm comm, const SyntheticOptions &options,
                                      double validation_fraction, PetscInt seed, Problem *problem)
{
  std::vector<PetscInt> train, validation;
  const PetscInt p = options.p;
  const bool dense = options.density >= 1.0;

  PetscFunctionBeginUser;
  PetscCheck(options.n >= 4 && p >= 1 && options.density > 0.0 && options.informative >= 0 &&
                 options.informative <= p,
             comm, PETSC_ERR_ARG_OUTOFRANGE,
             "synthetic data: need n >= 4, p >= 1, 0 < density <= 1 and 0 <= informative <= p "
             "(got n %" PetscInt_FMT ", p %" PetscInt_FMT ", density %g, informative %" PetscInt_FMT
             ")",
             options.n, p, options.density, options.informative);
  PetscCall(SplitRows(comm, options.n, validation_fraction, seed, &train, &validation));

  // 1. The true coefficients: +-1 on `informative` features chosen by the seed.
  std::vector<double> w_true(p, 0.0);
  std::vector<PetscInt> chosen = SplitOrder(p, options.seed + 1);
  for (PetscInt k = 0; k < options.informative; ++k)
    w_true[chosen[k]] = (EntryHash(options.seed, 3, k, 0) & 1) ? 1.0 : -1.0;

  // 2. Rows from the counter-based generator: entry (i, j) depends on (seed, i, j) only.
  const double value_scale = 1.0 / std::sqrt(options.density);
  RowFunction row_function = [&](PetscInt i, std::vector<PetscInt> *columns,
                                 std::vector<double> *values) {
    columns->clear();
    values->clear();
    for (PetscInt j = 0; j < p; ++j) {
      if (!dense && UniformFromHash(EntryHash(options.seed, 0, i, j)) >= options.density) continue;
      columns->push_back(j);
      values->push_back(value_scale * NormalFromHashes(EntryHash(options.seed, 1, i, j),
                                                       EntryHash(options.seed, 2, i, j)));
    }
  };
  auto response = [&](PetscInt i) {
    std::vector<PetscInt> columns;
    std::vector<double> values;
    row_function(i, &columns, &values);
    double sum = 0.0;
    for (size_t k = 0; k < columns.size(); ++k)
      sum += values[k] * w_true[columns[k]];
    return sum + options.noise * NormalFromHashes(EntryHash(options.seed, 4, i, 0),
                                                  EntryHash(options.seed, 5, i, 0));
  };
  problem->comm = comm;
  problem->p = p;
  problem->n_train = static_cast<PetscInt>(train.size());
  problem->n_val = static_cast<PetscInt>(validation.size());
  problem->feature_mean.assign(p, 0.0);
  problem->feature_scale.assign(p, 1.0);
  problem->intercept = 0.0;
  PetscCall(BuildRows(comm, train, p, dense, row_function, response, &problem->X_train,
                      &problem->y_train));
  PetscCall(BuildRows(comm, validation, p, dense, row_function, response, &problem->X_val,
                      &problem->y_val));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ProblemDestroy(Problem *problem)
{
  PetscFunctionBeginUser;
  PetscCall(MatDestroy(&problem->X_train));
  PetscCall(MatDestroy(&problem->X_val));
  PetscCall(VecDestroy(&problem->y_train));
  PetscCall(VecDestroy(&problem->y_val));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ValidationLoss(const Problem &problem, const std::vector<double> &w, double *loss,
                              std::vector<double> *gradient)
{
  Vec w_vec, residual, gradient_vec, gradient_all;
  VecScatter gather;
  PetscInt start, end;
  PetscReal norm;

  PetscFunctionBeginUser;
  PetscCall(MatCreateVecs(problem.X_val, &w_vec, &residual));
  PetscCall(VecGetOwnershipRange(w_vec, &start, &end));
  PetscScalar *w_local;
  PetscCall(VecGetArray(w_vec, &w_local));
  for (PetscInt j = start; j < end; ++j)
    w_local[j - start] = w[j];
  PetscCall(VecRestoreArray(w_vec, &w_local));
  PetscCall(MatMult(problem.X_val, w_vec, residual));
  PetscCall(VecAXPY(residual, -1.0, problem.y_val));
  PetscCall(VecNorm(residual, NORM_2, &norm));
  *loss = norm * norm / problem.n_val;
  if (gradient) {
    PetscCall(VecDuplicate(w_vec, &gradient_vec));
    PetscCall(MatMultTranspose(problem.X_val, residual, gradient_vec));
    PetscCall(VecScale(gradient_vec, 2.0 / problem.n_val));
    PetscCall(VecScatterCreateToAll(gradient_vec, &gather, &gradient_all));
    PetscCall(VecScatterBegin(gather, gradient_vec, gradient_all, INSERT_VALUES, SCATTER_FORWARD));
    PetscCall(VecScatterEnd(gather, gradient_vec, gradient_all, INSERT_VALUES, SCATTER_FORWARD));
    const PetscScalar *all;
    PetscCall(VecGetArrayRead(gradient_all, &all));
    gradient->assign(all, all + problem.p);
    PetscCall(VecRestoreArrayRead(gradient_all, &all));
    PetscCall(VecScatterDestroy(&gather));
    PetscCall(VecDestroy(&gradient_all));
    PetscCall(VecDestroy(&gradient_vec));
  }
  PetscCall(VecDestroy(&w_vec));
  PetscCall(VecDestroy(&residual));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::lasso
