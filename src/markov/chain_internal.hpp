// Helpers shared by the forward and reverse sweeps of the Markov chain.
#pragma once

#include "birdflow/markov.hpp"

#include <cfloat>
#include <cmath>

namespace birdflow::detail
{
extern PetscLogEvent chain_forward_event, chain_backward_event;

/* Returns log(x), with a finite value at x = 0 so that 0 * log 0 contributes 0. */
inline double SafeLog(double x)
{
  return x > 0 ? std::log(x) : std::log(DBL_MIN);
}

/* AllgatherWeek - Gathers the owned entries `local` of a week-t vector into the full vector on
   every rank. Collective on chain.comm. */
PetscErrorCode AllgatherWeek(const MarkovChain &chain, PetscInt t, const double *local,
                             std::vector<double> *full);
} // namespace birdflow::detail
