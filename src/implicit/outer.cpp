#include "birdflow/implicit.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace birdflow::implicit
{
namespace
{
double MaxAbs(const std::vector<double> &v)
{
  double m = 0.0;
  for (double x : v)
    m = std::max(m, std::fabs(x));
  return m;
}

// Moves theta - step * direction into the box and returns the point.
std::vector<double> ProjectedStep(const std::vector<double> &theta, const std::vector<double> &d,
                                  double step, const OuterOptions &options)
{
  std::vector<double> next(theta.size());
  for (size_t k = 0; k < theta.size(); ++k) {
    next[k] = theta[k] - step * d[k];
    if (!options.lower.empty()) next[k] = std::max(next[k], options.lower[k]);
    if (!options.upper.empty()) next[k] = std::min(next[k], options.upper[k]);
  }
  return next;
}

// Returns the Barzilai-Borwein step s.s / s.y, or `fallback` when the curvature s.y is not
// positive.
double BarzilaiBorweinStep(const std::vector<double> &s, const std::vector<double> &y,
                           double fallback)
{
  double ss = 0.0, sy = 0.0;
  for (size_t k = 0; k < s.size(); ++k) {
    ss += s[k] * s[k];
    sy += s[k] * y[k];
  }
  return sy > 0 ? ss / sy : fallback;
}

PetscErrorCode GradientDescent(const HyperObjective &objective, const HyperObserver &observer,
                               const OuterOptions &options, std::vector<double> *theta,
                               double *best_value)
{
  double value, trial_value;
  std::vector<double> gradient, trial_gradient, trial;

  PetscFunctionBeginUser;
  bool stop = false;
  PetscCall(objective(*theta, &value, &gradient));
  PetscCall(observer(0, true, &stop));
  double step = MaxAbs(gradient) > 0 ? options.max_step / MaxAbs(gradient) : 0.0;
  for (PetscInt it = 1; it <= options.max_it && MaxAbs(gradient) > options.gtol && !stop; ++it) {
    // 1. Backtracking from the current step until the Armijo condition holds.
    bool accepted = false, stalled = false;
    for (int halving = 0; halving < 40 && !accepted && !stalled; ++halving) {
      step = std::min(step, options.max_step / MaxAbs(gradient));
      trial = ProjectedStep(*theta, gradient, step, options);
      double decrease = 0.0, move = 0.0;
      for (size_t k = 0; k < trial.size(); ++k) {
        decrease += gradient[k] * (trial[k] - (*theta)[k]);
        move = std::max(move, std::fabs(trial[k] - (*theta)[k]));
      }
      if (move < options.xtol) {
        stalled = true;
        break;
      }
      PetscCall(objective(trial, &trial_value, &trial_gradient));
      accepted = trial_value <= value + options.armijo * decrease;
      PetscCall(observer(it, accepted, &stop));
      if (!accepted) step *= 0.5;
    }
    if (!accepted) break;

    // 2. The next trial step comes from the Barzilai-Borwein secant, a scale-free guess, capped at
    //    twice the accepted step. Near a kink of the objective (a Lasso support change) the secant
    //    overshoots, and the cap keeps the number of rejected trials small.
    std::vector<double> s(trial.size()), y(trial.size());
    for (size_t k = 0; k < trial.size(); ++k) {
      s[k] = trial[k] - (*theta)[k];
      y[k] = trial_gradient[k] - gradient[k];
    }
    step = std::min(BarzilaiBorweinStep(s, y, 2.0 * step), 2.0 * step);
    if (value - trial_value < options.ftol * std::fabs(value)) stop = true;
    *theta = trial;
    value = trial_value;
    gradient = trial_gradient;
  }
  *best_value = value;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode Adam(const HyperObjective &objective, const HyperObserver &observer,
                    const OuterOptions &options, std::vector<double> *theta, double *best_value)
{
  double value;
  std::vector<double> gradient, best_theta = *theta;
  std::vector<double> m(theta->size(), 0.0), v(theta->size(), 0.0), direction(theta->size());

  PetscFunctionBeginUser;
  *best_value = INFINITY;
  for (PetscInt it = 0; it <= options.max_it; ++it) {
    bool stop = false;
    PetscCall(objective(*theta, &value, &gradient));
    PetscCall(observer(it, true, &stop));
    if (value < *best_value) {
      *best_value = value;
      best_theta = *theta;
    }
    if (stop || it == options.max_it || MaxAbs(gradient) <= options.gtol) break;
    double bias1 = 1.0 - std::pow(options.adam_beta1, it + 1);
    double bias2 = 1.0 - std::pow(options.adam_beta2, it + 1);
    for (size_t k = 0; k < theta->size(); ++k) {
      m[k] = options.adam_beta1 * m[k] + (1 - options.adam_beta1) * gradient[k];
      v[k] = options.adam_beta2 * v[k] + (1 - options.adam_beta2) * gradient[k] * gradient[k];
      direction[k] = (m[k] / bias1) / (std::sqrt(v[k] / bias2) + 1e-12);
    }
    *theta = ProjectedStep(*theta, direction, options.adam_lr, options);
  }
  *theta = best_theta;
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

PetscErrorCode OuterOptionsSetFromOptions(const char *prefix, OuterOptions *options)
{
  char type[32] = "gd";
  PetscBool set;
  PetscReal value;

  PetscFunctionBeginUser;
  PetscCall(PetscOptionsGetString(nullptr, prefix, "-type", type, sizeof(type), &set));
  PetscCheck(!std::strcmp(type, "gd") || !std::strcmp(type, "adam"), PETSC_COMM_WORLD,
             PETSC_ERR_ARG_OUTOFRANGE, "-%stype %s is invalid; use gd or adam", prefix, type);
  options->type = std::strcmp(type, "adam") ? OuterType::GradientDescent : OuterType::Adam;
  PetscCall(PetscOptionsGetInt(nullptr, prefix, "-max_it", &options->max_it, &set));
  struct
  {
    const char *name;
    double *target;
  } reals[] = {{"-max_step", &options->max_step},
               {"-xtol", &options->xtol},
               {"-ftol", &options->ftol},
               {"-gtol", &options->gtol},
               {"-adam_lr", &options->adam_lr},
               {"-adam_beta1", &options->adam_beta1},
               {"-adam_beta2", &options->adam_beta2}};
  for (auto &entry : reals) {
    PetscCall(PetscOptionsGetReal(nullptr, prefix, entry.name, &value, &set));
    if (set) *entry.target = value;
  }
  PetscCheck(options->max_it >= 0 && options->max_step > 0 && options->adam_lr > 0,
             PETSC_COMM_WORLD, PETSC_ERR_ARG_OUTOFRANGE,
             "-%smax_it must be >= 0, -%smax_step and -%sadam_lr > 0", prefix, prefix, prefix);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode MinimizeHyperparameters(const HyperObjective &objective,
                                       const HyperObserver &observer, const OuterOptions &options,
                                       std::vector<double> *theta, double *best_value)
{
  PetscFunctionBeginUser;
  if (options.type == OuterType::Adam)
    PetscCall(Adam(objective, observer, options, theta, best_value));
  else
    PetscCall(GradientDescent(objective, observer, options, theta, best_value));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::implicit
