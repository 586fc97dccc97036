// Training a Markov chain: the combined loss, Adam, and the training loop with its progress log.
#pragma once

#include "birdflow/markov.hpp"
#include "birdflow/w2_loss.hpp"

#include <petscvec.h>

#include <vector>

namespace birdflow
{
/* The total loss and its parts:
   total = obs_weight * obs + w2_weight * w2 + dist_weight * dist - ent_weight * ent. */
struct LossParts
{
  double total = 0, obs = 0, dist = 0, ent = 0, w2 = 0;
};

/* The loss being minimised: the chain with its distance and entropy terms plus a weighted
   location loss and an optional weighted W2 location loss. No pointer is owned. The location loss
   is evaluated (and logged) even when obs_weight is 0. */
struct Objective
{
  MarkovChain *chain = nullptr;
  LocationLoss *location = nullptr;
  double obs_weight = 1.0;
  W2LocationLoss *w2 = nullptr;
  double w2_weight = 0.0;
};

/*
  EvaluateObjective - Computes the loss parts at `theta` and, when `grad` is not null, the gradient
  of the total loss. Collective on the chain's communicator.
*/
PetscErrorCode EvaluateObjective(Objective &objective, Vec theta, LossParts *parts, Vec grad);

/* Adam settings (optax.adam: bias-corrected moments, epsilon added outside the square root). */
struct AdamOptions
{
  double learning_rate = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
};

/*
  AdamOptionsSetFromOptions - Reads -adam_beta1, -adam_beta2 and -adam_epsilon from the PETSc
  options database and validates them (0 <= beta < 1, epsilon > 0). Collective.
*/
PetscErrorCode AdamOptionsSetFromOptions(MPI_Comm comm, AdamOptions *options);

/* Adam's state on the owned parameters. */
struct Adam
{
  AdamOptions options;
  Vec first_moment = nullptr, second_moment = nullptr;
  PetscInt step = 0;
};

/* AdamCreate - Allocates zero moments shaped like `theta`. Collective. */
PetscErrorCode AdamCreate(Vec theta, const AdamOptions &options, Adam *adam);

/* AdamDestroy - Frees the moments. Collective. */
PetscErrorCode AdamDestroy(Adam *adam);

/* AdamUpdate - Applies one Adam step to `theta` with gradient `grad`, element by element on the
   owned entries, so the result does not depend on the rank count. Not collective. */
PetscErrorCode AdamUpdate(Adam *adam, Vec grad, Vec theta);

/* Settings of the training loop. */
struct TrainingSettings
{
  PetscInt steps = 600;
  PetscInt progress_interval = 1; // print a progress line every this many steps (0: never)
};

/*
  TrainingSettingsSetFromOptions - Reads -train_progress_interval from the PETSc options database.
  Collective.
*/
PetscErrorCode TrainingSettingsSetFromOptions(MPI_Comm comm, TrainingSettings *settings);

/* What a training run produced, besides the parameters. */
struct TrainingHistory
{
  std::vector<double> total, obs, dist, ent; // step s: at the parameters before update s
  std::vector<double> grad_norm;
  std::vector<double> w2;                                    // empty without a W2 loss
  std::vector<PetscInt> sinkhorn_iterations, ksp_iterations; // W2 solver work per step
  LossParts final_parts; // at the final parameters (after the last update)
  double seconds = 0;    // wall time of the loop
};

/*
  Train - Runs settings.steps Adam steps from `theta`: at step s it evaluates the loss and gradient
  at theta_s, logs them, then updates to theta_{s+1}. Rank 0 prints a progress line every
  settings.progress_interval steps. On return `theta` holds theta_steps, and the chain's forward
  state and history.final_parts belong to it. `grad` is work space. Collective.
*/
PetscErrorCode Train(Objective &objective, const TrainingSettings &settings, Adam *adam, Vec theta,
                     Vec grad, TrainingHistory *history);

/* Memory of a training run on this rank. */
struct MemoryReport
{
  double bytes_per_parameter = 0; // allocated bytes / owned parameters on the rank owning the most
  double max_allocated_bytes = 0; // max over ranks of the bytes allocated for training
  double max_rss_bytes = 0;       // max over ranks of the peak resident set size
  PetscInt max_local_parameters = 0;
};

/*
  MeasureMemory - Counts what training allocates per rank: `n_vectors` parameter-shaped vectors
  plus the chain's work space, and the peak RSS from getrusage. Collective.
*/
PetscErrorCode MeasureMemory(const MarkovChain &chain, int n_vectors, MemoryReport *report);

/* Registers (once) and returns the log stages Load, Forward, Backward, Adam, W2 and I/O. Not
   collective. */
struct TrainingStages
{
  PetscLogStage load, forward, backward, adam, io, w2;
};
PetscErrorCode GetTrainingStages(TrainingStages *stages);
} // namespace birdflow
