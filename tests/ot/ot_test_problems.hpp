// Test problems for the OT suite: global arrays built identically on every rank, slab extraction,
// gathering, and a dense log-domain Sinkhorn written independently of the separable solver.
#pragma once

#include "birdflow/ot.hpp"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace birdflow::testing
{
struct GridProblem
{
  PetscInt nrow = 0, ncol = 0;
  double h = 1;
  std::vector<double> a, b; // global, row-major, NaN = masked
};

// Two Gaussian bumps on an nrow x ncol grid with some zero-mass and masked cells, each summing
// to 1.
inline GridProblem BumpProblem(PetscInt nrow, PetscInt ncol, double h, bool with_holes)
{
  GridProblem p{nrow, ncol, h, {}, {}};
  p.a.resize(nrow * ncol);
  p.b.resize(nrow * ncol);
  double sa = 0, sb = 0;
  for (PetscInt r = 0; r < nrow; ++r)
    for (PetscInt c = 0; c < ncol; ++c) {
      double ar = (r - 0.3 * nrow) / (0.3 * nrow), ac = (c - 0.3 * ncol) / (0.3 * ncol);
      double br = (r - 0.7 * nrow) / (0.35 * nrow), bc = (c - 0.6 * ncol) / (0.25 * ncol);
      p.a[r * ncol + c] = std::exp(-ar * ar - ac * ac) + 0.01;
      p.b[r * ncol + c] = std::exp(-br * br - bc * bc) + 0.02;
    }
  if (with_holes) {
    p.a[1] = 0;                                                               // zero mass in a
    p.b[ncol + 1] = 0;                                                        // zero mass in b
    p.a[nrow * ncol - 1] = std::numeric_limits<double>::quiet_NaN();          // masked in a only
    p.a[2 * ncol] = p.b[2 * ncol] = std::numeric_limits<double>::quiet_NaN(); // masked in both
  }
  for (PetscInt i = 0; i < nrow * ncol; ++i) {
    if (!std::isnan(p.a[i])) sa += p.a[i];
    if (!std::isnan(p.b[i])) sb += p.b[i];
  }
  for (PetscInt i = 0; i < nrow * ncol; ++i) {
    p.a[i] /= sa;
    p.b[i] /= sb;
  }
  return p;
}

// The rows [row_start, row_start + rows) of a global row-major array.
inline std::vector<double> Slab(const std::vector<double> &global, PetscInt ncol,
                                PetscInt row_start, PetscInt rows)
{
  return std::vector<double>(global.begin() + row_start * ncol,
                             global.begin() + (row_start + rows) * ncol);
}

inline std::vector<double> Slab(const std::vector<double> &global, PetscInt ncol,
                                const OTSolver &solver)
{
  return Slab(global, ncol, solver.RowStart(), solver.LocalRows());
}

// Gathers row slabs (in rank order) into the global array on every rank. Collective.
inline std::vector<double> Gather(const std::vector<double> &local, MPI_Comm comm)
{
  int size, n = (int)local.size();
  MPI_Comm_size(comm, &size);
  std::vector<int> counts(size), displs(size, 0);
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, comm);
  for (int p = 1; p < size; ++p)
    displs[p] = displs[p - 1] + counts[p - 1];
  std::vector<double> global(displs[size - 1] + counts[size - 1]);
  MPI_Allgatherv(local.data(), n, MPI_DOUBLE, global.data(), counts.data(), displs.data(),
                 MPI_DOUBLE, comm);
  return global;
}

// A zero-sum direction supported where a > 0: d = a (u - sum a u) with u uniform in [-1, 1].
inline std::vector<double> ZeroSumDirection(const std::vector<double> &a, unsigned seed)
{
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-1, 1);
  std::vector<double> u(a.size()), d(a.size(), 0.0);
  double au = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    u[i] = uniform(engine);
    if (a[i] > 0) au += a[i] * u[i];
  }
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] > 0) d[i] = a[i] * (u[i] - au);
  return d;
}

inline std::vector<double> Axpy(const std::vector<double> &a, double t,
                                const std::vector<double> &d)
{
  std::vector<double> out(a);
  for (size_t i = 0; i < a.size(); ++i)
    if (!std::isnan(a[i])) out[i] += t * d[i];
  return out;
}

/* Dense log-domain Sinkhorn on the full cost matrix (KL convention), serial, for small grids. */
struct DenseSolution
{
  double value = 0, sharp = 0;
  std::vector<double> f, g; // gauge <a, f> = <b, g>
};

inline DenseSolution DenseSinkhorn(const GridProblem &p, double eps, int iterations)
{
  const PetscInt n = p.nrow * p.ncol;
  std::vector<double> cost(n * n), la(n), lb(n), f(n, 0.0), g(n, 0.0), a(n), b(n);
  for (PetscInt i = 0; i < n; ++i) {
    a[i] = std::isnan(p.a[i]) ? 0 : p.a[i];
    b[i] = std::isnan(p.b[i]) ? 0 : p.b[i];
    la[i] = a[i] > 0 ? std::log(a[i]) : -INFINITY;
    lb[i] = b[i] > 0 ? std::log(b[i]) : -INFINITY;
    for (PetscInt j = 0; j < n; ++j) {
      double dr = (double)(i / p.ncol - j / p.ncol) * p.h,
             dc = (double)(i % p.ncol - j % p.ncol) * p.h;
      cost[i * n + j] = dr * dr + dc * dc;
    }
  }
  auto softmin = [&](const std::vector<double> &lw, const std::vector<double> &pot, PetscInt i) {
    double m = -INFINITY, s = 0;
    for (PetscInt j = 0; j < n; ++j)
      m = std::max(m, lw[j] + (pot[j] - cost[i * n + j]) / eps);
    for (PetscInt j = 0; j < n; ++j)
      s += std::exp(lw[j] + (pot[j] - cost[i * n + j]) / eps - m);
    return -eps * (m + std::log(s));
  };
  for (int it = 0; it < iterations; ++it) {
    for (PetscInt i = 0; i < n; ++i)
      f[i] = softmin(lb, g, i);
    for (PetscInt j = 0; j < n; ++j)
      g[j] = softmin(la, f, j);
  }
  DenseSolution out;
  double af = 0, bg = 0;
  for (PetscInt i = 0; i < n; ++i) {
    if (a[i] > 0) af += a[i] * f[i];
    if (b[i] > 0) bg += b[i] * g[i];
  }
  double shift = 0.5 * (bg - af);
  for (PetscInt i = 0; i < n; ++i) {
    f[i] += shift;
    g[i] -= shift;
  }
  out.value = af + bg;
  for (PetscInt i = 0; i < n; ++i)
    for (PetscInt j = 0; j < n; ++j)
      if (a[i] > 0 && b[j] > 0)
        out.sharp +=
            cost[i * n + j] * a[i] * b[j] * std::exp((f[i] + g[j] - cost[i * n + j]) / eps);
  out.f = f;
  out.g = g;
  return out;
}
} // namespace birdflow::testing
