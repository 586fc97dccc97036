// ReadSpecies on the variants written by tests/scripts/make_species_variants.py: every good
// variant reads as the original, every bad file fails on all ranks with a message naming the
// dataset.
#include "birdflow/species.hpp"
#include "io_test_helpers.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>

using birdflow::SpeciesData;
using birdflow::testing::AllRanks;
using birdflow::testing::CaptureError;
using birdflow::testing::DataPath;
using birdflow::testing::VariantPath;

namespace
{
struct BadCase
{
  const char *name;
  PetscErrorCode code;
  const char *fragment; // text the message must contain
};

const BadCase kBadCases[] = {
    {"not_hdf5", PETSC_ERR_FILE_UNEXPECTED, "not an HDF5 file"},
    {"missing_distr", PETSC_ERR_FILE_UNEXPECTED, "dataset distr is missing"},
    {"wrong_shape", PETSC_ERR_FILE_UNEXPECTED, "dataset geom/dynamic_mask has shape (68, 52)"},
    {"wrong_mask_shape", PETSC_ERR_FILE_UNEXPECTED, "dataset geom/mask has shape (23, 10)"},
    {"nan_distr", PETSC_ERR_USER_INPUT, "dataset distr is nan at active cell 6, week 11 (1-based)"},
    {"negative_distr", PETSC_ERR_USER_INPUT, "relative abundance cannot be negative"},
    {"zero_week", PETSC_ERR_USER_INPUT, "dataset distr sums to 0 in week 21"},
    {"sum_not_one", PETSC_ERR_USER_INPUT, "dataset distr sums to 1.01"},
    {"mask_disagrees", PETSC_ERR_USER_INPUT, "dataset geom/dynamic_mask is FALSE at active cell"},
    {"n_active_mismatch", PETSC_ERR_FILE_UNEXPECTED, "dataset metadata/n_active is 69"},
};

const char *kGoodCases[] = {"good_int32_logicals", "good_enum_logicals", "good_vlen_strings",
                            "good_true_scalars", "good_no_optional_metadata"};
} // namespace

TEST(SpeciesVariants, GoodVariantsReadAsOriginal)
{
  SpeciesData original;
  bool ok =
      birdflow::ReadSpecies(PETSC_COMM_WORLD,
                            DataPath("sstspa/sstspa_2023_100km_preprocessed.hdf5"), &original) == 0;
  ASSERT_TRUE(AllRanks(ok));
  for (const char *name : kGoodCases) {
    SCOPED_TRACE(name);
    SpeciesData variant;
    auto result = CaptureError(
        [&] { return birdflow::ReadSpecies(PETSC_COMM_WORLD, VariantPath(name), &variant); });
    ASSERT_TRUE(AllRanks(result.code == 0)) << result.message;
    EXPECT_EQ(variant.distr, original.distr);
    EXPECT_EQ(variant.dynamic_mask, original.dynamic_mask);
    EXPECT_EQ(variant.week_cells, original.week_cells);
    EXPECT_EQ(variant.grid.active_cells, original.grid.active_cells);
    EXPECT_EQ(variant.grid.nrow, original.grid.nrow);
    EXPECT_EQ(variant.grid.ncol, original.grid.ncol);
    EXPECT_EQ(variant.grid.xmin, original.grid.xmin);
    EXPECT_TRUE(variant.has_distances);
    if (std::string(name) == "good_no_optional_metadata") {
      EXPECT_EQ(variant.species_code, "");
      EXPECT_EQ(variant.ebird_version_year, 0);
      EXPECT_EQ(variant.missing_import_paths.front(), "geom/crs");
      EXPECT_EQ(variant.missing_import_paths.size(), 1u + 16u + 14u);
    } else {
      EXPECT_TRUE(variant.missing_import_paths.empty());
      EXPECT_EQ(variant.species_code, "sstspa");
      EXPECT_EQ(variant.common_name, "Saltmarsh Sparrow");
      EXPECT_EQ(variant.ebird_version_year, 2023);
      EXPECT_EQ(variant.grid.crs, original.grid.crs);
    }
  }
}

TEST(SpeciesVariants, BadFilesAreRejected)
{
  for (const BadCase &bad : kBadCases) {
    SCOPED_TRACE(bad.name);
    SpeciesData species;
    std::string path = VariantPath(bad.name);
    auto result =
        CaptureError([&] { return birdflow::ReadSpecies(PETSC_COMM_WORLD, path, &species); });
    ASSERT_TRUE(AllRanks(result.code == bad.code))
        << "code " << result.code << ": " << result.message;
    EXPECT_NE(result.message.find(bad.fragment), std::string::npos) << result.message;
    EXPECT_NE(result.message.find(path), std::string::npos) << result.message;
    EXPECT_EQ(result.message.find('\n'), std::string::npos) << result.message;
  }
}

TEST(SpeciesVariants, MissingFileIsRejected)
{
  SpeciesData species;
  std::string path = DataPath("sstspa/no_such_species.hdf5");
  auto result =
      CaptureError([&] { return birdflow::ReadSpecies(PETSC_COMM_WORLD, path, &species); });
  ASSERT_TRUE(AllRanks(result.code == PETSC_ERR_FILE_OPEN));
  EXPECT_NE(result.message.find(path + ": file not found"), std::string::npos) << result.message;
}

TEST(SpeciesVariants, TruncatedFileIsRejected)
{
  // The first half of a real file: the superblock is intact but the datasets are cut off.
  std::string path = VariantPath("truncated_copy");
  int rank;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  if (rank == 0) {
    std::ifstream in(DataPath("sstspa/sstspa_2023_100km_preprocessed.hdf5"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  MPI_Barrier(PETSC_COMM_WORLD);
  SpeciesData species;
  auto result =
      CaptureError([&] { return birdflow::ReadSpecies(PETSC_COMM_WORLD, path, &species); });
  ASSERT_TRUE(AllRanks(result.code != 0));
  EXPECT_NE(result.message.find(path), std::string::npos) << result.message;
  EXPECT_EQ(result.message.find('\n'), std::string::npos) << result.message;
  MPI_Barrier(PETSC_COMM_WORLD);
  if (rank == 0) std::remove(path.c_str());
}

TEST(SpeciesVariants, FolderIsRejected)
{
  SpeciesData species;
  auto result = CaptureError(
      [&] { return birdflow::ReadSpecies(PETSC_COMM_WORLD, DataPath("sstspa"), &species); });
  ASSERT_TRUE(AllRanks(result.code == PETSC_ERR_FILE_OPEN));
  EXPECT_NE(result.message.find("is a folder"), std::string::npos) << result.message;
}
