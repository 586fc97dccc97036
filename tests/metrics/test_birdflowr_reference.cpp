// The published rewbla model against BirdFlowR's interval_log_likelihood() output, and the
// equality of results across rank counts.
#include "birdflow/metrics.hpp"
#include "reference_csv.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

using namespace birdflow;
using birdflow::testing::AllRanks;
using birdflow::testing::DataPath;

namespace
{
// The rewbla model, intervals and distances, loaded once for the whole binary.
struct Rewbla
{
  SpeciesData species;
  std::vector<std::vector<double>> marginals;
  std::vector<Interval> intervals;
  ForwardModel model;
  std::vector<double> distance_km;
  bool loaded = false;
};

Rewbla &LoadRewbla()
{
  static Rewbla rewbla;
  if (rewbla.loaded) return rewbla;
  MPI_Comm comm = PETSC_COMM_WORLD;
  bool ok =
      ReadSpecies(comm, DataPath("rewbla/rewbla_2021_250km_fitted.hdf5"), &rewbla.species) == 0 &&
      ReadMarginals(comm, rewbla.species, &rewbla.marginals) == 0 &&
      ReadIntervals(comm, DataPath("rewbla/rewbla_banding_intervals.csv"), &rewbla.intervals) ==
          0 &&
      BuildForwardModel(rewbla.species, rewbla.marginals, &rewbla.model) == 0 &&
      ComputeCellDistances(rewbla.species.grid, &rewbla.distance_km) == 0;
  rewbla.loaded = AllRanks(ok);
  return rewbla;
}

bool ReferenceFlag(const std::string &value)
{
  return value == "TRUE";
}
} // namespace

TEST(BirdFlowRReference, RewblaLogLikelihoodsMatch)
{
  Rewbla &rewbla = LoadRewbla();
  ASSERT_TRUE(rewbla.loaded);
  ASSERT_TRUE(rewbla.model.cyclic);
  ASSERT_EQ(rewbla.model.n_weeks, 52);
  std::vector<IntervalResult> results;
  ASSERT_TRUE(AllRanks(EvaluateIntervals(PETSC_COMM_WORLD, rewbla.model, rewbla.distance_km,
                                         rewbla.intervals, &results) == 0));

  auto table =
      birdflow::testing::ReadReferenceTable(DataPath("rewbla/rewbla_interval_ll_reference.csv"));
  ASSERT_EQ(table.rows.size(), rewbla.intervals.size());
  const size_t c_id = table.Column("interval_id"), c_ll = table.Column("log_likelihood"),
               c_null = table.Column("null_ll"), c_lag = table.Column("lag");
  const size_t c_flags[] = {table.Column("exclude"),       table.Column("not_active"),
                            table.Column("dynamic_mask"),  table.Column("sparse"),
                            table.Column("same_timestep"), table.Column("bad_date")};
  ASSERT_LT(c_flags[5], table.header.size());

  double max_difference = 0, ll_sum = 0, null_sum = 0;
  int n_scored = 0;
  for (size_t k = 0; k < table.rows.size(); ++k) {
    const auto &row = table.rows[k];
    const IntervalResult &r = results[k];
    SCOPED_TRACE("interval_id " + row[c_id]);
    ASSERT_EQ(row[c_id], rewbla.intervals[k].id);
    const bool flags[] = {r.flags.Excluded(), r.flags.not_active,    r.flags.dynamic_mask,
                          r.flags.sparse,     r.flags.same_timestep, r.flags.bad_date};
    for (size_t f = 0; f < 6; ++f)
      EXPECT_EQ(flags[f], ReferenceFlag(row[c_flags[f]])) << table.header[c_flags[f]];
    EXPECT_EQ(std::to_string(r.lag), row[c_lag]);

    // BirdFlowR leaves log_likelihood NA for excluded intervals and null_ll NA unless the
    // interval was propagated (sparse intervals keep their null_ll).
    EXPECT_EQ(std::isnan(r.log_likelihood), row[c_ll].empty() || row[c_ll] == "NA");
    EXPECT_EQ(std::isnan(r.null_ll), row[c_null].empty() || row[c_null] == "NA");
    if (!std::isnan(r.null_ll) && !row[c_null].empty())
      max_difference = std::max(max_difference, std::abs(r.null_ll - std::stod(row[c_null])));
    if (r.flags.Excluded()) continue;
    const double reference_ll = std::stod(row[c_ll]);
    max_difference = std::max(max_difference, std::abs(r.log_likelihood - reference_ll));
    ll_sum += r.log_likelihood;
    null_sum += r.null_ll;
    ++n_scored;
  }
  EXPECT_LE(max_difference, 1e-8);
  EXPECT_EQ(n_scored, 1372);
  EXPECT_NEAR(ll_sum / n_scored, -2.855, 5e-4);
  EXPECT_NEAR(null_sum / n_scored, -5.143, 5e-4);
  IntervalSummary summary = SummarizeIntervals(results);
  EXPECT_NEAR(summary.mean_ll, ll_sum / n_scored, 1e-12);
  EXPECT_NEAR(summary.mean_null_ll, null_sum / n_scored, 1e-12);
  ::testing::Test::RecordProperty("max_abs_difference", std::to_string(max_difference));
  std::printf("rewbla: max |LL - BirdFlowR| = %.3e, mean_ll %.6f, mean_null_ll %.6f\n",
              max_difference, summary.mean_ll, summary.mean_null_ll);
}

TEST(BirdFlowRReference, ResultsIndependentOfRankCount)
{
  Rewbla &rewbla = LoadRewbla();
  ASSERT_TRUE(rewbla.loaded);
  std::vector<IntervalResult> distributed, alone;
  ASSERT_TRUE(AllRanks(EvaluateIntervals(PETSC_COMM_WORLD, rewbla.model, rewbla.distance_km,
                                         rewbla.intervals, &distributed) == 0));
  ASSERT_TRUE(AllRanks(EvaluateIntervals(PETSC_COMM_SELF, rewbla.model, rewbla.distance_km,
                                         rewbla.intervals, &alone) == 0));
  ASSERT_EQ(distributed.size(), alone.size());
  bool equal = true;
  for (size_t k = 0; k < alone.size(); ++k) {
    const IntervalResult &a = distributed[k], &b = alone[k];
    const double values_a[] = {a.log_likelihood,
                               a.null_ll,
                               a.pred,
                               a.st,
                               a.win_prob,
                               a.energy_score_bf,
                               a.energy_score_st,
                               a.pred_elapsed_dist_by_pred};
    const double values_b[] = {b.log_likelihood,
                               b.null_ll,
                               b.pred,
                               b.st,
                               b.win_prob,
                               b.energy_score_bf,
                               b.energy_score_st,
                               b.pred_elapsed_dist_by_pred};
    // Bitwise: NaN in the same places and the same bits elsewhere.
    equal = equal && std::memcmp(values_a, values_b, sizeof(values_a)) == 0 &&
            a.flags.Excluded() == b.flags.Excluded() && a.flags.sparse == b.flags.sparse;
  }
  EXPECT_TRUE(AllRanks(equal));
}

TEST(BirdFlowRReference, DistributionPerformanceMatches)
{
  const char *species_files[][2] = {{"sstspa/sstspa_2023_100km_fitted.hdf5",
                                     "sstspa/sstspa_2023_100km_distribution_performance.csv"},
                                    {"rewbla/rewbla_2021_250km_fitted.hdf5",
                                     "rewbla/rewbla_2021_250km_distribution_performance.csv"}};
  for (auto &files : species_files) {
    SCOPED_TRACE(files[0]);
    SpeciesData species;
    std::vector<std::vector<double>> marginals;
    ForwardModel model;
    DistributionPerformance performance;
    ASSERT_TRUE(AllRanks(ReadSpecies(PETSC_COMM_WORLD, DataPath(files[0]), &species) == 0));
    ASSERT_TRUE(AllRanks(ReadMarginals(PETSC_COMM_WORLD, species, &marginals) == 0));
    ASSERT_TRUE(AllRanks(BuildForwardModel(species, marginals, &model) == 0));
    ASSERT_TRUE(AllRanks(ComputeDistributionPerformance(model, &performance) == 0));

    auto table = birdflow::testing::ReadReferenceTable(DataPath(files[1]));
    ASSERT_EQ(table.rows.size(), 1u);
    auto reference = [&](const char *name) {
      size_t c = table.Column(name);
      return c < table.header.size() ? std::stod(table.rows[0][c]) : NAN;
    };
    // BirdFlowR prints 15 significant digits; float32 marginals are widened to double as in R.
    const double tolerance = 1e-12;
    const std::pair<double, const char *> checks[] = {
        {performance.min_step_cor, "min_step_cor"},
        {performance.mean_step_cor, "mean_step_cor"},
        {performance.min_distr_cor, "min_distr_cor"},
        {performance.mean_distr_cor, "mean_distr_cor"},
        {performance.st_traverse_cor, "st_traverse_cor"},
        {performance.md_traverse_cor, "md_traverse_cor"}};
    double max_difference = 0;
    for (const auto &[value, name] : checks) {
      EXPECT_NEAR(value, reference(name), tolerance) << name;
      max_difference = std::max(max_difference, std::abs(value - reference(name)));
    }
    std::printf("%s: max |correlation - BirdFlowR| = %.3e\n", files[0], max_difference);
    EXPECT_EQ((double)performance.n_states, reference("n_states"));
  }
}

TEST(BirdFlowRReference, GatheredRowBlocksGiveSameModel)
{
  Rewbla &rewbla = LoadRewbla();
  ASSERT_TRUE(rewbla.loaded);
  PetscMPIInt rank, size;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  MPI_Comm_size(PETSC_COMM_WORLD, &size);

  // Split each marginal into contiguous row blocks, one per rank, as the trainer holds them.
  std::vector<MarginalRows> rows(rewbla.marginals.size());
  for (size_t t = 0; t < rows.size(); ++t) {
    const PetscInt n_rows = rewbla.species.CellsInWeek((PetscInt)t);
    rows[t].n_cols = rewbla.species.CellsInWeek((PetscInt)t + 1);
    rows[t].row_start = n_rows * rank / size;
    rows[t].row_count = n_rows * (rank + 1) / size - rows[t].row_start;
    rows[t].values = rewbla.marginals[t].data() + rows[t].row_start * rows[t].n_cols;
  }
  std::vector<std::vector<double>> gathered;
  ASSERT_TRUE(AllRanks(GatherMarginals(PETSC_COMM_WORLD, rewbla.species, rows, &gathered) == 0));
  EXPECT_TRUE(AllRanks(gathered == rewbla.marginals));

  // A block that leaves a gap is rejected on every rank.
  if (rank == 0 && rows[0].row_count > 0) rows[0].row_count -= 1;
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  PetscErrorCode code = GatherMarginals(PETSC_COMM_WORLD, rewbla.species, rows, &gathered);
  PetscPopErrorHandler();
  EXPECT_TRUE(AllRanks(code == PETSC_ERR_ARG_SIZ));
}
