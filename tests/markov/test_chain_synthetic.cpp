#include "chain_test_tools.hpp"
#include "synthetic_species.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace birdflow;
using birdflow::testing::AllRanks;

namespace
{
// A chain on the synthetic species with weights large enough that every term shows in the
// gradient.
struct SyntheticProblem
{
  SpeciesData species = birdflow::testing::SyntheticSpecies();
  std::vector<double> distances = birdflow::testing::SyntheticDistances(species);
  ChainPenalty penalty{0.05, 0.02, 0.7};
  MarkovChain chain;
  L2LocationLoss location{species};
  Objective objective;
  Vec theta = nullptr;

  explicit SyntheticProblem(MPI_Comm comm, unsigned long long seed = 17)
  {
    MarkovChainCreate(comm, species, distances, penalty, &chain);
    objective = Objective{&chain, &location, 1.5};
    MarkovChainCreateVector(chain, &theta);
    MarkovChainSetInitialLogits(chain, seed, theta);
  }
  ~SyntheticProblem() { VecDestroy(&theta); }
};

double RelativeError(double a, double b)
{
  return std::fabs(a - b) / std::fabs(b);
}

// Checks grad . d against central differences for a random direction restricted to `blocks`.
void ExpectGradientMatches(SyntheticProblem &problem, const std::vector<bool> &blocks)
{
  Vec direction;
  VecDuplicate(problem.theta, &direction);
  MarkovChainSetInitialLogits(problem.chain, 99, direction);
  birdflow::testing::KeepBlocks(problem.chain, blocks, direction);
  double analytic = 0;
  double numeric = birdflow::testing::CentralDifference(problem.objective, problem.theta, direction,
                                                        1e-5, &analytic);
  VecDestroy(&direction);
  EXPECT_TRUE(AllRanks(RelativeError(numeric, analytic) <= 1e-6))
      << "finite difference " << numeric << " vs gradient " << analytic;
}
} // namespace

TEST(ChainSynthetic, ParameterCountMatchesWeeks)
{
  SyntheticProblem problem(PETSC_COMM_WORLD);
  PetscInt expected = problem.species.CellsInWeek(0);
  for (PetscInt k = 0; k + 1 < problem.species.n_timesteps; ++k)
    expected += problem.species.CellsInWeek(k) * problem.species.CellsInWeek(k + 1);
  PetscInt global;
  VecGetSize(problem.theta, &global);
  EXPECT_EQ(problem.chain.layout.n_global, expected);
  EXPECT_EQ(global, expected);
}

TEST(ChainSynthetic, MarginalsSumToOne)
{
  SyntheticProblem problem(PETSC_COMM_WORLD);
  ASSERT_TRUE(AllRanks(MarkovChainForward(&problem.chain, problem.theta, nullptr) == 0));
  double worst = 0;
  for (const auto &mu : problem.chain.mu) {
    double sum = 0;
    for (double x : mu)
      sum += x;
    worst = std::max(worst, std::fabs(sum - 1.0));
  }
  EXPECT_TRUE(AllRanks(worst < 1e-14)) << "largest |sum mu_t - 1| = " << worst;
}

TEST(ChainSynthetic, LossMatchesDenseReference)
{
  SyntheticProblem problem(PETSC_COMM_WORLD);
  LossParts parts;
  ASSERT_TRUE(AllRanks(EvaluateObjective(problem.objective, problem.theta, &parts, nullptr) == 0));
  auto blocks = birdflow::testing::GatherBlocks(problem.chain, problem.theta);
  LossParts reference = birdflow::testing::DenseReferenceLoss(
      problem.species, problem.distances, blocks, problem.objective.obs_weight, problem.penalty);
  EXPECT_TRUE(AllRanks(RelativeError(parts.obs, reference.obs) < 1e-12));
  EXPECT_TRUE(AllRanks(RelativeError(parts.dist, reference.dist) < 1e-12));
  EXPECT_TRUE(AllRanks(RelativeError(parts.ent, reference.ent) < 1e-12));
  EXPECT_TRUE(AllRanks(RelativeError(parts.total, reference.total) < 1e-12));
}

TEST(ChainSynthetic, LossIndependentOfRankCount)
{
  SyntheticProblem distributed(PETSC_COMM_WORLD);
  SyntheticProblem serial(PETSC_COMM_SELF);
  LossParts a, b;
  ASSERT_TRUE(
      AllRanks(EvaluateObjective(distributed.objective, distributed.theta, &a, nullptr) == 0));
  ASSERT_TRUE(AllRanks(EvaluateObjective(serial.objective, serial.theta, &b, nullptr) == 0));
  EXPECT_TRUE(AllRanks(RelativeError(a.total, b.total) < 1e-15)) << a.total << " vs " << b.total;
}

TEST(ChainSynthetic, GradientOfInitialLogits)
{
  SyntheticProblem problem(PETSC_COMM_WORLD);
  std::vector<bool> blocks(problem.species.n_timesteps, false);
  blocks[0] = true;
  ExpectGradientMatches(problem, blocks);
}

TEST(ChainSynthetic, GradientOfEachTransitionBlock)
{
  SyntheticProblem problem(PETSC_COMM_WORLD);
  for (PetscInt b = 1; b < problem.species.n_timesteps; ++b) {
    std::vector<bool> blocks(problem.species.n_timesteps, false);
    blocks[b] = true;
    ExpectGradientMatches(problem, blocks);
  }
}

TEST(ChainSynthetic, GradientOfAllBlocks)
{
  SyntheticProblem problem(PETSC_COMM_WORLD);
  ExpectGradientMatches(problem, std::vector<bool>(problem.species.n_timesteps, true));
}

TEST(ChainSynthetic, MarginalRowsMatchForwardMarginals)
{
  SyntheticProblem problem(PETSC_COMM_WORLD);
  Vec storage;
  VecDuplicate(problem.theta, &storage);
  std::vector<MarginalRows> rows;
  ASSERT_TRUE(AllRanks(MarkovChainForward(&problem.chain, problem.theta, nullptr) == 0));
  ASSERT_TRUE(AllRanks(MarkovChainMarginalRows(problem.chain, problem.theta, storage, &rows) == 0));
  // Row sums of the owned rows of M_k equal the owned entries of mu_k.
  double worst = 0;
  for (size_t k = 0; k < rows.size(); ++k)
    for (PetscInt l = 0; l < rows[k].row_count; ++l) {
      double sum = 0;
      for (PetscInt j = 0; j < rows[k].n_cols; ++j)
        sum += rows[k].values[l * rows[k].n_cols + j];
      worst = std::max(worst, std::fabs(sum - problem.chain.mu[k][rows[k].row_start + l]));
    }
  VecDestroy(&storage);
  EXPECT_TRUE(AllRanks(worst < 1e-15)) << worst;
}

TEST(ChainSynthetic, StoredAndRecomputedTransitionsAgree)
{
  SyntheticProblem problem(PETSC_COMM_WORLD);
  Vec stored, recomputed;
  VecDuplicate(problem.theta, &stored);
  VecDuplicate(problem.theta, &recomputed);
  std::vector<std::vector<double>> dloss_dmu;
  double loss;

  // Gradient with P_k kept by the forward sweep in the gradient's storage.
  ASSERT_TRUE(AllRanks(MarkovChainForward(&problem.chain, problem.theta, stored) == 0));
  problem.location.Evaluate(problem.chain.mu, &loss, &dloss_dmu);
  ASSERT_TRUE(AllRanks(MarkovChainBackward(&problem.chain, problem.theta, dloss_dmu, stored) == 0));

  // Gradient with P_k recomputed in the reverse sweep.
  ASSERT_TRUE(AllRanks(MarkovChainForward(&problem.chain, problem.theta, nullptr) == 0));
  ASSERT_TRUE(
      AllRanks(MarkovChainBackward(&problem.chain, problem.theta, dloss_dmu, recomputed) == 0));

  PetscReal difference, norm;
  VecNorm(recomputed, NORM_2, &norm);
  VecAXPY(recomputed, -1.0, stored);
  VecNorm(recomputed, NORM_2, &difference);
  EXPECT_LE(difference, 1e-14 * norm);
  EXPECT_GT(norm, 0.0);
  VecDestroy(&recomputed);
  VecDestroy(&stored);
}
