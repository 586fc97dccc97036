// lasso-hyper: chooses the Lasso penalty alpha that minimises the validation mean squared error,
// by implicit differentiation, and compares it with grid search, random search and forward-mode
// iterative differentiation (unrolling).
//
// Sample runs:
//   mpirun -np 2 build/bin/lasso-hyper --dataset diabetes --method implicit --output trials.csv
//   mpirun -np 2 build/bin/lasso-hyper --dataset diabetes --method all --output trials.csv
//          --coefficients coef.csv
//   mpirun -np 2 build/bin/lasso-hyper --x X.csv.gz --y y.csv --validation-fraction 0.25 --seed 3
//   mpirun -np 2 build/bin/lasso-hyper --dataset synthetic --synthetic-n 2000 --synthetic-p 5000
//          --method grid -lasso_grid_size 100 -log_view
//
// Numerical settings live in the PETSc options database: -lasso_tol, -lasso_grid_size,
// -lasso_outer_type gd|adam, -lasso_outer_starts, -lasso_hyper_ksp_type, ... (see docs/lasso.md).
#include "birdflow/driver.hpp"
#include "birdflow/lasso.hpp"
#include "birdflow/output_file.hpp"
#include "birdflow/petsc_compat.hpp"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

static const char help[] = "Lasso hyperparameter selection by implicit differentiation.\n";

namespace
{
namespace lasso = birdflow::lasso;

struct Settings
{
  std::string dataset;
  std::string x_path, y_path;
  std::string data_dir;
  double validation_fraction = 0.3;
  PetscInt seed = 0;
  std::string method = "implicit";
  std::string output, coefficients;
  lasso::SyntheticOptions synthetic;
};

// Returns the data folder: $BIRDFLOW_DATA_DIR, else the data/ folder of this source tree.
std::string DefaultDataDir()
{
  if (const char *env = std::getenv("BIRDFLOW_DATA_DIR")) return env;
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "data").string();
}

void AddOptions(CLI::App &app, Settings &s)
{
  app.add_option("--dataset", s.dataset, "Built-in data: diabetes (442 x 10) or synthetic")
      ->check(CLI::IsMember({"diabetes", "synthetic"}));
  app.add_option("--x", s.x_path,
                 "Feature matrix: text (spaces, tabs or commas; .gz allowed) or FILE.h5[:dataset]");
  app.add_option("--y", s.y_path, "Response: one value per row of --x, same formats");
  app.add_option("--data-dir", s.data_dir, "Folder holding lasso/diabetes_*.csv.gz")
      ->default_str("$BIRDFLOW_DATA_DIR or the source tree's data/");
  app.add_option("--validation-fraction", s.validation_fraction,
                 "Fraction of the rows held out for validation, in (0,1)")
      ->capture_default_str();
  app.add_option("--seed", s.seed, "Seed of the train/validation split and of the synthetic data")
      ->capture_default_str();
  app.add_option("--method", s.method, "implicit, grid, random, unrolled or all")
      ->check(CLI::IsMember({"implicit", "grid", "random", "unrolled", "all"}))
      ->capture_default_str();
  app.add_option("--output", s.output,
                 "CSV with one row per inner solve (alpha, validation loss, hypergradient, ...)");
  app.add_option("--coefficients", s.coefficients,
                 "CSV with the coefficients of every inner solve");
  app.add_option("--synthetic-n", s.synthetic.n, "Synthetic rows")->capture_default_str();
  app.add_option("--synthetic-p", s.synthetic.p, "Synthetic features")->capture_default_str();
  app.add_option("--synthetic-informative", s.synthetic.informative,
                 "Nonzero true coefficients of the synthetic data")
      ->capture_default_str();
  app.add_option("--synthetic-density", s.synthetic.density,
                 "Fraction of nonzero entries of synthetic X (below 1 gives a sparse AIJ matrix)")
      ->capture_default_str();
  app.add_option("--synthetic-noise", s.synthetic.noise, "Noise standard deviation")
      ->capture_default_str();
}

PetscErrorCode LoadProblem(MPI_Comm comm, const Settings &s, lasso::Problem *problem)
{
  lasso::Table X, y;

  PetscFunctionBeginUser;
  const bool files = !s.x_path.empty() || !s.y_path.empty();
  PetscCheck(files != !s.dataset.empty(), comm, PETSC_ERR_ARG_WRONG,
             "give either --dataset diabetes|synthetic or both --x FILE and --y FILE");
  PetscCheck(!files || (!s.x_path.empty() && !s.y_path.empty()), comm, PETSC_ERR_ARG_WRONG,
             "--x and --y go together; give both files");
  if (s.dataset == "synthetic") {
    lasso::SyntheticOptions synthetic = s.synthetic;
    synthetic.seed = s.seed;
    PetscCall(
        lasso::ProblemCreateSynthetic(comm, synthetic, s.validation_fraction, s.seed, problem));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  std::string x_path = s.x_path, y_path = s.y_path;
  if (s.dataset == "diabetes") {
    std::string dir = s.data_dir.empty() ? DefaultDataDir() : s.data_dir;
    x_path = dir + "/lasso/diabetes_data_raw.csv.gz";
    y_path = dir + "/lasso/diabetes_target.csv.gz";
  }
  PetscCall(lasso::ReadTable(comm, x_path, "--x", "X", &X));
  PetscCall(lasso::ReadTable(comm, y_path, "--y", "y", &y));
  PetscCall(lasso::ProblemCreateFromTables(comm, X, y, x_path, y_path, s.validation_fraction,
                                           s.seed, problem));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode PrintSummary(MPI_Comm comm, const lasso::NamedResult &named)
{
  const lasso::SearchResult &r = named.result;

  PetscFunctionBeginUser;
  PetscCall(PetscPrintf(
      comm,
      "%-9s best alpha %.6g  validation MSE %.6f  inner solves %" PetscInt_FMT "  time %.3f s\n",
      named.method.c_str(), r.best_alpha, r.best_loss, r.inner_solves, r.seconds));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

int main(int argc, char **argv)
{
  CLI::App app{"Chooses the Lasso penalty by implicit differentiation", "lasso-hyper"};
  Settings settings;
  AddOptions(app, settings);

  return birdflow::RunDriver(argc, argv, app, help, [&]() -> PetscErrorCode {
    MPI_Comm comm = PETSC_COMM_WORLD;
    lasso::Problem problem;
    lasso::SearchOptions options;
    std::vector<lasso::NamedResult> results;
    PetscLogStage load_stage, search_stage;

    PetscFunctionBeginUser;
    PetscCall(PetscLogStageRegister("Load", &load_stage));
    PetscCall(PetscLogStageRegister("Search", &search_stage));
    PetscCall(birdflow::PrintConfiguration(comm, app));

    // 1. Check the outputs and read the settings before any work.
    if (!settings.output.empty())
      PetscCall(birdflow::CheckOutputPath(comm, settings.output, "--output"));
    if (!settings.coefficients.empty())
      PetscCall(birdflow::CheckOutputPath(comm, settings.coefficients, "--coefficients"));
    PetscCall(lasso::SearchOptionsSetFromOptions(comm, &options));

    // 2. Load, split and standardise the data.
    PetscCall(PetscLogStagePush(load_stage));
    PetscCall(LoadProblem(comm, settings, &problem));
    PetscCall(PetscLogStagePop());
    PetscCall(PetscPrintf(comm,
                          "data: %" PetscInt_FMT " training and %" PetscInt_FMT
                          " validation rows, %" PetscInt_FMT " features\n",
                          problem.n_train, problem.n_val, problem.p));

    // 3. Run the requested methods.
    std::vector<std::string> methods = {settings.method};
    if (settings.method == "all") methods = {"grid", "random", "unrolled", "implicit"};
    PetscCall(PetscLogStagePush(search_stage));
    for (const std::string &name : methods) {
      lasso::Method method;
      lasso::ParseMethod(name, &method);
      results.push_back({name, lasso::SearchResult()});
      PetscCall(lasso::RunSearch(problem, method, options, &results.back().result));
      PetscCall(PrintSummary(comm, results.back()));
    }
    PetscCall(PetscLogStagePop());

    // 4. Write the trials and the coefficient path.
    PetscCall(lasso::WriteTrialsCsv(comm, results, settings.output, settings.coefficients));
    const lasso::SearchResult &last = results.back().result;
    PetscCall(PetscPrintf(comm, "best alpha %.10g validation MSE %.10g\n", last.best_alpha,
                          last.best_loss));
    PetscCall(lasso::ProblemDestroy(&problem));
    PetscFunctionReturn(PETSC_SUCCESS);
  });
}
