// Validation metrics of a fitted BirdFlow model, compatible with BirdFlowR.
//
// Definitions follow BirdFlowR (interval_log_likelihood(), calc_interval_metrics() and
// distribution_performance()); docs/evaluation.md lists them with the checks against BirdFlowR's
// own output. Timesteps (weeks) and cell indices in the interval table are 1-based, as in R; every
// other index here is 0-based.
#pragma once

#include "birdflow/species.hpp"

#include <petscsys.h>

#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace birdflow
{
inline constexpr double kNotAvailable = std::numeric_limits<double>::quiet_NaN();

// Index value of a week or cell given as NA (or empty) in the interval table.
inline constexpr PetscInt kMissingIndex = -1;

/* One banding or tracking interval: a bird seen in cell i1 at week t1 and in cell i2 at week t2. */
struct Interval
{
  std::string id;                                  // interval_id, the key of the output rows
  PetscInt line = 0;                               // line of the CSV record (the header is line 1)
  PetscInt t1 = kMissingIndex, t2 = kMissingIndex; // 1-based timesteps, or kMissingIndex
  PetscInt i1 = kMissingIndex, i2 = kMissingIndex; // 1-based active-cell indices, or kMissingIndex
  double elapsed_days = kNotAvailable;             // date2 - date1, when both dates are given
  double lat1 = kNotAvailable, lon1 = kNotAvailable; // WGS84 degrees, when given
  double lat2 = kNotAvailable, lon2 = kNotAvailable;
};

/*
  ParseIntervalsCsv - Parses an interval table in the layout of BirdFlowR's interval CSVs
  (RFC 4180: comma-separated, optional double quotes, CRLF or LF line ends). Not collective.

  Required columns: interval_id, t1, t2, i1, i2 (timestep1 and timestep2 are accepted for t1, t2).
  Optional: date1, date2 (YYYY-MM-DD) give elapsed_days; lat1, lon1, lat2, lon2 give elapsed_km.
  Other columns are ignored. NA or an empty field is allowed for weeks, cells, dates and
  coordinates: such intervals are flagged, not scored.

  Throws std::runtime_error with "<source>:<line>: ..." naming the column and value for a missing
  column, a malformed record, an unparsable or negative value, or a duplicate interval_id.
*/
std::vector<Interval> ParseIntervalsCsv(const std::string &text, const std::string &source);

/*
  ReadIntervals - Reads and parses an interval CSV. Collective: rank 0 reads the file, every rank
  parses the same text and returns the same table or the same error (PETSC_ERR_FILE_OPEN for an
  unreadable file, PETSC_ERR_USER_INPUT for invalid content).
*/
PetscErrorCode ReadIntervals(MPI_Comm comm, const std::string &path,
                             std::vector<Interval> *intervals);

/*
  A fitted model prepared for forward prediction: the S&T distributions, the dynamic mask and the
  forward transitions T_k = (M_k / rowSums(M_k))^T as BirdFlowR builds them. A full-year file
  (53 columns, the last a copy of the first) becomes a cyclic chain of 52 weeks whose last
  transition leads from week 52 back to week 1.
*/
struct ForwardModel
{
  PetscInt n_active = 0;
  PetscInt n_weeks = 0;       // W: distinct timesteps (52 for a full year)
  PetscInt n_transitions = 0; // W for a cyclic model, W - 1 otherwise
  bool cyclic = false;
  std::vector<double> distr;                       // N * W, distr[i * W + t]: S&T distribution
  std::vector<std::vector<PetscInt>> week_cells;   // per week: active cells in the dynamic mask
  std::vector<std::vector<double>> transition;     // per k: row-normalised M_k, n_k x n_{k+1}
  std::vector<std::vector<double>> marginal_distr; // per week: distribution from the marginals

  double Distr(PetscInt active, PetscInt week) const { return distr[active * n_weeks + week]; }
  PetscInt NextWeek(PetscInt week) const { return (week + 1) % n_weeks; }
};

/*
  BuildForwardModel - Builds a ForwardModel from a species file's contents and its pairwise
  marginals (row-major n_t x n_{t+1}, as ReadMarginals returns them). Not collective.

  Rows of M_k that sum to zero give zero transition rows. Errors (PETSC_ERR_USER_INPUT) name the
  source file and the marginal: a wrong count or shape, a NaN, infinite or negative entry.
*/
PetscErrorCode BuildForwardModel(const SpeciesData &species,
                                 const std::vector<std::vector<double>> &marginals,
                                 ForwardModel *model);

/*
  CheckIntervalsInModel - Checks that every week is in 1..n_weeks and every cell in 1..n_active
  (NA allowed). Not collective, but every rank holding the same data reaches the same verdict.
  Errors (PETSC_ERR_USER_INPUT): "<source>:<line>: column t1: week 60 is outside 1..52 ...".
*/
PetscErrorCode CheckIntervalsInModel(const std::vector<Interval> &intervals,
                                     const std::string &source, const ForwardModel &model);

/* Cell-centre geometry and great-circle distances. */

/*
  ComputeCellLonLat - Inverse-projects the active cell centres of `grid` from grid.crs (WKT) to
  WGS84 (EPSG:4326) longitude and latitude in degrees with PROJ, as BirdFlowR does with sf.
  Not collective. Fails with PETSC_ERR_LIB naming the CRS when PROJ cannot build the operation.
*/
PetscErrorCode ComputeCellLonLat(const Grid &grid, std::vector<double> *lon,
                                 std::vector<double> *lat);

// Sphere radius of BirdFlowR's great_circle_distances() (s2's mean Earth radius), km.
inline constexpr double kS2EarthRadiusKm = 6371.01;
// Sphere radius of BirdFlowR's haversine distance for elapsed_km, km.
inline constexpr double kHaversineEarthRadiusKm = 6371.0;

/* Returns the great-circle distance in km between two lon/lat points (degrees) on a sphere of
   `radius_km`, from the angle between their unit vectors. Not collective. */
double GreatCircleKm(double lon1, double lat1, double lon2, double lat2, double radius_km);

/* Returns the haversine distance in km (radius 6371 km), BirdFlowR's elapsed_km. */
double HaversineKm(double lat1, double lon1, double lat2, double lon2);

/*
  ComputeCellDistances - Returns the dense N x N great-circle distance matrix (km, row-major)
  between active cell centres on the s2 sphere (radius 6371.01 km). Not collective.
*/
PetscErrorCode ComputeCellDistances(const Grid &grid, std::vector<double> *distance_km);

/* Per-interval metrics. */

/* Reasons an interval cannot be scored (the flags of BirdFlowR's interval_log_likelihood()). */
struct IntervalFlags
{
  bool bad_date = false;      // a week is NA, or t2 < t1 in a model that is not cyclic
  bool not_active = false;    // a cell is NA: the point is not in an active cell
  bool dynamic_mask = false;  // the model has zero mass at (i1, t1) or (i2, t2)
  bool same_timestep = false; // t1 == t2
  bool sparse = false;        // the prediction at (i2, t2) is exactly zero

  bool Excluded() const
  {
    return bad_date || not_active || dynamic_mask || same_timestep || sparse;
  }
};

/*
  Metrics of one interval, with p the forward prediction at t2 from a one-hot start at (i1, t1),
  s the S&T distribution at t2 and G the great-circle distances (km). Fields that cannot be
  computed are NaN.
*/
struct IntervalResult
{
  IntervalFlags flags;
  PetscInt lag = kMissingIndex;          // weeks forward, wrapping the year in a cyclic model
  double log_likelihood = kNotAvailable; // log p[i2]
  double null_ll = kNotAvailable;        // log s[i2]
  double ll_offset = kNotAvailable;      // log(p[i2] + 1e-8), calc_interval_metrics() `ll`
  double null_ll_offset = kNotAvailable; // log(s[i2] + 1e-8), calc_interval_metrics() `null_ll`
  double pred = kNotAvailable;           // sum p G[, i2]: expected km from the end point
  double st = kNotAvailable;             // sum s G[, i2]
  double win_distance = kNotAvailable;   // st - pred
  double win_distance_fraction = kNotAvailable; // (st - pred) / st
  double win_prob = kNotAvailable;           // P(a draw from p is closer to i2 than a draw from s)
  double energy_score_bf = kNotAvailable;    // sum p G[, i2] - p'Gp / 2
  double energy_score_st = kNotAvailable;    // sum s G[, i2] - s'Gs / 2
  double energy_improvement = kNotAvailable; // energy_score_st - energy_score_bf
  double global_prob_of_the_starting = kNotAvailable; // distr[i1, t1] / 52
  double elapsed_days = kNotAvailable;
  double elapsed_km = kNotAvailable;
  double pred_elapsed_dist_by_pred = kNotAvailable; // sum p G[, i1]
  double pred_elapsed_dist_by_st = kNotAvailable;   // sum s G[, i1]
};

/*
  EvaluateIntervals - Computes the flags and metrics of every interval. Collective: the intervals
  of each start week are dealt round-robin over the ranks, each rank propagates its block of
  one-hot starts together, and every rank receives all results. The arithmetic of one interval
  does not depend on the rank count, so results are bitwise equal on any number of ranks.

  `distance_km` is the dense N x N matrix of ComputeCellDistances(). Weeks and cells outside the
  model fail as in CheckIntervalsInModel(), with "interval table" in place of the file name.

  Options Database Keys: none. Logged as the PETSc events "BFIntervalProp" (the whole
  evaluation) and "BFIntervalScore" (the metrics of the predictions, nested in the first).
*/
PetscErrorCode EvaluateIntervals(MPI_Comm comm, const ForwardModel &model,
                                 const std::vector<double> &distance_km,
                                 const std::vector<Interval> &intervals,
                                 std::vector<IntervalResult> *results);

/* Means over the scored intervals (no flag set), and abundance-weighted means with weights
   global_prob_of_the_starting / sum(global_prob_of_the_starting), as calc_interval_metrics(). */
struct IntervalSummary
{
  PetscInt n_intervals = 0, n_scored = 0;
  double mean_ll = kNotAvailable, mean_null_ll = kNotAvailable;
  double mean_ll_offset = kNotAvailable, mean_null_ll_offset = kNotAvailable;
  double mean_pred = kNotAvailable, mean_st = kNotAvailable;
  double mean_win_distance = kNotAvailable, mean_win_distance_fraction = kNotAvailable;
  double mean_win_prob = kNotAvailable;
  double mean_energy_score_bf = kNotAvailable, mean_energy_score_st = kNotAvailable;
  double mean_energy_improvement = kNotAvailable;
  double weighted_mean_ll = kNotAvailable, weighted_mean_null_ll = kNotAvailable;
  double weighted_mean_win_distance = kNotAvailable;
  double weighted_mean_win_distance_fraction = kNotAvailable;
  double weighted_mean_win_prob = kNotAvailable;
  double weighted_energy_improvement = kNotAvailable;
};

/* SummarizeIntervals - Returns the IntervalSummary of `results`. Not collective. */
IntervalSummary SummarizeIntervals(const std::vector<IntervalResult> &results);

/* BirdFlowR distribution_performance() over the whole year (weeks 1..W, then week 1 again for a
   cyclic model). Pearson correlations over the dynamic-mask cells of each week. */
struct DistributionPerformance
{
  double min_step_cor = kNotAvailable, mean_step_cor = kNotAvailable;
  double min_distr_cor = kNotAvailable, mean_distr_cor = kNotAvailable;
  double st_traverse_cor = kNotAvailable, md_traverse_cor = kNotAvailable;
  PetscInt n_states = 0;
};

/* ComputeDistributionPerformance - Computes the DistributionPerformance of `model`.
   Not collective (every rank computes the same numbers). */
PetscErrorCode ComputeDistributionPerformance(const ForwardModel &model,
                                              DistributionPerformance *performance);

/* Everything birdflow-eval reports for one model. */
struct Evaluation
{
  std::vector<IntervalResult> intervals;
  IntervalSummary summary;
  DistributionPerformance distribution;
};

/*
  EvaluateModel - Evaluates a model in memory against an interval table: the species data and
  its pairwise marginals, row-major n_t x n_{t+1}, with every marginal on every rank. Collective.
  Checks the intervals against the model first, as CheckIntervalsInModel() does, and names the
  table by `source` in messages.
*/
PetscErrorCode EvaluateModel(MPI_Comm comm, const SpeciesData &species,
                             const std::vector<std::vector<double>> &marginals,
                             const std::vector<Interval> &intervals, const std::string &source,
                             Evaluation *evaluation);

/*
  GatherMarginals - Assembles every pairwise marginal on every rank from the rows each rank holds
  (the trainer's layout, see MarginalRows: rows[t] is this rank's block of M_t), so that
  EvaluateModel() can score a model held in memory. Collective. Fails with PETSC_ERR_ARG_SIZ when
  the blocks do not tile each n_t x n_{t+1} marginal in rank order.
*/
PetscErrorCode GatherMarginals(MPI_Comm comm, const SpeciesData &species,
                               const std::vector<MarginalRows> &rows,
                               std::vector<std::vector<double>> *marginals);

/* Output. */

/* Returns the per-interval table as CSV text: one row per interval keyed by interval_id, NA for
   values that are not available, TRUE/FALSE flags. Not collective. */
std::string FormatIntervalResultsCsv(const std::vector<Interval> &intervals,
                                     const std::vector<IntervalResult> &results);

/*
  WriteIntervalResults - Writes FormatIntervalResultsCsv() to PartialPath(path) on rank 0 and
  renames it to `path`. Collective. On an error the partial file is removed.
*/
PetscErrorCode WriteIntervalResults(MPI_Comm comm, const std::string &path,
                                    const std::vector<Interval> &intervals,
                                    const std::vector<IntervalResult> &results);

/* Returns the summary and distribution metrics as (name, value) pairs, in output order. */
std::vector<std::pair<std::string, double>> SummaryValues(const Evaluation &evaluation);

/* PrintEvaluationSummary - Prints SummaryValues() as `name value` lines on rank 0. Collective. */
PetscErrorCode PrintEvaluationSummary(MPI_Comm comm, const Evaluation &evaluation);

/* WriteEvaluationSummary - Writes SummaryValues() as a `metric,value` CSV through a partial file
   renamed at the end, like WriteIntervalResults(). Collective. */
PetscErrorCode WriteEvaluationSummary(MPI_Comm comm, const std::string &path,
                                      const Evaluation &evaluation);
} // namespace birdflow
