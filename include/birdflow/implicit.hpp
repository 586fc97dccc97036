// Hypergradients of bilevel problems by implicit differentiation, and outer optimisers for them.
//
// Inner problem: w*(theta) = argmin_w g(w, theta), with m hyperparameters theta. Outer criterion:
// L(w*(theta), theta). With A = d^2 g / dw^2 at w* (n x n, symmetric) and B = d(grad_w g)/d theta
// (n x m), the implicit function theorem gives dw*/dtheta = -A^{-1} B, so
//   grad_theta L = d_theta L - B^T z,  where  A z = grad_w L   (the adjoint system).
// One KSP solve gives the whole gradient, whatever m is.
#pragma once

#include <petscksp.h>

#include <functional>
#include <string>
#include <vector>

namespace birdflow::implicit
{
/* Applies B^T to the adjoint vector z and writes the m entries of B^T z to `out` on every rank.
   Collective. */
using CrossTransposeFn = std::function<PetscErrorCode(Vec z, std::vector<double> *out)>;

/* Outcome of one adjoint solve. */
struct SolveReport
{
  PetscInt iterations = 0;
  KSPConvergedReason reason = KSP_CONVERGED_ITERATING;
  double residual_norm = 0.0;
  double shift = 0.0; // > 0 when the fallback solved (A + shift I) z = grad_w L instead
};

/* Adjoint solver of the bilevel hypergradient. Owns a KSP under its own options prefix. */
class HypergradientSolver
{
public:
  /* Create - Creates the KSP (CG, no preconditioner, relative tolerance 1e-10, at most 1000
     iterations by default) under `prefix`, so -<prefix>ksp_type, -<prefix>pc_type,
     -<prefix>ksp_rtol and -<prefix>ksp_converged_reason apply. Collective. */
  PetscErrorCode Create(MPI_Comm comm, const char *prefix);

  /* Compute - Solves A z = grad_w_outer and sets
       hypergradient[k] = grad_theta_outer[k] - (B^T z)[k],  k = 0..m-1,
     where m = grad_theta_outer.size(). `A` is usually a MatShell (it needs MATOP_MULT only, and
     MATOP_GET_DIAGONAL for -<prefix>pc_type jacobi); its layout must match grad_w_outer.

     A singular or indefinite A (CG breakdown, divergence or too many iterations) triggers one
     retry with the shift 1e-8 * max|diag A| (or 1e-8 when the diagonal is not available), recorded
     in report->shift. If that fails too, or z is not finite, Compute fails with a message that
     names the KSP reason. A non-null `initial_guess` (same layout as grad_w_outer) starts CG from
     that vector instead of zero, e.g. the adjoint of the previous outer step. Collective. */
  PetscErrorCode Compute(Mat A, Vec grad_w_outer, const std::vector<double> &grad_theta_outer,
                         const CrossTransposeFn &cross_transpose,
                         std::vector<double> *hypergradient, SolveReport *report,
                         Vec initial_guess = nullptr);

  /* Returns the adjoint z of the last Compute (owned by the solver), or null. Not collective. */
  Vec Adjoint() const { return z_; }

  /* Destroy - Frees the KSP and the adjoint. Collective. */
  PetscErrorCode Destroy();

private:
  PetscErrorCode SolveOnce(Mat A, Vec rhs, bool nonzero_guess, SolveReport *report);

  KSP ksp_ = nullptr;
  Vec z_ = nullptr;
  std::string prefix_;
};

/* Objective of the outer problem: sets the value and the gradient at theta. Collective. */
using HyperObjective = std::function<PetscErrorCode(const std::vector<double> &theta, double *value,
                                                    std::vector<double> *gradient)>;

/* Observer called after each evaluation with the outer iteration and whether the optimiser accepted
   the point (line-search trials that fail are not accepted). Setting *stop ends the minimisation
   after an accepted point. Collective. */
using HyperObserver = std::function<PetscErrorCode(PetscInt iteration, bool accepted, bool *stop)>;

enum class OuterType { GradientDescent, Adam };

/* Settings of the outer optimisers, read by OuterOptionsSetFromOptions under a prefix P:
   -P_type gd|adam      gradient descent with backtracking (Armijo) line search, or Adam
   -P_max_it N          outer iterations (50)
   -P_max_step S        largest move of any theta entry in one step (1.0)
   -P_xtol X            stop when a step would move theta by less than X (1e-6)
   -P_ftol F            stop when an accepted step lowers the value by less than F |value| (1e-12)
   -P_gtol G            stop when ||grad||_inf < G (0)
   -P_adam_lr R         Adam learning rate (0.05)
   -P_adam_beta1, -P_adam_beta2 (0.9, 0.999) */
struct OuterOptions
{
  OuterType type = OuterType::GradientDescent;
  PetscInt max_it = 50;
  double max_step = 1.0;
  double xtol = 1e-6;
  double ftol = 1e-12;
  double gtol = 0.0;
  double adam_lr = 0.05;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double armijo = 1e-4;
  std::vector<double> lower, upper; // box bounds on theta; empty means unbounded
};

/* OuterOptionsSetFromOptions - Reads OuterOptions under `prefix` (e.g. "lasso_outer_"). Not
   collective, but every rank must see the same options. */
PetscErrorCode OuterOptionsSetFromOptions(const char *prefix, OuterOptions *options);

/* MinimizeHyperparameters - Minimises `objective` over theta within the bounds, starting from
 *theta, and leaves the best point seen in *theta and its value in *best_value. Collective. */
PetscErrorCode MinimizeHyperparameters(const HyperObjective &objective,
                                       const HyperObserver &observer, const OuterOptions &options,
                                       std::vector<double> *theta, double *best_value);
} // namespace birdflow::implicit
