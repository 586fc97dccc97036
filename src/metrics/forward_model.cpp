// Forward transitions and marginal-derived distributions of a fitted model.
#include "birdflow/metrics.hpp"

#include "birdflow/petsc_compat.hpp"

#include <cmath>

namespace birdflow
{
namespace
{
// True when the last column of distr and of the dynamic mask repeats the first: BirdFlowR's
// full-year layout, whose last marginal leads from week 52 back to week 1.
bool HasCyclicCopy(const SpeciesData &species)
{
  const PetscInt T = species.n_timesteps;
  if (T < 3) return false;
  for (PetscInt i = 0; i < species.n_active; ++i) {
    if (species.distr[i * T] != species.distr[i * T + T - 1]) return false;
    if (species.dynamic_mask[i * T] != species.dynamic_mask[i * T + T - 1]) return false;
  }
  return true;
}

// Divides each row of the n_rows x n_cols marginal by its sum; rows summing to zero stay zero.
std::vector<double> NormaliseRows(const std::vector<double> &marginal, size_t n_rows, size_t n_cols)
{
  std::vector<double> rows(marginal.size(), 0.0);
  for (size_t r = 0; r < n_rows; ++r) {
    double sum = 0;
    for (size_t c = 0; c < n_cols; ++c)
      sum += marginal[r * n_cols + c];
    if (sum == 0) continue;
    for (size_t c = 0; c < n_cols; ++c)
      rows[r * n_cols + c] = marginal[r * n_cols + c] / sum;
  }
  return rows;
}
} // namespace

PetscErrorCode BuildForwardModel(const SpeciesData &species,
                                 const std::vector<std::vector<double>> &marginals,
                                 ForwardModel *model)
{
  const PetscInt N = species.n_active, T = species.n_timesteps;

  PetscFunctionBeginUser;
  PetscCheck(T >= 2, PETSC_COMM_SELF, PETSC_ERR_USER_INPUT,
             "%s: distr has %" PetscInt_FMT " timesteps; a model needs at least 2",
             species.path.c_str(), T);
  PetscCheck((PetscInt)marginals.size() == T - 1, PETSC_COMM_SELF, PETSC_ERR_USER_INPUT,
             "%s: found %zu marginals, expected %" PetscInt_FMT " (one per pair of timesteps)",
             species.path.c_str(), marginals.size(), T - 1);

  // 1. Time axis: a full-year file is a cyclic chain of T - 1 weeks.
  *model = ForwardModel{};
  model->n_active = N;
  model->cyclic = HasCyclicCopy(species);
  model->n_weeks = model->cyclic ? T - 1 : T;
  model->n_transitions = T - 1;
  const PetscInt W = model->n_weeks;
  model->distr.resize((size_t)N * W);
  for (PetscInt i = 0; i < N; ++i)
    for (PetscInt t = 0; t < W; ++t)
      model->distr[i * W + t] = species.Distr(i, t);
  model->week_cells.assign(species.week_cells.begin(), species.week_cells.begin() + W);

  // 2. Forward transitions, after checking each marginal's shape and entries.
  model->transition.resize(T - 1);
  for (PetscInt k = 0; k < T - 1; ++k) {
    const size_t n_rows = species.week_cells[k].size(), n_cols = species.week_cells[k + 1].size();
    const std::vector<double> &m = marginals[k];
    PetscCheck(m.size() == n_rows * n_cols, PETSC_COMM_SELF, PETSC_ERR_USER_INPUT,
               "%s: marginals/Week%" PetscInt_FMT "_to_%" PetscInt_FMT
               " has %zu entries, expected %zu x %zu from the dynamic mask",
               species.path.c_str(), k + 1, k + 2, m.size(), n_rows, n_cols);
    for (size_t e = 0; e < m.size(); ++e)
      PetscCheck(std::isfinite(m[e]) && m[e] >= 0, PETSC_COMM_SELF, PETSC_ERR_USER_INPUT,
                 "%s: marginals/Week%" PetscInt_FMT "_to_%" PetscInt_FMT
                 " entry (%zu, %zu) is %g; a pairwise marginal must be finite and non-negative",
                 species.path.c_str(), k + 1, k + 2, e / n_cols, e % n_cols, m[e]);
    model->transition[k] = NormaliseRows(m, n_rows, n_cols);
  }

  // 3. Marginal-derived distributions: row sums of M_1 for week 1, else column sums of M_{t-1}.
  model->marginal_distr.assign(W, std::vector<double>(N, 0.0));
  for (PetscInt t = 0; t < W; ++t) {
    std::vector<double> &d = model->marginal_distr[t];
    if (t == 0) {
      const size_t n_cols = species.week_cells[1].size();
      for (size_t r = 0; r < species.week_cells[0].size(); ++r)
        for (size_t c = 0; c < n_cols; ++c)
          d[species.week_cells[0][r]] += marginals[0][r * n_cols + c];
    } else {
      const size_t n_cols = species.week_cells[t].size();
      for (size_t r = 0; r < species.week_cells[t - 1].size(); ++r)
        for (size_t c = 0; c < n_cols; ++c)
          d[species.week_cells[t][c]] += marginals[t - 1][r * n_cols + c];
    }
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
