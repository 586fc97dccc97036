// Forward solver checks: the dense reference, must-not-fail cases, rank-count agreement and input
// errors.
#include "birdflow/petsc_compat.hpp"
#include "ot_test_problems.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace
{
using namespace birdflow;
using namespace birdflow::testing;

struct Gathered
{
  OTResult local;
  std::vector<double> f, g, gradient_a, gradient_b;
};

// Runs Evaluate on comm for a global problem and gathers the row-layout outputs. Collective.
PetscErrorCode RunSolver(const GridProblem &p, OTQuantity quantity, double eps, bool gradient,
                         MPI_Comm comm, Gathered *out, double tol = 1e-12)
{
  OTSolver solver;
  PetscFunctionBeginUser;
  PetscCall(solver.Setup(comm, p.nrow, p.ncol, p.h));
  solver.Settings().tolerance = tol;
  std::vector<double> a = Slab(p.a, p.ncol, solver), b = Slab(p.b, p.ncol, solver);
  PetscCall(solver.Evaluate(quantity, a.data(), b.data(), eps, gradient, nullptr, &out->local));
  out->f = Gather(out->local.f, comm);
  out->g = Gather(out->local.g, comm);
  out->gradient_a = Gather(out->local.gradient_a, comm);
  out->gradient_b = Gather(out->local.gradient_b, comm);
  PetscFunctionReturn(PETSC_SUCCESS);
}

double MaxAbsDifference(const std::vector<double> &x, const std::vector<double> &y,
                        const std::vector<double> &mask)
{
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isnan(mask[i])) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

bool AllFinite(const std::vector<double> &x, const std::vector<double> &mask)
{
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isnan(mask[i]) && !std::isfinite(x[i])) return false;
  return true;
}

TEST(OTSinkhorn, MatchesDenseReference)
{
  GridProblem p = BumpProblem(6, 5, 10.0, true);
  const double eps = 1.5 * p.h * p.h;
  DenseSolution dense = DenseSinkhorn(p, eps, 3000);
  Gathered ot, sharp;
  ASSERT_EQ(RunSolver(p, OTQuantity::kEntropic, eps, false, PETSC_COMM_WORLD, &ot), 0);
  ASSERT_EQ(RunSolver(p, OTQuantity::kSharp, eps, false, PETSC_COMM_WORLD, &sharp), 0);
  EXPECT_TRUE(ot.local.report.converged);
  EXPECT_NEAR(ot.local.value, dense.value, 1e-9 * std::fabs(dense.value));
  EXPECT_NEAR(sharp.local.value, dense.sharp, 1e-9 * dense.sharp);
  // Potentials agree on every unmasked cell, zero-mass cells included.
  EXPECT_LT(MaxAbsDifference(ot.f, dense.f, p.a), 1e-8 * p.h * p.h);
  EXPECT_LT(MaxAbsDifference(ot.g, dense.g, p.b), 1e-8 * p.h * p.h);
  EXPECT_TRUE(std::isnan(ot.f[2 * p.ncol]));
  EXPECT_TRUE(std::isnan(ot.g[2 * p.ncol]));
}

TEST(OTSinkhorn, SmallEpsilonStaysFinite)
{
  GridProblem p = BumpProblem(9, 7, 100.0, true);
  for (double ratio : {1.0, 0.5, 0.25}) {
    Gathered out;
    ASSERT_EQ(RunSolver(p, OTQuantity::kDivergence, ratio * p.h * p.h, true, PETSC_COMM_WORLD, &out,
                        1e-9),
              0);
    EXPECT_TRUE(out.local.report.converged) << "eps/h^2 = " << ratio;
    EXPECT_TRUE(std::isfinite(out.local.value));
    EXPECT_TRUE(AllFinite(out.f, p.a));
    EXPECT_TRUE(AllFinite(out.gradient_a, p.a));
    EXPECT_GT(out.local.value, 0);
  }
}

TEST(OTSinkhorn, EqualInputsGiveZeroDivergence)
{
  GridProblem p = BumpProblem(7, 6, 50.0, false);
  p.b = p.a;
  for (double ratio : {4.0, 0.25}) {
    Gathered out;
    ASSERT_EQ(RunSolver(p, OTQuantity::kDivergence, ratio * p.h * p.h, true, PETSC_COMM_WORLD, &out,
                        1e-11),
              0);
    EXPECT_TRUE(out.local.report.converged);
    EXPECT_NEAR(out.local.value, 0.0, 1e-8 * p.h * p.h);
    EXPECT_LT(
        MaxAbsDifference(out.gradient_a, std::vector<double>(out.gradient_a.size(), 0.0), p.a),
        1e-6 * p.h * p.h);
  }
}

TEST(OTSinkhorn, SingleCellSupportIsExact)
{
  GridProblem p = BumpProblem(5, 4, 10.0, false);
  std::fill(p.a.begin(), p.a.end(), 0.0);
  std::fill(p.b.begin(), p.b.end(), 0.0);
  p.a[1 * 4 + 1] = 1.0; // (row 1, column 1)
  p.b[4 * 4 + 3] = 1.0; // (row 4, column 3)
  const double cost = (9.0 + 4.0) * p.h * p.h;
  for (OTQuantity q : {OTQuantity::kEntropic, OTQuantity::kDivergence, OTQuantity::kSharp}) {
    Gathered out;
    ASSERT_EQ(RunSolver(p, q, 0.25 * p.h * p.h, true, PETSC_COMM_WORLD, &out), 0);
    EXPECT_TRUE(out.local.report.converged);
    EXPECT_NEAR(out.local.value, cost, 1e-9 * cost) << "quantity " << static_cast<int>(q);
    EXPECT_TRUE(AllFinite(out.gradient_a, p.a));
    EXPECT_TRUE(AllFinite(out.gradient_b, p.b));
  }
}

TEST(OTSinkhorn, SameResultOnEveryRankCount)
{
  // The world solver (1, 2 or 3 ranks) against a serial solver on PETSC_COMM_SELF.
  GridProblem p = BumpProblem(11, 8, 25.0, true);
  const double eps = 0.5 * p.h * p.h;
  for (OTQuantity q : {OTQuantity::kEntropic, OTQuantity::kDivergence, OTQuantity::kSharp}) {
    Gathered world, self;
    ASSERT_EQ(RunSolver(p, q, eps, true, PETSC_COMM_WORLD, &world), 0);
    ASSERT_EQ(RunSolver(p, q, eps, true, PETSC_COMM_SELF, &self), 0);
    bool same =
        std::fabs(world.local.value - self.local.value) <= 1e-10 * std::fabs(self.local.value);
    same = same && world.local.report.iterations == self.local.report.iterations;
    same = same && MaxAbsDifference(world.f, self.f, p.a) < 1e-8 * p.h * p.h;
    same = same && MaxAbsDifference(world.gradient_a, self.gradient_a, p.a) < 1e-7 * p.h * p.h;
    EXPECT_TRUE(AllRanks(same)) << "quantity " << static_cast<int>(q);
  }
}

TEST(OTSinkhorn, WarmStartNeedsFewIterations)
{
  GridProblem p = BumpProblem(10, 9, 10.0, false);
  OTSolver solver;
  ASSERT_EQ(solver.Setup(PETSC_COMM_WORLD, p.nrow, p.ncol, p.h), 0);
  std::vector<double> a = Slab(p.a, p.ncol, solver), b = Slab(p.b, p.ncol, solver);
  OTWarmStart warm;
  OTResult cold, again;
  ASSERT_EQ(solver.Evaluate(OTQuantity::kDivergence, a.data(), b.data(), 2.0 * p.h * p.h, true,
                            &warm, &cold),
            0);
  ASSERT_EQ(solver.Evaluate(OTQuantity::kDivergence, a.data(), b.data(), 2.0 * p.h * p.h, true,
                            &warm, &again),
            0);
  EXPECT_LE(again.report.iterations, 2);
  EXPECT_NEAR(again.value, cold.value, 1e-8 * std::fabs(cold.value));
}

TEST(OTSinkhorn, RejectsInvalidInput)
{
  GridProblem p = BumpProblem(6, 5, 10.0, false);
  OTSolver solver;
  ASSERT_EQ(solver.Setup(PETSC_COMM_WORLD, p.nrow, p.ncol, p.h), 0);
  OTResult result;
  PetscCallVoid(PetscPushErrorHandler(PetscReturnErrorHandler, nullptr));
  auto evaluate = [&](const GridProblem &q, double eps) {
    std::vector<double> a = Slab(q.a, q.ncol, solver), b = Slab(q.b, q.ncol, solver);
    return solver.Evaluate(OTQuantity::kEntropic, a.data(), b.data(), eps, false, nullptr, &result);
  };
  GridProblem negative = p;
  negative.a[7] = -1e-3;
  EXPECT_EQ(evaluate(negative, 1.0), PETSC_ERR_ARG_OUTOFRANGE);
  GridProblem infinite = p;
  infinite.b[p.nrow * p.ncol - 1] = INFINITY;
  EXPECT_EQ(evaluate(infinite, 1.0), PETSC_ERR_ARG_OUTOFRANGE);
  GridProblem unnormalised = p;
  for (double &v : unnormalised.b)
    v *= 1.01;
  EXPECT_EQ(evaluate(unnormalised, 1.0), PETSC_ERR_ARG_OUTOFRANGE);
  EXPECT_EQ(evaluate(p, 0.0), PETSC_ERR_ARG_OUTOFRANGE);
  EXPECT_EQ(evaluate(p, -1.0), PETSC_ERR_ARG_OUTOFRANGE);
  PetscCallVoid(PetscPopErrorHandler());
  // The solver still works after a rejected call.
  EXPECT_EQ(evaluate(p, 1.0), 0);
}
} // namespace
