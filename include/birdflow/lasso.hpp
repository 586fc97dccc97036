// Lasso regression with its penalty chosen on a validation set: data set-up, a distributed
// working-set coordinate-descent solver, the hypergradient with respect to log(alpha), and the
// hyperparameter-search methods that the lasso-hyper driver compares.
//
// Inner problem: w(alpha) = argmin_w (1/2n) ||X w - y||^2 + alpha ||w||_1 on the training rows.
// Outer criterion: the validation mean squared error (1/n_val) ||X_val w(alpha) - y_val||^2.
#pragma once

#include "birdflow/implicit.hpp"
#include "birdflow/lasso_io.hpp"

#include <petscksp.h>

#include <cstdint>
#include <string>
#include <vector>

namespace birdflow::lasso
{
/* A regression problem split into training and validation rows. Both matrices distribute their rows
   over the ranks of the communicator; the coefficients use the column layout of X_train. */
struct Problem
{
  MPI_Comm comm = MPI_COMM_NULL;
  Mat X_train = nullptr;
  Mat X_val = nullptr;
  Vec y_train = nullptr;
  Vec y_val = nullptr;
  PetscInt n_train = 0;
  PetscInt n_val = 0;
  PetscInt p = 0;
  // Standardisation computed on the training rows: feature j enters as (x_j - mean_j) / scale_j and
  // the response as y - intercept. Synthetic data use mean 0, scale 1 and intercept 0.
  std::vector<double> feature_mean;
  std::vector<double> feature_scale;
  double intercept = 0.0;
};

/* Settings of the synthetic generator. Rows are x_i ~ N(0, I) (dense) or with each entry nonzero
   with probability `density` and then N(0, 1/density) (sparse), y = X w_true + noise * N(0, 1),
   with `informative` nonzero entries of w_true equal to +-1. */
struct SyntheticOptions
{
  PetscInt n = 1000;
  PetscInt p = 5000;
  PetscInt informative = 20;
  double noise = 1.0;
  double density = 1.0;
  PetscInt seed = 0;
};

/* Returns the row order of the train/validation split: rows sorted by SplitMix64(seed * 2^32 + i).
   The first round(fraction * rows) rows of the order are the validation rows. The order depends on
   the seed and the row count only, so any rank count, and a few lines of Python, reproduce it. Not
   collective. */
std::vector<PetscInt> SplitOrder(PetscInt rows, PetscInt seed);

/* Returns the SplitMix64 hash of x, the counter-based generator behind the split and the synthetic
   data. Not collective. */
std::uint64_t SplitMix64(std::uint64_t x);

/* ProblemCreateFromTables - Splits the rows of `X` (rows x p) and `y` (rows x 1) into training and
   validation parts and builds distributed dense matrices. Each feature is standardised with the
   mean and standard deviation of the training rows, and y is centred on its training mean.
   Collective.

   Errors name `x_source` or `y_source` (file names): y not one column, X and y of different row
   counts, a fraction outside (0,1), fewer than 2 rows in either part, a feature that is constant on
   the training rows. */
PetscErrorCode ProblemCreateFromTables(MPI_Comm comm, const Table &X, const Table &y,
                                       const std::string &x_source, const std::string &y_source,
                                       double validation_fraction, PetscInt seed, Problem *problem);

/* ProblemCreateSynthetic - Generates a synthetic problem (dense when options.density == 1, else
   sparse AIJ) and splits it as ProblemCreateFromTables does, without standardisation. Each entry
   comes from a counter-based generator, so the data do not depend on the rank count.
   Collective. */
PetscErrorCode ProblemCreateSynthetic(MPI_Comm comm, const SyntheticOptions &options,
                                      double validation_fraction, PetscInt seed, Problem *problem);

/* ProblemDestroy - Frees the matrices and vectors. Collective. */
PetscErrorCode ProblemDestroy(Problem *problem);

/* Solution of the inner problem at one alpha. `w` and `jacobian` are full-length and identical on
   every rank. The solver uses `w` (and `jacobian` in forward mode) as the starting point. */
struct Solution
{
  std::vector<double> w;
  std::vector<double> jacobian; // dw/dalpha, filled by forward-mode solves only
  double alpha = 0.0;
  double primal = 0.0;           // objective value
  double gap = 0.0;              // duality gap at exit
  PetscInt sweeps = 0;           // coordinate-descent sweeps over the working sets
  PetscInt outer_iterations = 0; // working-set iterations
  bool converged = false;
};

/* Settings of the inner solver, read from the options database under the prefix given to
   Solver::Create (default "lasso_"):
   -<prefix>tol        stopping tolerance on the duality gap, relative to ||y||^2 / (2n) (1e-12)
   -<prefix>max_it     maximum number of working-set iterations (200)
   -<prefix>max_sweeps maximum coordinate-descent sweeps per working set (10000)
   -<prefix>ws_min     smallest working set (10)
   -<prefix>anderson   Anderson extrapolation every K sweeps of plain solves, 0 to disable (5) */
struct SolverOptions
{
  double tol = 1e-12;
  PetscInt max_it = 200;
  PetscInt max_sweeps = 10000;
  PetscInt ws_min = 10;
  PetscInt anderson = 5;
};

/* Working-set coordinate descent for the Lasso (the structure of celer's outer loop, with a plain
   coordinate-descent inner solver on the Gram matrix of the working set).

   Each iteration computes the full residual and gradient with the distributed matrix (MatMult,
   MatMultTranspose) and the duality gap, with a rescaled residual as dual point. Unless the gap is
   below tolerance, the working set is the support plus the features with the largest gradient
   entries. The Gram matrix of that set comes from the local row blocks, reduced to rank 0 and
   broadcast so that every rank has the same bits. Cyclic coordinate descent on it is then the same
   on every rank and involves no communication. */
class Solver
{
public:
  /* Create - Sets up the solver on the training part of `problem` (which must outlive it) and
     reads the options under `prefix`. Collective. */
  PetscErrorCode Create(const Problem &problem, const char *prefix = "lasso_");

  /* Solve - Solves at `alpha` from the starting point in `solution`; with `forward_mode`, also
     iterates the derivative dw/dalpha alongside w (forward-mode iterative differentiation).
     Collective. */
  PetscErrorCode Solve(double alpha, bool forward_mode, Solution *solution);

  /* Returns alpha_max = ||X^T y||_inf / n, the smallest alpha with w = 0. Not collective. */
  double AlphaMax() const { return alpha_max_; }

  /* Returns the settings read by Create. Not collective. */
  const SolverOptions &Options() const { return options_; }

  /* Destroy - Frees the work vectors. Collective. */
  PetscErrorCode Destroy();

private:
  PetscErrorCode Gradient(const std::vector<double> &w, std::vector<double> *gradient,
                          double *residual_sq, double *residual_dot_y);
  PetscErrorCode ExtendGram(const std::vector<PetscInt> &features);
  PetscErrorCode LocalColumn(PetscInt j, double *column) const;
  PetscInt GramIndex(PetscInt j) const { return gram_index_[j]; }
  void CoordinateDescent(double alpha, const std::vector<PetscInt> &set, double kkt_target,
                         bool forward_mode, Solution *solution, PetscInt *sweeps);

  const Problem *problem_ = nullptr;
  SolverOptions options_;
  double alpha_max_ = 0.0;
  double y_norm_sq_ = 0.0; // ||y_train||^2 / n
  PetscInt n_local_ = 0;
  const PetscScalar *dense_ = nullptr; // local rows, column-major, when X is dense
  PetscInt lda_ = 0;
  Mat dense_local_ = nullptr;
  std::vector<PetscInt> csc_start_, csc_row_; // local rows in compressed-column form, when sparse
  std::vector<double> csc_value_;
  std::vector<double> y_local_;
  std::vector<PetscInt> gram_index_; // feature -> position in the cached Gram, or -1
  std::vector<PetscInt> gram_features_;
  std::vector<double> gram_; // cached Gram entries X_j^T X_k / n, row-major
  std::vector<double> xty_;  // X_j^T y / n of the cached features
  Vec w_vec_ = nullptr, residual_ = nullptr, gradient_vec_ = nullptr, gradient_all_ = nullptr;
  VecScatter gather_ = nullptr;
};

/* ValidationLoss - Computes the validation MSE (1/n_val) ||X_val w - y_val||^2 and, if `gradient`
   is not null, its gradient (2/n_val) X_val^T (X_val w - y_val), full-length on every rank.
   Collective. */
PetscErrorCode ValidationLoss(const Problem &problem, const std::vector<double> &w, double *loss,
                              std::vector<double> *gradient);

/* Outcome of one implicit hypergradient. */
struct HypergradientReport
{
  double value = 0.0; // d(validation loss) / d(log alpha)
  PetscInt support_size = 0;
  birdflow::implicit::SolveReport solve;
};

/* Hypergradient by implicit differentiation on the support S of `solution`: solves
   (X_S^T X_S / n) z = v_S matrix-free with the bilevel module (KSP prefix "lasso_hyper_", CG by
   default), then d/d(log alpha) = -alpha sign(w_S)^T z. CG starts from the previous call's z,
   restricted to the new support, as sparse-ho does between outer steps. */
class ImplicitHypergradient
{
public:
  /* Create - Collective. */
  PetscErrorCode Create(const Problem &problem);

  /* Compute - Collective. An empty support gives 0, since w stays 0 near alpha. */
  PetscErrorCode Compute(const Solution &solution, const std::vector<double> &validation_gradient,
                         HypergradientReport *report);

  /* Destroy - Frees the adjoint solver. Collective. */
  PetscErrorCode Destroy();

private:
  const Problem *problem_ = nullptr;
  birdflow::implicit::HypergradientSolver solver_;
  std::vector<double> column_norm_sq_;   // ||X_j||^2 / n for the Jacobi diagonal
  std::vector<double> previous_adjoint_; // last z by feature, 0 off its support
};

/* One evaluation of the validation loss during a search. */
struct Trial
{
  PetscInt iteration = 0; // outer iteration (grid or random: the trial index)
  double alpha = 0.0;
  double validation_loss = 0.0;
  double hypergradient = 0.0; // d loss / d log alpha; NaN when the method computes none
  PetscInt support_size = 0;
  PetscInt inner_iterations = 0; // coordinate-descent sweeps of this inner solve
  bool accepted = true;          // false for rejected line-search trials
  double seconds = 0.0;          // wall time from the start of the search to this trial's end
  std::vector<double> w;
};

/* Outcome of a search. */
struct SearchResult
{
  std::vector<Trial> trials;
  double best_alpha = 0.0;
  double best_loss = 0.0;
  PetscInt inner_solves = 0;
  double seconds = 0.0;
};

enum class Method { Grid, Random, Implicit, Unrolled };

/* Parses "grid", "random", "implicit" or "unrolled"; returns false for anything else. Not
   collective. */
bool ParseMethod(const std::string &name, Method *method);

/* Search settings, read from the options database with the prefix "lasso_":
   -lasso_grid_size          alphas on the grid (100)
   -lasso_alpha_min_ratio    smallest alpha / alpha_max for grid, random and bounds (1e-4)
   -lasso_random_trials      random-search trials (30)
   -lasso_random_seed        random-search seed (0)
   -lasso_outer_type         gd (gradient descent with backtracking line search) or adam (gd)
   -lasso_outer_max_it       outer iterations per start (50)
   -lasso_outer_starts       starting points of the gradient methods, log-spaced (3)
   -lasso_outer_merge_distance  a start stops once it is this close (in log alpha) to the
                             minimiser of an earlier start (0.05)
   -lasso_monitor            print one line per inner solve on rank 0
   plus the outer optimiser's own options (see implicit::OuterOptions). */
struct SearchOptions
{
  PetscInt grid_size = 100;
  double alpha_min_ratio = 1e-4;
  PetscInt random_trials = 30;
  PetscInt random_seed = 0;
  PetscInt starts = 3;
  double merge_distance = 0.05;
  PetscBool monitor = PETSC_FALSE;
  birdflow::implicit::OuterOptions outer;
};

/* SearchOptionsSetFromOptions - Reads SearchOptions from the options database. Collective. */
PetscErrorCode SearchOptionsSetFromOptions(MPI_Comm comm, SearchOptions *options);

/* RunSearch - Runs one method on `problem` and fills `result`. Collective. */
PetscErrorCode RunSearch(const Problem &problem, Method method, const SearchOptions &options,
                         SearchResult *result);

/* A search result labelled with the name of its method. */
struct NamedResult
{
  std::string method;
  SearchResult result;
};

/* WriteTrialsCsv - Writes one row per trial (method, outer iteration, alpha, validation loss,
   hypergradient, support size, inner iterations, accepted, seconds) to the partial file of `path`
   and commits it. Gradient methods number the iterations of their k-th start from 1000 k. When
   `coefficients_path` is not empty, also writes method, alpha and w for each trial there.
   Collective; rank 0 writes. */
PetscErrorCode WriteTrialsCsv(MPI_Comm comm, const std::vector<NamedResult> &results,
                              const std::string &path, const std::string &coefficients_path);
} // namespace birdflow::lasso
