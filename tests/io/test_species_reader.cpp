// ReadSpecies, ReadDistances and ReadMarginals on the bundled real files, with reference values
// taken from the same files with h5py.
#include "birdflow/species.hpp"
#include "io_test_helpers.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

using birdflow::SpeciesData;
using birdflow::testing::AllRanks;
using birdflow::testing::CaptureError;
using birdflow::testing::DataPath;

namespace
{
const char *kSstspa = "sstspa/sstspa_2023_100km_preprocessed.hdf5";
const char *kSstspaFitted = "sstspa/sstspa_2023_100km_fitted.hdf5";
const char *kRewbla = "rewbla/rewbla_2021_250km_preprocessed.hdf5";
const char *kRewblaFitted = "rewbla/rewbla_2021_250km_fitted.hdf5";
const char *kAmewoo = "amewoo/amewoo_2019_80km_preprocessed.hdf5";

SpeciesData ReadOrFail(const std::string &relative, bool *ok)
{
  SpeciesData species;
  *ok = birdflow::ReadSpecies(PETSC_COMM_WORLD, DataPath(relative), &species) == 0;
  return species;
}

std::vector<PetscInt> WeekCounts(const SpeciesData &species)
{
  std::vector<PetscInt> counts;
  for (PetscInt t = 0; t < species.n_timesteps; ++t)
    counts.push_back(species.CellsInWeek(t));
  return counts;
}
} // namespace

TEST(ReadSpecies, SaltmarshSparrowCounts)
{
  bool ok;
  SpeciesData species = ReadOrFail(kSstspa, &ok);
  ASSERT_TRUE(AllRanks(ok));
  EXPECT_EQ(species.n_active, 68);
  EXPECT_EQ(species.n_timesteps, 53);
  EXPECT_EQ(species.grid.nrow, 23);
  EXPECT_EQ(species.grid.ncol, 11);
  EXPECT_EQ(species.species_code, "sstspa");
  EXPECT_EQ(species.common_name, "Saltmarsh Sparrow");
  EXPECT_EQ(species.scientific_name, "Ammospiza caudacuta");
  EXPECT_EQ(species.ebird_version_year, 2023);
  EXPECT_TRUE(species.has_distances);
  EXPECT_FALSE(species.has_marginals);
  EXPECT_TRUE(species.missing_import_paths.empty());
  std::vector<PetscInt> counts = WeekCounts(species);
  std::vector<PetscInt> first{43, 43, 42, 42, 38, 39, 38, 36};
  EXPECT_TRUE(std::equal(first.begin(), first.end(), counts.begin()));
  EXPECT_EQ(*std::min_element(counts.begin(), counts.end()), 24);
  EXPECT_EQ(*std::max_element(counts.begin(), counts.end()), 54);
  EXPECT_EQ(counts.front(), counts.back());
  EXPECT_DOUBLE_EQ(species.Distr(10, 20), 0.21351972826095492);
}

TEST(ReadSpecies, SaltmarshSparrowGrid)
{
  bool ok;
  SpeciesData species = ReadOrFail(kSstspa, &ok);
  ASSERT_TRUE(AllRanks(ok));
  const birdflow::Grid &grid = species.grid;
  EXPECT_DOUBLE_EQ(grid.xmin, 6600000.0);
  EXPECT_DOUBLE_EQ(grid.xmax, 7700000.0);
  EXPECT_DOUBLE_EQ(grid.ymin, 9100000.0);
  EXPECT_DOUBLE_EQ(grid.ymax, 11400000.0);
  EXPECT_NEAR(grid.xres, 100000.0, 1e-6);
  EXPECT_NEAR(grid.yres, 100000.0, 1e-6);
  EXPECT_NE(grid.crs.find("Custom_Lambert_Azimuthal"), std::string::npos);
  ASSERT_EQ(grid.active_cells.size(), 68u);
  // Row-major raster indices of the TRUE cells of geom/mask.
  EXPECT_EQ(grid.active_cells[0], 8);
  EXPECT_EQ(grid.active_cells[3], 19);
  EXPECT_EQ(grid.active_cells[67], 244);
  EXPECT_EQ(grid.Row(3), 1);
  EXPECT_EQ(grid.Col(3), 8);
  EXPECT_NEAR(grid.CentreX(3), 6600000.0 + 8.5 * 100000.0, 1e-6);
  EXPECT_NEAR(grid.CentreY(3), 11400000.0 - 1.5 * 100000.0, 1e-6);
}

TEST(ReadSpecies, WeekCellsFollowDynamicMask)
{
  bool ok;
  SpeciesData species = ReadOrFail(kSstspa, &ok);
  ASSERT_TRUE(AllRanks(ok));
  for (PetscInt t = 0; t < species.n_timesteps; ++t) {
    for (PetscInt i : species.week_cells[t])
      EXPECT_GT(species.Distr(i, t), 0.0);
    EXPECT_TRUE(std::is_sorted(species.week_cells[t].begin(), species.week_cells[t].end()));
    double sum = 0;
    for (PetscInt i = 0; i < species.n_active; ++i)
      sum += species.Distr(i, t);
    EXPECT_NEAR(sum, 1.0, 1e-12);
  }
}

TEST(ReadSpecies, RedWingedBlackbirdCounts)
{
  bool ok;
  SpeciesData species = ReadOrFail(kRewbla, &ok);
  ASSERT_TRUE(AllRanks(ok));
  EXPECT_EQ(species.n_active, 337);
  EXPECT_EQ(species.n_timesteps, 53);
  EXPECT_EQ(species.grid.nrow, 28);
  EXPECT_EQ(species.grid.ncol, 25);
  EXPECT_EQ(species.ebird_version_year, 2021);
  EXPECT_TRUE(species.missing_import_paths.empty());
  std::vector<PetscInt> counts = WeekCounts(species);
  std::vector<PetscInt> first{235, 233, 230, 232, 231, 229, 224, 224};
  EXPECT_TRUE(std::equal(first.begin(), first.end(), counts.begin()));
  EXPECT_EQ(*std::min_element(counts.begin(), counts.end()), 224);
  EXPECT_EQ(*std::max_element(counts.begin(), counts.end()), 319);
}

TEST(ReadSpecies, AmericanWoodcockCounts)
{
  bool ok;
  SpeciesData species = ReadOrFail(kAmewoo, &ok);
  ASSERT_TRUE(AllRanks(ok));
  EXPECT_EQ(species.n_active, 1090);
  EXPECT_EQ(species.n_timesteps, 53);
  EXPECT_EQ(species.grid.nrow, 42);
  EXPECT_EQ(species.grid.ncol, 48);
  EXPECT_EQ(species.species_code, "amewoo");
  // ebird_release_year is "" in this file; the reader must not trip over it.
  EXPECT_EQ(species.ebird_version_year, 2019);
  EXPECT_TRUE(species.missing_import_paths.empty());
  std::vector<PetscInt> counts = WeekCounts(species);
  std::vector<PetscInt> first{327, 338, 371, 396, 436, 459, 490, 523};
  EXPECT_TRUE(std::equal(first.begin(), first.end(), counts.begin()));
  EXPECT_EQ(*std::min_element(counts.begin(), counts.end()), 327);
  EXPECT_EQ(*std::max_element(counts.begin(), counts.end()), 737);
}

TEST(ReadSpecies, FittedFileHasMarginals)
{
  bool ok;
  SpeciesData species = ReadOrFail(kSstspaFitted, &ok);
  ASSERT_TRUE(AllRanks(ok));
  EXPECT_EQ(species.n_active, 68);
  EXPECT_FALSE(species.has_distances);
  EXPECT_TRUE(species.has_marginals);
}

TEST(ReadDistances, PackedTriangleMatchesH5py)
{
  bool ok;
  SpeciesData species = ReadOrFail(kSstspa, &ok);
  ASSERT_TRUE(AllRanks(ok));
  std::vector<double> distances;
  ok = birdflow::ReadDistances(PETSC_COMM_WORLD, species, &distances) == 0;
  ASSERT_TRUE(AllRanks(ok));
  ASSERT_EQ(distances.size(), 68u * 67u / 2u);
  using birdflow::PackedDistance;
  EXPECT_DOUBLE_EQ(PackedDistance(distances, 68, 0, 1), 99.9433128647197);
  EXPECT_DOUBLE_EQ(PackedDistance(distances, 68, 2, 5), 367.59820239096894);
  EXPECT_DOUBLE_EQ(PackedDistance(distances, 68, 5, 2), 367.59820239096894);
  EXPECT_DOUBLE_EQ(PackedDistance(distances, 68, 67, 66), 100.31952764194128);
  EXPECT_DOUBLE_EQ(PackedDistance(distances, 68, 40, 3), 1177.3282493669533);
  EXPECT_EQ(PackedDistance(distances, 68, 7, 7), 0.0);
}

TEST(ReadDistances, FittedFileIsRejected)
{
  bool ok;
  SpeciesData species = ReadOrFail(kSstspaFitted, &ok);
  ASSERT_TRUE(AllRanks(ok));
  std::vector<double> distances;
  auto result =
      CaptureError([&] { return birdflow::ReadDistances(PETSC_COMM_WORLD, species, &distances); });
  ASSERT_TRUE(AllRanks(result.code == PETSC_ERR_FILE_UNEXPECTED));
  EXPECT_NE(result.message.find("dataset distances"), std::string::npos) << result.message;
}

TEST(ReadMarginals, Float32MarginalsMatchH5py)
{
  bool ok;
  SpeciesData species = ReadOrFail(kSstspaFitted, &ok);
  ASSERT_TRUE(AllRanks(ok));
  std::vector<std::vector<double>> marginals;
  ok = birdflow::ReadMarginals(PETSC_COMM_WORLD, species, &marginals) == 0;
  ASSERT_TRUE(AllRanks(ok));
  ASSERT_EQ(marginals.size(), 52u);
  ASSERT_EQ(marginals[0].size(), 43u * 43u);
  EXPECT_EQ(marginals[0][3 * 43 + 7], (double)6.786282114035203e-08f);
  ASSERT_EQ(marginals[51].size(), 41u * 43u);
  EXPECT_EQ(marginals[51][1 * 43 + 2], (double)1.7232065374628291e-07f);
  for (const auto &matrix : marginals)
    EXPECT_NEAR(std::accumulate(matrix.begin(), matrix.end(), 0.0), 1.0, 1e-5);
}

TEST(ReadMarginals, Float64MarginalsAreAccepted)
{
  bool ok;
  SpeciesData species = ReadOrFail(kRewblaFitted, &ok);
  ASSERT_TRUE(AllRanks(ok));
  std::vector<std::vector<double>> marginals;
  ok = birdflow::ReadMarginals(PETSC_COMM_WORLD, species, &marginals) == 0;
  ASSERT_TRUE(AllRanks(ok));
  ASSERT_EQ(marginals.size(), 52u);
  ASSERT_EQ(marginals[9].size(), 235u * 244u);
  EXPECT_EQ(marginals[9][4 * 244 + 5], 1.3864973698233347e-09);
}

TEST(ReadMarginals, PreprocessedFileIsRejected)
{
  bool ok;
  SpeciesData species = ReadOrFail(kSstspa, &ok);
  ASSERT_TRUE(AllRanks(ok));
  std::vector<std::vector<double>> marginals;
  auto result =
      CaptureError([&] { return birdflow::ReadMarginals(PETSC_COMM_WORLD, species, &marginals); });
  ASSERT_TRUE(AllRanks(result.code == PETSC_ERR_FILE_UNEXPECTED));
  EXPECT_NE(result.message.find("marginals"), std::string::npos) << result.message;
  EXPECT_NE(result.message.find(kSstspa), std::string::npos) << result.message;
}
