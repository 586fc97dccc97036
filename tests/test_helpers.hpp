// Helpers shared by the MPI test binaries.
#pragma once

#include <petscsys.h>

#include <string>

namespace birdflow::testing
{
// Returns true on every rank when `local` is true on every rank. Collective on comm. Use it before
// an ASSERT so that one failing rank cannot leave the others waiting in a collective.
inline bool AllRanks(bool local, MPI_Comm comm = PETSC_COMM_WORLD)
{
  int in = local ? 1 : 0, out = 0;
  MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, comm);
  return out == 1;
}

// Returns the maximum of `value` over the ranks of comm. Collective.
inline double MaxOverRanks(double value, MPI_Comm comm = PETSC_COMM_WORLD)
{
  double out = 0;
  MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, comm);
  return out;
}

// Path of a file under the repository's data/ folder.
inline std::string DataPath(const std::string &relative)
{
  return std::string(BIRDFLOW_TEST_DATA_DIR) + "/" + relative;
}

// Path of a driver executable in build/bin.
inline std::string DriverPath(const std::string &name)
{
  return std::string(BIRDFLOW_TEST_BIN_DIR) + "/" + name;
}
} // namespace birdflow::testing
