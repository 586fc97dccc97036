#include "birdflow/markov.hpp"

#include "birdflow/petsc_compat.hpp"
#include "chain_internal.hpp"
#include "double_double.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

namespace birdflow
{
namespace detail
{
PetscLogEvent chain_forward_event = 0, chain_backward_event = 0;

PetscErrorCode AllgatherWeek(const MarkovChain &chain, PetscInt t, const double *local,
                             std::vector<double> *full)
{
  PetscMPIInt size;
  PetscMPIInt own = (PetscMPIInt)chain.layout.row_count[t];

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(chain.comm, &size));
  std::vector<PetscMPIInt> counts(size), displs(size, 0);
  PetscCallMPI(MPI_Allgather(&own, 1, MPI_INT, counts.data(), 1, MPI_INT, chain.comm));
  for (PetscMPIInt r = 1; r < size; ++r)
    displs[r] = displs[r - 1] + counts[r - 1];
  PetscCallMPI(MPI_Allgatherv(local, own, MPI_DOUBLE, full->data(), counts.data(), displs.data(),
                              MPI_DOUBLE, chain.comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace detail

namespace
{
using detail::SafeLog;

PetscErrorCode RegisterEvents()
{
  static bool registered = false;
  PetscClassId class_id;

  PetscFunctionBeginUser;
  if (registered) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCall(PetscClassIdRegister("MarkovChain", &class_id));
  PetscCall(PetscLogEventRegister("ChainForward", class_id, &detail::chain_forward_event));
  PetscCall(PetscLogEventRegister("ChainBackward", class_id, &detail::chain_backward_event));
  registered = true;
  PetscFunctionReturn(PETSC_SUCCESS);
}

// SplitMix64 finaliser: a bijective 64-bit mixing function.
inline std::uint64_t Mix64(std::uint64_t x)
{
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Returns a N(0, 1) draw (Box-Muller) determined by (key, index) only.
double StandardNormal(std::uint64_t key, std::uint64_t index)
{
  const double two_pow_minus_53 = 1.0 / 9007199254740992.0;
  double u1 = (double)((Mix64(key + 2 * index) >> 11) + 1) * two_pow_minus_53; // (0, 1]
  double u2 = (double)(Mix64(key + 2 * index + 1) >> 11) * two_pow_minus_53;   // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// Returns H(p) = -sum p log p, with 0 log 0 = 0.
double Entropy(const std::vector<double> &p)
{
  double h = 0;
  for (double x : p)
    if (x > 0) h -= x * std::log(x);
  return h;
}

PetscErrorCode BuildLayout(MPI_Comm comm, const SpeciesData &species, ChainLayout *layout)
{
  PetscInt T = species.n_timesteps;

  PetscFunctionBeginUser;
  layout->n_timesteps = T;
  layout->n_cells.resize(T);
  layout->row_start.resize(T);
  layout->row_count.resize(T);
  for (PetscInt t = 0; t < T; ++t) {
    PetscInt local = PETSC_DECIDE, global = species.CellsInWeek(t);
    PetscCall(PetscSplitOwnership(comm, &local, &global));
    PetscCallMPI(MPI_Scan(&local, &layout->row_start[t], 1, MPIU_INT, MPI_SUM, comm));
    layout->row_start[t] -= local;
    layout->row_count[t] = local;
    layout->n_cells[t] = global;
  }
  // Block 0 is z0 (owned entries of week 0), block k + 1 is Z_k (owned rows of week k).
  layout->block_offset.assign(T + 1, 0);
  layout->block_offset[1] = layout->row_count[0];
  layout->n_global = layout->n_cells[0];
  for (PetscInt k = 0; k + 1 < T; ++k) {
    layout->block_offset[k + 2] =
        layout->block_offset[k + 1] + layout->row_count[k] * layout->n_cells[k + 1];
    layout->n_global += layout->n_cells[k] * layout->n_cells[k + 1];
  }
  layout->n_local = layout->block_offset[T];
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Fills chain->cost with (d_km / 100)^dist_pow for every pair of active cells.
void BuildCost(const std::vector<double> &distances_km, MarkovChain *chain)
{
  PetscInt n = chain->n_active;
  chain->cost.assign((size_t)n * n, 0.0);
  for (PetscInt i = 0; i < n; ++i)
    for (PetscInt j = i + 1; j < n; ++j) {
      double value =
          std::pow(PackedDistance(distances_km, n, i, j) / 100.0, chain->penalty.dist_pow);
      chain->cost[(size_t)i * n + j] = value;
      chain->cost[(size_t)j * n + i] = value;
    }
}

// Sets mu_1 = softmax(z0) on every rank from the owned entries of z0.
PetscErrorCode ComputeInitialMarginal(MarkovChain *chain, const PetscScalar *theta)
{
  std::vector<double> &z0 = chain->mu[0];

  PetscFunctionBeginUser;
  PetscCall(detail::AllgatherWeek(*chain, 0, theta, &z0));
  double max = *std::max_element(z0.begin(), z0.end()), sum = 0;
  for (double &z : z0)
    sum += (z = std::exp(z - max));
  for (double &z : z0)
    z /= sum;
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Forward step of transition k on the owned rows: row log-sum-exp, this rank's double-double
// column sums of M_k, and this rank's distance and entropy sums. Keeps P_k in `p_block` unless it
// is null.
void ForwardTransition(MarkovChain *chain, PetscInt k, const PetscScalar *z_block,
                       PetscScalar *p_block, std::vector<DoubleDouble> *column_sums,
                       DoubleDouble *dist, DoubleDouble *entropy)
{
  const ChainLayout &layout = chain->layout;
  const PetscInt n_to = layout.n_cells[k + 1], start = layout.row_start[k];
  const PetscInt *to_cells = chain->week_cells[k + 1].data();

  for (PetscInt l = 0; l < layout.row_count[k]; ++l) {
    const PetscScalar *z = z_block + (size_t)l * n_to;
    const double *cost_row =
        chain->cost.data() + (size_t)chain->week_cells[k][start + l] * chain->n_active;
    double *p = p_block ? p_block + (size_t)l * n_to : chain->row_work.data();

    // P_ij = exp(Z_ij - max) / sum, with lse_i = max + log(sum).
    double max = z[0], sum = 0;
    for (PetscInt j = 1; j < n_to; ++j)
      max = std::max(max, z[j]);
    for (PetscInt j = 0; j < n_to; ++j)
      sum += (p[j] = std::exp(z[j] - max));
    const double inverse_sum = 1.0 / sum, lse = max + std::log(sum);
    chain->row_lse[k][l] = lse;

    const double mu_i = chain->mu[k][start + l], log_mu = SafeLog(mu_i);
    double row_dist = 0, row_entropy = 0;
    for (PetscInt j = 0; j < n_to; ++j) {
      p[j] *= inverse_sum;
      double m = mu_i * p[j];
      AddTo((*column_sums)[j], m);
      row_dist += m * cost_row[to_cells[j]];
      row_entropy -= m * (log_mu + z[j] - lse);
    }
    AddTo(*dist, row_dist);
    AddTo(*entropy, row_entropy);
  }
}
} // namespace

PetscErrorCode MarkovChainCreate(MPI_Comm comm, const SpeciesData &species,
                                 const std::vector<double> &distances_km,
                                 const ChainPenalty &penalty, MarkovChain *chain)
{
  PetscFunctionBeginUser;
  PetscCall(RegisterEvents());
  PetscCheck(species.n_timesteps >= 2, comm, PETSC_ERR_USER_INPUT,
             "%s has %" PetscInt_FMT " time points; a Markov chain needs at least 2",
             species.path.c_str(), species.n_timesteps);
  PetscCheck(distances_km.size() == (size_t)species.n_active * (species.n_active - 1) / 2, comm,
             PETSC_ERR_USER_INPUT, "%s: distances has %zu entries, expected n_active(n_active-1)/2",
             species.path.c_str(), distances_km.size());
  chain->comm = comm;
  chain->penalty = penalty;
  chain->n_active = species.n_active;
  chain->week_cells = species.week_cells;
  PetscCall(BuildLayout(comm, species, &chain->layout));
  BuildCost(distances_km, chain);

  const ChainLayout &layout = chain->layout;
  PetscInt T = layout.n_timesteps, widest = 0;
  chain->mu.resize(T);
  chain->grad_mu.resize(T);
  chain->row_lse.resize(T - 1);
  for (PetscInt t = 0; t < T; ++t) {
    chain->mu[t].assign(layout.n_cells[t], 0.0);
    chain->grad_mu[t].assign(layout.n_cells[t], 0.0);
    if (t + 1 < T) chain->row_lse[t].assign(layout.row_count[t], 0.0);
    widest = std::max(widest, layout.n_cells[t]);
  }
  chain->row_work.assign(widest, 0.0);
  chain->row_work2.assign(widest, 0.0);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode MarkovChainCreateVector(const MarkovChain &chain, Vec *vector)
{
  PetscFunctionBeginUser;
  PetscCall(VecCreateMPI(chain.comm, chain.layout.n_local, chain.layout.n_global, vector));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode MarkovChainSetInitialLogits(const MarkovChain &chain, unsigned long long seed,
                                           Vec theta)
{
  const ChainLayout &layout = chain.layout;
  PetscScalar *values;

  PetscFunctionBeginUser;
  PetscCall(VecGetArray(theta, &values));
  for (PetscInt b = 0; b < layout.n_timesteps; ++b) {
    std::uint64_t key = Mix64(Mix64(seed) ^ (std::uint64_t)b);
    PetscInt columns = layout.Columns(b), week = b == 0 ? 0 : b - 1;
    PetscScalar *block = values + layout.block_offset[b];
    for (PetscInt l = 0; l < layout.row_count[week]; ++l)
      for (PetscInt j = 0; j < columns; ++j) {
        std::uint64_t global = (std::uint64_t)(layout.row_start[week] + l) * columns + j;
        block[(size_t)l * columns + j] = StandardNormal(key, global);
      }
  }
  PetscCall(VecRestoreArray(theta, &values));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode MarkovChainForward(MarkovChain *chain, Vec theta, Vec transition_storage)
{
  const ChainLayout &layout = chain->layout;
  const PetscScalar *values;
  PetscScalar *stored = nullptr;
  DoubleDouble sums[2]; // distance, entropy of the M_k
  double flops = 0;

  PetscFunctionBeginUser;
  PetscCall(PetscLogEventBegin(detail::chain_forward_event, 0, 0, 0, 0));
  PetscCall(VecGetArrayRead(theta, &values));
  if (transition_storage) PetscCall(VecGetArray(transition_storage, &stored));
  PetscCall(ComputeInitialMarginal(chain, values));
  for (PetscInt k = 0; k < layout.Transitions(); ++k) {
    std::vector<DoubleDouble> column_sums(layout.n_cells[k + 1]);
    PetscScalar *p_block = stored ? stored + layout.block_offset[k + 1] : nullptr;
    ForwardTransition(chain, k, values + layout.block_offset[k + 1], p_block, &column_sums,
                      &sums[0], &sums[1]);
    PetscCall(AllreduceDoubleDouble(chain->comm, column_sums.data(), (int)column_sums.size()));
    for (size_t j = 0; j < column_sums.size(); ++j)
      chain->mu[k + 1][j] = column_sums[j].Value();
    flops += 20.0 * layout.row_count[k] * layout.n_cells[k + 1];
  }
  PetscCall(VecRestoreArrayRead(theta, &values));
  if (transition_storage) PetscCall(VecRestoreArray(transition_storage, &stored));
  chain->stored_transitions = transition_storage;
  PetscCall(AllreduceDoubleDouble(chain->comm, sums, 2));
  chain->dist_term = sums[0].Value();
  chain->ent_term = sums[1].Value();
  for (const auto &mu : chain->mu)
    chain->ent_term -= Entropy(mu);
  PetscCall(PetscLogFlops(flops));
  PetscCall(PetscLogEventEnd(detail::chain_forward_event, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

double MarkovChainPenaltyValue(const MarkovChain &chain)
{
  return chain.penalty.dist_weight * chain.dist_term - chain.penalty.ent_weight * chain.ent_term;
}
} // namespace birdflow
