/*
  birdflow-eval: validation metrics of a fitted BirdFlow model, compatible with BirdFlowR.

  Reads a fitted model (BirdFlowPy / birdflow-train layout) and a table of banding or tracking
  intervals. Writes one CSV row per interval: log-likelihood, null log-likelihood, win distance,
  win probability, energy scores and the flags of intervals that cannot be scored. Prints the
  summary means and the distribution correlations. docs/evaluation.md defines every column.

  Sample runs:
    mpirun -np 2 build/bin/birdflow-eval --model data/rewbla/rewbla_2021_250km_fitted.hdf5 \
      --intervals data/rewbla/rewbla_banding_intervals.csv --output rewbla_intervals.csv
    mpirun -np 1 build/bin/birdflow-eval --model data/rewbla/rewbla_2021_250km_fitted.hdf5 \
      --intervals data/rewbla/rewbla_banding_intervals.csv --output rewbla_intervals.csv -log_view
*/
#include "birdflow/driver.hpp"
#include "birdflow/metrics.hpp"
#include "birdflow/output_file.hpp"
#include "birdflow/petsc_compat.hpp"
#include "birdflow/species.hpp"

#include <filesystem>

static const char help[] = "Validation metrics of a fitted BirdFlow model.\n";

int main(int argc, char **argv)
{
  CLI::App app{"Validation metrics of a fitted BirdFlow model, compatible with BirdFlowR",
               "birdflow-eval"};
  std::string model_path, intervals_path, output_path, summary_path;
  app.add_option("--model", model_path, "Fitted model HDF5 file (with marginals)")->required();
  app.add_option("--intervals", intervals_path,
                 "Interval CSV with interval_id, t1, t2, i1, i2 (1-based), optionally date1, "
                 "date2, lat1, lon1, lat2, lon2")
      ->required();
  app.add_option("--output", output_path, "Per-interval metrics CSV to write")->required();
  app.add_option("--summary", summary_path,
                 "Also write the summary and distribution metrics as a metric,value CSV");

  return birdflow::RunDriver(argc, argv, app, help, [&]() -> PetscErrorCode {
    MPI_Comm comm = PETSC_COMM_WORLD;
    birdflow::SpeciesData species;
    std::vector<std::vector<double>> marginals;
    std::vector<birdflow::Interval> intervals;
    birdflow::Evaluation evaluation;
    PetscLogStage load_stage, evaluate_stage, write_stage;

    PetscFunctionBeginUser;
    PetscCall(birdflow::PrintConfiguration(comm, app));
    PetscCall(PetscLogStageRegister("Load", &load_stage));
    PetscCall(PetscLogStageRegister("Evaluate", &evaluate_stage));
    PetscCall(PetscLogStageRegister("Write", &write_stage));

    // 1. Check the output folder before any work, then read the model and the intervals.
    PetscCall(birdflow::CheckOutputPath(comm, output_path, "--output"));
    PetscCall(birdflow::CheckOutputNotInput(comm, output_path, "--output", model_path, "--model"));
    PetscCall(birdflow::CheckOutputNotInput(comm, output_path, "--output", intervals_path,
                                            "--intervals"));
    if (!summary_path.empty()) {
      PetscCall(birdflow::CheckOutputPath(comm, summary_path, "--summary"));
      PetscCall(
          birdflow::CheckOutputNotInput(comm, summary_path, "--summary", model_path, "--model"));
      PetscCall(birdflow::CheckOutputNotInput(comm, summary_path, "--summary", intervals_path,
                                              "--intervals"));
      PetscCheck(std::filesystem::weakly_canonical(summary_path) !=
                     std::filesystem::weakly_canonical(output_path),
                 comm, PETSC_ERR_USER_INPUT,
                 "--summary %s is also --output; give the summary its own file",
                 summary_path.c_str());
    }
    PetscCall(PetscLogStagePush(load_stage));
    PetscCall(birdflow::ReadSpecies(comm, model_path, &species));
    PetscCheck(species.has_marginals, comm, PETSC_ERR_USER_INPUT,
               "%s has no marginals group; --model needs a fitted model, not a preprocessed file",
               model_path.c_str());
    PetscCall(birdflow::ReadMarginals(comm, species, &marginals));
    PetscCall(birdflow::ReadIntervals(comm, intervals_path, &intervals));
    PetscCall(PetscLogStagePop());

    // 2. Predict every interval's end week and score it; correlate the weekly distributions.
    PetscCall(PetscLogStagePush(evaluate_stage));
    PetscCall(
        birdflow::EvaluateModel(comm, species, marginals, intervals, intervals_path, &evaluation));
    PetscCall(PetscLogStagePop());

    // 3. Write the per-interval table and print the summary.
    PetscCall(PetscLogStagePush(write_stage));
    PetscCall(birdflow::WriteIntervalResults(comm, output_path, intervals, evaluation.intervals));
    if (!summary_path.empty())
      PetscCall(birdflow::WriteEvaluationSummary(comm, summary_path, evaluation));
    PetscCall(PetscLogStagePop());
    PetscCall(
        PetscPrintf(comm, "wrote %zu intervals to %s\n", intervals.size(), output_path.c_str()));
    PetscCall(birdflow::PrintEvaluationSummary(comm, evaluation));
    PetscFunctionReturn(PETSC_SUCCESS);
  });
}
