// The 2-Wasserstein location loss: sum_t W_t(mu_t, y_t) over all time points, where W_t is the
// debiased Sinkhorn divergence S_eps or the transport cost <C, P_eps> of the entropic plan, with
// the squared distance in km^2 between the projected cell centres as the cost.
//
// Layout: the weekly OT problems are independent. The ranks form G groups of contiguous ranks
// (MPI_Comm_split); each group gets a contiguous block of weeks in proportion to its ranks and
// spreads the raster of its weeks over its ranks (OTSolver row slabs). One MPI_Allreduce over all
// ranks then gives every rank every week's value and gradient; exactly one rank contributes each
// entry, so the sum is exact.
#pragma once

#include "birdflow/markov.hpp"
#include "birdflow/ot.hpp"
#include "birdflow/species.hpp"

#include <memory>
#include <vector>

namespace birdflow
{
/* Settings of the W2 location loss. */
struct W2Settings
{
  OTQuantity quantity = OTQuantity::kDivergence; // kDivergence or kSharp
  double epsilon = 0;                            // entropic regularisation, km^2
  PetscInt groups = 0;               // -w2_groups: week groups; 0 picks min(ranks, time points)
  PetscBool warm_start = PETSC_TRUE; // -w2_warm_start: start from the previous call's potentials
};

/*
  W2SettingsSetFromOptions - Reads -w2_groups and -w2_warm_start from the options database.
  Collective.
*/
PetscErrorCode W2SettingsSetFromOptions(MPI_Comm comm, W2Settings *settings);

/* Solver work of one Evaluate call, summed over all weeks. */
struct W2Report
{
  PetscInt sinkhorn_iterations = 0; // OT(a, b) plus, for the divergence, OT(a, a) and OT(b, b)
  PetscInt ksp_iterations = 0;      // implicit solves of the sharp gradient
  PetscInt unconverged_weeks = 0;   // weeks whose Sinkhorn solve missed -ot_tol
  double max_marginal_error = 0;    // largest marginal error of OT(a, b) over the weeks
};

/*
  W2LocationLoss - sum_t W_t(mu_t, y_t), y_t = distr of week t. Each week's mu_t (on that week's
  dynamic-mask cells) is placed on the raster: NaN (masked) outside the static mask, zero mass on
  active cells outside the week's cells. The gradient is the envelope gradient from the potentials
  (kDivergence) or the implicit gradient (kSharp), restricted to the week's cells. It is centred
  over the static mask, so it is exact along directions that keep the mass of mu_t, the only ones
  the chain can move in.
*/
class W2LocationLoss : public LocationLoss
{
public:
  W2LocationLoss();
  ~W2LocationLoss() override;

  /* Setup - Splits comm into week groups and sets up one OTSolver per group on the species grid
     (square cells required); -ot_ options configure the solvers. Collective on comm. */
  PetscErrorCode Setup(MPI_Comm comm, const SpeciesData &species, const W2Settings &settings);

  /* Evaluate - Computes the loss and, when dloss_dmu is not null, d loss / d mu_t. Every rank gets
     every week's values. Collective on the communicator of Setup. */
  PetscErrorCode Evaluate(const std::vector<std::vector<double>> &mu, double *loss,
                          std::vector<std::vector<double>> *dloss_dmu) override;

  const char *Name() const override { return "w2"; }

  /* The solver work of the last Evaluate and the totals since Setup. Not collective. */
  const W2Report &LastReport() const { return last_; }
  const W2Report &TotalReport() const { return total_; }

  /* The loss value of each time point at the last Evaluate (km^2). Not collective. */
  const std::vector<double> &WeekValues() const { return week_values_; }

  PetscInt Groups() const { return groups_; }
  double Epsilon() const { return settings_.epsilon; }
  bool WarmStart() const { return settings_.warm_start == PETSC_TRUE; }
  const OTSettings &SolverSettings() const { return ot_settings_; }

private:
  void FillSlab(PetscInt t, const std::vector<double> &mu_t, std::vector<double> *a) const;

  MPI_Comm comm_ = MPI_COMM_NULL, group_comm_ = MPI_COMM_NULL;
  W2Settings settings_;
  PetscInt groups_ = 1, group_ = 0;
  PetscMPIInt group_rank_ = 0;
  PetscInt n_timesteps_ = 0;
  OTSolver solver_;
  OTSettings ot_settings_;
  std::vector<PetscInt> week_group_;            // group that solves week t
  std::vector<PetscInt> slab_active_;           // active index of each slab cell, -1 if masked
  std::vector<std::vector<PetscInt>> position_; // position_[t][active]: state index or -1
  std::vector<PetscInt> week_offset_;           // start of week t's states in the flat gradient
  std::vector<std::vector<double>> targets_;    // y_t on this rank's slab, for the group's weeks
  std::vector<OTWarmStart> warm_;               // per time point, used for the group's weeks
  std::vector<double> week_values_;
  W2Report last_, total_;
};
} // namespace birdflow
