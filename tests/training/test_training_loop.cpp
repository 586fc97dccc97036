#include "../markov/synthetic_species.hpp"
#include "birdflow/training.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

using namespace birdflow;
using birdflow::testing::AllRanks;

namespace
{
// Trains `steps` Adam steps on comm from the seed-17 initial logits and returns the loss history.
std::vector<double> TrainHistory(MPI_Comm comm, const SpeciesData &species,
                                 const std::vector<double> &distances, const ChainPenalty &penalty,
                                 PetscInt steps)
{
  MarkovChain chain;
  MarkovChainCreate(comm, species, distances, penalty, &chain);
  L2LocationLoss location(species);
  Objective objective{&chain, &location, 1.0};
  Vec theta, grad;
  MarkovChainCreateVector(chain, &theta);
  VecDuplicate(theta, &grad);
  MarkovChainSetInitialLogits(chain, 17, theta);
  Adam adam;
  AdamCreate(theta, AdamOptions{}, &adam);
  TrainingSettings settings;
  settings.steps = steps;
  settings.progress_interval = 0;
  TrainingHistory history;
  Train(objective, settings, &adam, theta, grad, &history);
  AdamDestroy(&adam);
  VecDestroy(&grad);
  VecDestroy(&theta);
  return history.total;
}
} // namespace

namespace birdflow::testing
{
/* Trains on sub-communicators of 1, 2, ..., size ranks of PETSC_COMM_WORLD and returns, on every
   rank, the largest relative difference of their loss histories from the 1-rank history. */
double LargestRankCountDifference(const SpeciesData &species, const std::vector<double> &distances,
                                  const ChainPenalty &penalty, PetscInt steps)
{
  int rank, size;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  MPI_Comm_size(PETSC_COMM_WORLD, &size);
  std::vector<std::vector<double>> histories(size);
  for (int ranks = 1; ranks <= size; ++ranks) {
    MPI_Comm sub;
    MPI_Comm_split(PETSC_COMM_WORLD, rank < ranks ? 0 : MPI_UNDEFINED, rank, &sub);
    if (sub != MPI_COMM_NULL) {
      histories[ranks - 1] = TrainHistory(sub, species, distances, penalty, steps);
      MPI_Comm_free(&sub);
    }
  }
  // Rank 0 took part in every run.
  double worst = 0;
  if (rank == 0)
    for (int ranks = 2; ranks <= size; ++ranks)
      for (PetscInt s = 0; s < steps; ++s)
        worst = std::max(worst, std::fabs(histories[ranks - 1][s] - histories[0][s]) /
                                    std::fabs(histories[0][s]));
  MPI_Bcast(&worst, 1, MPI_DOUBLE, 0, PETSC_COMM_WORLD);
  return worst;
}
} // namespace birdflow::testing

TEST(TrainingLoop, LogsLossBeforeEachUpdate)
{
  SpeciesData species = birdflow::testing::SyntheticSpecies();
  std::vector<double> distances = birdflow::testing::SyntheticDistances(species);
  ChainPenalty penalty{0.05, 0.02, 0.7};
  MarkovChain chain;
  MarkovChainCreate(PETSC_COMM_WORLD, species, distances, penalty, &chain);
  L2LocationLoss location(species);
  Objective objective{&chain, &location, 1.0};
  Vec theta, grad;
  MarkovChainCreateVector(chain, &theta);
  VecDuplicate(theta, &grad);
  MarkovChainSetInitialLogits(chain, 17, theta);
  LossParts initial;
  EvaluateObjective(objective, theta, &initial, nullptr);

  Adam adam;
  AdamCreate(theta, AdamOptions{}, &adam);
  TrainingSettings settings;
  settings.steps = 30;
  settings.progress_interval = 0;
  TrainingHistory history;
  ASSERT_TRUE(AllRanks(Train(objective, settings, &adam, theta, grad, &history) == 0));
  LossParts final_parts;
  EvaluateObjective(objective, theta, &final_parts, nullptr);

  EXPECT_EQ(history.total.size(), 30u);
  EXPECT_EQ(history.total[0], initial.total);
  EXPECT_EQ(history.final_parts.total, final_parts.total);
  EXPECT_LT(history.total.back(), 0.5 * history.total[0]);
  AdamDestroy(&adam);
  VecDestroy(&grad);
  VecDestroy(&theta);
}

TEST(RankCounts, SyntheticTrajectoryMatches)
{
  SpeciesData species = birdflow::testing::SyntheticSpecies();
  std::vector<double> distances = birdflow::testing::SyntheticDistances(species);
  double worst = birdflow::testing::LargestRankCountDifference(species, distances,
                                                               ChainPenalty{0.05, 0.02, 0.7}, 50);
  EXPECT_LE(worst, 1e-10);
}
