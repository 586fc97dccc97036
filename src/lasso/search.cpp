#include "birdflow/lasso.hpp"

#include "birdflow/output_file.hpp"
#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

namespace birdflow::lasso
{
namespace
{
// Shared state of one search: the inner solver, the hypergradient, the warm start and the trials.
struct Search
{
  const Problem *problem = nullptr;
  const SearchOptions *options = nullptr;
  Solver solver;
  ImplicitHypergradient implicit;
  Solution warm;
  SearchResult *result = nullptr;
  double started = 0.0; // MPI_Wtime at the start of the search
};

// Solves at alpha from the warm start, records the trial and returns its validation loss and, for
// the gradient methods, d loss / d log(alpha).
PetscErrorCode Evaluate(Search &search, double alpha, Method method, double *loss,
                        double *hypergradient)
{
  Trial trial;
  std::vector<double> validation_gradient;

  PetscFunctionBeginUser;
  const bool forward_mode = method == Method::Unrolled;
  PetscCall(search.solver.Solve(alpha, forward_mode, &search.warm));
  ++search.result->inner_solves;
  const bool need_gradient = method == Method::Unrolled || method == Method::Implicit;
  PetscCall(ValidationLoss(*search.problem, search.warm.w, loss,
                           need_gradient ? &validation_gradient : nullptr));
  trial.hypergradient = NAN;
  HypergradientReport report;
  if (method == Method::Implicit) {
    PetscCall(search.implicit.Compute(search.warm, validation_gradient, &report));
    trial.hypergradient = report.value;
  } else if (method == Method::Unrolled) {
    double dot = 0.0;
    for (PetscInt j = 0; j < search.problem->p; ++j)
      dot += validation_gradient[j] * search.warm.jacobian[j];
    trial.hypergradient = alpha * dot;
  }
  if (hypergradient) *hypergradient = trial.hypergradient;
  trial.alpha = alpha;
  trial.validation_loss = *loss;
  trial.inner_iterations = search.warm.sweeps;
  for (double w : search.warm.w)
    trial.support_size += w != 0.0;
  trial.w = search.warm.w;
  trial.seconds = MPI_Wtime() - search.started;
  if (search.options->monitor) {
    const char *reason =
        method == Method::Implicit ? KSPConvergedReasons[report.solve.reason] : "-";
    PetscCall(PetscPrintf(search.problem->comm,
                          "  solve %3" PetscInt_FMT " alpha %.6e validation MSE %.10g "
                          "hypergradient %.4e support %" PetscInt_FMT " sweeps %" PetscInt_FMT
                          " gap %.2e%s KSP %" PetscInt_FMT " %s%s  %.3f s\n",
                          search.result->inner_solves, alpha, *loss, trial.hypergradient,
                          trial.support_size, trial.inner_iterations, search.warm.gap,
                          search.warm.converged ? "" : " (not converged)", report.solve.iterations,
                          reason, report.solve.shift > 0 ? " (shifted: singular X_S)" : "",
                          trial.seconds));
  }
  search.result->trials.push_back(std::move(trial));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Evaluates a list of alphas in decreasing order, so each solve warm-starts from a sparser one.
PetscErrorCode EvaluateList(Search &search, std::vector<double> alphas, Method method)
{
  double loss;

  PetscFunctionBeginUser;
  std::sort(alphas.begin(), alphas.end(), std::greater<double>());
  for (size_t k = 0; k < alphas.size(); ++k) {
    PetscCall(Evaluate(search, alphas[k], method, &loss, nullptr));
    search.result->trials.back().iteration = static_cast<PetscInt>(k);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Gradient descent (or Adam) on log(alpha) from each starting point in turn.
PetscErrorCode GradientSearch(Search &search, Method method, const SearchOptions &options)
{
  const double log_max = std::log(search.solver.AlphaMax());
  const double log_min = log_max + std::log(options.alpha_min_ratio);
  birdflow::implicit::OuterOptions outer = options.outer;
  outer.lower = {log_min};
  outer.upper = {log_max};

  std::vector<double> minimisers;

  PetscFunctionBeginUser;
  for (PetscInt start = 0; start < options.starts; ++start) {
    // Starting points log-spaced inside the bounds, from the sparsest model down; each start
    // warm-starts from the last solution of the previous one.
    std::vector<double> theta = {log_max +
                                 (log_min - log_max) * (start + 1) / (options.starts + 1)};
    size_t first_trial = search.result->trials.size();
    auto objective = [&](const std::vector<double> &t, double *value,
                         std::vector<double> *gradient) -> PetscErrorCode {
      double g;
      PetscFunctionBeginUser;
      PetscCall(Evaluate(search, std::exp(t[0]), method, value, &g));
      gradient->assign(1, g);
      PetscFunctionReturn(PETSC_SUCCESS);
    };
    // A start that reaches the basin of an earlier start's minimiser (closer than
    // options.merge_distance in log alpha) stops there, since it would only repeat that descent.
    auto observer = [&](PetscInt iteration, bool accepted, bool *stop) -> PetscErrorCode {
      PetscFunctionBeginUser;
      Trial &trial = search.result->trials.back();
      trial.iteration = iteration;
      trial.accepted = accepted;
      for (double theta_done : minimisers)
        if (accepted && std::fabs(std::log(trial.alpha) - theta_done) < options.merge_distance)
          *stop = true;
      PetscFunctionReturn(PETSC_SUCCESS);
    };
    double best;
    PetscCall(
        birdflow::implicit::MinimizeHyperparameters(objective, observer, outer, &theta, &best));
    minimisers.push_back(theta[0]);
    for (size_t k = first_trial; k < search.result->trials.size(); ++k)
      search.result->trials[k].iteration += 1000 * start;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

bool ParseMethod(const std::string &name, Method *method)
{
  if (name == "grid")
    *method = Method::Grid;
  else if (name == "random")
    *method = Method::Random;
  else if (name == "implicit")
    *method = Method::Implicit;
  else if (name == "unrolled")
    *method = Method::Unrolled;
  else
    return false;
  return true;
}

PetscErrorCode SearchOptionsSetFromOptions(MPI_Comm comm, SearchOptions *options)
{
  PetscBool set;

  PetscFunctionBeginUser;
  PetscCall(PetscOptionsGetInt(nullptr, "lasso_", "-grid_size", &options->grid_size, &set));
  PetscCall(
      PetscOptionsGetReal(nullptr, "lasso_", "-alpha_min_ratio", &options->alpha_min_ratio, &set));
  PetscCall(PetscOptionsGetInt(nullptr, "lasso_", "-random_trials", &options->random_trials, &set));
  PetscCall(PetscOptionsGetInt(nullptr, "lasso_", "-random_seed", &options->random_seed, &set));
  PetscCall(PetscOptionsGetInt(nullptr, "lasso_", "-outer_starts", &options->starts, &set));
  PetscCall(PetscOptionsGetReal(nullptr, "lasso_", "-outer_merge_distance",
                                &options->merge_distance, &set));
  PetscCall(PetscOptionsGetBool(nullptr, "lasso_", "-monitor", &options->monitor, &set));
  PetscCheck(options->grid_size >= 2 && options->random_trials >= 1 && options->starts >= 1, comm,
             PETSC_ERR_ARG_OUTOFRANGE,
             "-lasso_grid_size must be >= 2, -lasso_random_trials and -lasso_outer_starts >= 1");
  PetscCheck(options->alpha_min_ratio > 0 && options->alpha_min_ratio < 1, comm,
             PETSC_ERR_ARG_OUTOFRANGE, "-lasso_alpha_min_ratio %g is outside (0,1)",
             options->alpha_min_ratio);
  PetscCall(birdflow::implicit::OuterOptionsSetFromOptions("lasso_outer_", &options->outer));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode RunSearch(const Problem &problem, Method method, const SearchOptions &options,
                         SearchResult *result)
{
  Search search;

  PetscFunctionBeginUser;
  *result = SearchResult();
  PetscCallMPI(MPI_Barrier(problem.comm));
  double started = MPI_Wtime();
  search.started = started;
  search.problem = &problem;
  search.options = &options;
  search.result = result;
  PetscCall(search.solver.Create(problem));
  if (method == Method::Implicit) PetscCall(search.implicit.Create(problem));
  const double alpha_max = search.solver.AlphaMax();
  PetscCheck(alpha_max > 0, problem.comm, PETSC_ERR_ARG_WRONG,
             "Lasso: X^T y = 0 on the training rows, so every alpha gives w = 0");

  if (method == Method::Grid) {
    std::vector<double> alphas(options.grid_size);
    for (PetscInt k = 0; k < options.grid_size; ++k)
      alphas[k] = alpha_max * std::pow(options.alpha_min_ratio,
                                       static_cast<double>(k) / (options.grid_size - 1));
    PetscCall(EvaluateList(search, alphas, method));
  } else if (method == Method::Random) {
    std::vector<double> alphas(options.random_trials);
    for (PetscInt k = 0; k < options.random_trials; ++k) {
      std::uint64_t h = SplitMix64(SplitMix64(options.random_seed) + k);
      double u = ((h >> 11) + 0.5) / 9007199254740992.0;
      alphas[k] = alpha_max * std::pow(options.alpha_min_ratio, u);
    }
    PetscCall(EvaluateList(search, alphas, method));
  } else {
    PetscCall(GradientSearch(search, method, options));
  }

  result->best_loss = INFINITY;
  for (const Trial &trial : result->trials)
    if (trial.validation_loss < result->best_loss) {
      result->best_loss = trial.validation_loss;
      result->best_alpha = trial.alpha;
    }
  PetscCall(search.solver.Destroy());
  if (method == Method::Implicit) PetscCall(search.implicit.Destroy());
  result->seconds = MPI_Wtime() - started;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode WriteTrialsCsv(MPI_Comm comm, const std::vector<NamedResult> &results,
                              const std::string &path, const std::string &coefficients_path)
{
  PetscMPIInt rank;
  int failed = 0;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0 && !path.empty()) {
    std::FILE *file = std::fopen(PartialPath(path).c_str(), "w");
    failed = !file;
    if (file) {
      std::fprintf(file, "method,iteration,alpha,validation_loss,hypergradient,support_size,"
                         "inner_iterations,accepted,seconds\n");
      for (const NamedResult &named : results)
        for (const Trial &t : named.result.trials)
          std::fprintf(file, "%s,%d,%.17g,%.17g,%.17g,%d,%d,%d,%.6f\n", named.method.c_str(),
                       static_cast<int>(t.iteration), t.alpha, t.validation_loss, t.hypergradient,
                       static_cast<int>(t.support_size), static_cast<int>(t.inner_iterations),
                       t.accepted ? 1 : 0, t.seconds);
      failed = std::fclose(file) != 0;
    }
  }
  if (rank == 0 && !failed && !coefficients_path.empty()) {
    std::FILE *file = std::fopen(PartialPath(coefficients_path).c_str(), "w");
    failed = !file;
    if (file) {
      std::fprintf(file, "method,alpha");
      size_t p = results.empty() || results[0].result.trials.empty()
                     ? 0
                     : results[0].result.trials[0].w.size();
      for (size_t j = 0; j < p; ++j)
        std::fprintf(file, ",w%zu", j + 1);
      std::fprintf(file, "\n");
      for (const NamedResult &named : results)
        for (const Trial &t : named.result.trials) {
          std::fprintf(file, "%s,%.17g", named.method.c_str(), t.alpha);
          for (double w : t.w)
            std::fprintf(file, ",%.17g", w);
          std::fprintf(file, "\n");
        }
      failed = std::fclose(file) != 0;
    }
  }
  PetscCallMPI(MPI_Bcast(&failed, 1, MPI_INT, 0, comm));
  PetscCheck(!failed, comm, PETSC_ERR_FILE_WRITE, "cannot write %s or %s", path.c_str(),
             coefficients_path.c_str());
  if (!path.empty()) PetscCall(CommitOutputFile(comm, path));
  if (!coefficients_path.empty()) PetscCall(CommitOutputFile(comm, coefficients_path));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::lasso
