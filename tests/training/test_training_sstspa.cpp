// Training on Saltmarsh Sparrow at 100 km with the hyperparameters of BirdFlowPy's fit of the
// same file (obs 1, dist 0.047847, ent 0.0047847, pow 0.9, learning rate 0.1, 600 steps).
#include "birdflow/training.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>

using namespace birdflow;
using birdflow::testing::AllRanks;
using birdflow::testing::DataPath;

namespace birdflow::testing
{
double LargestRankCountDifference(const SpeciesData &species, const std::vector<double> &distances,
                                  const ChainPenalty &penalty, PetscInt steps);
}

namespace
{
const ChainPenalty kPenalty{0.047847, 0.0047847, 0.9};

// Returns the last entry of metadata/loss_values/total of a fitted file (every rank reads it).
double LastLoggedLoss(const std::string &path)
{
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return NAN;
  hid_t dataset = H5Dopen2(file, "metadata/loss_values/total", H5P_DEFAULT);
  hid_t space = H5Dget_space(dataset);
  hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<double> values(n > 0 ? n : 1, NAN);
  H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Sclose(space);
  H5Dclose(dataset);
  H5Fclose(file);
  return values.back();
}

bool ReadSstspa(SpeciesData *species, std::vector<double> *distances)
{
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  std::string path = DataPath("sstspa/sstspa_2023_100km_preprocessed.hdf5");
  PetscErrorCode code = ReadSpecies(PETSC_COMM_WORLD, path, species);
  if (!code) code = ReadDistances(PETSC_COMM_WORLD, *species, distances);
  PetscPopErrorHandler();
  return code == 0;
}
} // namespace

TEST(RankCounts, SstspaTrajectoryMatches)
{
  SpeciesData species;
  std::vector<double> distances;
  ASSERT_TRUE(AllRanks(ReadSstspa(&species, &distances)));
  double worst = birdflow::testing::LargestRankCountDifference(species, distances, kPenalty, 50);
  EXPECT_LE(worst, 1e-10);
}

TEST(Sstspa, FinalLossNearBirdFlowPy)
{
  SpeciesData species;
  std::vector<double> distances;
  ASSERT_TRUE(AllRanks(ReadSstspa(&species, &distances)));
  double reference = LastLoggedLoss(DataPath("sstspa/sstspa_2023_100km_fitted.hdf5"));
  ASSERT_TRUE(AllRanks(std::isfinite(reference)));

  MarkovChain chain;
  MarkovChainCreate(PETSC_COMM_WORLD, species, distances, kPenalty, &chain);
  L2LocationLoss location(species);
  Objective objective{&chain, &location, 1.0};
  Vec theta, grad;
  MarkovChainCreateVector(chain, &theta);
  VecDuplicate(theta, &grad);
  MarkovChainSetInitialLogits(chain, 17, theta);
  Adam adam;
  AdamCreate(theta, AdamOptions{}, &adam);
  TrainingSettings settings;
  settings.steps = 600;
  settings.progress_interval = 0;
  TrainingHistory history;
  ASSERT_TRUE(AllRanks(Train(objective, settings, &adam, theta, grad, &history) == 0));

  // Both histories log step 600 at the parameters before its update.
  EXPECT_LE(history.total.back(), 1.01 * reference)
      << "ours " << history.total.back() << ", BirdFlowPy " << reference;
  AdamDestroy(&adam);
  VecDestroy(&grad);
  VecDestroy(&theta);
}
