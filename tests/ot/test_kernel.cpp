// Building blocks of the separable solver: the vectorised exponential and the slab transposes.
#include "../../src/ot/ot_internal.hpp"
#include "birdflow/petsc_compat.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace
{
using namespace birdflow;
using namespace birdflow::testing;

TEST(OTKernel, ExpMatchesStdExp)
{
  double worst = 0;
  for (int k = 0; k <= 700000; ++k) {
    double x = -k * 1e-3 - 1e-7 * (k % 7);
    double exact = std::exp(x);
    worst = std::max(worst, std::fabs(ot_detail::ExpNonPositive(x) - exact) / exact);
  }
  EXPECT_LT(worst, 1e-15);
  EXPECT_EQ(ot_detail::ExpNonPositive(0.0), 1.0);
  EXPECT_LT(ot_detail::ExpNonPositive(-INFINITY), 1e-300);
}

TEST(OTKernel, TransposesRoundTrip)
{
  // 7 x 5 so that 2 and 3 ranks get unequal slabs, and 3 ranks more ranks than some needs.
  for (PetscInt nrow : {7, 2}) {
    const PetscInt ncol = 5;
    OTSolver::Impl impl;
    ASSERT_EQ(ot_detail::RegisterEvents(&impl.events), 0);
    ASSERT_EQ(ot_detail::SetupSlabLayout(PETSC_COMM_WORLD, nrow, ncol, 1.0, &impl.layout), 0);
    const ot_detail::SlabLayout &L = impl.layout;
    std::vector<double> rows(2 * L.n_row_layout), cols(2 * L.n_col_layout + 1), back(rows.size());
    for (PetscInt k = 0; k < 2; ++k)
      for (PetscInt i = 0; i < L.n_row_layout; ++i)
        rows[k * L.n_row_layout + i] = 1000.0 * k + (double)(L.row_start[L.rank] * ncol + i);
    ASSERT_EQ(ot_detail::TransposeRowsToColumns(impl, 2, rows.data(), cols.data()), 0);
    bool ok = true;
    for (PetscInt k = 0; k < 2; ++k)
      for (PetscInt c = 0; c < L.local_cols; ++c)
        for (PetscInt r = 0; r < nrow; ++r)
          ok = ok && cols[k * L.n_col_layout + c * nrow + r] ==
                         1000.0 * k + (double)(r * ncol + L.col_start[L.rank] + c);
    ASSERT_EQ(ot_detail::TransposeColumnsToRows(impl, 2, cols.data(), back.data()), 0);
    ok = ok && back == rows;
    EXPECT_TRUE(AllRanks(ok)) << "nrow " << nrow;
    ASSERT_EQ(ot_detail::DestroySlabLayout(&impl.layout), 0);
  }
}
} // namespace
