/*
  bench-metrics: time of the interval metrics on the rewbla banding intervals.

  Compares the batched evaluation (one propagated column per distinct start cell and week, the
  columns of one start week propagated together) with the anchor, BirdFlowR's one-at-a-time
  strategy: every interval propagated alone from its own one-hot start. Both run the same
  EvaluateIntervals() code, the anchor on one-interval tables. Prints the median of the
  repetitions and the ratio.

  Sample runs:
    mpirun -np 1 build/bin/bench-metrics --repeat 5
    mpirun -np 2 build/bin/bench-metrics --repeat 5
*/
#include "birdflow/driver.hpp"
#include "birdflow/metrics.hpp"
#include "birdflow/petsc_compat.hpp"
#include "birdflow/species.hpp"

#include <algorithm>

static const char help[] = "Time of the interval metrics, batched against one at a time.\n";

namespace
{
double Median(std::vector<double> values)
{
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}
} // namespace

int main(int argc, char **argv)
{
  CLI::App app{"Time of the interval metrics, batched against one at a time", "bench-metrics"};
  std::string data_dir = "data";
  int repeat = 5;
  app.add_option("--data-dir", data_dir, "Folder that contains rewbla/");
  app.add_option("--repeat", repeat, "Timed repetitions of each strategy")
      ->check(CLI::PositiveNumber);

  return birdflow::RunDriver(argc, argv, app, help, [&]() -> PetscErrorCode {
    MPI_Comm comm = PETSC_COMM_WORLD;
    birdflow::SpeciesData species;
    std::vector<std::vector<double>> marginals;
    std::vector<birdflow::Interval> intervals;
    birdflow::ForwardModel model;
    std::vector<double> distance_km;
    std::vector<birdflow::IntervalResult> results;
    std::vector<double> batched_seconds, alone_seconds;

    PetscFunctionBeginUser;
    PetscCall(birdflow::PrintConfiguration(comm, app));

    // 1. Load the published rewbla model and its banding intervals.
    PetscCall(
        birdflow::ReadSpecies(comm, data_dir + "/rewbla/rewbla_2021_250km_fitted.hdf5", &species));
    PetscCall(birdflow::ReadMarginals(comm, species, &marginals));
    PetscCall(birdflow::ReadIntervals(comm, data_dir + "/rewbla/rewbla_banding_intervals.csv",
                                      &intervals));
    PetscCall(birdflow::BuildForwardModel(species, marginals, &model));
    PetscCall(birdflow::ComputeCellDistances(species.grid, &distance_km));

    // 2. Batched: all intervals in one call.
    for (int r = 0; r < repeat; ++r) {
      PetscCallMPI(MPI_Barrier(comm));
      double start = MPI_Wtime();
      PetscCall(birdflow::EvaluateIntervals(comm, model, distance_km, intervals, &results));
      batched_seconds.push_back(MPI_Wtime() - start);
    }

    // 3. Anchor: one interval per call, dealt round-robin over the ranks.
    PetscMPIInt rank, size;
    PetscCallMPI(MPI_Comm_rank(comm, &rank));
    PetscCallMPI(MPI_Comm_size(comm, &size));
    for (int r = 0; r < repeat; ++r) {
      PetscCallMPI(MPI_Barrier(comm));
      double start = MPI_Wtime();
      for (size_t k = (size_t)rank; k < intervals.size(); k += (size_t)size)
        PetscCall(birdflow::EvaluateIntervals(PETSC_COMM_SELF, model, distance_km, {intervals[k]},
                                              &results));
      PetscCallMPI(MPI_Barrier(comm));
      alone_seconds.push_back(MPI_Wtime() - start);
    }

    // 4. Report medians and the speed-up over the anchor.
    double batched = Median(batched_seconds), alone = Median(alone_seconds);
    PetscCall(PetscPrintf(comm,
                          "intervals %zu  ranks %d  batched %.4f s  one-at-a-time %.4f s  "
                          "speed-up %.2f\n",
                          intervals.size(), size, batched, alone, alone / batched));
    PetscFunctionReturn(PETSC_SUCCESS);
  });
}
