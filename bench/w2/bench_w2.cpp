/*
  bench-w2: time of the W2 location loss in training, per week-group layout.

  For each number of week groups G in --groups, the run trains the same chain from the same
  initial logits for --steps Adam steps with the W2 loss (warm-started potentials). It times each
  step's W2 evaluation and the whole step. G = 1 puts all ranks on every week's grid, G = ranks
  gives each rank its own weeks, and values in between combine both. The first step starts
  Sinkhorn cold and is reported apart. With --cold the run also repeats the first layout without
  warm starts, which measures the Sinkhorn iterations that warm starts save.

  Sample runs (bench/w2/run.sh runs the documented set):
    mpiexec -n 2 build/bin/bench-w2 --input data/sstspa/sstspa_2023_100km_preprocessed.hdf5 \
        --groups 1,2 --steps 20 -ot_tol 1e-6
    mpiexec -n 1 build/bin/bench-w2 --input data/rewbla/rewbla_2021_250km_preprocessed.hdf5 \
        --groups 1 --epsilon-relative 4 --steps 10 --cold
*/
#include "birdflow/driver.hpp"
#include "birdflow/markov.hpp"
#include "birdflow/petsc_compat.hpp"
#include "birdflow/species.hpp"
#include "birdflow/training.hpp"
#include "birdflow/w2_loss.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace
{
struct Settings
{
  std::string input;
  std::vector<long long> groups{1};
  long long steps = 10;
  double epsilon_relative = 1.0, w2_weight = 1e-5;
  bool cold = false;
};

// Timings of one training run with one layout.
struct Measurement
{
  double first_w2 = 0, w2 = 0, step = 0;   // seconds: step 1's W2, then means over steps 2..
  double sinkhorn_first = 0, sinkhorn = 0; // Sinkhorn iterations: step 1, mean over steps 2..
  double final_loss = 0;
};

// Trains `steps` Adam steps with the W2 loss only (plus BirdFlow's averaged penalty weights) and
// times each W2 evaluation. Collective.
PetscErrorCode MeasureLayout(MPI_Comm comm, const birdflow::SpeciesData &species,
                             const std::vector<double> &distances, const Settings &s,
                             const birdflow::W2Settings &w2_settings, Measurement *out)
{
  birdflow::MarkovChain chain;
  birdflow::W2LocationLoss w2;
  birdflow::Adam adam;
  std::vector<std::vector<double>> gradient;
  Vec theta, grad;

  PetscFunctionBeginUser;
  PetscCall(birdflow::MarkovChainCreate(
      comm, species, distances, birdflow::ChainPenalty{0.008177, 0.001924, 0.4167}, &chain));
  PetscCall(w2.Setup(comm, species, w2_settings));
  PetscCall(birdflow::MarkovChainCreateVector(chain, &theta));
  PetscCall(VecDuplicate(theta, &grad));
  PetscCall(birdflow::MarkovChainSetInitialLogits(chain, 17, theta));
  PetscCall(birdflow::AdamCreate(theta, birdflow::AdamOptions{}, &adam));
  *out = Measurement();
  for (long long step = 0; step < s.steps; ++step) {
    double loss;
    PetscCallMPI(MPI_Barrier(comm));
    double start = MPI_Wtime();
    PetscCall(birdflow::MarkovChainForward(&chain, theta, grad));
    double w2_start = MPI_Wtime();
    PetscCall(w2.Evaluate(chain.mu, &loss, &gradient));
    double w2_seconds = MPI_Wtime() - w2_start;
    for (auto &week : gradient)
      for (double &value : week)
        value *= s.w2_weight;
    PetscCall(birdflow::MarkovChainBackward(&chain, theta, gradient, grad));
    PetscCall(birdflow::AdamUpdate(&adam, grad, theta));
    PetscCallMPI(MPI_Barrier(comm));
    double step_seconds = MPI_Wtime() - start;
    double iterations = (double)w2.LastReport().sinkhorn_iterations;
    if (step == 0) {
      out->first_w2 = w2_seconds;
      out->sinkhorn_first = iterations;
    } else {
      out->w2 += w2_seconds / (double)(s.steps - 1);
      out->step += step_seconds / (double)(s.steps - 1);
      out->sinkhorn += iterations / (double)(s.steps - 1);
    }
    out->final_loss = loss;
  }
  PetscCall(birdflow::AdamDestroy(&adam));
  PetscCall(VecDestroy(&grad));
  PetscCall(VecDestroy(&theta));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode PrintRow(MPI_Comm comm, const std::string &label, PetscInt groups,
                        const Measurement &m, double anchor_w2)
{
  PetscMPIInt size;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(PetscPrintf(comm,
                        "| %s | %d | %" PetscInt_FMT " | %.3f | %.0f | %.4f | %.4f | %.0f | %.3f | "
                        "%.6e |\n",
                        label.c_str(), size, groups, m.first_w2, m.sinkhorn_first, m.w2, m.step,
                        m.sinkhorn, m.w2 / anchor_w2, m.final_loss));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode Run(const Settings &s)
{
  MPI_Comm comm = PETSC_COMM_WORLD;
  birdflow::SpeciesData species;
  std::vector<double> distances;
  PetscMPIInt size;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(birdflow::ReadSpecies(comm, s.input, &species));
  PetscCall(birdflow::ReadDistances(comm, species, &distances));
  const double h = species.grid.xres / 1000.0;
  birdflow::W2Settings base;
  base.epsilon = s.epsilon_relative * h * h;
  PetscCall(birdflow::W2SettingsSetFromOptions(comm, &base));
  PetscCall(PetscPrintf(comm,
                        "%s: grid %" PetscInt_FMT " x %" PetscInt_FMT ", %" PetscInt_FMT
                        " time points, eps %g km^2 (%g h^2), %lld steps\n",
                        species.species_code.c_str(), species.grid.nrow, species.grid.ncol,
                        species.n_timesteps, base.epsilon, s.epsilon_relative, s.steps));
  PetscCall(PetscPrintf(comm, "| run | ranks | groups | W2 s, step 1 | Sinkhorn it, step 1 | W2 s "
                              "per step | step s | Sinkhorn it per step | W2 time / first row | "
                              "final W2 |\n|---|---|---|---|---|---|---|---|---|---|\n"));

  double anchor = 0;
  for (long long groups : s.groups) {
    birdflow::W2Settings settings = base;
    settings.groups = groups > 0 ? (PetscInt)groups : size;
    Measurement m;
    PetscCall(MeasureLayout(comm, species, distances, s, settings, &m));
    if (anchor == 0) anchor = m.w2;
    PetscCall(PrintRow(comm, "warm", settings.groups, m, anchor));
  }
  if (s.cold) {
    birdflow::W2Settings settings = base;
    settings.groups = s.groups[0] > 0 ? (PetscInt)s.groups[0] : size;
    settings.warm_start = PETSC_FALSE;
    Measurement m;
    PetscCall(MeasureLayout(comm, species, distances, s, settings, &m));
    PetscCall(PrintRow(comm, "cold", settings.groups, m, anchor));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

int main(int argc, char **argv)
{
  CLI::App app{"Benchmark of the W2 location loss per week-group layout", "bench-w2"};
  Settings settings;
  app.add_option("--input", settings.input, "Preprocessed BirdFlowR HDF5 file")->required();
  app.add_option("--groups", settings.groups, "Week-group counts to compare (0: one per rank)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--steps", settings.steps, "Adam steps per layout (at least 2)")
      ->check(CLI::Range(2LL, 100000LL))
      ->capture_default_str();
  app.add_option("--epsilon-relative", settings.epsilon_relative, "eps in units of h^2")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--w2-weight", settings.w2_weight, "Weight of the W2 loss in the gradient")
      ->capture_default_str();
  app.add_flag("--cold", settings.cold, "Also run the first layout without warm starts");
  return birdflow::RunDriver(argc, argv, app, "Benchmark of the W2 location loss\n",
                             [&] { return Run(settings); });
}
