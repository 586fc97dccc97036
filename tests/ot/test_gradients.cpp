// Central finite-difference checks along random zero-sum directions: the envelope gradients of
// OT_eps and S_eps, the implicit gradient of the sharp cost, and the Hessian-vector product of
// S_eps. Each check asks for a relative error of at most 1e-6.
#include "birdflow/petsc_compat.hpp"
#include "ot_test_problems.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace
{
using namespace birdflow;
using namespace birdflow::testing;

constexpr double kTolerance = 1e-13; // Sinkhorn marginal error for the finite differences
constexpr double kStep = 1e-4;       // a +- kStep d keeps a >= 0 because |d_i| <= 2 a_i
constexpr double kMaxRelativeError = 1e-6;

// Evaluates on PETSC_COMM_WORLD for global a, b and returns the value and the gathered gradient.
PetscErrorCode Value(OTSolver &solver, const GridProblem &p, const std::vector<double> &a,
                     OTQuantity q, double eps, double *value, std::vector<double> *gradient_a)
{
  OTResult result;
  PetscFunctionBeginUser;
  std::vector<double> la = Slab(a, p.ncol, solver), lb = Slab(p.b, p.ncol, solver);
  PetscCall(solver.Evaluate(q, la.data(), lb.data(), eps, gradient_a != nullptr, nullptr, &result));
  *value = result.value;
  if (gradient_a) *gradient_a = Gather(result.gradient_a, PETSC_COMM_WORLD);
  PetscFunctionReturn(PETSC_SUCCESS);
}

double Dot(const std::vector<double> &x, const std::vector<double> &y)
{
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isnan(x[i]) && !std::isnan(y[i])) s += x[i] * y[i];
  return s;
}

// |FD - <gradient, d>| / |<gradient, d>| for quantity q at a = p.a.
PetscErrorCode DirectionalError(const GridProblem &p, OTQuantity q, double eps, unsigned seed,
                                double *relative_error)
{
  OTSolver solver;
  double v0, vp, vm;
  std::vector<double> gradient, a0(p.a);
  PetscFunctionBeginUser;
  PetscCall(solver.Setup(PETSC_COMM_WORLD, p.nrow, p.ncol, p.h));
  solver.Settings().tolerance = kTolerance;
  for (double &v : a0)
    if (std::isnan(v)) v = 0;
  std::vector<double> d = ZeroSumDirection(a0, seed);
  PetscCall(Value(solver, p, p.a, q, eps, &v0, &gradient));
  PetscCall(Value(solver, p, Axpy(p.a, kStep, d), q, eps, &vp, nullptr));
  PetscCall(Value(solver, p, Axpy(p.a, -kStep, d), q, eps, &vm, nullptr));
  double fd = (vp - vm) / (2 * kStep), analytic = Dot(gradient, d);
  *relative_error = std::fabs(fd - analytic) / std::fabs(analytic);
  PetscFunctionReturn(PETSC_SUCCESS);
}

TEST(OTGradient, EnvelopeOfEntropicCost)
{
  GridProblem p = BumpProblem(7, 6, 20.0, true);
  for (unsigned seed : {1u, 2u}) {
    double error;
    ASSERT_EQ(DirectionalError(p, OTQuantity::kEntropic, 2.0 * p.h * p.h, seed, &error), 0);
    EXPECT_LE(error, kMaxRelativeError) << "seed " << seed;
  }
}

TEST(OTGradient, EnvelopeOfDivergence)
{
  GridProblem p = BumpProblem(7, 6, 20.0, true);
  for (unsigned seed : {3u, 4u}) {
    double error;
    ASSERT_EQ(DirectionalError(p, OTQuantity::kDivergence, 1.0 * p.h * p.h, seed, &error), 0);
    EXPECT_LE(error, kMaxRelativeError) << "seed " << seed;
  }
}

TEST(OTGradient, ImplicitGradientOfSharpCost)
{
  GridProblem p = BumpProblem(7, 6, 20.0, true);
  for (unsigned seed : {5u, 6u}) {
    double error;
    ASSERT_EQ(DirectionalError(p, OTQuantity::kSharp, 1.0 * p.h * p.h, seed, &error), 0);
    EXPECT_LE(error, kMaxRelativeError) << "seed " << seed;
  }
}

TEST(OTGradient, SharpGradientReportsKrylovSolve)
{
  GridProblem p = BumpProblem(7, 6, 20.0, true);
  OTSolver solver;
  OTResult result;
  ASSERT_EQ(solver.Setup(PETSC_COMM_WORLD, p.nrow, p.ncol, p.h), 0);
  std::vector<double> a = Slab(p.a, p.ncol, solver), b = Slab(p.b, p.ncol, solver);
  ASSERT_EQ(
      solver.Evaluate(OTQuantity::kSharp, a.data(), b.data(), p.h * p.h, true, nullptr, &result),
      0);
  EXPECT_GT(result.report.ksp_iterations, 0);
  EXPECT_GT(result.report.ksp_reason, 0);
}

TEST(OTGradient, HessianVectorProductOfDivergence)
{
  GridProblem p = BumpProblem(7, 6, 20.0, true);
  const double eps = 1.0 * p.h * p.h;
  OTSolver solver;
  ASSERT_EQ(solver.Setup(PETSC_COMM_WORLD, p.nrow, p.ncol, p.h), 0);
  solver.Settings().tolerance = kTolerance;
  std::vector<double> a0(p.a);
  for (double &v : a0)
    if (std::isnan(v)) v = 0;
  for (unsigned seed : {7u, 8u}) {
    std::vector<double> d = ZeroSumDirection(a0, seed), gp, gm, hv_global;
    double value;
    ASSERT_EQ(Value(solver, p, Axpy(p.a, kStep, d), OTQuantity::kDivergence, eps, &value, &gp), 0);
    ASSERT_EQ(Value(solver, p, Axpy(p.a, -kStep, d), OTQuantity::kDivergence, eps, &value, &gm), 0);
    std::vector<double> g0;
    ASSERT_EQ(Value(solver, p, p.a, OTQuantity::kDivergence, eps, &value, &g0), 0);
    std::vector<double> d_local = Slab(d, p.ncol, solver), hv(d_local.size());
    OTReport report;
    ASSERT_EQ(solver.HessianVectorProduct(d_local.data(), hv.data(), &report), 0);
    hv_global = Gather(hv, PETSC_COMM_WORLD);
    double diff2 = 0, norm2 = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      if (std::isnan(p.a[i])) continue;
      double fd = (gp[i] - gm[i]) / (2 * kStep);
      diff2 += (fd - hv_global[i]) * (fd - hv_global[i]);
      norm2 += hv_global[i] * hv_global[i];
    }
    EXPECT_LE(std::sqrt(diff2 / norm2), kMaxRelativeError) << "seed " << seed;
    EXPECT_GT(report.ksp_iterations, 0);
    EXPECT_GT(report.ksp_reason, 0);
  }
}
} // namespace

namespace
{
// At a zero-mass cell only one-sided differences exist: compare <gradient, e_i - a> with the
// second-order forward difference (-3 V(0) + 4 V(t) - V(2t)) / (2t) along d = e_i - a.
TEST(OTGradient, OneSidedAtZeroMassCell)
{
  GridProblem p = BumpProblem(7, 6, 20.0, true);
  const PetscInt zero_cell = 1; // BumpProblem puts a = 0 there
  const double t = 1e-4;
  std::vector<double> d(p.a.size(), 0.0);
  for (size_t i = 0; i < d.size(); ++i)
    if (!std::isnan(p.a[i])) d[i] = -p.a[i];
  d[zero_cell] += 1.0;
  for (OTQuantity q : {OTQuantity::kEntropic, OTQuantity::kDivergence, OTQuantity::kSharp}) {
    OTSolver solver;
    ASSERT_EQ(solver.Setup(PETSC_COMM_WORLD, p.nrow, p.ncol, p.h), 0);
    solver.Settings().tolerance = kTolerance;
    double v0, v1, v2;
    std::vector<double> gradient;
    ASSERT_EQ(Value(solver, p, p.a, q, p.h * p.h, &v0, &gradient), 0);
    ASSERT_EQ(Value(solver, p, Axpy(p.a, t, d), q, p.h * p.h, &v1, nullptr), 0);
    ASSERT_EQ(Value(solver, p, Axpy(p.a, 2 * t, d), q, p.h * p.h, &v2, nullptr), 0);
    double fd = (-3 * v0 + 4 * v1 - v2) / (2 * t), analytic = Dot(gradient, d);
    EXPECT_LE(std::fabs(fd - analytic), 1e-5 * std::fabs(analytic))
        << "quantity " << static_cast<int>(q) << ": " << fd << " vs " << analytic;
  }
}
} // namespace
