/*
  birdflow-train: fits a BirdFlow Markov-chain model to a BirdFlowR preprocessed species file and
  writes a fitted model that BirdFlowR's import_birdflow() reads.

  The loss is obs_weight * sum_t ||mu_t - y_t||^2 + dist_weight * sum_k <M_k, (d_km/100)^dist_pow>
  - ent_weight * (sum_k H(M_k) - sum_t H(mu_t)), minimised by Adam; the rows of every transition
  are split over the MPI ranks. See docs/training.md.

  Sample runs:
    mpiexec -n 2 build/bin/birdflow-train \
        --input data/amewoo/amewoo_2019_80km_preprocessed.hdf5 \
        --output results/amewoo_2019_80km_fitted.hdf5 \
        --dist-weight 0.008177 --ent-weight 0.001924 --dist-pow 0.4167
    mpiexec -n 2 build/bin/birdflow-train \
        --input data/sstspa/sstspa_2023_100km_preprocessed.hdf5 --output results/sstspa.hdf5 \
        --dist-weight 0.047847 --ent-weight 0.0047847 --dist-pow 0.9 \
        -train_progress_interval 50 -adam_beta2 0.999 -log_view

  PETSc options: -adam_beta1, -adam_beta2, -adam_epsilon, -train_progress_interval, -log_view.
*/
#include "birdflow/driver.hpp"
#include "birdflow/markov.hpp"
#include "birdflow/output_file.hpp"
#include "birdflow/petsc_compat.hpp"
#include "birdflow/species.hpp"
#include "birdflow/training.hpp"

#include <cstdio>
#include <string>

namespace
{
const char help[] = "Fits a BirdFlow model; run with --help for the run options.\n";

// Run settings from the command line or --config (defaults of BirdFlowPy's update_hdf.py).
struct Settings
{
  std::string input, output;
  long long steps = 600;
  double learning_rate = 0.1;
  double obs_weight = 1.0, dist_weight = 1e-2, ent_weight = 1e-4, dist_pow = 0.4;
  long long seed = 17;
};

void AddOptions(CLI::App &app, Settings &s)
{
  app.add_option("--input", s.input, "Preprocessed BirdFlowR HDF5 file")->required();
  app.add_option("--output", s.output, "Fitted model to write (HDF5)")->required();
  app.add_option("--steps", s.steps, "Number of Adam steps")->capture_default_str();
  app.add_option("--learning-rate", s.learning_rate, "Adam learning rate")->capture_default_str();
  app.add_option("--obs-weight", s.obs_weight, "Weight of the L2 location loss")
      ->capture_default_str();
  app.add_option("--dist-weight", s.dist_weight, "Weight of the expected distance (km/100)^pow")
      ->capture_default_str();
  app.add_option("--ent-weight", s.ent_weight, "Weight of the entropy term (maximised)")
      ->capture_default_str();
  app.add_option("--dist-pow", s.dist_pow, "Exponent of the distance cost")->capture_default_str();
  app.add_option("--seed", s.seed, "Seed of the N(0,1) initial logits")->capture_default_str();
  app.set_config("--config", "", "Read these options from a TOML or INI file");
}

// Returns a value as the user would type it (PETSc's %g prints 1 as "1.").
std::string Text(double value)
{
  char text[64];
  std::snprintf(text, sizeof(text), "%.10g", value);
  return text;
}

PetscErrorCode ValidateSettings(MPI_Comm comm, const Settings &s)
{
  PetscFunctionBeginUser;
  PetscCheck(s.steps >= 1, comm, PETSC_ERR_USER_INPUT, "invalid --steps %lld: use 1 or more",
             s.steps);
  PetscCheck(s.learning_rate > 0, comm, PETSC_ERR_USER_INPUT,
             "invalid --learning-rate %s: use a positive value", Text(s.learning_rate).c_str());
  PetscCheck(s.obs_weight >= 0, comm, PETSC_ERR_USER_INPUT,
             "invalid --obs-weight %s: use 0 or a positive value", Text(s.obs_weight).c_str());
  PetscCheck(s.dist_weight >= 0, comm, PETSC_ERR_USER_INPUT,
             "invalid --dist-weight %s: use 0 or a positive value", Text(s.dist_weight).c_str());
  PetscCheck(s.ent_weight >= 0, comm, PETSC_ERR_USER_INPUT,
             "invalid --ent-weight %s: use 0 or a positive value", Text(s.ent_weight).c_str());
  PetscCheck(s.dist_pow > 0, comm, PETSC_ERR_USER_INPUT,
             "invalid --dist-pow %s: use a positive value", Text(s.dist_pow).c_str());
  PetscCheck(s.seed >= 0, comm, PETSC_ERR_USER_INPUT, "invalid --seed %lld: use 0 or more", s.seed);
  PetscFunctionReturn(PETSC_SUCCESS);
}

birdflow::TrainingRecord MakeRecord(MPI_Comm comm, const Settings &s,
                                    const birdflow::TrainingHistory &history,
                                    const birdflow::LocationLoss &location)
{
  int size;
  MPI_Comm_size(comm, &size);
  birdflow::TrainingRecord record;
  record.obs_weight = s.obs_weight;
  record.dist_weight = s.dist_weight;
  record.ent_weight = s.ent_weight;
  record.dist_pow = s.dist_pow;
  record.learning_rate = s.learning_rate;
  record.training_steps = s.steps;
  record.rng_seed = s.seed;
  record.normalized = true;
  record.loss_total = history.total;
  record.loss_obs = history.obs;
  record.loss_dist = history.dist;
  record.loss_ent = history.ent;
  record.extra["location_loss"] = location.Name();
  record.extra["mpi_ranks"] = std::to_string(size);
  record.extra["commit"] = BIRDFLOW_GIT_COMMIT;
  record.extra["version"] = birdflow::BuildDescription();
  record.extra["precision"] = "double (marginals stored as float32)";
  return record;
}

PetscErrorCode PrintSummary(MPI_Comm comm, const Settings &s, const birdflow::MarkovChain &chain,
                            const birdflow::TrainingHistory &history,
                            const birdflow::MemoryReport &memory)
{
  int size;
  const birdflow::LossParts &f = history.final_parts;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(PetscPrintf(comm, "summary:\n"));
  PetscCall(PetscPrintf(comm,
                        "  final loss %.6f (obs %.6f, dist %.4f, ent %.4f) at the written "
                        "parameters\n",
                        f.total, f.obs, f.dist, f.ent));
  PetscCall(PetscPrintf(comm, "  last logged loss %.6f (step %lld, before its update)\n",
                        history.total.back(), s.steps));
  PetscCall(PetscPrintf(
      comm, "  parameters %" PetscInt_FMT " on %d ranks, at most %" PetscInt_FMT " on one rank\n",
      chain.layout.n_global, size, memory.max_local_parameters));
  PetscCall(PetscPrintf(comm,
                        "  memory %.1f bytes per parameter on the largest rank (allocated), "
                        "peak RSS %.1f MiB\n",
                        memory.bytes_per_parameter, memory.max_rss_bytes / 1048576.0));
  PetscCall(PetscPrintf(comm, "  time %.2f s for %lld steps, %.2f ms per step\n", history.seconds,
                        s.steps, 1e3 * history.seconds / (double)s.steps));
  PetscCall(PetscPrintf(comm, "  output %s\n", s.output.c_str()));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode Run(const CLI::App &app, const Settings &settings)
{
  MPI_Comm comm = PETSC_COMM_WORLD;
  birdflow::TrainingStages stages;
  birdflow::SpeciesData species;
  std::vector<double> distances;
  birdflow::MarkovChain chain;
  birdflow::AdamOptions adam_options;
  birdflow::TrainingSettings loop;
  birdflow::Adam adam;
  birdflow::TrainingHistory history;
  birdflow::MemoryReport memory;
  Vec theta, grad;

  PetscFunctionBeginUser;
  // 1. Echo the configuration; reject bad options and an unusable output path before any work.
  PetscCall(birdflow::PrintConfiguration(comm, app));
  PetscCall(ValidateSettings(comm, settings));
  adam_options.learning_rate = settings.learning_rate;
  PetscCall(birdflow::AdamOptionsSetFromOptions(comm, &adam_options));
  loop.steps = settings.steps;
  PetscCall(birdflow::TrainingSettingsSetFromOptions(comm, &loop));
  PetscCall(birdflow::CheckOutputPath(comm, settings.output, "--output"));
  PetscCall(birdflow::GetTrainingStages(&stages));

  // 2. Read and validate the species file; every rank keeps distr and the distances.
  PetscCall(PetscLogStagePush(stages.load));
  PetscCall(birdflow::ReadSpecies(comm, settings.input, &species));
  PetscCall(birdflow::ReadDistances(comm, species, &distances));
  PetscCall(PetscLogStagePop());

  // 3. The chain with its row partition, the L2 location loss, and N(0,1) initial logits.
  birdflow::ChainPenalty penalty{settings.dist_weight, settings.ent_weight, settings.dist_pow};
  PetscCall(birdflow::MarkovChainCreate(comm, species, distances, penalty, &chain));
  distances.clear();
  distances.shrink_to_fit();
  birdflow::L2LocationLoss location(species);
  birdflow::Objective objective{&chain, &location, settings.obs_weight};
  PetscCall(birdflow::MarkovChainCreateVector(chain, &theta));
  PetscCall(VecDuplicate(theta, &grad));
  PetscCall(birdflow::MarkovChainSetInitialLogits(chain, (unsigned long long)settings.seed, theta));
  PetscCall(PetscPrintf(
      comm, "training %s: %" PetscInt_FMT " time points, %" PetscInt_FMT " parameters\n",
      species.species_code.c_str(), species.n_timesteps, chain.layout.n_global));

  // 4. Adam for the requested steps, with a progress line from rank 0.
  PetscCall(birdflow::AdamCreate(theta, adam_options, &adam));
  PetscCall(birdflow::Train(objective, loop, &adam, theta, grad, &history));
  PetscCall(birdflow::MeasureMemory(chain, 4, &memory));
  PetscCall(birdflow::AdamDestroy(&adam));

  // 5. Write the marginals of the final parameters (in the gradient's storage) with parallel HDF5.
  PetscCall(PetscLogStagePush(stages.io));
  std::vector<birdflow::MarginalRows> rows;
  PetscCall(birdflow::MarkovChainMarginalRows(chain, theta, grad, &rows));
  birdflow::TrainingRecord record = MakeRecord(comm, settings, history, location);
  PetscCall(birdflow::WriteFittedModel(comm, species, settings.output, rows, record));
  PetscCall(PetscLogStagePop());

  // 6. Summary.
  PetscCall(PrintSummary(comm, settings, chain, history, memory));
  PetscCall(VecDestroy(&grad));
  PetscCall(VecDestroy(&theta));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

int main(int argc, char **argv)
{
  CLI::App app{"Fit a BirdFlow Markov-chain model to a preprocessed species file",
               "birdflow-train"};
  Settings settings;
  AddOptions(app, settings);
  return birdflow::RunDriver(argc, argv, app, help, [&] { return Run(app, settings); });
}
