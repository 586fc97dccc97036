// The chain on real data: Saltmarsh Sparrow at 100 km (68 cells, 53 time points, 69,971
// parameters) with the hyperparameters BirdFlowPy's fit of this file used.
#include "chain_test_tools.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

using namespace birdflow;
using birdflow::testing::AllRanks;
using birdflow::testing::DataPath;

namespace
{
const char *kPreprocessed = "sstspa/sstspa_2023_100km_preprocessed.hdf5";
const char *kFitted = "sstspa/sstspa_2023_100km_fitted.hdf5";
const ChainPenalty kPenalty{0.047847, 0.0047847, 0.9};

struct SstspaProblem
{
  SpeciesData species;
  std::vector<double> distances;
  MarkovChain chain;
  std::unique_ptr<L2LocationLoss> location;
  Objective objective;
  Vec theta = nullptr;
  PetscErrorCode status = 0;

  SstspaProblem()
  {
    PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
    status = ReadSpecies(PETSC_COMM_WORLD, DataPath(kPreprocessed), &species);
    if (!status) status = ReadDistances(PETSC_COMM_WORLD, species, &distances);
    if (!status) status = MarkovChainCreate(PETSC_COMM_WORLD, species, distances, kPenalty, &chain);
    PetscPopErrorHandler();
    if (status) return;
    location = std::make_unique<L2LocationLoss>(species);
    objective = Objective{&chain, location.get(), 1.0};
    MarkovChainCreateVector(chain, &theta);
    MarkovChainSetInitialLogits(chain, 17, theta);
  }
  ~SstspaProblem() { VecDestroy(&theta); }
};

double RelativeError(double a, double b)
{
  return std::fabs(a - b) / std::fabs(b);
}

// Sets theta so that the chain reproduces the fitted marginals: z0 = log(row sums of M_1) and
// Z_k = log M_k (the row softmax divides by the row sums).
void SetLogitsFromMarginals(const MarkovChain &chain,
                            const std::vector<std::vector<double>> &marginals, Vec theta)
{
  const ChainLayout &layout = chain.layout;
  PetscScalar *values;
  VecGetArray(theta, &values);
  for (PetscInt l = 0; l < layout.row_count[0]; ++l) {
    PetscInt row = layout.row_start[0] + l, n = layout.n_cells[1];
    double sum = 0;
    for (PetscInt j = 0; j < n; ++j)
      sum += marginals[0][row * n + j];
    values[l] = std::log(sum);
  }
  for (PetscInt k = 0; k < layout.Transitions(); ++k) {
    PetscInt n = layout.n_cells[k + 1];
    for (PetscInt l = 0; l < layout.row_count[k]; ++l)
      for (PetscInt j = 0; j < n; ++j)
        values[layout.block_offset[k + 1] + l * n + j] =
            std::log(marginals[k][(layout.row_start[k] + l) * n + j]);
  }
  VecRestoreArray(theta, &values);
}

void ExpectGradientMatches(SstspaProblem &problem, const std::vector<bool> &blocks)
{
  Vec direction;
  VecDuplicate(problem.theta, &direction);
  MarkovChainSetInitialLogits(problem.chain, 5, direction);
  birdflow::testing::KeepBlocks(problem.chain, blocks, direction);
  double analytic = 0;
  double numeric = birdflow::testing::CentralDifference(problem.objective, problem.theta, direction,
                                                        1e-5, &analytic);
  VecDestroy(&direction);
  EXPECT_TRUE(AllRanks(RelativeError(numeric, analytic) <= 1e-6))
      << "finite difference " << numeric << " vs gradient " << analytic;
}
} // namespace

TEST(ChainSstspa, LossAtFittedMarginals)
{
  SstspaProblem problem;
  ASSERT_TRUE(AllRanks(problem.status == 0));
  SpeciesData fitted;
  std::vector<std::vector<double>> marginals;
  ASSERT_TRUE(AllRanks(ReadSpecies(PETSC_COMM_WORLD, DataPath(kFitted), &fitted) == 0));
  ASSERT_TRUE(AllRanks(ReadMarginals(PETSC_COMM_WORLD, fitted, &marginals) == 0));
  SetLogitsFromMarginals(problem.chain, marginals, problem.theta);
  LossParts parts;
  ASSERT_TRUE(AllRanks(EvaluateObjective(problem.objective, problem.theta, &parts, nullptr) == 0));

  // From tests/markov/reference_loss_from_marginals.py (numpy, float64) on the same file.
  EXPECT_TRUE(AllRanks(RelativeError(parts.obs, 0.1096353968424157) < 1e-10)) << parts.obs;
  EXPECT_TRUE(AllRanks(RelativeError(parts.dist, 17.046114440743338) < 1e-10)) << parts.dist;
  EXPECT_TRUE(AllRanks(RelativeError(parts.ent, 14.880281957585806) < 1e-10)) << parts.ent;
  EXPECT_TRUE(AllRanks(RelativeError(parts.total, 0.8540431494062014) < 1e-10)) << parts.total;
}

TEST(ChainSstspa, GradientOfInitialLogits)
{
  SstspaProblem problem;
  ASSERT_TRUE(AllRanks(problem.status == 0));
  std::vector<bool> blocks(problem.species.n_timesteps, false);
  blocks[0] = true;
  ExpectGradientMatches(problem, blocks);
}

TEST(ChainSstspa, GradientOfFirstMiddleAndLastTransition)
{
  SstspaProblem problem;
  ASSERT_TRUE(AllRanks(problem.status == 0));
  PetscInt T = problem.species.n_timesteps;
  for (PetscInt b : {(PetscInt)1, T / 2, T - 1}) {
    std::vector<bool> blocks(T, false);
    blocks[b] = true;
    ExpectGradientMatches(problem, blocks);
  }
}

TEST(ChainSstspa, GradientOfAllBlocks)
{
  SstspaProblem problem;
  ASSERT_TRUE(AllRanks(problem.status == 0));
  ExpectGradientMatches(problem, std::vector<bool>(problem.species.n_timesteps, true));
}
