#include "birdflow/markov.hpp"

#include "birdflow/petsc_compat.hpp"

namespace birdflow
{
L2LocationLoss::L2LocationLoss(const SpeciesData &species)
{
  targets_.resize(species.n_timesteps);
  for (PetscInt t = 0; t < species.n_timesteps; ++t)
    for (PetscInt cell : species.week_cells[t])
      targets_[t].push_back(species.Distr(cell, t));
}

PetscErrorCode L2LocationLoss::Evaluate(const std::vector<std::vector<double>> &mu, double *loss,
                                        std::vector<std::vector<double>> *dloss_dmu)
{
  PetscFunctionBeginUser;
  PetscCheck(mu.size() == targets_.size(), PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ,
             "the chain has %zu weeks but the targets have %zu", mu.size(), targets_.size());
  *loss = 0;
  if (dloss_dmu) dloss_dmu->resize(mu.size());
  for (size_t t = 0; t < mu.size(); ++t) {
    const std::vector<double> &y = targets_[t];
    PetscCheck(mu[t].size() == y.size(), PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ,
               "week %zu has %zu states but %zu targets", t + 1, mu[t].size(), y.size());
    if (dloss_dmu) (*dloss_dmu)[t].resize(y.size());
    for (size_t i = 0; i < y.size(); ++i) {
      double residual = mu[t][i] - y[i];
      *loss += residual * residual;
      if (dloss_dmu) (*dloss_dmu)[t][i] = 2.0 * residual;
    }
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
