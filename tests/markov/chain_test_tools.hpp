// Tools for the Markov-chain tests: gathering the distributed blocks, a dense serial reference
// loss, and a finite-difference check of the gradient along a direction.
#pragma once

#include "birdflow/markov.hpp"
#include "birdflow/training.hpp"

#include <cmath>
#include <vector>

namespace birdflow::testing
{
/* Returns every parameter block in full (block 0: z0, block k + 1: Z_k row-major) on every rank.
   Collective. */
inline std::vector<std::vector<double>> GatherBlocks(const MarkovChain &chain, Vec theta)
{
  const ChainLayout &layout = chain.layout;
  int size;
  MPI_Comm_size(chain.comm, &size);
  const PetscScalar *values;
  VecGetArrayRead(theta, &values);
  std::vector<std::vector<double>> blocks(layout.n_timesteps);
  for (PetscInt b = 0; b < layout.n_timesteps; ++b) {
    PetscInt week = b == 0 ? 0 : b - 1, columns = layout.Columns(b);
    int own = (int)(layout.row_count[week] * columns);
    std::vector<int> counts(size), displs(size, 0);
    MPI_Allgather(&own, 1, MPI_INT, counts.data(), 1, MPI_INT, chain.comm);
    for (int r = 1; r < size; ++r)
      displs[r] = displs[r - 1] + counts[r - 1];
    blocks[b].resize(layout.n_cells[week] * columns);
    MPI_Allgatherv(values + layout.block_offset[b], own, MPI_DOUBLE, blocks[b].data(),
                   counts.data(), displs.data(), MPI_DOUBLE, chain.comm);
  }
  VecRestoreArrayRead(theta, &values);
  return blocks;
}

inline double XLogX(double x)
{
  return x > 0 ? x * std::log(x) : 0.0;
}

/* Computes the loss parts with plain dense loops over the full blocks, independently of the
   library's sweeps. */
inline LossParts DenseReferenceLoss(const SpeciesData &species,
                                    const std::vector<double> &distances_km,
                                    const std::vector<std::vector<double>> &blocks,
                                    double obs_weight, const ChainPenalty &penalty)
{
  const PetscInt T = species.n_timesteps;
  LossParts parts;
  std::vector<double> mu(blocks[0]);
  double max = mu[0], sum = 0;
  for (double z : mu)
    max = std::max(max, z);
  for (double &z : mu)
    sum += (z = std::exp(z - max));
  for (double &z : mu)
    z /= sum;
  for (PetscInt t = 0; t < T; ++t) {
    const auto &cells = species.week_cells[t];
    for (size_t i = 0; i < cells.size(); ++i) {
      double r = mu[i] - species.Distr(cells[i], t);
      parts.obs += r * r;
      parts.ent += XLogX(mu[i]); // - H(mu_t)
    }
    if (t + 1 == T) break;
    const auto &next = species.week_cells[t + 1];
    const std::vector<double> &Z = blocks[t + 1];
    std::vector<double> mu_next(next.size(), 0.0);
    for (size_t i = 0; i < cells.size(); ++i) {
      double row_sum = 0;
      for (size_t j = 0; j < next.size(); ++j)
        row_sum += std::exp(Z[i * next.size() + j]);
      for (size_t j = 0; j < next.size(); ++j) {
        double m = mu[i] * std::exp(Z[i * next.size() + j]) / row_sum;
        double d = PackedDistance(distances_km, species.n_active, cells[i], next[j]);
        parts.dist += m * std::pow(d / 100.0, penalty.dist_pow);
        parts.ent -= XLogX(m); // + H(M_k)
        mu_next[j] += m;
      }
    }
    mu = mu_next;
  }
  parts.total =
      obs_weight * parts.obs + penalty.dist_weight * parts.dist - penalty.ent_weight * parts.ent;
  return parts;
}

/* Returns (L(theta + h d) - L(theta - h d)) / (2 h) and, in `analytic`, grad . d. Collective. */
inline double CentralDifference(Objective &objective, Vec theta, Vec direction, double h,
                                double *analytic)
{
  Vec grad, shifted;
  LossParts plus, minus, at;
  VecDuplicate(theta, &grad);
  VecDuplicate(theta, &shifted);
  EvaluateObjective(objective, theta, &at, grad);
  VecDot(grad, direction, analytic);
  VecWAXPY(shifted, h, direction, theta);
  EvaluateObjective(objective, shifted, &plus, nullptr);
  VecWAXPY(shifted, -h, direction, theta);
  EvaluateObjective(objective, shifted, &minus, nullptr);
  VecDestroy(&grad);
  VecDestroy(&shifted);
  return (plus.total - minus.total) / (2.0 * h);
}

/* Zeroes every block of `vector` except those with mask[b] true. Not collective. */
inline void KeepBlocks(const MarkovChain &chain, const std::vector<bool> &mask, Vec vector)
{
  PetscScalar *values;
  VecGetArray(vector, &values);
  for (PetscInt b = 0; b < chain.layout.n_timesteps; ++b)
    if (!mask[b])
      for (PetscInt e = chain.layout.block_offset[b]; e < chain.layout.block_offset[b + 1]; ++e)
        values[e] = 0.0;
  VecRestoreArray(vector, &values);
}
} // namespace birdflow::testing
