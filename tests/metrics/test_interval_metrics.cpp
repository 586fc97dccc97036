// Interval metrics on a small hand-made model, checked against dense brute-force formulas.
#include "birdflow/metrics.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace birdflow;
using birdflow::testing::AllRanks;

namespace
{
constexpr PetscInt kCells = 5;

// A 5-cell model with 4 weeks plus the cyclic copy of week 1. Cell 4 (0-based) is outside the
// dynamic mask in week 2, and the marginal of week 1 -> 2 sends no mass into cell 2, so cell 2
// is a valid S&T cell but not a model state in week 2.
struct SmallModel
{
  SpeciesData species;
  std::vector<std::vector<double>> marginals;
  std::vector<double> distance_km;

  explicit SmallModel(bool cyclic)
  {
    const PetscInt T = 5;
    species.path = "small.hdf5";
    species.n_active = kCells;
    species.n_timesteps = T;
    species.distr.assign(kCells * T, 0.0);
    species.dynamic_mask.assign(kCells * T, 0);
    for (PetscInt t = 0; t < T; ++t) {
      double sum = 0;
      for (PetscInt i = 0; i < kCells; ++i) {
        double value = (t == 1 && i == 4) ? 0.0 : 1.0 + ((i * 7 + t * 3) % 5);
        if (t == T - 1 && cyclic) value = species.Distr(i, 0) * 1.0;
        species.distr[i * T + t] = value;
        sum += value;
      }
      for (PetscInt i = 0; i < kCells; ++i) {
        if (!(t == T - 1 && cyclic)) species.distr[i * T + t] /= sum;
        species.dynamic_mask[i * T + t] = species.distr[i * T + t] > 0;
      }
    }
    species.week_cells.resize(T);
    for (PetscInt t = 0; t < T; ++t)
      for (PetscInt i = 0; i < kCells; ++i)
        if (species.dynamic_mask[i * T + t]) species.week_cells[t].push_back(i);
    for (PetscInt k = 0; k + 1 < T; ++k) {
      const size_t rows = species.week_cells[k].size(), cols = species.week_cells[k + 1].size();
      std::vector<double> m(rows * cols);
      for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c)
          m[r * cols + c] = (k == 0 && c == 2) ? 0.0 : 0.01 * (1 + (r * 3 + c * 5 + k) % 7);
      marginals.push_back(m);
    }
    distance_km.assign(kCells * kCells, 0.0);
    for (PetscInt a = 0; a < kCells; ++a)
      for (PetscInt b = 0; b < kCells; ++b)
        distance_km[a * kCells + b] = a == b ? 0.0 : 100.0 * std::abs(a - b) + 10.0 * ((a + b) % 2);
  }
};

// Dense brute-force prediction: p_{t+1} = T_t' p_t over all cells, from a one-hot start.
std::vector<double> BruteForcePrediction(const SmallModel &m, PetscInt t1, PetscInt i1,
                                         PetscInt lag, PetscInt n_weeks)
{
  std::vector<double> p(kCells, 0.0);
  p[i1] = 1.0;
  PetscInt week = t1;
  for (PetscInt s = 0; s < lag; ++s) {
    const auto &from = m.species.week_cells[week], &to = m.species.week_cells[week + 1];
    std::vector<double> next(kCells, 0.0);
    for (size_t r = 0; r < from.size(); ++r) {
      double row_sum = 0;
      for (size_t c = 0; c < to.size(); ++c)
        row_sum += m.marginals[week][r * to.size() + c];
      for (size_t c = 0; c < to.size(); ++c)
        if (row_sum > 0) next[to[c]] += p[from[r]] * m.marginals[week][r * to.size() + c] / row_sum;
    }
    p = next;
    week = (week + 1) % n_weeks;
  }
  return p;
}

Interval MakeInterval(const std::string &id, PetscInt t1, PetscInt t2, PetscInt i1, PetscInt i2)
{
  Interval interval;
  interval.id = id;
  interval.t1 = t1;
  interval.t2 = t2;
  interval.i1 = i1;
  interval.i2 = i2;
  return interval;
}
} // namespace

TEST(IntervalMetrics, MatchBruteForceOnCyclicModel)
{
  SmallModel m(true);
  ForwardModel model;
  ASSERT_TRUE(AllRanks(BuildForwardModel(m.species, m.marginals, &model) == 0));
  ASSERT_TRUE(model.cyclic);
  ASSERT_EQ(model.n_weeks, 4);
  // 1-based (t1, t2, i1, i2): forward in the year, across the year end, and a long lag.
  std::vector<Interval> intervals = {MakeInterval("a", 1, 3, 2, 4), MakeInterval("b", 4, 2, 1, 2),
                                     MakeInterval("c", 3, 2, 5, 1), MakeInterval("d", 1, 4, 2, 5),
                                     MakeInterval("e", 1, 2, 4, 1)};
  std::vector<IntervalResult> results;
  ASSERT_TRUE(AllRanks(
      EvaluateIntervals(PETSC_COMM_WORLD, model, m.distance_km, intervals, &results) == 0));

  const std::vector<double> &G = m.distance_km;
  for (size_t k = 0; k < intervals.size(); ++k) {
    const Interval &iv = intervals[k];
    const IntervalResult &r = results[k];
    SCOPED_TRACE("interval " + iv.id);
    const PetscInt lag = iv.t2 >= iv.t1 ? iv.t2 - iv.t1 : iv.t2 + 4 - iv.t1;
    ASSERT_EQ(r.lag, lag);
    ASSERT_FALSE(r.flags.Excluded());
    std::vector<double> p = BruteForcePrediction(m, iv.t1 - 1, iv.i1 - 1, lag, 4);
    std::vector<double> s(kCells);
    for (PetscInt i = 0; i < kCells; ++i)
      s[i] = m.species.Distr(i, iv.t2 - 1);
    const PetscInt end = iv.i2 - 1, start = iv.i1 - 1;

    double pred = 0, st = 0, win = 0, pGp = 0, sGs = 0, by_pred = 0, by_st = 0;
    for (PetscInt a = 0; a < kCells; ++a) {
      pred += p[a] * G[a * kCells + end];
      st += s[a] * G[a * kCells + end];
      by_pred += p[a] * G[a * kCells + start];
      by_st += s[a] * G[a * kCells + start];
      for (PetscInt b = 0; b < kCells; ++b) {
        win += p[a] * s[b] * (G[b * kCells + end] > G[a * kCells + end] ? 1.0 : 0.0);
        pGp += p[a] * p[b] * G[a * kCells + b];
        sGs += s[a] * s[b] * G[a * kCells + b];
      }
    }
    EXPECT_NEAR(r.log_likelihood, std::log(p[end]), 1e-13);
    EXPECT_NEAR(r.ll_offset, std::log(p[end] + 1e-8), 1e-13);
    EXPECT_NEAR(r.null_ll, std::log(s[end]), 1e-13);
    EXPECT_NEAR(r.pred, pred, 1e-10);
    EXPECT_NEAR(r.st, st, 1e-10);
    EXPECT_NEAR(r.win_distance, st - pred, 1e-10);
    EXPECT_NEAR(r.win_prob, win, 1e-13);
    EXPECT_NEAR(r.energy_score_bf, pred - 0.5 * pGp, 1e-10);
    EXPECT_NEAR(r.energy_score_st, st - 0.5 * sGs, 1e-10);
    EXPECT_NEAR(r.pred_elapsed_dist_by_pred, by_pred, 1e-10);
    EXPECT_NEAR(r.pred_elapsed_dist_by_st, by_st, 1e-10);
    EXPECT_NEAR(r.global_prob_of_the_starting, m.species.Distr(start, iv.t1 - 1) / 52, 1e-17);
  }
}

TEST(IntervalMetrics, FlagsFollowBirdFlowR)
{
  SmallModel m(true);
  ForwardModel model;
  ASSERT_TRUE(AllRanks(BuildForwardModel(m.species, m.marginals, &model) == 0));
  std::vector<Interval> intervals = {MakeInterval("same", 2, 2, 1, 1),
                                     MakeInterval("na_cell", 1, 2, kMissingIndex, 1),
                                     MakeInterval("na_week", kMissingIndex, 2, 1, 1),
                                     MakeInterval("outside_st", 1, 2, 1, 5),
                                     MakeInterval("no_model_mass", 1, 2, 1, 3),
                                     MakeInterval("ok", 1, 2, 1, 1)};
  std::vector<IntervalResult> results;
  ASSERT_TRUE(AllRanks(
      EvaluateIntervals(PETSC_COMM_WORLD, model, m.distance_km, intervals, &results) == 0));
  EXPECT_TRUE(results[0].flags.same_timestep);
  EXPECT_TRUE(std::isnan(results[0].log_likelihood));
  EXPECT_TRUE(results[1].flags.not_active);
  EXPECT_FALSE(results[1].flags.dynamic_mask);
  EXPECT_TRUE(results[2].flags.bad_date);
  EXPECT_FALSE(results[2].flags.dynamic_mask);
  EXPECT_TRUE(results[3].flags.dynamic_mask);
  EXPECT_TRUE(results[4].flags.dynamic_mask);
  EXPECT_FALSE(results[5].flags.Excluded());

  IntervalSummary summary = SummarizeIntervals(results);
  EXPECT_EQ(summary.n_intervals, 6);
  EXPECT_EQ(summary.n_scored, 1);
  EXPECT_DOUBLE_EQ(summary.mean_ll, results[5].log_likelihood);
}

TEST(IntervalMetrics, OpenChainRejectsYearWrap)
{
  SmallModel m(false);
  ForwardModel model;
  ASSERT_TRUE(AllRanks(BuildForwardModel(m.species, m.marginals, &model) == 0));
  EXPECT_FALSE(model.cyclic);
  EXPECT_EQ(model.n_weeks, 5);
  EXPECT_EQ(model.n_transitions, 4);
  std::vector<Interval> intervals = {MakeInterval("wrap", 4, 2, 1, 1),
                                     MakeInterval("last", 1, 5, 1, 2)};
  std::vector<IntervalResult> results;
  ASSERT_TRUE(AllRanks(
      EvaluateIntervals(PETSC_COMM_WORLD, model, m.distance_km, intervals, &results) == 0));
  EXPECT_TRUE(results[0].flags.bad_date);
  EXPECT_EQ(results[1].lag, 4);
  std::vector<double> p = BruteForcePrediction(m, 0, 0, 4, 5);
  EXPECT_NEAR(results[1].log_likelihood, std::log(p[1]), 1e-13);
}

TEST(IntervalMetrics, OutOfRangeWeekAndCellAreRejected)
{
  SmallModel m(true);
  ForwardModel model;
  ASSERT_TRUE(AllRanks(BuildForwardModel(m.species, m.marginals, &model) == 0));
  std::vector<Interval> week = {MakeInterval("w", 1, 5, 1, 1)};
  std::vector<Interval> cell = {MakeInterval("c", 1, 2, 6, 1)};
  week[0].line = 7;
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  PetscErrorCode week_code = CheckIntervalsInModel(week, "t.csv", model);
  PetscErrorCode cell_code = CheckIntervalsInModel(cell, "t.csv", model);
  PetscPopErrorHandler();
  EXPECT_TRUE(AllRanks(week_code == PETSC_ERR_USER_INPUT));
  EXPECT_TRUE(AllRanks(cell_code == PETSC_ERR_USER_INPUT));
}

TEST(IntervalMetrics, WrongMarginalShapeIsRejected)
{
  SmallModel m(true);
  m.marginals[2].pop_back();
  ForwardModel model;
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  PetscErrorCode code = BuildForwardModel(m.species, m.marginals, &model);
  PetscPopErrorHandler();
  EXPECT_TRUE(AllRanks(code == PETSC_ERR_USER_INPUT));
}
