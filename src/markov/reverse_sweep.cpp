// Reverse-mode gradient of the chain loss. With G = dL/dM_k + 1 g_{k+1}^T (g_{k+1} = dL/dmu_{k+1}),
// c_i = sum_j P_ij G_ij, the gradient is dL/dZ_k = M_k (G - c 1^T) and dL/dmu_k gets c; finally
// dL/dz0 = pi (g_1 - <pi, g_1>).
#include "birdflow/markov.hpp"

#include "birdflow/petsc_compat.hpp"
#include "chain_internal.hpp"

#include <cfloat>
#include <cmath>

namespace birdflow
{
namespace
{
using detail::SafeLog;

// Adds the derivative of the +ent_weight * sum_t H(mu_t) part of the loss to `dloss_dmu`.
void AddMarginalEntropyDerivative(const MarkovChain &chain,
                                  std::vector<std::vector<double>> *grad_mu)
{
  double w = chain.penalty.ent_weight;
  for (size_t t = 0; t < grad_mu->size(); ++t)
    for (size_t i = 0; i < chain.mu[t].size(); ++i)
      (*grad_mu)[t][i] -= w * (SafeLog(chain.mu[t][i]) + 1.0);
}

// Reverse step of transition k on the owned rows: writes dL/dZ_k into `grad_block` and the owned
// entries of c into `row_expectation`. When `p_stored` is true, `grad_block` holds P_k on entry.
void BackwardTransition(MarkovChain *chain, PetscInt k, const PetscScalar *z_block, bool p_stored,
                        PetscScalar *grad_block, double *row_expectation)
{
  const ChainLayout &layout = chain->layout;
  const PetscInt n_to = layout.n_cells[k + 1], start = layout.row_start[k];
  const PetscInt *to_cells = chain->week_cells[k + 1].data();
  const double w_dist = chain->penalty.dist_weight, w_ent = chain->penalty.ent_weight;
  const double *g_next = chain->grad_mu[k + 1].data();
  double *g = chain->row_work2.data();

  for (PetscInt l = 0; l < layout.row_count[k]; ++l) {
    const PetscScalar *z = z_block + (size_t)l * n_to;
    PetscScalar *grad = grad_block + (size_t)l * n_to;
    const double *cost_row =
        chain->cost.data() + (size_t)chain->week_cells[k][start + l] * chain->n_active;
    const double lse = chain->row_lse[k][l], mu_i = chain->mu[k][start + l];
    const double log_mu = SafeLog(mu_i);
    double *p = p_stored ? grad : chain->row_work.data();
    if (!p_stored)
      for (PetscInt j = 0; j < n_to; ++j)
        p[j] = std::exp(z[j] - lse);

    // G_ij = w_d D_ij + w_e (log M_ij + 1) + g_next_j, with log M_ij = log mu_i + Z_ij - lse_i.
    double c = 0;
    for (PetscInt j = 0; j < n_to; ++j) {
      g[j] = w_dist * cost_row[to_cells[j]] + w_ent * (log_mu + z[j] - lse + 1.0) + g_next[j];
      c += p[j] * g[j];
    }

    // p may alias grad; each entry is read before it is overwritten.
    for (PetscInt j = 0; j < n_to; ++j)
      grad[j] = mu_i * p[j] * (g[j] - c);
    row_expectation[l] = c;
  }
}
} // namespace

PetscErrorCode MarkovChainBackward(MarkovChain *chain, Vec theta,
                                   const std::vector<std::vector<double>> &dloss_dmu, Vec grad)
{
  const ChainLayout &layout = chain->layout;
  const PetscInt T = layout.n_timesteps;
  const PetscScalar *values;
  PetscScalar *gradient;
  double flops = 0;

  PetscFunctionBeginUser;
  PetscCheck((PetscInt)dloss_dmu.size() == T, chain->comm, PETSC_ERR_ARG_SIZ,
             "dloss_dmu has %zu weeks, expected %" PetscInt_FMT, dloss_dmu.size(), T);
  PetscCall(PetscLogEventBegin(detail::chain_backward_event, 0, 0, 0, 0));
  std::vector<std::vector<double>> direct = dloss_dmu;
  AddMarginalEntropyDerivative(*chain, &direct);
  chain->grad_mu[T - 1] = direct[T - 1];

  const bool p_stored = chain->stored_transitions == grad;
  chain->stored_transitions = nullptr; // overwritten below
  PetscCall(VecGetArrayRead(theta, &values));
  PetscCall(VecGetArray(grad, &gradient));
  std::vector<double> owned;
  for (PetscInt k = T - 2; k >= 0; --k) {
    PetscInt start = layout.row_start[k];
    owned.resize(layout.row_count[k]);
    BackwardTransition(chain, k, values + layout.block_offset[k + 1], p_stored,
                       gradient + layout.block_offset[k + 1], owned.data());
    for (PetscInt l = 0; l < layout.row_count[k]; ++l)
      owned[l] += direct[k][start + l];
    PetscCall(detail::AllgatherWeek(*chain, k, owned.data(), &chain->grad_mu[k]));
    flops += 16.0 * layout.row_count[k] * layout.n_cells[k + 1];
  }

  // dL/dz0 = pi (g_1 - <pi, g_1>) on the owned entries of z0.
  const std::vector<double> &pi = chain->mu[0], &g1 = chain->grad_mu[0];
  double mean = 0;
  for (size_t i = 0; i < pi.size(); ++i)
    mean += pi[i] * g1[i];
  for (PetscInt l = 0; l < layout.row_count[0]; ++l) {
    PetscInt i = layout.row_start[0] + l;
    gradient[l] = pi[i] * (g1[i] - mean);
  }
  PetscCall(VecRestoreArray(grad, &gradient));
  PetscCall(VecRestoreArrayRead(theta, &values));
  PetscCall(PetscLogFlops(flops));
  PetscCall(PetscLogEventEnd(detail::chain_backward_event, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode MarkovChainMarginalRows(const MarkovChain &chain, Vec theta, Vec storage,
                                       std::vector<MarginalRows> *rows)
{
  const ChainLayout &layout = chain.layout;
  const PetscScalar *values;
  PetscScalar *marginals;

  PetscFunctionBeginUser;
  PetscCall(VecGetArrayRead(theta, &values));
  PetscCall(VecGetArray(storage, &marginals));
  rows->assign(layout.Transitions(), MarginalRows{});
  for (PetscInt k = 0; k < layout.Transitions(); ++k) {
    PetscInt n_to = layout.n_cells[k + 1], offset = layout.block_offset[k + 1];
    for (PetscInt l = 0; l < layout.row_count[k]; ++l) {
      double mu_i = chain.mu[k][layout.row_start[k] + l], lse = chain.row_lse[k][l];
      for (PetscInt j = 0; j < n_to; ++j) {
        size_t e = (size_t)offset + (size_t)l * n_to + j;
        marginals[e] = mu_i * std::exp(values[e] - lse);
      }
    }
    (*rows)[k] = MarginalRows{layout.row_start[k], layout.row_count[k], n_to, marginals + offset};
  }
  PetscCall(VecRestoreArray(storage, &marginals));
  PetscCall(VecRestoreArrayRead(theta, &values));
  PetscFunctionReturn(PETSC_SUCCESS);
}

double MarkovChainBytes(const MarkovChain &chain)
{
  double bytes = 8.0 * chain.cost.size() + 8.0 * (chain.row_work.size() + chain.row_work2.size());
  for (const auto &v : chain.mu)
    bytes += 8.0 * v.size();
  for (const auto &v : chain.grad_mu)
    bytes += 8.0 * v.size();
  for (const auto &v : chain.row_lse)
    bytes += 8.0 * v.size();
  for (const auto &v : chain.week_cells)
    bytes += sizeof(PetscInt) * v.size();
  return bytes;
}
} // namespace birdflow
