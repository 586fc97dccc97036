#include "birdflow/petsc_compat.hpp"
#include "birdflow/training.hpp"

#include <sys/resource.h>

#include <algorithm>

namespace birdflow
{
namespace
{
// Prints the progress line of step s (0-based) on rank 0; with a W2 loss it adds the W2 part and
// the Sinkhorn and KSP iterations of the step, summed over the weeks.
PetscErrorCode PrintProgress(MPI_Comm comm, PetscInt s, PetscInt steps, const LossParts &parts,
                             double grad_norm, const W2LocationLoss *w2, double elapsed)
{
  PetscFunctionBeginUser;
  double left = elapsed / (double)(s + 1) * (double)(steps - s - 1);
  PetscCall(PetscPrintf(comm, "step %5" PetscInt_FMT "/%" PetscInt_FMT "  loss %.6e  obs %.6e",
                        s + 1, steps, parts.total, parts.obs));
  if (w2) PetscCall(PetscPrintf(comm, "  w2 %.6e", parts.w2));
  PetscCall(
      PetscPrintf(comm, "  dist %.6e  ent %.6e  |grad| %.3e", parts.dist, parts.ent, grad_norm));
  if (w2) {
    const W2Report &report = w2->LastReport();
    PetscCall(PetscPrintf(comm, "  sinkhorn %" PetscInt_FMT "  ksp %" PetscInt_FMT,
                          report.sinkhorn_iterations, report.ksp_iterations));
    if (report.unconverged_weeks > 0)
      PetscCall(
          PetscPrintf(comm, " (%" PetscInt_FMT " weeks not converged)", report.unconverged_weeks));
  }
  PetscCall(PetscPrintf(comm, "  elapsed %.1f s  left %.1f s\n", elapsed, left));
  PetscFunctionReturn(PETSC_SUCCESS);
}

void AppendHistory(const LossParts &parts, double grad_norm, const W2LocationLoss *w2,
                   TrainingHistory *history)
{
  if (w2) {
    history->w2.push_back(parts.w2);
    history->sinkhorn_iterations.push_back(w2->LastReport().sinkhorn_iterations);
    history->ksp_iterations.push_back(w2->LastReport().ksp_iterations);
  }
  history->total.push_back(parts.total);
  history->obs.push_back(parts.obs);
  history->dist.push_back(parts.dist);
  history->ent.push_back(parts.ent);
  history->grad_norm.push_back(grad_norm);
}
} // namespace

PetscErrorCode GetTrainingStages(TrainingStages *stages)
{
  static bool registered = false;
  static TrainingStages ids;

  PetscFunctionBeginUser;
  if (!registered) {
    PetscCall(PetscLogStageRegister("Load", &ids.load));
    PetscCall(PetscLogStageRegister("Forward", &ids.forward));
    PetscCall(PetscLogStageRegister("Backward", &ids.backward));
    PetscCall(PetscLogStageRegister("Adam", &ids.adam));
    PetscCall(PetscLogStageRegister("W2", &ids.w2));
    PetscCall(PetscLogStageRegister("I/O", &ids.io));
    registered = true;
  }
  *stages = ids;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode EvaluateObjective(Objective &objective, Vec theta, LossParts *parts, Vec grad)
{
  MarkovChain *chain = objective.chain;
  TrainingStages stages;
  double location_loss = 0, w2_loss = 0;
  std::vector<std::vector<double>> dloss_dmu, dw2_dmu;

  PetscFunctionBeginUser;
  PetscCall(GetTrainingStages(&stages));
  PetscCall(PetscLogStagePush(stages.forward));
  PetscCall(MarkovChainForward(chain, theta, grad));
  PetscCall(objective.location->Evaluate(chain->mu, &location_loss, grad ? &dloss_dmu : nullptr));
  PetscCall(PetscLogStagePop());
  if (objective.w2) {
    PetscCall(PetscLogStagePush(stages.w2));
    PetscCall(objective.w2->Evaluate(chain->mu, &w2_loss, grad ? &dw2_dmu : nullptr));
    PetscCall(PetscLogStagePop());
  }
  parts->obs = location_loss;
  parts->w2 = w2_loss;
  parts->dist = chain->dist_term;
  parts->ent = chain->ent_term;
  parts->total = objective.obs_weight * location_loss + objective.w2_weight * w2_loss +
                 MarkovChainPenaltyValue(*chain);
  if (!grad) PetscFunctionReturn(PETSC_SUCCESS);

  PetscCall(PetscLogStagePush(stages.backward));
  for (size_t t = 0; t < dloss_dmu.size(); ++t)
    for (size_t i = 0; i < dloss_dmu[t].size(); ++i)
      dloss_dmu[t][i] = objective.obs_weight * dloss_dmu[t][i] +
                        (objective.w2 ? objective.w2_weight * dw2_dmu[t][i] : 0.0);
  PetscCall(MarkovChainBackward(chain, theta, dloss_dmu, grad));
  PetscCall(PetscLogStagePop());
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode TrainingSettingsSetFromOptions(MPI_Comm comm, TrainingSettings *settings)
{
  PetscFunctionBeginUser;
  PetscOptionsBegin(comm, "train_", "Training loop", "training");
  PetscCall(PetscOptionsInt(
      "-progress_interval", "Print a progress line every this many steps (0: only the summary)",
      "Train", settings->progress_interval, &settings->progress_interval, nullptr));
  PetscOptionsEnd();
  PetscCheck(settings->progress_interval >= 0, comm, PETSC_ERR_USER_INPUT,
             "invalid -train_progress_interval %" PetscInt_FMT ": use 0 or a positive number",
             settings->progress_interval);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode Train(Objective &objective, const TrainingSettings &settings, Adam *adam, Vec theta,
                     Vec grad, TrainingHistory *history)
{
  MPI_Comm comm = objective.chain->comm;
  TrainingStages stages;
  LossParts parts;
  PetscReal grad_norm;

  PetscFunctionBeginUser;
  PetscCall(GetTrainingStages(&stages));
  double start = MPI_Wtime();
  for (PetscInt s = 0; s < settings.steps; ++s) {
    // 1. Loss and gradient at theta_s; this is the value logged for step s.
    PetscCall(EvaluateObjective(objective, theta, &parts, grad));
    PetscCall(VecNorm(grad, NORM_2, &grad_norm));
    AppendHistory(parts, grad_norm, objective.w2, history);

    // 2. theta_{s+1} from Adam.
    PetscCall(PetscLogStagePush(stages.adam));
    PetscCall(AdamUpdate(adam, grad, theta));
    PetscCall(PetscLogStagePop());

    // 3. Progress on rank 0.
    bool last = s + 1 == settings.steps;
    if (settings.progress_interval > 0 && ((s + 1) % settings.progress_interval == 0 || last))
      PetscCall(PrintProgress(comm, s, settings.steps, parts, grad_norm, objective.w2,
                              MPI_Wtime() - start));
  }
  history->seconds = MPI_Wtime() - start;

  // The forward state then belongs to the final parameters, ready for the marginals.
  PetscCall(EvaluateObjective(objective, theta, &history->final_parts, nullptr));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode MeasureMemory(const MarkovChain &chain, int n_vectors, MemoryReport *report)
{
  struct rusage usage;

  PetscFunctionBeginUser;
  PetscInt n_local = chain.layout.n_local;
  double allocated = 8.0 * n_vectors * n_local + MarkovChainBytes(chain);
  getrusage(RUSAGE_SELF, &usage);
  double rss = 1024.0 * (double)usage.ru_maxrss; // Linux reports kilobytes

  // The rank owning the most parameters reports its bytes per parameter.
  struct
  {
    double parameters;
    int rank;
  } mine, largest;
  PetscMPIInt rank;
  PetscCallMPI(MPI_Comm_rank(chain.comm, &rank));
  mine.parameters = (double)n_local;
  mine.rank = rank;
  PetscCallMPI(MPI_Allreduce(&mine, &largest, 1, MPI_DOUBLE_INT, MPI_MAXLOC, chain.comm));
  double per_parameter = n_local > 0 ? allocated / (double)n_local : 0.0;
  PetscCallMPI(MPI_Bcast(&per_parameter, 1, MPI_DOUBLE, largest.rank, chain.comm));

  report->bytes_per_parameter = per_parameter;
  report->max_local_parameters = (PetscInt)largest.parameters;
  PetscCallMPI(
      MPI_Allreduce(&allocated, &report->max_allocated_bytes, 1, MPI_DOUBLE, MPI_MAX, chain.comm));
  PetscCallMPI(MPI_Allreduce(&rss, &report->max_rss_bytes, 1, MPI_DOUBLE, MPI_MAX, chain.comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
