// The BirdFlow Markov-chain model: weekly states, distributed logits, forward and reverse sweeps.
//
// States of week t are the dynamic-mask cells of that week (n_t of them). The parameters are the
// initial logits z0 (length n_1) and one dense logit matrix Z_k (n_k x n_{k+1}) per transition.
//   pi = softmax(z0),  P_k = row-softmax(Z_k),  M_k = diag(mu_k) P_k,  mu_{k+1} = M_k^T 1.
// Each rank owns a contiguous block of source cells (rows) of every week, hence the same rows of
// every Z_k and the same entries of z0. The sweeps communicate only vectors of length n_t.
#pragma once

#include "birdflow/species.hpp"

#include <petscvec.h>

#include <vector>

namespace birdflow
{
/* Weights of the distance and entropy terms and the exponent of the distance cost. */
struct ChainPenalty
{
  double dist_weight = 1e-2;
  double ent_weight = 1e-4;
  double dist_pow = 0.4;
};

/* Sizes and row ownership of the chain on one rank. Block 0 of the parameter vector is z0, block
   k + 1 is Z_k; each block holds this rank's rows, row-major. */
struct ChainLayout
{
  PetscInt n_timesteps = 0;
  std::vector<PetscInt> n_cells;      // n_t for t = 0 .. T-1
  std::vector<PetscInt> row_start;    // first owned row of week t
  std::vector<PetscInt> row_count;    // owned rows of week t
  std::vector<PetscInt> block_offset; // local offset of block b; block_offset[T] = local size
  PetscInt n_local = 0;               // parameters owned by this rank
  PetscInt n_global = 0;              // n_1 + sum_k n_k n_{k+1}

  PetscInt Transitions() const { return n_timesteps - 1; }
  PetscInt Columns(PetscInt block) const { return block == 0 ? 1 : n_cells[block]; }
};

/* The chain model on one communicator, with the state of the last forward sweep. */
struct MarkovChain
{
  MPI_Comm comm = MPI_COMM_NULL;
  ChainLayout layout;
  ChainPenalty penalty;
  PetscInt n_active = 0;
  std::vector<std::vector<PetscInt>> week_cells; // active-cell index of each state of week t
  std::vector<double> cost;                      // n_active^2, (d_km / 100)^dist_pow, row-major

  // Forward state, valid after MarkovChainForward.
  std::vector<std::vector<double>> mu;      // full weekly marginals on every rank
  std::vector<std::vector<double>> row_lse; // log-sum-exp of each owned row of Z_k
  Vec stored_transitions = nullptr;         // vector holding the owned rows of every P_k, or null
  double dist_term = 0;                     // sum_k sum_ij M_k D_k
  double ent_term = 0;                      // sum_k H(M_k) - sum_t H(mu_t)

  // Work space of the reverse sweep.
  std::vector<std::vector<double>> grad_mu; // full dL/dmu_t on every rank
  std::vector<double> row_work, row_work2;  // one row of the widest transition
};

/*
  MarkovChainCreate - Sets up the row partition (PetscSplitOwnership per week) and the distance
  cost (d_km / 100)^dist_pow from the packed upper triangle `distances_km`. Collective on comm.
*/
PetscErrorCode MarkovChainCreate(MPI_Comm comm, const SpeciesData &species,
                                 const std::vector<double> &distances_km,
                                 const ChainPenalty &penalty, MarkovChain *chain);

/* MarkovChainCreateVector - Creates a parameter-shaped MPI vector. Collective on chain->comm. */
PetscErrorCode MarkovChainCreateVector(const MarkovChain &chain, Vec *vector);

/*
  MarkovChainSetInitialLogits - Fills `theta` with N(0, 1) draws from a counter-based generator:
  entry (row, column) of block b gets a value that depends only on (seed, b, row, column), so the
  model is the same on any number of ranks. Not collective.
*/
PetscErrorCode MarkovChainSetInitialLogits(const MarkovChain &chain, unsigned long long seed,
                                           Vec theta);

/*
  MarkovChainForward - Computes the weekly marginals mu_t (every rank gets every week), the
  distance term and the entropy term at `theta`. Column sums and the scalar sums use
  double-double partial sums, so the results agree across rank counts to about one rounding.
  When `transition_storage` (a parameter-shaped vector) is not null, the owned rows of every P_k
  are kept in its blocks 1 .. T-1, so that MarkovChainBackward with the same vector as `grad`
  needs no second exp per entry. Collective.
*/
PetscErrorCode MarkovChainForward(MarkovChain *chain, Vec theta, Vec transition_storage);

/*
  MarkovChainPenaltyValue - Returns dist_weight * dist_term - ent_weight * ent_term of the last
  forward sweep. Not collective.
*/
double MarkovChainPenaltyValue(const MarkovChain &chain);

/*
  MarkovChainBackward - Reverse sweep after MarkovChainForward at the same `theta`. `dloss_dmu`
  holds the derivative of the remaining loss terms (the weighted location loss) with respect to
  each full mu_t; the sweep adds the distance and entropy terms and writes the gradient of the
  total loss into `grad`. When `grad` is the forward sweep's `transition_storage`, the stored P_k
  are read and overwritten; otherwise P_k is recomputed. Collective.
*/
PetscErrorCode MarkovChainBackward(MarkovChain *chain, Vec theta,
                                   const std::vector<std::vector<double>> &dloss_dmu, Vec grad);

/*
  MarkovChainMarginalRows - Writes this rank's rows of every M_k into `storage` (a parameter-shaped
  vector; block 0 is left unused) and describes them in `rows`, for WriteFittedModel. Call it after
  MarkovChainForward at `theta`. `storage` must stay alive while `rows` is used. Not collective.
*/
PetscErrorCode MarkovChainMarginalRows(const MarkovChain &chain, Vec theta, Vec storage,
                                       std::vector<MarginalRows> *rows);

/* Returns the bytes this rank allocates for the chain (cost matrix, weekly vectors, work space),
   excluding the parameter-shaped vectors. Not collective. */
double MarkovChainBytes(const MarkovChain &chain);

/*
  The location loss: compares the weekly marginals with the targets. It is a separate layer so a
  Wasserstein loss can replace the L2 loss: the forward sweep hands it mu_t, it returns the loss
  and d loss / d mu_t per week, and the reverse sweep takes those derivatives.
*/
class LocationLoss
{
public:
  virtual ~LocationLoss() = default;

  /* Evaluates the loss and, when `dloss_dmu` is not null, its derivative for every week. Collective
     on the communicator the loss was built for. */
  virtual PetscErrorCode Evaluate(const std::vector<std::vector<double>> &mu, double *loss,
                                  std::vector<std::vector<double>> *dloss_dmu) = 0;

  /* Short name recorded in the fitted file ("l2"). */
  virtual const char *Name() const = 0;
};

/* L_obs = sum_t ||mu_t - y_t||^2 over all T time points, y_t = distr restricted to week t's cells.
   Every rank holds every target, so Evaluate needs no communication. */
class L2LocationLoss : public LocationLoss
{
public:
  explicit L2LocationLoss(const SpeciesData &species);
  PetscErrorCode Evaluate(const std::vector<std::vector<double>> &mu, double *loss,
                          std::vector<std::vector<double>> *dloss_dmu) override;
  const char *Name() const override { return "l2"; }

private:
  std::vector<std::vector<double>> targets_;
};
} // namespace birdflow
