// Double-double (compensated) sums whose result does not depend on how the terms are split over
// ranks, up to about one rounding of the final double.
#pragma once

#include <petscsys.h>

#include <utility>

namespace birdflow
{
/* An unevaluated sum hi + lo with |lo| much smaller than |hi|. */
struct DoubleDouble
{
  double hi = 0;
  double lo = 0;

  double Value() const { return hi + lo; }
};

/* Adds x to a with Knuth's TwoSum, keeping the rounding error of the addition in a.lo. */
inline void AddTo(DoubleDouble &a, double x)
{
  double sum = a.hi + x;
  double virtual_x = sum - a.hi;
  double error = (a.hi - (sum - virtual_x)) + (x - virtual_x);
  a.hi = sum;
  a.lo += error;
}

/* Returns the normalised sum of two double-double values. The operands are put in a fixed order
   first, so Combine(a, b) and Combine(b, a) agree bit for bit and every rank of an allreduce gets
   the same result. */
inline DoubleDouble Combine(DoubleDouble a, DoubleDouble b)
{
  if (a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo)) std::swap(a, b);
  AddTo(a, b.hi);
  a.lo += b.lo;
  double sum = a.hi + a.lo;
  a.lo -= sum - a.hi;
  a.hi = sum;
  return a;
}

/* AllreduceDoubleDouble - Sums `count` double-double values over the ranks of comm in place, with
   a commutative user-defined MPI reduction. Collective. */
PetscErrorCode AllreduceDoubleDouble(MPI_Comm comm, DoubleDouble *values, int count);
} // namespace birdflow
