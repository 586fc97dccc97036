#include "birdflow/output_file.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using birdflow::testing::AllRanks;

TEST(OutputFile, PartialPathIsHiddenSibling)
{
  EXPECT_EQ(birdflow::PartialPath("out/model.hdf5"), "out/.model.hdf5.partial");
  EXPECT_EQ(birdflow::PartialPath("model.hdf5"), ".model.hdf5.partial");
}

TEST(OutputFile, MissingFolderIsRejectedOnAllRanks)
{
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  PetscErrorCode code = birdflow::CheckOutputPath(PETSC_COMM_WORLD, "/nonexistent/dir/out.h5",
                                                  "--output");
  PetscPopErrorHandler();
  ASSERT_TRUE(AllRanks(code == PETSC_ERR_FILE_OPEN));
}

TEST(OutputFile, CommitRenamesPartialFile)
{
  namespace fs = std::filesystem;
  int rank;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  std::string path = (fs::temp_directory_path() / "birdflow_commit_test.txt").string();
  if (rank == 0) std::ofstream(birdflow::PartialPath(path)) << "complete\n";
  MPI_Barrier(PETSC_COMM_WORLD);
  ASSERT_TRUE(AllRanks(birdflow::CommitOutputFile(PETSC_COMM_WORLD, path) == 0));
  bool ok = rank != 0 || (fs::exists(path) && !fs::exists(birdflow::PartialPath(path)));
  ASSERT_TRUE(AllRanks(ok));
  if (rank == 0) fs::remove(path);
}

TEST(OutputFile, OutputNamingTheInputIsRejected)
{
  namespace fs = std::filesystem;
  int rank;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  std::string input = (fs::temp_directory_path() / "birdflow_input_test.txt").string();
  std::string alias = (fs::temp_directory_path() / "." / "birdflow_input_test.txt").string();
  if (rank == 0) std::ofstream(input) << "input\n";
  MPI_Barrier(PETSC_COMM_WORLD);

  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  PetscErrorCode same = birdflow::CheckOutputNotInput(PETSC_COMM_WORLD, alias, "--output", input,
                                                      "--input");
  PetscErrorCode other = birdflow::CheckOutputNotInput(PETSC_COMM_WORLD, input + ".out",
                                                       "--output", input, "--input");
  PetscPopErrorHandler();
  EXPECT_TRUE(AllRanks(same == PETSC_ERR_USER_INPUT));
  EXPECT_TRUE(AllRanks(other == 0));
  if (rank == 0) fs::remove(input);
}
