/*
  bench-train: time per Adam step and bytes per parameter of the distributed trainer, next to a
  STREAM-style triad measured in the same run, which gives the fraction of the memory-bandwidth
  bound the step reaches.

  A step must move at least kBytesPerParameterStep = 80 bytes per parameter:
    forward   reads Z                                        8
    backward  reads Z and writes dL/dZ                       16
    Adam      reads theta, grad, m, v and writes theta, m, v  56
  The distance cost, the weekly vectors and write-allocate traffic are left out. The bound is
  therefore 80 * n_parameters / (triad bandwidth).

  The sweeps also evaluate exp twice per parameter (forward P_k, reverse P_k again). The run
  measures exp's throughput on every rank too and reports the time those exps alone take.

  Sample runs (bench/train/run.sh runs both):
    mpiexec -n 1 build/bin/bench-train --input data/amewoo/amewoo_2019_80km_preprocessed.hdf5
    mpiexec -n 2 build/bin/bench-train --input data/amewoo/amewoo_2019_80km_preprocessed.hdf5
*/
#include "birdflow/driver.hpp"
#include "birdflow/markov.hpp"
#include "birdflow/petsc_compat.hpp"
#include "birdflow/species.hpp"
#include "birdflow/training.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace
{
constexpr double kBytesPerParameterStep = 80.0;

struct Settings
{
  std::string input;
  long long steps = 20, warmup = 3;
  double triad_mib = 256; // per rank, all three arrays together
};

// Returns the triad bandwidth (bytes/s) of all ranks running at once, the best of 10 repetitions.
PetscErrorCode MeasureTriad(MPI_Comm comm, double mib, double *bandwidth)
{
  PetscMPIInt size;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  size_t n = (size_t)(mib * 1048576.0 / 24.0);
  std::vector<double> a(n, 0.0), b(n, 1.0), c(n, 2.0);
  double best = 1e30;
  for (int repeat = 0; repeat < 10; ++repeat) {
    PetscCallMPI(MPI_Barrier(comm));
    double start = MPI_Wtime();
    const double scalar = 3.0 + repeat;
    for (size_t i = 0; i < n; ++i)
      a[i] = b[i] + scalar * c[i];
    double local = MPI_Wtime() - start, slowest;
    PetscCallMPI(MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm));
    best = std::min(best, slowest);
  }
  double checksum = a[n / 2], all;
  PetscCallMPI(MPI_Allreduce(&checksum, &all, 1, MPI_DOUBLE, MPI_SUM, comm));
  PetscCheck(all == size * (1.0 + 12.0 * 2.0), comm, PETSC_ERR_PLIB, "triad checksum %g is wrong",
             all);
  *bandwidth = 24.0 * (double)n * size / best;
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Returns the time of one std::exp call (seconds) with all ranks busy: the best of 3 passes.
PetscErrorCode MeasureExp(MPI_Comm comm, double *seconds_per_exp)
{
  const size_t n = 1 << 22;
  std::vector<double> z(n), p(n);

  PetscFunctionBeginUser;
  for (size_t i = 0; i < n; ++i)
    z[i] = std::sin((double)i) * 3.0;
  double best = 1e30, sum = 0;
  for (int repeat = 0; repeat < 3; ++repeat) {
    PetscCallMPI(MPI_Barrier(comm));
    double start = MPI_Wtime();
    for (size_t i = 0; i < n; ++i)
      sum += (p[i] = std::exp(z[i] - repeat));
    double local = MPI_Wtime() - start, slowest;
    PetscCallMPI(MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm));
    best = std::min(best, slowest);
  }
  PetscCheck(sum > 0, comm, PETSC_ERR_PLIB, "exp sum %g is not positive", sum);
  *seconds_per_exp = best / (double)n;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode Run(const CLI::App &app, const Settings &settings)
{
  MPI_Comm comm = PETSC_COMM_WORLD;
  birdflow::SpeciesData species;
  std::vector<double> distances;
  birdflow::MarkovChain chain;
  birdflow::Adam adam;
  birdflow::AdamOptions adam_options;
  birdflow::TrainingSettings loop;
  birdflow::TrainingHistory warmup_history, history;
  birdflow::MemoryReport memory;
  double bandwidth = 0, seconds_per_exp = 0;
  PetscMPIInt size;
  Vec theta, grad;

  PetscFunctionBeginUser;
  // 1. Configuration and the species file.
  PetscCall(birdflow::PrintConfiguration(comm, app));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(birdflow::ReadSpecies(comm, settings.input, &species));
  PetscCall(birdflow::ReadDistances(comm, species, &distances));

  // 2. The chain with BirdFlowPipeline's averaged hyperparameters.
  birdflow::ChainPenalty penalty{0.008177, 0.001924, 0.4167};
  PetscCall(birdflow::MarkovChainCreate(comm, species, distances, penalty, &chain));
  birdflow::L2LocationLoss location(species);
  birdflow::Objective objective{&chain, &location, 1.0};
  PetscCall(birdflow::MarkovChainCreateVector(chain, &theta));
  PetscCall(VecDuplicate(theta, &grad));
  PetscCall(birdflow::MarkovChainSetInitialLogits(chain, 17, theta));
  PetscCall(birdflow::AdamCreate(theta, adam_options, &adam));

  // 3. The triad, then the timed steps after a warm-up.
  PetscCall(MeasureTriad(comm, settings.triad_mib, &bandwidth));
  PetscCall(MeasureExp(comm, &seconds_per_exp));
  loop.progress_interval = 0;
  loop.steps = settings.warmup;
  PetscCall(birdflow::Train(objective, loop, &adam, theta, grad, &warmup_history));
  loop.steps = settings.steps;
  PetscCall(birdflow::Train(objective, loop, &adam, theta, grad, &history));
  PetscCall(birdflow::MeasureMemory(chain, 4, &memory));

  // 4. Report.
  double step_seconds = history.seconds / (double)settings.steps;
  double bound_seconds = kBytesPerParameterStep * (double)chain.layout.n_global / bandwidth;
  double exp_seconds = 2.0 * (double)memory.max_local_parameters * seconds_per_exp;
  PetscCall(PetscPrintf(
      comm, "| ranks | parameters | ms per step | triad GB/s | bound ms | "
            "fraction of bound | exp ns | exp-only ms | bytes per parameter | peak RSS MiB |\n"));
  PetscCall(PetscPrintf(
      comm, "| %d | %" PetscInt_FMT " | %.1f | %.1f | %.1f | %.3f | %.1f | %.1f | %.1f | %.0f |\n",
      size, chain.layout.n_global, 1e3 * step_seconds, bandwidth / 1e9, 1e3 * bound_seconds,
      bound_seconds / step_seconds, 1e9 * seconds_per_exp, 1e3 * exp_seconds,
      memory.bytes_per_parameter, memory.max_rss_bytes / 1048576.0));
  PetscCall(birdflow::AdamDestroy(&adam));
  PetscCall(VecDestroy(&grad));
  PetscCall(VecDestroy(&theta));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

int main(int argc, char **argv)
{
  CLI::App app{"Benchmark the trainer's Adam step against a STREAM triad", "bench-train"};
  Settings settings;
  app.add_option("--input", settings.input, "Preprocessed BirdFlowR HDF5 file")->required();
  app.add_option("--steps", settings.steps, "Timed Adam steps")->capture_default_str();
  app.add_option("--warmup", settings.warmup, "Untimed Adam steps first")->capture_default_str();
  app.add_option("--triad-mib", settings.triad_mib, "Triad arrays per rank (MiB)")
      ->capture_default_str();
  return birdflow::RunDriver(argc, argv, app, "Benchmark of the trainer\n",
                             [&] { return Run(app, settings); });
}
