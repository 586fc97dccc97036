// Cell-centre distances from PROJ and the s2 sphere against the distances BirdFlowR stored.
#include "birdflow/metrics.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace birdflow;
using birdflow::testing::AllRanks;
using birdflow::testing::DataPath;

TEST(Geodesy, HaversineOfKnownPoints)
{
  // One degree of longitude on the equator: 6371 * pi / 180 km.
  EXPECT_NEAR(HaversineKm(0, 0, 0, 1), 6371.0 * M_PI / 180, 1e-9);
  EXPECT_NEAR(GreatCircleKm(0, 0, 0, 90, 1.0), M_PI / 2, 1e-15);
  EXPECT_NEAR(GreatCircleKm(-97.55, 46.76, -97.55, 46.76, kS2EarthRadiusKm), 0.0, 1e-12);
  EXPECT_NEAR(GreatCircleKm(10, 20, 30, -40, 1.0), GreatCircleKm(30, -40, 10, 20, 1.0), 1e-15);
}

TEST(Geodesy, DistancesMatchPreprocessedFiles)
{
  const char *files[] = {"rewbla/rewbla_2021_250km_preprocessed.hdf5",
                         "sstspa/sstspa_2023_100km_preprocessed.hdf5",
                         "amewoo/amewoo_2019_80km_preprocessed.hdf5"};
  for (const char *file : files) {
    SCOPED_TRACE(file);
    SpeciesData species;
    std::vector<double> stored, computed;
    ASSERT_TRUE(AllRanks(ReadSpecies(PETSC_COMM_WORLD, DataPath(file), &species) == 0));
    ASSERT_TRUE(AllRanks(ReadDistances(PETSC_COMM_WORLD, species, &stored) == 0));
    ASSERT_TRUE(AllRanks(ComputeCellDistances(species.grid, &computed) == 0));
    const PetscInt n = species.n_active;
    ASSERT_EQ(computed.size(), (size_t)(n * n));
    double max_difference = 0;
    for (PetscInt i = 0; i < n; ++i)
      for (PetscInt j = 0; j < n; ++j)
        max_difference = std::max(max_difference,
                                  std::abs(computed[i * n + j] - PackedDistance(stored, n, i, j)));
    std::printf("%s: max |distance - stored| = %.3e km\n", file, max_difference);
    EXPECT_LE(max_difference, 1e-6);
  }
}
