// Per-interval metrics: flags, forward prediction from one-hot starts, likelihoods and distances.
#include "birdflow/metrics.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace birdflow
{
namespace
{
// calc_interval_metrics() adds this to probabilities before taking logs.
constexpr double kLogOffset = 1e-8;
// calc_interval_metrics() divides the start-cell abundance by 52 weeks, whatever the model length.
constexpr double kWeeksPerYear = 52.0;

PetscLogEvent propagation_event = -1, scoring_event = -1;

PetscErrorCode RegisterEvents()
{
  PetscClassId classid;

  PetscFunctionBeginUser;
  if (propagation_event < 0) {
    PetscCall(PetscClassIdRegister("BirdFlow metrics", &classid));
    PetscCall(PetscLogEventRegister("BFIntervalProp", classid, &propagation_event));
    PetscCall(PetscLogEventRegister("BFIntervalScore", classid, &scoring_event));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Sets the flags, lag and start-cell weight of an interval as interval_log_likelihood() does.
IntervalResult ClassifyInterval(const ForwardModel &model, const Interval &interval)
{
  IntervalResult result;
  result.elapsed_days = interval.elapsed_days;
  if (std::isfinite(interval.lat1) && std::isfinite(interval.lon1) &&
      std::isfinite(interval.lat2) && std::isfinite(interval.lon2))
    result.elapsed_km = HaversineKm(interval.lat1, interval.lon1, interval.lat2, interval.lon2);

  const bool weeks_known = interval.t1 != kMissingIndex && interval.t2 != kMissingIndex;
  const bool cells_known = interval.i1 != kMissingIndex && interval.i2 != kMissingIndex;
  if (weeks_known && interval.t1 <= interval.t2)
    result.lag = interval.t2 - interval.t1;
  else if (weeks_known && model.cyclic)
    result.lag = interval.t2 + model.n_weeks - interval.t1;
  result.flags.bad_date = result.lag == kMissingIndex;
  result.flags.not_active = !cells_known;

  // A location is valid when the marginal-derived distribution is non-zero there.
  bool valid = weeks_known && cells_known &&
               model.marginal_distr[interval.t1 - 1][interval.i1 - 1] != 0 &&
               model.marginal_distr[interval.t2 - 1][interval.i2 - 1] != 0;
  result.flags.dynamic_mask = !valid && !result.flags.not_active && !result.flags.bad_date;
  result.flags.same_timestep = weeks_known && interval.t1 == interval.t2;

  if (interval.t1 != kMissingIndex && interval.i1 != kMissingIndex)
    result.global_prob_of_the_starting =
        model.Distr(interval.i1 - 1, interval.t1 - 1) / kWeeksPerYear;
  return result;
}

// Data that the metrics of every interval share: S&T columns, s'Gs per end week, distances.
struct EndWeekContext
{
  const std::vector<double> *distance_km;
  std::vector<std::vector<double>> st; // per week: S&T distribution over active cells
  std::vector<double> st_quadratic;    // per week: s'Gs
};

double Dot(const double *a, const double *b, size_t n)
{
  double sum = 0;
  for (size_t k = 0; k < n; ++k)
    sum += a[k] * b[k];
  return sum;
}

// Returns q'Gq, skipping the zero entries of q.
double QuadraticForm(const std::vector<double> &G, const std::vector<double> &q)
{
  const size_t n = q.size();
  double sum = 0;
  for (size_t a = 0; a < n; ++a)
    if (q[a] != 0) sum += q[a] * Dot(&G[a * n], q.data(), n);
  return sum;
}

// Returns sum_k p_k sum_m s_m [g_m > g_k] with one sort of g, grouping equal distances.
double WinProbability(const std::vector<double> &p, const std::vector<double> &s, const double *g)
{
  const size_t n = p.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [g](size_t a, size_t b) { return g[a] < g[b]; });

  double farther_mass = 0, win = 0; // farther_mass: S&T mass strictly farther than this group
  size_t end = n;
  while (end > 0) {
    size_t begin = end - 1;
    while (begin > 0 && g[order[begin - 1]] == g[order[end - 1]])
      --begin;
    double group_mass = 0;
    for (size_t k = begin; k < end; ++k) {
      win += p[order[k]] * farther_mass;
      group_mass += s[order[k]];
    }
    farther_mass += group_mass;
    end = begin;
  }
  return win;
}

// Fills the prediction-based metrics of `result` from p, the prediction at t2 over active cells.
void ScorePrediction(const EndWeekContext &context, const Interval &interval,
                     const std::vector<double> &p, IntervalResult *result)
{
  const std::vector<double> &G = *context.distance_km;
  const size_t n = p.size();
  const std::vector<double> &s = context.st[interval.t2 - 1];
  const double *g_end = &G[(size_t)(interval.i2 - 1) * n];
  const double *g_start = &G[(size_t)(interval.i1 - 1) * n];
  const double p_end = p[interval.i2 - 1], s_end = s[interval.i2 - 1];

  result->flags.sparse = p_end == 0;
  result->log_likelihood = p_end == 0 ? kNotAvailable : std::log(p_end);
  result->null_ll = std::log(s_end);
  result->ll_offset = std::log(p_end + kLogOffset);
  result->null_ll_offset = std::log(s_end + kLogOffset);

  result->pred = Dot(p.data(), g_end, n);
  result->st = Dot(s.data(), g_end, n);
  result->win_distance = result->st - result->pred;
  result->win_distance_fraction = (result->st - result->pred) / result->st;
  result->win_prob = WinProbability(p, s, g_end);
  result->energy_score_bf = result->pred - 0.5 * QuadraticForm(G, p);
  result->energy_score_st = result->st - 0.5 * context.st_quadratic[interval.t2 - 1];
  result->energy_improvement = result->energy_score_st - result->energy_score_bf;
  result->pred_elapsed_dist_by_pred = Dot(p.data(), g_start, n);
  result->pred_elapsed_dist_by_st = Dot(s.data(), g_start, n);
}

// Y = T_k' X for a block of columns (X column-major n_from x b, Y n_to x b). Each row of T_k is
// read once for the whole block. Every column still sums its terms in row order, so its rounding
// does not depend on the other columns of the block or on the rank count.
void PropagateBlock(const std::vector<double> &transition, size_t n_from, size_t n_to,
                    size_t n_columns, const std::vector<double> &X, std::vector<double> *Y)
{
  Y->assign(n_to * n_columns, 0.0);
  for (size_t i = 0; i < n_from; ++i) {
    const double *row = transition.data() + i * n_to;
    for (size_t j = 0; j < n_columns; ++j) {
      const double x = X[j * n_from + i];
      if (x == 0) continue;
      double *y = Y->data() + j * n_to;
      for (size_t c = 0; c < n_to; ++c)
        y[c] += x * row[c];
    }
  }
}

// The intervals that start in the same cell and week: they share one propagated column.
struct StartColumn
{
  PetscInt cell = 0;    // 0-based active cell
  PetscInt max_lag = 0; // the column is propagated this many weeks
  std::vector<size_t> members;
};

// Propagates the one-hot columns of the starts in week t1 (sorted by decreasing max_lag) and scores
// each interval when its lag is reached. Columns past their max_lag are dropped, so the block
// shrinks as it moves through the year.
PetscErrorCode EvaluateStartWeek(const ForwardModel &model, const EndWeekContext &context,
                                 const std::vector<Interval> &intervals, PetscInt t1,
                                 const std::vector<StartColumn> &columns,
                                 std::vector<IntervalResult> *results)
{
  size_t active = columns.size();
  std::vector<double> X, Y, p(model.n_active);
  std::vector<std::pair<size_t, size_t>> pending; // (interval, column), by decreasing lag

  PetscFunctionBeginUser;
  // 1. One-hot columns over the dynamic-mask cells of the start week.
  const std::vector<PetscInt> &start_cells = model.week_cells[t1];
  X.assign(start_cells.size() * active, 0.0);
  for (size_t j = 0; j < active; ++j) {
    auto found = std::lower_bound(start_cells.begin(), start_cells.end(), columns[j].cell);
    X[j * start_cells.size() + (found - start_cells.begin())] = 1.0;
    for (size_t member : columns[j].members)
      pending.emplace_back(member, j);
  }
  std::stable_sort(pending.begin(), pending.end(), [&](const auto &a, const auto &b) {
    return (*results)[a.first].lag > (*results)[b.first].lag;
  });

  // 2. Step through the weeks, scoring the intervals whose end week is reached.
  PetscInt week = t1;
  for (PetscInt step = 1; active > 0; ++step) {
    const PetscInt next = model.NextWeek(week);
    const size_t n_from = model.week_cells[week].size(), n_to = model.week_cells[next].size();
    PropagateBlock(model.transition[week], n_from, n_to, active, X, &Y);
    PetscCall(PetscLogFlops(2.0 * n_from * n_to * active));
    X.swap(Y);
    week = next;

    while (!pending.empty() && (*results)[pending.back().first].lag == step) {
      const auto [member, j] = pending.back();
      std::fill(p.begin(), p.end(), 0.0);
      for (size_t c = 0; c < n_to; ++c)
        p[model.week_cells[week][c]] = X[j * n_to + c];
      PetscCall(PetscLogEventBegin(scoring_event, 0, 0, 0, 0));
      ScorePrediction(context, intervals[member], p, &(*results)[member]);
      PetscCall(PetscLogEventEnd(scoring_event, 0, 0, 0, 0));
      pending.pop_back();
    }
    while (active > 0 && columns[active - 1].max_lag == step)
      --active;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

// The fields that the owning rank computes and sends to the others.
constexpr double IntervalResult::*kPredictionFields[] = {
    &IntervalResult::log_likelihood,
    &IntervalResult::null_ll,
    &IntervalResult::ll_offset,
    &IntervalResult::null_ll_offset,
    &IntervalResult::pred,
    &IntervalResult::st,
    &IntervalResult::win_distance,
    &IntervalResult::win_distance_fraction,
    &IntervalResult::win_prob,
    &IntervalResult::energy_score_bf,
    &IntervalResult::energy_score_st,
    &IntervalResult::energy_improvement,
    &IntervalResult::pred_elapsed_dist_by_pred,
    &IntervalResult::pred_elapsed_dist_by_st,
};
constexpr size_t kRecordLength = 2 + std::size(kPredictionFields); // index, sparse, fields

// Sends the results of the intervals this rank owns to every rank.
PetscErrorCode ShareResults(MPI_Comm comm, const std::vector<size_t> &owned,
                            std::vector<IntervalResult> *results)
{
  PetscMPIInt size;
  std::vector<double> send, receive;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  for (size_t index : owned) {
    const IntervalResult &result = (*results)[index];
    send.push_back((double)index);
    send.push_back(result.flags.sparse ? 1.0 : 0.0);
    for (auto field : kPredictionFields)
      send.push_back(result.*field);
  }
  std::vector<int> counts(size), offsets(size, 0);
  int count = (int)send.size();
  PetscCallMPI(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm));
  for (int r = 1; r < size; ++r)
    offsets[r] = offsets[r - 1] + counts[r - 1];
  receive.resize((size_t)offsets[size - 1] + counts[size - 1]);
  PetscCallMPI(MPI_Allgatherv(send.data(), count, MPI_DOUBLE, receive.data(), counts.data(),
                              offsets.data(), MPI_DOUBLE, comm));
  for (size_t k = 0; k < receive.size(); k += kRecordLength) {
    IntervalResult &result = (*results)[(size_t)receive[k]];
    result.flags.sparse = receive[k + 1] != 0;
    for (size_t f = 0; f < std::size(kPredictionFields); ++f)
      result.*kPredictionFields[f] = receive[k + 2 + f];
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

PetscErrorCode EvaluateIntervals(MPI_Comm comm, const ForwardModel &model,
                                 const std::vector<double> &distance_km,
                                 const std::vector<Interval> &intervals,
                                 std::vector<IntervalResult> *results)
{
  PetscMPIInt rank, size;
  const size_t N = (size_t)model.n_active;

  PetscFunctionBeginUser;
  PetscCall(RegisterEvents());
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCheck(distance_km.size() == N * N, PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ,
             "the distance matrix has %zu entries, expected %zu x %zu", distance_km.size(), N, N);

  PetscCall(CheckIntervalsInModel(intervals, "interval table", model));

  // 1. Flags on every rank; the intervals to propagate, grouped by start week and cell.
  results->resize(intervals.size());
  std::map<PetscInt, std::map<PetscInt, StartColumn>> starts;
  for (size_t k = 0; k < intervals.size(); ++k) {
    IntervalResult &result = (*results)[k] = ClassifyInterval(model, intervals[k]);
    const IntervalFlags &flags = result.flags;
    if (flags.bad_date || flags.not_active || flags.dynamic_mask || flags.same_timestep) continue;
    StartColumn &column = starts[intervals[k].t1 - 1][intervals[k].i1 - 1];
    column.cell = intervals[k].i1 - 1;
    column.max_lag = std::max(column.max_lag, result.lag);
    column.members.push_back(k);
  }

  // 2. S&T columns of every week, and s'Gs of the weeks in which a propagated interval ends.
  EndWeekContext context;
  context.distance_km = &distance_km;
  context.st.assign(model.n_weeks, std::vector<double>(N));
  context.st_quadratic.assign(model.n_weeks, kNotAvailable);
  for (PetscInt t = 0; t < model.n_weeks; ++t)
    for (size_t i = 0; i < N; ++i)
      context.st[t][i] = model.Distr((PetscInt)i, t);
  for (const auto &[week, by_cell] : starts)
    for (const auto &[cell, column] : by_cell)
      for (size_t member : column.members) {
        const PetscInt end = intervals[member].t2 - 1;
        if (std::isnan(context.st_quadratic[end]))
          context.st_quadratic[end] = QuadraticForm(distance_km, context.st[end]);
      }

  // 3. Deal the start columns round-robin over the ranks; each rank propagates its columns of
  //    one start week as one block.
  PetscCall(PetscLogEventBegin(propagation_event, 0, 0, 0, 0));
  std::vector<size_t> owned;
  size_t dealt = 0;
  for (const auto &[week, by_cell] : starts) {
    std::vector<StartColumn> mine;
    for (const auto &[cell, column] : by_cell)
      if (dealt++ % (size_t)size == (size_t)rank) mine.push_back(column);
    if (mine.empty()) continue;
    std::stable_sort(mine.begin(), mine.end(), [](const StartColumn &a, const StartColumn &b) {
      return a.max_lag > b.max_lag;
    });
    PetscCall(EvaluateStartWeek(model, context, intervals, week, mine, results));
    for (const StartColumn &column : mine)
      owned.insert(owned.end(), column.members.begin(), column.members.end());
  }
  PetscCall(PetscLogEventEnd(propagation_event, 0, 0, 0, 0));

  // 4. Every rank gets every result.
  PetscCall(ShareResults(comm, owned, results));
  PetscFunctionReturn(PETSC_SUCCESS);
}

IntervalSummary SummarizeIntervals(const std::vector<IntervalResult> &results)
{
  IntervalSummary summary;
  summary.n_intervals = (PetscInt)results.size();
  std::vector<const IntervalResult *> scored;
  double weight_sum = 0;
  for (const IntervalResult &result : results)
    if (!result.flags.Excluded()) {
      scored.push_back(&result);
      weight_sum += result.global_prob_of_the_starting;
    }
  summary.n_scored = (PetscInt)scored.size();
  if (scored.empty()) return summary;

  auto mean = [&](double IntervalResult::*field) {
    double sum = 0;
    for (const IntervalResult *result : scored)
      sum += result->*field;
    return sum / (double)scored.size();
  };
  auto weighted_mean = [&](double IntervalResult::*field) {
    double sum = 0;
    for (const IntervalResult *result : scored)
      sum += result->global_prob_of_the_starting / weight_sum * (result->*field);
    return sum;
  };
  summary.mean_ll = mean(&IntervalResult::log_likelihood);
  summary.mean_null_ll = mean(&IntervalResult::null_ll);
  summary.mean_ll_offset = mean(&IntervalResult::ll_offset);
  summary.mean_null_ll_offset = mean(&IntervalResult::null_ll_offset);
  summary.mean_pred = mean(&IntervalResult::pred);
  summary.mean_st = mean(&IntervalResult::st);
  summary.mean_win_distance = mean(&IntervalResult::win_distance);
  summary.mean_win_distance_fraction = mean(&IntervalResult::win_distance_fraction);
  summary.mean_win_prob = mean(&IntervalResult::win_prob);
  summary.mean_energy_score_bf = mean(&IntervalResult::energy_score_bf);
  summary.mean_energy_score_st = mean(&IntervalResult::energy_score_st);
  summary.mean_energy_improvement = mean(&IntervalResult::energy_improvement);
  summary.weighted_mean_ll = weighted_mean(&IntervalResult::log_likelihood);
  summary.weighted_mean_null_ll = weighted_mean(&IntervalResult::null_ll);
  summary.weighted_mean_win_distance = weighted_mean(&IntervalResult::win_distance);
  summary.weighted_mean_win_distance_fraction =
      weighted_mean(&IntervalResult::win_distance_fraction);
  summary.weighted_mean_win_prob = weighted_mean(&IntervalResult::win_prob);
  summary.weighted_energy_improvement = weighted_mean(&IntervalResult::energy_improvement);
  return summary;
}
} // namespace birdflow
