// Whole-model evaluation and its output: the per-interval CSV and the printed summary.
#include "birdflow/metrics.hpp"

#include "birdflow/output_file.hpp"
#include "birdflow/petsc_compat.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace birdflow
{
namespace
{
std::string FormatNumber(double value)
{
  if (std::isnan(value)) return "NA";
  if (std::isinf(value)) return value > 0 ? "Inf" : "-Inf";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

std::string FormatFlag(bool flag)
{
  return flag ? "TRUE" : "FALSE";
}

// Quotes a field that contains a comma, a quote or a line break (RFC 4180).
std::string QuoteField(const std::string &field)
{
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string quoted = "\"";
  for (char c : field)
    quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// Writes `text` to PartialPath(path) on rank 0 and renames it to `path`. Collective.
PetscErrorCode WriteTextOutput(MPI_Comm comm, const std::string &path, const std::string &text)
{
  PetscMPIInt rank;
  int written = 1;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    std::ofstream out(PartialPath(path), std::ios::binary);
    out << text;
    out.close();
    written = out ? 1 : 0;
    if (!written) DiscardOutputFile(comm, path);
  }
  PetscCallMPI(MPI_Bcast(&written, 1, MPI_INT, 0, comm));
  PetscCheck(written, comm, PETSC_ERR_FILE_WRITE,
             "failed to write %s; check the free space and permissions of its folder",
             PartialPath(path).c_str());
  PetscCall(CommitOutputFile(comm, path));
  PetscFunctionReturn(PETSC_SUCCESS);
}

std::string FormatIndex(PetscInt index)
{
  return index == kMissingIndex ? "NA" : std::to_string(index);
}
} // namespace

PetscErrorCode EvaluateModel(MPI_Comm comm, const SpeciesData &species,
                             const std::vector<std::vector<double>> &marginals,
                             const std::vector<Interval> &intervals, const std::string &source,
                             Evaluation *evaluation)
{
  ForwardModel model;
  std::vector<double> distance_km;

  PetscFunctionBeginUser;
  PetscCall(BuildForwardModel(species, marginals, &model));
  PetscCall(CheckIntervalsInModel(intervals, source, model));
  PetscCall(ComputeCellDistances(species.grid, &distance_km));
  PetscCall(EvaluateIntervals(comm, model, distance_km, intervals, &evaluation->intervals));
  evaluation->summary = SummarizeIntervals(evaluation->intervals);
  PetscCall(ComputeDistributionPerformance(model, &evaluation->distribution));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode GatherMarginals(MPI_Comm comm, const SpeciesData &species,
                               const std::vector<MarginalRows> &rows,
                               std::vector<std::vector<double>> *marginals)
{
  PetscMPIInt size;
  const PetscInt n_transitions = species.n_timesteps - 1;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCheck((PetscInt)rows.size() == n_transitions, PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ,
             "got row blocks of %zu marginals, expected %" PetscInt_FMT, rows.size(),
             n_transitions);
  marginals->assign(n_transitions, {});
  for (PetscInt t = 0; t < n_transitions; ++t) {
    const MarginalRows &block = rows[t];
    const PetscInt n_rows = species.CellsInWeek(t), n_cols = species.CellsInWeek(t + 1);
    PetscCheck(block.n_cols == n_cols, PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ,
               "marginal %" PetscInt_FMT " has %" PetscInt_FMT " columns, expected %" PetscInt_FMT,
               t + 1, block.n_cols, n_cols);

    // Each rank's block must start where the previous rank's ends.
    std::vector<int> counts(size), offsets(size);
    int count = (int)(block.row_count * n_cols), offset = (int)(block.row_start * n_cols);
    PetscCallMPI(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm));
    PetscCallMPI(MPI_Allgather(&offset, 1, MPI_INT, offsets.data(), 1, MPI_INT, comm));
    long long expected_offset = 0;
    for (int r = 0; r < size; ++r) {
      PetscCheck(offsets[r] == expected_offset, comm, PETSC_ERR_ARG_SIZ,
                 "rows of marginal %" PetscInt_FMT " on rank %d start at entry %d, expected %lld",
                 t + 1, r, offsets[r], expected_offset);
      expected_offset += counts[r];
    }
    PetscCheck(expected_offset == (long long)n_rows * n_cols, comm, PETSC_ERR_ARG_SIZ,
               "rows of marginal %" PetscInt_FMT " cover %lld entries, expected %lld", t + 1,
               expected_offset, (long long)n_rows * n_cols);
    (*marginals)[t].resize((size_t)n_rows * n_cols);
    PetscCallMPI(MPI_Allgatherv(block.values, count, MPI_DOUBLE, (*marginals)[t].data(),
                                counts.data(), offsets.data(), MPI_DOUBLE, comm));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

std::string FormatIntervalResultsCsv(const std::vector<Interval> &intervals,
                                     const std::vector<IntervalResult> &results)
{
  std::ostringstream out;
  out << "interval_id,t1,t2,i1,i2,lag,log_likelihood,null_ll,ll_offset,null_ll_offset,pred,st,"
         "win_distance,win_distance_fraction,win_prob,energy_score_bf,energy_score_st,"
         "energy_improvement,global_prob_of_the_starting,elapsed_days,elapsed_km,"
         "pred_elapsed_dist_by_pred,pred_elapsed_dist_by_st,exclude,not_active,dynamic_mask,"
         "sparse,same_timestep,bad_date\n";
  for (size_t k = 0; k < intervals.size(); ++k) {
    const Interval &interval = intervals[k];
    const IntervalResult &r = results[k];
    out << QuoteField(interval.id) << ',' << FormatIndex(interval.t1) << ','
        << FormatIndex(interval.t2) << ',' << FormatIndex(interval.i1) << ','
        << FormatIndex(interval.i2) << ',' << FormatIndex(r.lag);
    for (double value :
         {r.log_likelihood, r.null_ll, r.ll_offset, r.null_ll_offset, r.pred, r.st, r.win_distance,
          r.win_distance_fraction, r.win_prob, r.energy_score_bf, r.energy_score_st,
          r.energy_improvement, r.global_prob_of_the_starting, r.elapsed_days, r.elapsed_km,
          r.pred_elapsed_dist_by_pred, r.pred_elapsed_dist_by_st})
      out << ',' << FormatNumber(value);
    for (bool flag : {r.flags.Excluded(), r.flags.not_active, r.flags.dynamic_mask, r.flags.sparse,
                      r.flags.same_timestep, r.flags.bad_date})
      out << ',' << FormatFlag(flag);
    out << '\n';
  }
  return out.str();
}

PetscErrorCode WriteIntervalResults(MPI_Comm comm, const std::string &path,
                                    const std::vector<Interval> &intervals,
                                    const std::vector<IntervalResult> &results)
{
  PetscFunctionBeginUser;
  PetscCall(WriteTextOutput(comm, path, FormatIntervalResultsCsv(intervals, results)));
  PetscFunctionReturn(PETSC_SUCCESS);
}

std::vector<std::pair<std::string, double>> SummaryValues(const Evaluation &evaluation)
{
  const IntervalSummary &s = evaluation.summary;
  const DistributionPerformance &d = evaluation.distribution;
  return {
      {"n_intervals", (double)s.n_intervals},
      {"n_scored", (double)s.n_scored},
      {"mean_ll", s.mean_ll},
      {"mean_null_ll", s.mean_null_ll},
      {"mean_ll_improvement", s.mean_ll - s.mean_null_ll},
      {"mean_ll_offset", s.mean_ll_offset},
      {"mean_null_ll_offset", s.mean_null_ll_offset},
      {"weighted_mean_ll", s.weighted_mean_ll},
      {"weighted_mean_null_ll", s.weighted_mean_null_ll},
      {"mean_pred", s.mean_pred},
      {"mean_st", s.mean_st},
      {"mean_win_distance", s.mean_win_distance},
      {"mean_win_distance_fraction", s.mean_win_distance_fraction},
      {"mean_win_prob", s.mean_win_prob},
      {"weighted_mean_win_distance", s.weighted_mean_win_distance},
      {"weighted_mean_win_distance_fraction", s.weighted_mean_win_distance_fraction},
      {"weighted_mean_win_prob", s.weighted_mean_win_prob},
      {"mean_energy_score_bf", s.mean_energy_score_bf},
      {"mean_energy_score_st", s.mean_energy_score_st},
      {"mean_energy_improvement", s.mean_energy_improvement},
      {"weighted_energy_improvement", s.weighted_energy_improvement},
      {"min_step_cor", d.min_step_cor},
      {"mean_step_cor", d.mean_step_cor},
      {"min_distr_cor", d.min_distr_cor},
      {"mean_distr_cor", d.mean_distr_cor},
      {"st_traverse_cor", d.st_traverse_cor},
      {"md_traverse_cor", d.md_traverse_cor},
      {"n_states", (double)d.n_states},
  };
}

PetscErrorCode PrintEvaluationSummary(MPI_Comm comm, const Evaluation &evaluation)
{
  PetscFunctionBeginUser;
  for (const auto &[name, value] : SummaryValues(evaluation))
    PetscCall(PetscPrintf(comm, "%-36s %s\n", name.c_str(), FormatNumber(value).c_str()));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode WriteEvaluationSummary(MPI_Comm comm, const std::string &path,
                                      const Evaluation &evaluation)
{
  std::ostringstream text;

  PetscFunctionBeginUser;
  text << "metric,value\n";
  for (const auto &[name, value] : SummaryValues(evaluation))
    text << name << ',' << FormatNumber(value) << '\n';
  PetscCall(WriteTextOutput(comm, path, text.str()));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
