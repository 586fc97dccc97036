// W2LocationLoss: weekly entropic OT problems spread over groups of ranks.
#include "birdflow/w2_loss.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace birdflow
{
namespace
{
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Relative difference allowed between xres and yres (amewoo's 80 km cells differ by 8e-7).
constexpr double kSquareTolerance = 1e-6;

PetscErrorCode GetW2Event(PetscLogEvent *event)
{
  static PetscLogEvent id = -1;

  PetscFunctionBeginUser;
  if (id < 0) PetscCall(PetscLogEventRegister("W2LocationLoss", 0, &id));
  *event = id;
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

PetscErrorCode W2SettingsSetFromOptions(MPI_Comm comm, W2Settings *settings)
{
  PetscFunctionBeginUser;
  PetscOptionsBegin(comm, "w2_", "W2 location loss", "training");
  PetscCall(PetscOptionsInt("-groups", "Groups of ranks that share out the weeks (0: automatic)",
                            "W2LocationLoss", settings->groups, &settings->groups, nullptr));
  PetscCall(PetscOptionsBool("-warm_start", "Start each week's Sinkhorn from its last potentials",
                             "W2LocationLoss", settings->warm_start, &settings->warm_start,
                             nullptr));
  PetscOptionsEnd();
  PetscCheck(settings->groups >= 0, comm, PETSC_ERR_USER_INPUT,
             "invalid -w2_groups %" PetscInt_FMT ": use 0 (automatic) or a positive number",
             settings->groups);
  PetscFunctionReturn(PETSC_SUCCESS);
}

W2LocationLoss::W2LocationLoss() = default;

W2LocationLoss::~W2LocationLoss()
{
  if (group_comm_ != MPI_COMM_NULL) MPI_Comm_free(&group_comm_);
}

PetscErrorCode W2LocationLoss::Setup(MPI_Comm comm, const SpeciesData &species,
                                     const W2Settings &settings)
{
  const Grid &grid = species.grid;
  const PetscInt T = species.n_timesteps;
  PetscMPIInt size, rank;

  PetscFunctionBeginUser;
  PetscCheck(
      settings.quantity == OTQuantity::kDivergence || settings.quantity == OTQuantity::kSharp, comm,
      PETSC_ERR_ARG_WRONG, "the W2 location loss uses the divergence or the sharp cost");
  PetscCheck(settings.epsilon > 0 && std::isfinite(settings.epsilon), comm, PETSC_ERR_USER_INPUT,
             "invalid eps %g km^2 for the W2 location loss: use a positive value",
             settings.epsilon);
  PetscCheck(std::fabs(grid.xres - grid.yres) <= kSquareTolerance * std::fabs(grid.xres), comm,
             PETSC_ERR_USER_INPUT,
             "%s: cells are %.10g x %.10g m, not square; the W2 location loss needs square cells",
             species.path.c_str(), grid.xres, grid.yres);
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCheck(settings.groups <= size, comm, PETSC_ERR_USER_INPUT,
             "invalid -w2_groups %" PetscInt_FMT ": at most the %d ranks", settings.groups, size);

  // 1. Week groups: contiguous blocks of ranks; week t goes to the group of rank floor(t size / T)
  //    so that each group gets weeks in proportion to its ranks.
  comm_ = comm;
  settings_ = settings;
  n_timesteps_ = T;
  groups_ = settings.groups > 0 ? settings.groups : std::min<PetscInt>(size, T);
  group_ = (PetscInt)rank * groups_ / size;
  if (group_comm_ != MPI_COMM_NULL) PetscCallMPI(MPI_Comm_free(&group_comm_));
  PetscCallMPI(MPI_Comm_split(comm, (int)group_, rank, &group_comm_));
  PetscCallMPI(MPI_Comm_rank(group_comm_, &group_rank_));
  week_group_.resize(T);
  for (PetscInt t = 0; t < T; ++t)
    week_group_[t] = (t * (PetscInt)size / T) * groups_ / size;

  // 2. One OT solver per group on the whole raster; -ot_ options apply to every group.
  PetscCall(solver_.Setup(group_comm_, grid.nrow, grid.ncol, grid.xres / 1000.0));
  PetscCall(solver_.SetFromOptions());
  ot_settings_ = solver_.Settings();

  // 3. Maps from this rank's row slab to active cells and from active cells to weekly states.
  std::vector<PetscInt> raster_to_active(grid.nrow * grid.ncol, -1);
  for (PetscInt k = 0; k < species.n_active; ++k)
    raster_to_active[grid.active_cells[k]] = k;
  const PetscInt first = solver_.RowStart() * grid.ncol;
  slab_active_.assign(raster_to_active.begin() + first,
                      raster_to_active.begin() + first + solver_.LocalSize());
  position_.assign(T, std::vector<PetscInt>(species.n_active, -1));
  week_offset_.assign(T + 1, 0);
  for (PetscInt t = 0; t < T; ++t) {
    for (PetscInt i = 0; i < species.CellsInWeek(t); ++i)
      position_[t][species.week_cells[t][i]] = i;
    week_offset_[t + 1] = week_offset_[t] + species.CellsInWeek(t);
  }

  // 4. Targets y_t on the slab for this group's weeks, and empty warm starts.
  targets_.assign(T, {});
  for (PetscInt t = 0; t < T; ++t) {
    if (week_group_[t] != group_) continue;
    targets_[t].resize(slab_active_.size());
    for (size_t i = 0; i < slab_active_.size(); ++i) {
      PetscInt active = slab_active_[i];
      targets_[t][i] = active < 0                 ? kNaN
                       : position_[t][active] < 0 ? 0.0
                                                  : species.Distr(active, t);
    }
  }
  warm_.assign(T, OTWarmStart());
  week_values_.assign(T, 0.0);
  total_ = W2Report();
  PetscFunctionReturn(PETSC_SUCCESS);
}

void W2LocationLoss::FillSlab(PetscInt t, const std::vector<double> &mu_t,
                              std::vector<double> *a) const
{
  a->resize(slab_active_.size());
  for (size_t i = 0; i < slab_active_.size(); ++i) {
    PetscInt active = slab_active_[i];
    PetscInt state = active < 0 ? -1 : position_[t][active];
    (*a)[i] = active < 0 ? kNaN : state < 0 ? 0.0 : mu_t[state];
  }
}

PetscErrorCode W2LocationLoss::Evaluate(const std::vector<std::vector<double>> &mu, double *loss,
                                        std::vector<std::vector<double>> *dloss_dmu)
{
  const PetscInt T = n_timesteps_;
  const PetscInt n_states = week_offset_[T];
  const bool gradient = dloss_dmu != nullptr;
  // Shared buffer: T week values, the flat gradient, then Sinkhorn, KSP and unconverged counts.
  const PetscInt counts = T + n_states;
  std::vector<double> shared(counts + 3, 0.0), a;
  double local_error = 0;
  PetscLogEvent event;
  OTResult result;

  PetscFunctionBeginUser;
  PetscCheck((PetscInt)mu.size() == T, PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ,
             "the chain has %zu time points but the W2 loss was set up for %" PetscInt_FMT,
             mu.size(), T);
  PetscCall(GetW2Event(&event));
  PetscCall(PetscLogEventBegin(event, 0, 0, 0, 0));

  // 1. This group's weeks: place mu_t on the raster slab and solve OT(mu_t, y_t).
  for (PetscInt t = 0; t < T; ++t) {
    if (week_group_[t] != group_) continue;
    PetscCheck((PetscInt)mu[t].size() == week_offset_[t + 1] - week_offset_[t], PETSC_COMM_SELF,
               PETSC_ERR_ARG_SIZ, "week %" PetscInt_FMT " has %zu states, expected %" PetscInt_FMT,
               t + 1, mu[t].size(), week_offset_[t + 1] - week_offset_[t]);
    FillSlab(t, mu[t], &a);
    PetscCall(solver_.Evaluate(settings_.quantity, a.data(), targets_[t].data(), settings_.epsilon,
                               gradient, settings_.warm_start ? &warm_[t] : nullptr, &result));
    const OTReport &report = result.report;
    local_error = std::max(local_error, report.marginal_error);
    if (group_rank_ == 0) {
      shared[t] = result.value;
      shared[counts] += (double)(report.iterations + report.iterations_aa + report.iterations_bb);
      shared[counts + 1] += (double)report.ksp_iterations;
      shared[counts + 2] += report.converged ? 0.0 : 1.0;
    }
    if (!gradient) continue;
    for (size_t i = 0; i < slab_active_.size(); ++i) {
      PetscInt active = slab_active_[i];
      PetscInt state = active < 0 ? -1 : position_[t][active];
      if (state >= 0) shared[T + week_offset_[t] + state] = result.gradient_a[i];
    }
  }

  // 2. Every entry has exactly one contributing rank, so the sum over all ranks is exact.
  PetscCallMPI(
      MPI_Allreduce(MPI_IN_PLACE, shared.data(), (int)shared.size(), MPI_DOUBLE, MPI_SUM, comm_));
  last_ = W2Report();
  PetscCallMPI(
      MPI_Allreduce(&local_error, &last_.max_marginal_error, 1, MPI_DOUBLE, MPI_MAX, comm_));

  // 3. Loss in a fixed week order, gradients per week, and the solver counts.
  *loss = 0;
  for (PetscInt t = 0; t < T; ++t) {
    week_values_[t] = shared[t];
    *loss += shared[t];
  }
  if (gradient) {
    dloss_dmu->resize(T);
    for (PetscInt t = 0; t < T; ++t)
      (*dloss_dmu)[t].assign(shared.begin() + T + week_offset_[t],
                             shared.begin() + T + week_offset_[t + 1]);
  }
  last_.sinkhorn_iterations = (PetscInt)shared[counts];
  last_.ksp_iterations = (PetscInt)shared[counts + 1];
  last_.unconverged_weeks = (PetscInt)shared[counts + 2];
  total_.sinkhorn_iterations += last_.sinkhorn_iterations;
  total_.ksp_iterations += last_.ksp_iterations;
  total_.unconverged_weeks += last_.unconverged_weeks;
  total_.max_marginal_error = std::max(total_.max_marginal_error, last_.max_marginal_error);
  PetscCall(PetscLogEventEnd(event, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
