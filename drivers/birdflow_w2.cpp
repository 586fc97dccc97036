/*
  birdflow-w2: entropic optimal transport between two distributions on a raster grid.

  Computes OT_eps(a, b) (--quantity ot), the debiased Sinkhorn divergence S_eps(a, b)
  (--quantity divergence, which tends to the squared 2-Wasserstein distance as eps -> 0), or the
  transport cost <C, P_eps> of the entropic plan (--quantity sharp), with the squared distance in
  km^2 between cell centres as the cost, and optionally the gradient with respect to a and b.

  Sample runs:
    mpirun -np 2 birdflow-w2 --input pair.h5 --cell-size 100 --epsilon 2500 \
        --quantity divergence --gradient --output w2.h5
    mpirun -np 2 birdflow-w2 --species data/sstspa/sstspa_2023_100km_preprocessed.hdf5 \
        --weeks 10,11 --epsilon 10000 --quantity divergence --output w2.h5 -ot_tol 1e-10
    birdflow-w2 --input pair.h5 --cell-size 80 --epsilon 6400 --quantity sharp --gradient \
        -ot_hess_ksp_rtol 1e-12 -ot_hess_ksp_converged_reason -log_view
*/
#include "birdflow/driver.hpp"
#include "birdflow/ot.hpp"
#include "birdflow/ot_files.hpp"
#include "birdflow/output_file.hpp"
#include "birdflow/petsc_compat.hpp"
#include "birdflow/species.hpp"

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace
{
const char kPetscHelp[] = "birdflow-w2: entropic OT on a raster grid. Sinkhorn options: -ot_tol, "
                          "-ot_max_it, -ot_anneal_factor, -ot_anneal_init, -ot_anneal_tol; "
                          "implicit solves: -ot_hess_ksp_*.\n";

struct Options
{
  std::string input, species, output, quantity = "divergence";
  std::vector<int> weeks;
  double cell_size = 0, epsilon = 0;
  bool gradient = false, normalize = false;
};

const std::map<std::string, birdflow::OTQuantity> kQuantities = {
    {"ot", birdflow::OTQuantity::kEntropic},
    {"divergence", birdflow::OTQuantity::kDivergence},
    {"sharp", birdflow::OTQuantity::kSharp}};

std::string Number(double value)
{
  char text[64];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

// Checks the option combinations CLI11 cannot express. Collective (same verdict on every rank).
PetscErrorCode CheckOptions(MPI_Comm comm, const Options &options)
{
  PetscFunctionBeginUser;
  PetscCheck(options.input.empty() != options.species.empty(), comm, PETSC_ERR_USER_INPUT,
             "give exactly one of --input and --species");
  PetscCheck(options.species.empty() || options.weeks.size() == 2, comm, PETSC_ERR_USER_INPUT,
             "--species needs --weeks A,B with two week numbers (from 1)");
  PetscCheck(!options.input.empty() || options.cell_size == 0, comm, PETSC_ERR_USER_INPUT,
             "--cell-size applies to --input only; a species file defines its own cell size");
  PetscCheck(options.species.empty() || options.cell_size == 0, comm, PETSC_ERR_USER_INPUT,
             "--cell-size applies to --input only");
  PetscCheck(options.input.empty() || (options.cell_size > 0 && std::isfinite(options.cell_size)),
             comm, PETSC_ERR_USER_INPUT, "--cell-size %s km: give the positive cell side in km",
             Number(options.cell_size).c_str());
  PetscCheck(options.epsilon > 0 && std::isfinite(options.epsilon), comm, PETSC_ERR_USER_INPUT,
             "--epsilon %s: give a positive eps in km^2 (for example 0.25 to 10 times the squared "
             "cell size)",
             Number(options.epsilon).c_str());
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Reads the pair of distributions from --input or from two weeks of --species. Collective.
PetscErrorCode LoadInput(MPI_Comm comm, const Options &options, birdflow::OTInput *input)
{
  PetscFunctionBeginUser;
  if (!options.input.empty()) {
    PetscCall(birdflow::ReadOTInput(comm, options.input, input));
    input->cell_size_km = options.cell_size;
  } else {
    birdflow::SpeciesData species;
    PetscCall(birdflow::ReadSpecies(comm, options.species, &species));
    PetscCall(birdflow::SpeciesWeekPair(comm, species, options.weeks[0], options.weeks[1], input));
  }
  PetscCall(birdflow::CheckOTInput(comm, options.normalize, input));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode PrintSummary(MPI_Comm comm, const Options &options, const birdflow::OTInput &input,
                            const birdflow::OTResult &result)
{
  const birdflow::OTReport &report = result.report;
  const double h = input.cell_size_km;

  PetscFunctionBeginUser;
  PetscCall(PetscPrintf(comm,
                        "birdflow-w2: %s = %.10g km^2 (sqrt %.6g km), eps %.6g km^2 (eps/h^2 "
                        "%.4g), grid %" PetscInt_FMT " x %" PetscInt_FMT ", %" PetscInt_FMT
                        " iterations, marginal error %.3g, %s",
                        options.quantity.c_str(), result.value, std::sqrt(std::fabs(result.value)),
                        options.epsilon, options.epsilon / (h * h), input.nrow, input.ncol,
                        report.iterations, report.marginal_error,
                        report.converged ? "converged" : "NOT converged"));
  if (options.quantity == "divergence")
    PetscCall(PetscPrintf(comm, ", self terms %" PetscInt_FMT " and %" PetscInt_FMT " iterations",
                          report.iterations_aa, report.iterations_bb));
  if (options.gradient && options.quantity == "sharp")
    PetscCall(PetscPrintf(comm, ", KSP %" PetscInt_FMT " iterations (%s)", report.ksp_iterations,
                          KSPConvergedReasons[report.ksp_reason]));
  PetscCall(PetscPrintf(comm, "\n"));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

int main(int argc, char **argv)
{
  // 1. Command line: run setup here; Sinkhorn and KSP knobs pass through to PETSc (-ot_*).
  CLI::App app{"Entropic optimal transport (W2) between two distributions on a raster grid",
               "birdflow-w2"};
  Options options;
  app.add_option("--input", options.input,
                 "HDF5 file with 2D datasets a and b (nrow x ncol; NaN marks a masked cell)");
  app.add_option("--species", options.species, "BirdFlowR species file (instead of --input)");
  app.add_option("--weeks", options.weeks, "Two weeks of --species, from 1, e.g. 10,11")
      ->delimiter(',')
      ->expected(2);
  app.add_option("--cell-size", options.cell_size, "Cell side in km (with --input)");
  app.add_option("--epsilon", options.epsilon, "Entropic regularisation eps in km^2")->required();
  app.add_option("--quantity", options.quantity, "ot, divergence or sharp (default divergence)")
      ->check(CLI::IsMember({"ot", "divergence", "sharp"}));
  app.add_flag("--gradient", options.gradient, "Also compute the gradients w.r.t. a and b");
  app.add_flag("--normalize", options.normalize,
               "Rescale a and b to sum 1 (otherwise a sum off by more than 1e-6 is an error)");
  app.add_option("--output", options.output, "HDF5 result file (written only on success)");

  return birdflow::RunDriver(argc, argv, app, kPetscHelp, [&]() -> PetscErrorCode {
    MPI_Comm comm = PETSC_COMM_WORLD;
    birdflow::OTInput input;
    birdflow::OTSolver solver;
    birdflow::OTResult result;

    PetscFunctionBeginUser;
    // 2. Check the options and the output folder before any work.
    PetscCall(birdflow::PrintConfiguration(comm, app));
    PetscCall(CheckOptions(comm, options));
    if (!options.output.empty()) {
      PetscCall(birdflow::CheckOutputPath(comm, options.output, "--output"));
      PetscCall(
          birdflow::CheckOutputNotInput(comm, options.output, "--output", options.input, "--input"));
      PetscCall(birdflow::CheckOutputNotInput(comm, options.output, "--output", options.species,
                                              "--species"));
    }

    // 3. Read and validate the two distributions (every rank gets a copy).
    PetscCall(LoadInput(comm, options, &input));

    // 4. Set up the solver on the grid; -ot_* options override the defaults.
    PetscCall(solver.Setup(comm, input.nrow, input.ncol, input.cell_size_km));
    PetscCall(solver.SetFromOptions());

    // 5. Solve on this rank's row slab.
    const PetscInt start = solver.RowStart() * input.ncol, size = solver.LocalSize();
    std::vector<double> a(input.a.begin() + start, input.a.begin() + start + size);
    std::vector<double> b(input.b.begin() + start, input.b.begin() + start + size);
    PetscCall(solver.Evaluate(kQuantities.at(options.quantity), a.data(), b.data(), options.epsilon,
                              options.gradient, nullptr, &result));

    // 6. One summary line, then the result file.
    PetscCall(PrintSummary(comm, options, input, result));
    if (!options.output.empty()) {
      birdflow::OTOutputRecord record;
      record.quantity = options.quantity;
      record.epsilon = options.epsilon;
      record.cell_size_km = input.cell_size_km;
      record.nrow = input.nrow;
      record.ncol = input.ncol;
      record.result = &result;
      record.gradient = options.gradient;
      record.implicit = options.gradient && options.quantity == "sharp";
      PetscCall(birdflow::WriteOTOutput(comm, options.output, record));
    }
    PetscFunctionReturn(PETSC_SUCCESS);
  });
}
