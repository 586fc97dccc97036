// The W2 location loss in training: the weekly value against a dense Sinkhorn on projected cell
// centres, the gradient of the whole objective against central differences, and agreement across
// rank counts and week-group layouts.
#include "birdflow/petsc_compat.hpp"
#include "birdflow/training.hpp"
#include "birdflow/w2_loss.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

using namespace birdflow;
using birdflow::testing::AllRanks;
using birdflow::testing::DataPath;

namespace
{
const ChainPenalty kPenalty{0.047847, 0.0047847, 0.9};

bool ReadSstspa(SpeciesData *species, std::vector<double> *distances)
{
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  std::string path = DataPath("sstspa/sstspa_2023_100km_preprocessed.hdf5");
  PetscErrorCode code = ReadSpecies(PETSC_COMM_WORLD, path, species);
  if (!code) code = ReadDistances(PETSC_COMM_WORLD, *species, distances);
  PetscPopErrorHandler();
  return code == 0;
}

// Keeps the first `weeks` time points of a species, so a test solves fewer OT problems.
void KeepWeeks(PetscInt weeks, SpeciesData *species)
{
  const PetscInt T = species->n_timesteps;
  std::vector<double> distr(species->n_active * weeks);
  std::vector<unsigned char> mask(species->n_active * weeks);
  for (PetscInt i = 0; i < species->n_active; ++i)
    for (PetscInt t = 0; t < weeks; ++t) {
      distr[i * weeks + t] = species->distr[i * T + t];
      mask[i * weeks + t] = species->dynamic_mask[i * T + t];
    }
  species->distr = distr;
  species->dynamic_mask = mask;
  species->week_cells.resize(weeks);
  species->n_timesteps = weeks;
}

// Sets an option for the next SetFromOptions calls and clears it when the scope ends.
struct ScopedOption
{
  std::string name;
  ScopedOption(const std::string &key, const std::string &value) : name(key)
  {
    PetscOptionsSetValue(nullptr, key.c_str(), value.c_str());
  }
  ~ScopedOption() { PetscOptionsClearValue(nullptr, name.c_str()); }
};

// Returns S_eps(a, b) between two distributions on the active cells by a dense log-domain Sinkhorn
// with the squared distance between the projected cell centres (Grid::CentreX/CentreY, metres).
double DenseDivergence(const Grid &grid, const std::vector<double> &a, const std::vector<double> &b,
                       double eps)
{
  const size_t n = a.size();
  std::vector<double> cost(n * n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      double dx = (grid.CentreX(i) - grid.CentreX(j)) / 1000.0;
      double dy = (grid.CentreY(i) - grid.CentreY(j)) / 1000.0;
      cost[i * n + j] = dx * dx + dy * dy;
    }
  // Symmetric-cost Sinkhorn on (x, y); returns OT_eps = <x, f> + <y, g> with KL to x (x) y.
  auto solve = [&](const std::vector<double> &x, const std::vector<double> &y) {
    std::vector<double> f(n, 0.0), g(n, 0.0);
    auto softmin = [&](const std::vector<double> &w, const std::vector<double> &p, size_t i) {
      double max = -INFINITY, sum = 0;
      for (size_t j = 0; j < n; ++j)
        if (w[j] > 0) max = std::max(max, std::log(w[j]) + (p[j] - cost[i * n + j]) / eps);
      for (size_t j = 0; j < n; ++j)
        if (w[j] > 0) sum += std::exp(std::log(w[j]) + (p[j] - cost[i * n + j]) / eps - max);
      return -eps * (max + std::log(sum));
    };
    // Alternate until an f update moves no entry by more than 1e-10 km^2.
    for (double change = INFINITY; change > 1e-10;) {
      change = 0;
      for (size_t i = 0; i < n; ++i) {
        double next = softmin(y, g, i);
        change = std::max(change, std::fabs(next - f[i]));
        f[i] = next;
      }
      for (size_t j = 0; j < n; ++j)
        g[j] = softmin(x, f, j);
    }
    double value = 0;
    for (size_t i = 0; i < n; ++i)
      value += (x[i] > 0 ? x[i] * f[i] : 0.0) + (y[i] > 0 ? y[i] * g[i] : 0.0);
    return value;
  };
  return solve(a, b) - 0.5 * solve(a, a) - 0.5 * solve(b, b);
}

// A chain on `comm` with initial logits, the L2 loss and a W2 loss.
struct Problem
{
  MarkovChain chain;
  std::unique_ptr<L2LocationLoss> l2;
  W2LocationLoss w2;
  Objective objective;
  Vec theta = nullptr, grad = nullptr;

  PetscErrorCode Create(MPI_Comm comm, const SpeciesData &species,
                        const std::vector<double> &distances, const W2Settings &settings,
                        double obs_weight, double w2_weight, const ChainPenalty &penalty = kPenalty)
  {
    PetscFunctionBeginUser;
    PetscCall(MarkovChainCreate(comm, species, distances, penalty, &chain));
    l2 = std::make_unique<L2LocationLoss>(species);
    PetscCall(w2.Setup(comm, species, settings));
    objective = Objective{&chain, l2.get(), obs_weight, &w2, w2_weight};
    PetscCall(MarkovChainCreateVector(chain, &theta));
    PetscCall(VecDuplicate(theta, &grad));
    PetscCall(MarkovChainSetInitialLogits(chain, 17, theta));
    PetscFunctionReturn(PETSC_SUCCESS);
  }

  ~Problem()
  {
    VecDestroy(&grad);
    VecDestroy(&theta);
  }
};

// Largest relative error of the directional derivative grad . v against central differences,
// over `directions` random unit directions v. Collective.
double GradientError(Problem &problem, PetscInt directions, double step)
{
  PetscRandom random;
  Vec v, shifted;
  LossParts parts, plus, minus;
  double worst = 0;
  PetscRandomCreate(problem.chain.comm, &random);
  PetscRandomSetSeed(random, 2024);
  PetscRandomSeed(random);
  VecDuplicate(problem.theta, &v);
  VecDuplicate(problem.theta, &shifted);
  EvaluateObjective(problem.objective, problem.theta, &parts, problem.grad);
  for (PetscInt d = 0; d < directions; ++d) {
    PetscReal norm, analytic;
    VecSetRandom(v, random);
    VecShift(v, -0.5);
    VecNorm(v, NORM_2, &norm);
    VecScale(v, 1.0 / norm);
    VecDot(problem.grad, v, &analytic);
    VecWAXPY(shifted, step, v, problem.theta);
    EvaluateObjective(problem.objective, shifted, &plus, nullptr);
    VecWAXPY(shifted, -step, v, problem.theta);
    EvaluateObjective(problem.objective, shifted, &minus, nullptr);
    double numeric = (plus.total - minus.total) / (2 * step);
    worst = std::max(worst, std::fabs(numeric - analytic) / std::fabs(analytic));
  }
  VecDestroy(&shifted);
  VecDestroy(&v);
  PetscRandomDestroy(&random);
  return worst;
}

// Runs `steps` Adam steps on comm and returns the logged total losses.
std::vector<double> TrainW2(MPI_Comm comm, const SpeciesData &species,
                            const std::vector<double> &distances, const W2Settings &settings,
                            PetscInt steps)
{
  Problem problem;
  Adam adam;
  TrainingSettings loop;
  TrainingHistory history;
  loop.steps = steps;
  loop.progress_interval = 0;
  problem.Create(comm, species, distances, settings, 0.0, 1e-5);
  AdamCreate(problem.theta, AdamOptions{}, &adam);
  Train(problem.objective, loop, &adam, problem.theta, problem.grad, &history);
  AdamDestroy(&adam);
  return history.total;
}
} // namespace

TEST(W2Loss, WeekValueMatchesDenseSinkhorn)
{
  SpeciesData species;
  std::vector<double> distances;
  ASSERT_TRUE(AllRanks(ReadSstspa(&species, &distances)));
  KeepWeeks(3, &species);
  const double h = species.grid.xres / 1000.0;
  ScopedOption tol("-ot_tol", "1e-12");
  W2Settings settings;
  settings.epsilon = 2 * h * h;
  W2LocationLoss w2;
  ASSERT_TRUE(AllRanks(w2.Setup(PETSC_COMM_WORLD, species, settings) == 0));

  // mu_t uniform over week t's cells, compared with distr of week t.
  std::vector<std::vector<double>> mu(3);
  for (PetscInt t = 0; t < 3; ++t)
    mu[t].assign(species.CellsInWeek(t), 1.0 / (double)species.CellsInWeek(t));
  double loss;
  ASSERT_TRUE(AllRanks(w2.Evaluate(mu, &loss, nullptr) == 0));

  double expected = 0;
  for (PetscInt t = 0; t < 3; ++t) {
    std::vector<double> a(species.n_active, 0.0), b(species.n_active);
    for (PetscInt cell : species.week_cells[t])
      a[cell] = mu[t][0];
    for (PetscInt k = 0; k < species.n_active; ++k)
      b[k] = species.Distr(k, t);
    double week = DenseDivergence(species.grid, a, b, settings.epsilon);
    EXPECT_NEAR(w2.WeekValues()[t], week, 1e-8 * week) << "week " << t + 1;
    expected += week;
  }
  EXPECT_NEAR(loss, expected, 1e-8 * expected);
  EXPECT_GT(loss, 0);
}

TEST(W2Loss, ZeroAtTargets)
{
  SpeciesData species;
  std::vector<double> distances;
  ASSERT_TRUE(AllRanks(ReadSstspa(&species, &distances)));
  KeepWeeks(4, &species);
  ScopedOption tol("-ot_tol", "1e-12");
  W2Settings settings;
  settings.epsilon = 1e4;
  W2LocationLoss w2;
  ASSERT_TRUE(AllRanks(w2.Setup(PETSC_COMM_WORLD, species, settings) == 0));
  std::vector<std::vector<double>> mu(4), gradient;
  for (PetscInt t = 0; t < 4; ++t)
    for (PetscInt cell : species.week_cells[t])
      mu[t].push_back(species.Distr(cell, t));
  double loss;
  ASSERT_TRUE(AllRanks(w2.Evaluate(mu, &loss, &gradient) == 0));
  EXPECT_NEAR(loss, 0.0, 1e-6);
  // The centred gradient at the minimum is constant over the week's cells.
  for (PetscInt t = 0; t < 4; ++t) {
    auto [low, high] = std::minmax_element(gradient[t].begin(), gradient[t].end());
    EXPECT_NEAR(*high - *low, 0.0, 1e-3) << "week " << t + 1;
  }
}

// One gradient check: the W2 quantity and whether the L2, distance and entropy terms take part.
struct GradientCase
{
  const char *name;
  OTQuantity quantity;
  bool mix;
  double tolerance; // relative error reached with -ot_tol 1e-12 and step 1e-3, times about 10
};

class W2Gradient : public ::testing::TestWithParam<GradientCase>
{
};

// The central-difference step 1e-3 balances truncation (O(step^2)) against the value's error from
// the Sinkhorn tolerance divided by the step. The divergence is stationary in the potentials, so
// its value error is second order and the check reaches about 1e-10. The sharp cost is not: its
// value error is of order -ot_tol times the cost, and the check reaches about 2e-7.
TEST_P(W2Gradient, ObjectiveMatchesCentralDifferences)
{
  SpeciesData species;
  std::vector<double> distances;
  ASSERT_TRUE(AllRanks(ReadSstspa(&species, &distances)));
  KeepWeeks(5, &species);
  ScopedOption tol("-ot_tol", "1e-12");
  W2Settings settings;
  settings.quantity = GetParam().quantity;
  settings.epsilon = 1e4; // h^2 for 100 km cells
  const bool mix = GetParam().mix;
  Problem problem;
  ASSERT_TRUE(
      AllRanks(problem.Create(PETSC_COMM_WORLD, species, distances, settings, mix ? 0.5 : 0.0, 1e-5,
                              mix ? kPenalty : ChainPenalty{0.0, 0.0, 0.9}) == 0));
  double error = GradientError(problem, 3, 1e-3);
  EXPECT_LE(error, GetParam().tolerance);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, W2Gradient,
    ::testing::Values(GradientCase{"Divergence", OTQuantity::kDivergence, false, 1e-9},
                      GradientCase{"Sharp", OTQuantity::kSharp, false, 2e-6},
                      GradientCase{"MixedDivergence", OTQuantity::kDivergence, true, 1e-9}),
    [](const auto &info) { return std::string(info.param.name); });

TEST(RankCounts, W2TrajectoryMatches)
{
  SpeciesData species;
  std::vector<double> distances;
  ASSERT_TRUE(AllRanks(ReadSstspa(&species, &distances)));
  KeepWeeks(7, &species);
  ScopedOption tol("-ot_tol", "1e-10");
  int rank, size;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  MPI_Comm_size(PETSC_COMM_WORLD, &size);
  const PetscInt steps = 5;

  // Every rank count from 1 to size, each with one group and with one group per rank.
  std::vector<std::vector<double>> histories;
  for (int ranks = 1; ranks <= size; ++ranks)
    for (PetscInt groups = 1; groups <= ranks; groups += std::max(ranks - 1, 1)) {
      MPI_Comm sub;
      MPI_Comm_split(PETSC_COMM_WORLD, rank < ranks ? 0 : MPI_UNDEFINED, rank, &sub);
      W2Settings settings;
      settings.epsilon = 1e4;
      settings.groups = groups;
      std::vector<double> history(steps, 0.0);
      if (sub != MPI_COMM_NULL) {
        history = TrainW2(sub, species, distances, settings, steps);
        MPI_Comm_free(&sub);
      }
      MPI_Bcast(history.data(), (int)steps, MPI_DOUBLE, 0, PETSC_COMM_WORLD);
      histories.push_back(history);
    }
  double worst = 0;
  for (const auto &history : histories)
    for (PetscInt s = 0; s < steps; ++s)
      worst = std::max(worst, std::fabs(history[s] - histories[0][s]) / histories[0][s]);
  EXPECT_LE(worst, 1e-8);
  EXPECT_LT(histories[0].back(), histories[0].front());
}
