// Tests of the Lasso solver, its hypergradient and the bilevel module on the diabetes data.
#include "birdflow/implicit.hpp"
#include "birdflow/lasso.hpp"
#include "birdflow/petsc_compat.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using birdflow::testing::AllRanks;
using birdflow::testing::DataPath;
namespace lasso = birdflow::lasso;
namespace implicit = birdflow::implicit;

namespace
{
// Loads the diabetes data split with `seed` on `comm`. Returns false on a PETSc error.
bool LoadDiabetes(MPI_Comm comm, PetscInt seed, lasso::Problem *problem)
{
  lasso::Table X, y;
  std::string x_path = DataPath("lasso/diabetes_data_raw.csv.gz");
  std::string y_path = DataPath("lasso/diabetes_target.csv.gz");
  return lasso::ReadTable(comm, x_path, "--x", "X", &X) == 0 &&
         lasso::ReadTable(comm, y_path, "--y", "y", &y) == 0 &&
         lasso::ProblemCreateFromTables(comm, X, y, x_path, y_path, 0.3, seed, problem) == 0;
}

// Solves at alpha from zero and returns the validation loss and the solution.
bool SolveAt(lasso::Solver &solver, const lasso::Problem &problem, double alpha,
             lasso::Solution *solution, double *loss, std::vector<double> *gradient = nullptr)
{
  *solution = lasso::Solution();
  return solver.Solve(alpha, false, solution) == 0 && solution->converged &&
         lasso::ValidationLoss(problem, solution->w, loss, gradient) == 0;
}

std::vector<bool> Signs(const std::vector<double> &w)
{
  std::vector<bool> signs;
  for (double v : w)
    signs.push_back(v > 0), signs.push_back(v < 0);
  return signs;
}
} // namespace

TEST(LassoHypergradient, MatchesCentralDifferences)
{
  lasso::Problem problem;
  ASSERT_TRUE(AllRanks(LoadDiabetes(PETSC_COMM_WORLD, 3, &problem)));
  lasso::Solver solver;
  lasso::ImplicitHypergradient hypergradient;
  ASSERT_TRUE(AllRanks(solver.Create(problem) == 0));
  ASSERT_TRUE(AllRanks(hypergradient.Create(problem) == 0));

  const double h = 1e-4;
  int checked = 0;
  for (double ratio : {0.3, 0.1, 0.03, 0.01, 0.003}) {
    const double alpha = ratio * solver.AlphaMax();
    lasso::Solution center, plus, minus;
    double loss, loss_plus, loss_minus;
    std::vector<double> gradient;
    ASSERT_TRUE(AllRanks(SolveAt(solver, problem, alpha, &center, &loss, &gradient)));
    ASSERT_TRUE(AllRanks(SolveAt(solver, problem, alpha * std::exp(h), &plus, &loss_plus)));
    ASSERT_TRUE(AllRanks(SolveAt(solver, problem, alpha * std::exp(-h), &minus, &loss_minus)));
    // Central differences are only meaningful where the support and signs stay the same.
    if (Signs(plus.w) != Signs(center.w) || Signs(minus.w) != Signs(center.w)) continue;

    lasso::HypergradientReport report;
    ASSERT_TRUE(AllRanks(hypergradient.Compute(center, gradient, &report) == 0));
    const double finite_difference = (loss_plus - loss_minus) / (2 * h);
    EXPECT_NEAR(report.value, finite_difference, 1e-6 * std::fabs(finite_difference))
        << "alpha " << alpha;
    EXPECT_GT(report.solve.reason, 0);
    EXPECT_EQ(report.solve.shift, 0.0);
    ++checked;
  }
  EXPECT_GE(checked, 3);
  ASSERT_TRUE(AllRanks(hypergradient.Destroy() == 0));
  ASSERT_TRUE(AllRanks(solver.Destroy() == 0));
  lasso::ProblemDestroy(&problem);
}

TEST(LassoHypergradient, ForwardModeMatchesImplicit)
{
  lasso::Problem problem;
  ASSERT_TRUE(AllRanks(LoadDiabetes(PETSC_COMM_WORLD, 1, &problem)));
  lasso::Solver solver;
  lasso::ImplicitHypergradient hypergradient;
  ASSERT_TRUE(AllRanks(solver.Create(problem) == 0));
  ASSERT_TRUE(AllRanks(hypergradient.Create(problem) == 0));
  for (double ratio : {0.2, 0.02}) {
    lasso::Solution solution;
    double loss;
    std::vector<double> gradient;
    bool ok = solver.Solve(ratio * solver.AlphaMax(), true, &solution) == 0 &&
              lasso::ValidationLoss(problem, solution.w, &loss, &gradient) == 0;
    ASSERT_TRUE(AllRanks(ok));
    lasso::HypergradientReport report;
    ASSERT_TRUE(AllRanks(hypergradient.Compute(solution, gradient, &report) == 0));
    double forward = 0.0;
    for (PetscInt j = 0; j < problem.p; ++j)
      forward += gradient[j] * solution.jacobian[j];
    forward *= solution.alpha;
    EXPECT_NEAR(forward, report.value, 1e-6 * std::fabs(report.value)) << "ratio " << ratio;
  }
  ASSERT_TRUE(AllRanks(hypergradient.Destroy() == 0));
  ASSERT_TRUE(AllRanks(solver.Destroy() == 0));
  lasso::ProblemDestroy(&problem);
}

TEST(LassoHypergradient, DuplicatedColumnGivesSameValue)
{
  // A duplicated feature makes X_S^T X_S singular; the system stays consistent, and the
  // hypergradient must equal that of the problem without the copy.
  lasso::Table X, y, X_dup;
  std::string x_path = DataPath("lasso/diabetes_data_raw.csv.gz");
  std::string y_path = DataPath("lasso/diabetes_target.csv.gz");
  ASSERT_TRUE(AllRanks(lasso::ReadTable(PETSC_COMM_WORLD, x_path, "--x", "X", &X) == 0));
  ASSERT_TRUE(AllRanks(lasso::ReadTable(PETSC_COMM_WORLD, y_path, "--y", "y", &y) == 0));
  X_dup.rows = X.rows;
  X_dup.cols = X.cols + 1;
  for (PetscInt i = 0; i < X.rows; ++i) {
    X_dup.values.insert(X_dup.values.end(), X.values.begin() + i * X.cols,
                        X.values.begin() + (i + 1) * X.cols);
    X_dup.values.push_back(X.values[i * X.cols + 2]); // a copy of the BMI column
  }
  lasso::Problem base, dup;
  ASSERT_TRUE(AllRanks(
      lasso::ProblemCreateFromTables(PETSC_COMM_WORLD, X, y, "X", "y", 0.3, 1, &base) == 0));
  ASSERT_TRUE(AllRanks(
      lasso::ProblemCreateFromTables(PETSC_COMM_WORLD, X_dup, y, "X", "y", 0.3, 1, &dup) == 0));
  lasso::Solver solver;
  lasso::ImplicitHypergradient base_hyper, dup_hyper;
  ASSERT_TRUE(AllRanks(solver.Create(base) == 0));
  ASSERT_TRUE(AllRanks(base_hyper.Create(base) == 0));
  ASSERT_TRUE(AllRanks(dup_hyper.Create(dup) == 0));
  lasso::Solution solution;
  double loss;
  std::vector<double> gradient, dup_gradient;
  ASSERT_TRUE(
      AllRanks(SolveAt(solver, base, 0.05 * solver.AlphaMax(), &solution, &loss, &gradient)));
  ASSERT_TRUE(AllRanks(solution.w[2] != 0.0));

  // Split the BMI weight between the two copies: the same model, with a singular support.
  lasso::Solution split = solution;
  split.w.push_back(0.4 * solution.w[2]);
  split.w[2] *= 0.6;
  double dup_loss;
  ASSERT_TRUE(AllRanks(lasso::ValidationLoss(dup, split.w, &dup_loss, &dup_gradient) == 0));
  lasso::HypergradientReport base_report, dup_report;
  ASSERT_TRUE(AllRanks(base_hyper.Compute(solution, gradient, &base_report) == 0));
  ASSERT_TRUE(AllRanks(dup_hyper.Compute(split, dup_gradient, &dup_report) == 0));
  EXPECT_NEAR(dup_loss, loss, 1e-9 * loss);
  EXPECT_TRUE(std::isfinite(dup_report.value));
  EXPECT_NEAR(dup_report.value, base_report.value, 1e-5 * std::fabs(base_report.value));
  ASSERT_TRUE(
      AllRanks(solver.Destroy() == 0 && base_hyper.Destroy() == 0 && dup_hyper.Destroy() == 0));
  lasso::ProblemDestroy(&base);
  lasso::ProblemDestroy(&dup);
}

TEST(LassoHypergradient, SupportLargerThanRowsIsFinite)
{
  // With more support features than training rows, X_S^T X_S is singular and v_S is generally not
  // in its range, so CG fails and the shifted fallback must give a finite value.
  lasso::SyntheticOptions options;
  options.n = 10;
  options.p = 30;
  options.informative = 5;
  lasso::Problem problem;
  ASSERT_TRUE(
      AllRanks(lasso::ProblemCreateSynthetic(PETSC_COMM_WORLD, options, 0.3, 0, &problem) == 0));
  lasso::ImplicitHypergradient hypergradient;
  ASSERT_TRUE(AllRanks(hypergradient.Create(problem) == 0));
  lasso::Solution solution;
  solution.alpha = 0.1;
  solution.w.assign(problem.p, 0.0);
  for (PetscInt j = 0; j < 20; ++j)
    solution.w[j] = (j % 2) ? 0.5 : -0.25;
  double loss;
  std::vector<double> gradient;
  ASSERT_TRUE(AllRanks(lasso::ValidationLoss(problem, solution.w, &loss, &gradient) == 0));
  lasso::HypergradientReport report;
  ASSERT_TRUE(AllRanks(hypergradient.Compute(solution, gradient, &report) == 0));
  EXPECT_EQ(report.support_size, 20);
  EXPECT_TRUE(std::isfinite(report.value));
  EXPECT_GT(report.solve.reason, 0);
  EXPECT_GT(report.solve.shift, 0.0);
  ASSERT_TRUE(AllRanks(hypergradient.Destroy() == 0));
  lasso::ProblemDestroy(&problem);
}

namespace
{
// Ridge regression with one penalty per feature, the bilevel module's test problem:
// w(theta) = argmin (1/2n)||X w - y||^2 + (1/2) sum_j exp(theta_j) w_j^2.
struct RidgeContext
{
  Mat X;
  PetscInt n;
  Vec penalty; // exp(theta)
  Vec rows;
};

PetscErrorCode RidgeHessianMult(Mat A, Vec v, Vec out)
{
  RidgeContext *ctx;
  Vec scaled;
  PetscFunctionBeginUser;
  PetscCall(MatShellGetContext(A, &ctx));
  PetscCall(MatMult(ctx->X, v, ctx->rows));
  PetscCall(MatMultTranspose(ctx->X, ctx->rows, out));
  PetscCall(VecScale(out, 1.0 / ctx->n));
  PetscCall(VecDuplicate(v, &scaled));
  PetscCall(VecPointwiseMult(scaled, ctx->penalty, v));
  PetscCall(VecAXPY(out, 1.0, scaled));
  PetscCall(VecDestroy(&scaled));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Solves the ridge problem at theta to a tight tolerance and returns the validation loss, and,
// when `hypergradient` is not null, the hypergradient from the bilevel module.
PetscErrorCode RidgeLossAndGradient(const lasso::Problem &problem, const std::vector<double> &theta,
                                    double *loss, std::vector<double> *hypergradient)
{
  RidgeContext ctx{problem.X_train, problem.n_train, nullptr, nullptr};
  Mat A;
  Vec rhs, w;
  KSP ksp;
  PetscInt start, end, local;

  PetscFunctionBeginUser;
  PetscCall(MatCreateVecs(problem.X_train, &w, &ctx.rows));
  PetscCall(VecDuplicate(w, &ctx.penalty));
  PetscCall(VecDuplicate(w, &rhs));
  PetscCall(VecGetOwnershipRange(w, &start, &end));
  for (PetscInt j = start; j < end; ++j)
    PetscCall(VecSetValue(ctx.penalty, j, std::exp(theta[j]), INSERT_VALUES));
  PetscCall(VecAssemblyBegin(ctx.penalty));
  PetscCall(VecAssemblyEnd(ctx.penalty));
  PetscCall(VecGetLocalSize(w, &local));
  PetscCall(MatCreateShell(problem.comm, local, local, problem.p, problem.p, &ctx, &A));
  PetscCall(MatShellSetOperation(A, MATOP_MULT, (void (*)(void))RidgeHessianMult));

  // 1. Inner solve: (X^T X / n + diag(exp theta)) w = X^T y / n.
  PetscCall(MatMultTranspose(problem.X_train, problem.y_train, rhs));
  PetscCall(VecScale(rhs, 1.0 / problem.n_train));
  PetscCall(KSPCreate(problem.comm, &ksp));
  PetscCall(KSPSetType(ksp, KSPCG));
  PetscCall(KSPSetTolerances(ksp, 1e-14, 1e-50, PETSC_DEFAULT, 10000));
  PetscCall(KSPSetOperators(ksp, A, A));
  PetscCall(KSPSolve(ksp, rhs, w));
  PetscCall(KSPDestroy(&ksp));

  // 2. Outer loss and, through the bilevel module, its gradient in theta.
  std::vector<double> w_all(problem.p), gradient;
  Vec all;
  VecScatter gather;
  PetscCall(VecScatterCreateToAll(w, &gather, &all));
  PetscCall(VecScatterBegin(gather, w, all, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(gather, w, all, INSERT_VALUES, SCATTER_FORWARD));
  const PetscScalar *a;
  PetscCall(VecGetArrayRead(all, &a));
  w_all.assign(a, a + problem.p);
  PetscCall(VecRestoreArrayRead(all, &a));
  PetscCall(lasso::ValidationLoss(problem, w_all, loss, hypergradient ? &gradient : nullptr));
  if (hypergradient) {
    implicit::HypergradientSolver solver;
    PetscCall(solver.Create(problem.comm, "ridge_hyper_"));
    for (PetscInt j = start; j < end; ++j)
      PetscCall(VecSetValue(rhs, j, gradient[j], INSERT_VALUES));
    PetscCall(VecAssemblyBegin(rhs));
    PetscCall(VecAssemblyEnd(rhs));
    // (B^T z)_j = exp(theta_j) w_j z_j, gathered to every rank.
    auto cross = [&](Vec z, std::vector<double> *out) -> PetscErrorCode {
      const PetscScalar *zz;
      std::vector<double> local_part(problem.p, 0.0);
      PetscFunctionBeginUser;
      PetscCall(VecGetArrayRead(z, &zz));
      for (PetscInt j = start; j < end; ++j)
        local_part[j] = std::exp(theta[j]) * w_all[j] * zz[j - start];
      PetscCall(VecRestoreArrayRead(z, &zz));
      out->assign(problem.p, 0.0);
      PetscCallMPI(MPI_Allreduce(local_part.data(), out->data(), problem.p, MPI_DOUBLE, MPI_SUM,
                                 problem.comm));
      PetscFunctionReturn(PETSC_SUCCESS);
    };
    implicit::SolveReport report;
    PetscCall(
        solver.Compute(A, rhs, std::vector<double>(problem.p, 0.0), cross, hypergradient, &report));
    PetscCheck(report.reason > 0, problem.comm, PETSC_ERR_NOT_CONVERGED, "adjoint solve failed");
    PetscCall(solver.Destroy());
  }
  PetscCall(VecScatterDestroy(&gather));
  PetscCall(VecDestroy(&all));
  PetscCall(MatDestroy(&A));
  PetscCall(VecDestroy(&w));
  PetscCall(VecDestroy(&rhs));
  PetscCall(VecDestroy(&ctx.rows));
  PetscCall(VecDestroy(&ctx.penalty));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

TEST(BilevelHypergradient, RidgePenaltiesAlongRandomDirections)
{
  lasso::Problem problem;
  ASSERT_TRUE(AllRanks(LoadDiabetes(PETSC_COMM_WORLD, 2, &problem)));
  std::mt19937 generator(7); // the same directions on every rank
  std::normal_distribution<double> normal;
  std::vector<double> theta(problem.p);
  for (double &t : theta)
    t = -3.0 + 0.5 * normal(generator);
  double loss;
  std::vector<double> gradient;
  ASSERT_TRUE(AllRanks(RidgeLossAndGradient(problem, theta, &loss, &gradient) == 0));
  ASSERT_EQ(gradient.size(), static_cast<size_t>(problem.p));

  const double h = 1e-4;
  for (int direction = 0; direction < 3; ++direction) {
    std::vector<double> d(problem.p), plus(theta), minus(theta);
    for (PetscInt j = 0; j < problem.p; ++j) {
      d[j] = normal(generator);
      plus[j] += h * d[j];
      minus[j] -= h * d[j];
    }
    double loss_plus, loss_minus, directional = 0.0;
    ASSERT_TRUE(AllRanks(RidgeLossAndGradient(problem, plus, &loss_plus, nullptr) == 0));
    ASSERT_TRUE(AllRanks(RidgeLossAndGradient(problem, minus, &loss_minus, nullptr) == 0));
    for (PetscInt j = 0; j < problem.p; ++j)
      directional += gradient[j] * d[j];
    const double finite_difference = (loss_plus - loss_minus) / (2 * h);
    EXPECT_NEAR(directional, finite_difference, 1e-6 * std::fabs(finite_difference))
        << "direction " << direction;
  }
  lasso::ProblemDestroy(&problem);
}

TEST(LassoSearch, ImplicitReachesGridOptimum)
{
  for (PetscInt seed : {0, 1, 3, 5}) {
    lasso::Problem problem;
    ASSERT_TRUE(AllRanks(LoadDiabetes(PETSC_COMM_WORLD, seed, &problem)));
    lasso::SearchOptions options;
    lasso::SearchResult grid, found;
    ASSERT_TRUE(AllRanks(lasso::RunSearch(problem, lasso::Method::Grid, options, &grid) == 0));
    ASSERT_TRUE(AllRanks(lasso::RunSearch(problem, lasso::Method::Implicit, options, &found) == 0));
    EXPECT_LE(found.best_loss, grid.best_loss * (1 + 1e-12)) << "seed " << seed;
    EXPECT_LT(found.inner_solves, grid.inner_solves) << "seed " << seed;
    lasso::ProblemDestroy(&problem);
  }
}

TEST(LassoSolver, RankCountsAgree)
{
  // On 2 ranks this compares the distributed solve with a solve on each rank alone.
  lasso::Problem world, self;
  ASSERT_TRUE(AllRanks(LoadDiabetes(PETSC_COMM_WORLD, 4, &world)));
  ASSERT_TRUE(AllRanks(LoadDiabetes(PETSC_COMM_SELF, 4, &self)));
  lasso::Solver world_solver, self_solver;
  lasso::ImplicitHypergradient world_hyper, self_hyper;
  ASSERT_TRUE(AllRanks(world_solver.Create(world) == 0));
  ASSERT_TRUE(AllRanks(self_solver.Create(self) == 0));
  ASSERT_TRUE(AllRanks(world_hyper.Create(world) == 0));
  ASSERT_TRUE(AllRanks(self_hyper.Create(self) == 0));
  EXPECT_NEAR(world_solver.AlphaMax(), self_solver.AlphaMax(), 1e-12 * self_solver.AlphaMax());

  double max_difference = 0.0, hyper_difference = 0.0;
  for (double ratio : {0.5, 0.05, 0.005}) {
    lasso::Solution a, b;
    double loss_a, loss_b;
    std::vector<double> grad_a, grad_b;
    const double alpha = ratio * self_solver.AlphaMax();
    ASSERT_TRUE(AllRanks(SolveAt(world_solver, world, alpha, &a, &loss_a, &grad_a)));
    ASSERT_TRUE(AllRanks(SolveAt(self_solver, self, alpha, &b, &loss_b, &grad_b)));
    EXPECT_NEAR(loss_a, loss_b, 1e-10 * loss_b);
    double difference = 0.0, scale = 0.0;
    for (PetscInt j = 0; j < world.p; ++j) {
      difference = std::max(difference, std::fabs(a.w[j] - b.w[j]));
      scale = std::max(scale, std::fabs(b.w[j]));
    }
    max_difference = std::max(max_difference, difference / scale);

    lasso::HypergradientReport ra, rb;
    ASSERT_TRUE(AllRanks(world_hyper.Compute(a, grad_a, &ra) == 0));
    ASSERT_TRUE(AllRanks(self_hyper.Compute(b, grad_b, &rb) == 0));
    hyper_difference = std::max(hyper_difference, std::fabs(ra.value - rb.value) /
                                                      std::max(1.0, std::fabs(rb.value)));
  }
  EXPECT_LT(birdflow::testing::MaxOverRanks(max_difference), 1e-10);
  EXPECT_LT(birdflow::testing::MaxOverRanks(hyper_difference), 1e-8);
  ASSERT_TRUE(AllRanks(world_solver.Destroy() == 0));
  ASSERT_TRUE(AllRanks(self_solver.Destroy() == 0));
  ASSERT_TRUE(AllRanks(world_hyper.Destroy() == 0));
  ASSERT_TRUE(AllRanks(self_hyper.Destroy() == 0));
  lasso::ProblemDestroy(&world);
  lasso::ProblemDestroy(&self);
}

TEST(LassoData, BadTablesAreRejected)
{
  lasso::Table table;
  EXPECT_NE(lasso::ParseTextTable("1 2\n3 x\n", "f", &table).find("not a finite number"),
            std::string::npos);
  EXPECT_NE(lasso::ParseTextTable("1 2\n3\n", "f", &table).find("line 2 has 1 fields"),
            std::string::npos);
  EXPECT_EQ(lasso::ParseTextTable("1,2\n\n3,4\n", "f", &table), "");
  EXPECT_EQ(table.rows, 2);
  EXPECT_EQ(table.cols, 2);
}

TEST(LassoSolver, SparseMatchesDense)
{
  // The same synthetic data as an AIJ matrix and converted to a dense one: the compressed-column
  // and the dense Gram paths must give the same coefficients.
  lasso::SyntheticOptions options;
  options.n = 120;
  options.p = 60;
  options.informative = 6;
  options.density = 0.2;
  lasso::Problem sparse, dense;
  ASSERT_TRUE(
      AllRanks(lasso::ProblemCreateSynthetic(PETSC_COMM_WORLD, options, 0.25, 1, &sparse) == 0));
  PetscBool is_aij;
  PetscObjectTypeCompareAny((PetscObject)sparse.X_train, &is_aij, MATSEQAIJ, MATMPIAIJ, "");
  ASSERT_TRUE(AllRanks(is_aij == PETSC_TRUE));
  dense = sparse;
  ASSERT_TRUE(
      AllRanks(MatConvert(sparse.X_train, MATDENSE, MAT_INITIAL_MATRIX, &dense.X_train) == 0));
  lasso::Solver sparse_solver, dense_solver;
  ASSERT_TRUE(AllRanks(sparse_solver.Create(sparse) == 0));
  ASSERT_TRUE(AllRanks(dense_solver.Create(dense) == 0));
  for (double ratio : {0.3, 0.05}) {
    lasso::Solution a, b;
    double loss_a, loss_b;
    const double alpha = ratio * sparse_solver.AlphaMax();
    ASSERT_TRUE(AllRanks(SolveAt(sparse_solver, sparse, alpha, &a, &loss_a)));
    ASSERT_TRUE(AllRanks(SolveAt(dense_solver, dense, alpha, &b, &loss_b)));
    double difference = 0.0, scale = 0.0;
    for (PetscInt j = 0; j < sparse.p; ++j) {
      difference = std::max(difference, std::fabs(a.w[j] - b.w[j]));
      scale = std::max(scale, std::fabs(b.w[j]));
    }
    EXPECT_GT(scale, 0.0) << "ratio " << ratio;
    EXPECT_LT(difference, 1e-10 * scale) << "ratio " << ratio;
  }
  ASSERT_TRUE(AllRanks(sparse_solver.Destroy() == 0));
  ASSERT_TRUE(AllRanks(dense_solver.Destroy() == 0));
  MatDestroy(&dense.X_train);
  lasso::ProblemDestroy(&sparse);
}
