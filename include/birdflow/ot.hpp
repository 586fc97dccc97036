// Entropic optimal transport (squared-Euclidean cost) between two distributions on a regular
// raster grid, solved by separable log-domain Sinkhorn on a row/column-slab partition.
//
// Conventions:
//  - Cell (r, c) of an nrow x ncol grid has its centre at (c h, -r h) km, so the cost between two
//    cells is C = h^2 ((r - r')^2 + (c - c')^2) in km^2.
//  - Entropy relative to the product measure: OT_eps(a, b) = min_P <C, P> + eps KL(P | a x b), with
//    P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps). eps is in km^2; eps / h^2 is the resolution-free
//    number (the solver is tested down to eps / h^2 = 0.25).
//  - Arrays handed to and returned by OTSolver are this rank's row slab (rows
//    [RowStart(), RowStart() + LocalRows()), all columns), row-major. NaN marks a masked cell: it
//    carries no mass and its potential and gradient entries are NaN. A zero-mass cell that is not
//    masked gets finite potentials and gradients (the one-sided derivative for adding mass there).
//  - Gradients with respect to a are centred: their mean over the cells not masked in a is zero.
//    They are exact only along directions that keep the total mass, which is all a simplex allows.
#pragma once

#include <petscksp.h>

#include <memory>
#include <vector>

namespace birdflow
{
/* What OTSolver::Evaluate computes. */
enum class OTQuantity {
  kEntropic,   // OT_eps(a, b)
  kDivergence, // S_eps(a, b) = OT_eps(a, b) - OT_eps(a, a) / 2 - OT_eps(b, b) / 2
  kSharp       // <C, P_eps>, the transport cost of the entropic plan
};

/* Sinkhorn settings. OTSolver::SetFromOptions overrides them from the options database. */
struct OTSettings
{
  double tolerance = 1e-9;          // -ot_tol: stop when sum_i |(P 1)_i - a_i| falls below it
  PetscInt max_iterations = 200000; // -ot_max_it: Sinkhorn iterations per eps stage
  double anneal_factor = 0.5; // -ot_anneal_factor: eps ratio between stages; 1 disables annealing
  double anneal_init = 0;     // -ot_anneal_init (km^2): first eps; 0 means the squared diameter
  double anneal_tolerance = 1e-3; // -ot_anneal_tol: marginal error that ends an intermediate stage
  PetscBool anneal_warm = PETSC_FALSE; // -ot_anneal_warm: anneal even from warm-started potentials
  double omega = 0; // -ot_omega: over-relaxation in [1, 2); 0 adapts it to the observed rate
};

/* Potentials kept between calls for one (a, b) pair, e.g. one week of a training run. Evaluate
   starts from them when they fit the grid and stores the new ones. Values in km^2, row layout. */
struct OTWarmStart
{
  std::vector<double> f, g, f_aa, f_bb;
};

/* Solver statistics of one Evaluate or HessianVectorProduct call. */
struct OTReport
{
  PetscInt iterations = 0;   // Sinkhorn iterations of OT(a, b), all eps stages
  double marginal_error = 0; // sum_i |(P 1)_i - a_i| of the returned potentials
  PetscBool converged = PETSC_FALSE;
  PetscInt eps_stages = 0; // annealing stages of OT(a, b), the target included
  PetscInt iterations_aa = 0, iterations_bb = 0; // symmetric solves of the divergence
  double marginal_error_aa = 0, marginal_error_bb = 0;
  PetscInt ksp_iterations = 0; // implicit solves (sharp gradient, Hessian-vector products)
  KSPConvergedReason ksp_reason = KSP_CONVERGED_ITERATING;
};

/* Output of OTSolver::Evaluate. Vectors have LocalSize() entries (row layout). */
struct OTResult
{
  double value = 0;               // the requested quantity, km^2
  std::vector<double> f, g;       // potentials of OT(a, b), gauge fixed by <a, f> = <b, g>
  std::vector<double> gradient_a; // d value / d a (centred); empty unless requested
  std::vector<double> gradient_b; // d value / d b (centred over cells not masked in b)
  OTReport report;
};

/*
  OTSolver - entropic OT on one grid and communicator. Create it once per grid and communicator
  (a sub-communicator works: each group of ranks can own its own solver) and call Evaluate once per
  pair of distributions. The work per Sinkhorn iteration is O(n (nrow + ncol)) / ranks with
  n = nrow ncol, the memory O(n / ranks); each half-iteration costs one MPI_Alltoallv.

  Options database keys (prefix -ot_):
    -ot_tol, -ot_max_it, -ot_anneal_factor, -ot_anneal_init, -ot_anneal_tol, -ot_anneal_warm,
    -ot_omega
    -ot_hess_ksp_* and -ot_hess_pc_*: the implicit solves (default KSPCG, PCNONE, rtol 1e-10)
*/
class OTSolver
{
public:
  OTSolver();
  ~OTSolver();
  OTSolver(const OTSolver &) = delete;
  OTSolver &operator=(const OTSolver &) = delete;

  /* Setup - Partitions an nrow x ncol grid of cells of side cell_size_km over comm: row slabs and
     column slabs of nearly equal size (ranks may own no rows when there are more ranks than rows).
     Collective on comm. */
  PetscErrorCode Setup(MPI_Comm comm, PetscInt nrow, PetscInt ncol, double cell_size_km);

  /* SetFromOptions - Reads the -ot_ options into Settings(). Collective. */
  PetscErrorCode SetFromOptions();

  OTSettings &Settings() { return settings_; }

  /* This rank's row slab. Not collective. */
  PetscInt RowStart() const;
  PetscInt LocalRows() const;
  PetscInt LocalSize() const;

  /*
    Evaluate - Computes `quantity` for the distributions a and b (LocalSize() entries each, NaN for
    masked cells, non-negative elsewhere, each summing to 1 over all ranks within 1e-6; they are
    rescaled to sum exactly to 1). With `gradient`, also fills result->gradient_a and gradient_b:
    the envelope gradient for kEntropic and kDivergence, the implicit gradient (one KSP solve) for
    kSharp. `warm` may be null. Collective.

    Errors: PETSC_ERR_ARG_OUTOFRANGE for eps <= 0, negative or infinite entries, or sums far from 1;
    PETSC_ERR_NOT_CONVERGED never: check result->report.converged.
  */
  PetscErrorCode Evaluate(OTQuantity quantity, const double *a, const double *b, double eps,
                          bool gradient, OTWarmStart *warm, OTResult *result);

  /*
    HessianVectorProduct - Applies the Hessian of S_eps(a, b) with respect to a, at the a, b and eps
    of the last Evaluate(kDivergence, ...), to the direction v (row layout). v is first projected on
    the zero-sum directions over the cells not masked in a; hv is centred and NaN at masked cells.
    Two KSP solves; their total iterations go to report->ksp_iterations. Collective.
  */
  PetscErrorCode HessianVectorProduct(const double *v, double *hv, OTReport *report);

  /* Implementation state; defined in src/ot/ot_internal.hpp. */
  struct Impl;

private:
  OTSettings settings_;
  std::unique_ptr<Impl> impl_;
};
} // namespace birdflow
