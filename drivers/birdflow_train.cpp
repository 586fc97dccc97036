/*
  birdflow-train: fits a BirdFlow Markov-chain model to a BirdFlowR preprocessed species file and
  writes a fitted model that BirdFlowR's import_birdflow() reads.

  The loss is obs_weight * sum_t ||mu_t - y_t||^2 + dist_weight * sum_k <M_k, (d_km/100)^dist_pow>
  - ent_weight * (sum_k H(M_k) - sum_t H(mu_t)), minimised by Adam; the rows of every transition
  are split over the MPI ranks. With --location-loss w2 the location term is
  w2_weight * sum_t S_eps(mu_t, y_t) (or the sharp cost <C, P_eps>) with the squared distance in
  km^2 between cell centres as the cost; mix adds both location terms. See docs/training.md.

  Sample runs:
    mpiexec -n 2 build/bin/birdflow-train \
        --input data/amewoo/amewoo_2019_80km_preprocessed.hdf5 \
        --output results/amewoo_2019_80km_fitted.hdf5 \
        --dist-weight 0.008177 --ent-weight 0.001924 --dist-pow 0.4167
    mpiexec -n 2 build/bin/birdflow-train \
        --input data/sstspa/sstspa_2023_100km_preprocessed.hdf5 --output results/sstspa.hdf5 \
        --dist-weight 0.047847 --ent-weight 0.0047847 --dist-pow 0.9 \
        -train_progress_interval 50 -adam_beta2 0.999 -log_view
    mpiexec -n 2 build/bin/birdflow-train \
        --input data/sstspa/sstspa_2023_100km_preprocessed.hdf5 --output results/sstspa_w2.hdf5 \
        --location-loss w2 --w2-weight 1e-5 --epsilon-relative 1 --steps 100 \
        -ot_tol 1e-6 -w2_groups 2

  PETSc options: -adam_beta1, -adam_beta2, -adam_epsilon, -train_progress_interval, -log_view;
  with a W2 loss also -w2_groups, -w2_warm_start and the OT solver's -ot_* options.
*/
#include "birdflow/build_info.hpp"
#include "birdflow/driver.hpp"
#include "birdflow/markov.hpp"
#include "birdflow/output_file.hpp"
#include "birdflow/petsc_compat.hpp"
#include "birdflow/species.hpp"
#include "birdflow/training.hpp"
#include "birdflow/w2_loss.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
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
  std::string location_loss = "l2", w2_quantity = "divergence";
  double w2_weight = 1e-5;
  double epsilon = 0, epsilon_relative = 0; // at most one is set; neither means 1 h^2
};

bool UsesL2(const Settings &s)
{
  return s.location_loss != "w2";
}
bool UsesW2(const Settings &s)
{
  return s.location_loss != "l2";
}

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
  app.add_option("--location-loss", s.location_loss,
                 "Location loss: l2, w2 (Sinkhorn divergence) or mix (weighted sum of both)")
      ->check(CLI::IsMember({"l2", "w2", "mix"}))
      ->capture_default_str();
  app.add_option("--w2-weight", s.w2_weight, "Weight of the W2 location loss (per km^2)")
      ->capture_default_str();
  app.add_option("--w2-quantity", s.w2_quantity,
                 "W2 loss per week: divergence (S_eps) or sharp (<C, P_eps>)")
      ->check(CLI::IsMember({"divergence", "sharp"}))
      ->capture_default_str();
  auto *epsilon = app.add_option("--epsilon", s.epsilon, "Entropic regularisation eps in km^2")
                      ->check(CLI::PositiveNumber);
  app.add_option("--epsilon-relative", s.epsilon_relative,
                 "eps as a multiple of the squared cell side h^2 (default 1 when --epsilon is "
                 "not given)")
      ->check(CLI::PositiveNumber)
      ->excludes(epsilon);
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
  PetscCheck(s.w2_weight >= 0 && std::isfinite(s.w2_weight), comm, PETSC_ERR_USER_INPUT,
             "invalid --w2-weight %s: use 0 or a positive value", Text(s.w2_weight).c_str());
  PetscCheck(s.epsilon >= 0 && std::isfinite(s.epsilon), comm, PETSC_ERR_USER_INPUT,
             "invalid --epsilon %s km^2: use a positive value", Text(s.epsilon).c_str());
  PetscCheck(s.epsilon_relative >= 0 && std::isfinite(s.epsilon_relative), comm,
             PETSC_ERR_USER_INPUT, "invalid --epsilon-relative %s: use a positive value",
             Text(s.epsilon_relative).c_str());
  std::error_code error;
  PetscCheck(!std::filesystem::equivalent(s.input, s.output, error), comm, PETSC_ERR_USER_INPUT,
             "--output %s is the input file; give another path so the input is kept",
             s.output.c_str());
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Builds the W2 settings: eps in km^2 from --epsilon or --epsilon-relative times h^2 (h = the
// grid's cell side in km), -w2_ options from the database. Collective.
PetscErrorCode MakeW2Settings(MPI_Comm comm, const Settings &s,
                              const birdflow::SpeciesData &species, birdflow::W2Settings *w2)
{
  PetscFunctionBeginUser;
  const double h = species.grid.xres / 1000.0;
  w2->quantity =
      s.w2_quantity == "sharp" ? birdflow::OTQuantity::kSharp : birdflow::OTQuantity::kDivergence;
  if (s.epsilon > 0)
    w2->epsilon = s.epsilon;
  else
    w2->epsilon = (s.epsilon_relative > 0 ? s.epsilon_relative : 1.0) * h * h;
  PetscCall(birdflow::W2SettingsSetFromOptions(comm, w2));
  PetscFunctionReturn(PETSC_SUCCESS);
}

birdflow::TrainingRecord MakeRecord(MPI_Comm comm, const Settings &s,
                                    const birdflow::TrainingHistory &history,
                                    const birdflow::Objective &objective,
                                    const birdflow::SpeciesData &species)
{
  int size;
  MPI_Comm_size(comm, &size);
  birdflow::TrainingRecord record;
  record.obs_weight = objective.obs_weight;
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
  record.loss_w2 = history.w2;
  record.extra["location_loss"] = s.location_loss;
  record.extra["obs_weight"] = Text(objective.obs_weight);
  if (objective.w2) {
    const birdflow::W2LocationLoss &w2 = *objective.w2;
    const double h = species.grid.xres / 1000.0;
    record.extra["w2_weight"] = Text(objective.w2_weight);
    record.extra["w2_quantity"] = s.w2_quantity;
    record.extra["w2_epsilon_km2"] = Text(w2.Epsilon());
    record.extra["w2_epsilon_relative"] = Text(w2.Epsilon() / (h * h));
    record.extra["w2_groups"] = std::to_string(w2.Groups());
    record.extra["w2_warm_start"] = w2.WarmStart() ? "true" : "false";
    record.extra["ot_tol"] = Text(w2.SolverSettings().tolerance);
    record.extra["w2_sinkhorn_iterations"] = std::to_string(w2.TotalReport().sinkhorn_iterations);
  }
  record.extra["mpi_ranks"] = std::to_string(size);
  record.extra["commit"] = birdflow::GitCommit();
  record.extra["version"] = birdflow::BuildDescription();
  record.extra["precision"] = "double (marginals stored as float32)";
  return record;
}

PetscErrorCode PrintSummary(MPI_Comm comm, const Settings &s, const birdflow::MarkovChain &chain,
                            const birdflow::TrainingHistory &history,
                            const birdflow::MemoryReport &memory, PetscInt w2_unconverged)
{
  int size;
  const birdflow::LossParts &f = history.final_parts;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(PetscPrintf(comm, "summary:\n"));
  if (s.location_loss == "w2") {
    // The L2 error is recorded in W2 runs as a diagnostic but has no weight in the loss.
    PetscCall(PetscPrintf(comm,
                          "  final loss %.6f (w2 %.6e, dist %.4f, ent %.4f; L2 error %.6f, not "
                          "in the loss) at the written parameters\n",
                          f.total, f.w2, f.dist, f.ent, f.obs));
  } else {
    PetscCall(PetscPrintf(comm,
                          "  final loss %.6f (obs %.6f, dist %.4f, ent %.4f) at the written "
                          "parameters\n",
                          f.total, f.obs, f.dist, f.ent));
  }
  PetscCall(PetscPrintf(comm, "  last logged loss %.6f (step %lld, before its update)\n",
                        history.total.back(), s.steps));
  PetscCall(PetscPrintf(
      comm, "  parameters %" PetscInt_FMT " on %d ranks, at most %" PetscInt_FMT " on one rank\n",
      chain.layout.n_global, size, memory.max_local_parameters));
  PetscCall(PetscPrintf(comm,
                        "  memory %.1f bytes per parameter on the largest rank (allocated), "
                        "peak RSS %.1f MiB\n",
                        memory.bytes_per_parameter, memory.max_rss_bytes / 1048576.0));
  if (!history.w2.empty()) {
    PetscInt sinkhorn = 0, ksp = 0;
    for (size_t i = 0; i < history.w2.size(); ++i) {
      sinkhorn += history.sinkhorn_iterations[i];
      ksp += history.ksp_iterations[i];
    }
    PetscCall(PetscPrintf(comm,
                          "  w2 %.6e at the written parameters; %" PetscInt_FMT
                          " Sinkhorn iterations (%.1f per step), %" PetscInt_FMT " KSP iterations, "
                          "%" PetscInt_FMT " weekly solves not converged\n",
                          f.w2, sinkhorn, (double)sinkhorn / (double)history.w2.size(), ksp,
                          w2_unconverged));
  }
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
  birdflow::Objective objective{&chain, &location, UsesL2(settings) ? settings.obs_weight : 0.0};
  birdflow::W2LocationLoss w2;
  if (UsesW2(settings)) {
    birdflow::W2Settings w2_settings;
    PetscCall(MakeW2Settings(comm, settings, species, &w2_settings));
    PetscCall(w2.Setup(comm, species, w2_settings));
    objective.w2 = &w2;
    objective.w2_weight = settings.w2_weight;
    const double h = species.grid.xres / 1000.0;
    PetscCall(PetscPrintf(comm,
                          "location loss %s: obs weight %g, w2 weight %g, %s, eps %g km^2 "
                          "(%g h^2, h = %g km), %" PetscInt_FMT " week groups, -ot_tol %g\n",
                          settings.location_loss.c_str(), objective.obs_weight, objective.w2_weight,
                          settings.w2_quantity.c_str(), w2_settings.epsilon,
                          w2_settings.epsilon / (h * h), h, w2.Groups(),
                          w2.SolverSettings().tolerance));
  }
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
  birdflow::TrainingRecord record = MakeRecord(comm, settings, history, objective, species);
  PetscCall(birdflow::WriteFittedModel(comm, species, settings.output, rows, record));
  PetscCall(PetscLogStagePop());

  // 6. Summary.
  PetscCall(PrintSummary(comm, settings, chain, history, memory,
                         objective.w2 ? w2.TotalReport().unconverged_weeks : 0));
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
