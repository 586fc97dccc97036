// BirdFlowR distribution_performance(): correlations of model and S&T distributions.
#include "birdflow/metrics.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>

namespace birdflow
{
namespace
{
// Pearson correlation of a and b over `cells`, with the means subtracted first.
double Correlation(const std::vector<double> &a, const std::vector<double> &b,
                   const std::vector<PetscInt> &cells)
{
  const double n = (double)cells.size();
  double mean_a = 0, mean_b = 0;
  for (PetscInt i : cells) {
    mean_a += a[i];
    mean_b += b[i];
  }
  mean_a /= n;
  mean_b /= n;
  double ab = 0, aa = 0, bb = 0;
  for (PetscInt i : cells) {
    ab += (a[i] - mean_a) * (b[i] - mean_b);
    aa += (a[i] - mean_a) * (a[i] - mean_a);
    bb += (b[i] - mean_b) * (b[i] - mean_b);
  }
  return ab / std::sqrt(aa * bb);
}

// Returns T_week' d for a distribution d over all active cells.
std::vector<double> ProjectOneWeek(const ForwardModel &model, PetscInt week,
                                   const std::vector<double> &d)
{
  const PetscInt next = model.NextWeek(week);
  const std::vector<PetscInt> &from = model.week_cells[week], &to = model.week_cells[next];
  const std::vector<double> &transition = model.transition[week];
  std::vector<double> projected(d.size(), 0.0);
  for (size_t r = 0; r < from.size(); ++r) {
    const double x = d[from[r]];
    if (x == 0) continue;
    for (size_t c = 0; c < to.size(); ++c)
      projected[to[c]] += x * transition[r * to.size() + c];
  }
  return projected;
}

std::vector<double> StDistribution(const ForwardModel &model, PetscInt week)
{
  std::vector<double> d(model.n_active);
  for (PetscInt i = 0; i < model.n_active; ++i)
    d[i] = model.Distr(i, week);
  return d;
}
} // namespace

PetscErrorCode ComputeDistributionPerformance(const ForwardModel &model,
                                              DistributionPerformance *performance)
{
  PetscFunctionBeginUser;
  PetscCheck(model.n_transitions >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONG,
             "distribution metrics need at least one transition");
  *performance = DistributionPerformance{};

  // 1. Per transition of the whole-year sequence: distr and single-step correlations.
  std::vector<double> distr_cor, step_cor;
  for (PetscInt week = 0; week < model.n_transitions; ++week) {
    const PetscInt next = model.NextWeek(week);
    const std::vector<double> st = StDistribution(model, week);
    const std::vector<double> &md = model.marginal_distr[week];
    distr_cor.push_back(Correlation(st, md, model.week_cells[week]));
    performance->n_states +=
        (PetscInt)std::count_if(md.begin(), md.end(), [](double v) { return v != 0; });
    step_cor.push_back(Correlation(StDistribution(model, next), ProjectOneWeek(model, week, st),
                                   model.week_cells[next]));
  }
  auto mean = [](const std::vector<double> &v) {
    double sum = 0;
    for (double x : v)
      sum += x;
    return sum / (double)v.size();
  };
  performance->mean_distr_cor = mean(distr_cor);
  performance->min_distr_cor = *std::min_element(distr_cor.begin(), distr_cor.end());
  performance->mean_step_cor = mean(step_cor);
  performance->min_step_cor = *std::min_element(step_cor.begin(), step_cor.end());

  // 2. Traverse: project the S&T and the marginal-derived week-1 distributions through every
  //    transition (back to week 1 in a cyclic model) and correlate with S&T there.
  std::vector<double> st_path = StDistribution(model, 0), md_path = model.marginal_distr[0];
  for (PetscInt week = 0; week < model.n_transitions; ++week) {
    st_path = ProjectOneWeek(model, week, st_path);
    md_path = ProjectOneWeek(model, week, md_path);
  }
  const PetscInt end = model.cyclic ? 0 : model.n_weeks - 1;
  const std::vector<double> st_end = StDistribution(model, end);
  performance->st_traverse_cor = Correlation(st_end, st_path, model.week_cells[end]);
  performance->md_traverse_cor = Correlation(st_end, md_path, model.week_cells[end]);
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
