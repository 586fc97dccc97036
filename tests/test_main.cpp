// GoogleTest entry point for every MPI test binary.
//
// GoogleTest strips its own flags first, then PETSc initialises MPI. Ranks other than 0 drop the
// default printer and report only their failures, tagged with the rank. The exit code is the
// maximum over ranks, so a failure on any rank fails the run.
#include <gtest/gtest.h>
#include <petscsys.h>

#include <cstdio>

namespace
{
class RankFailurePrinter : public ::testing::EmptyTestEventListener
{
public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}

  void OnTestPartResult(const ::testing::TestPartResult &result) override
  {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_,
                 result.file_name() ? result.file_name() : "unknown", result.line_number(),
                 result.summary());
  }

private:
  int rank_;
};
} // namespace

int main(int argc, char **argv)
{
  ::testing::InitGoogleTest(&argc, argv);
  PetscCall(PetscInitialize(&argc, &argv, nullptr, nullptr));

  PetscMPIInt rank;
  PetscCallMPI(MPI_Comm_rank(PETSC_COMM_WORLD, &rank));
  if (rank != 0) {
    auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    delete listeners.Release(listeners.default_xml_generator());
    listeners.Append(new RankFailurePrinter(rank));
    if (::testing::GTEST_FLAG(list_tests)) std::fclose(stdout);
  }

  int local = RUN_ALL_TESTS();
  int global = 0;
  PetscCallMPI(MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_MAX, PETSC_COMM_WORLD));
  PetscCall(PetscFinalize());
  return global;
}
