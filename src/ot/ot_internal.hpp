// Internal state and kernels of OTSolver (not installed).
//
// Two layouts of the nrow x ncol grid coexist:
//  - row layout: rank p owns rows [row_start[p], row_start[p+1]), stored row-major, so each grid
//    row is a contiguous line and the "row pass" (a log-sum-exp over the column index) is local;
//  - column layout: rank p owns columns [col_start[p], col_start[p+1]), stored column-major, so
//    the "column pass" (over the row index) is local.
// Because the Gibbs kernel is K = K_rowpass (x) K_colpass and the two factors commute, a kernel
// application can start in either layout and end in the other with one MPI_Alltoallv. Sinkhorn
// keeps a and f in row layout and b and g in column layout.
#pragma once

#include "birdflow/ot.hpp"

#include <petscksp.h>

#include <limits>
#include <vector>

namespace birdflow
{
namespace ot_detail
{
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/* Row-slab and column-slab partitions of the grid and the Alltoallv counts between them. */
struct SlabLayout
{
  MPI_Comm comm = MPI_COMM_NULL; // a duplicate of the user's communicator
  PetscMPIInt size = 1, rank = 0;
  PetscInt nrow = 0, ncol = 0;
  double cell_size = 0;                       // km
  std::vector<PetscInt> row_start, col_start; // size + 1 entries each
  PetscInt local_rows = 0, local_cols = 0;
  PetscInt n_row_layout = 0, n_col_layout = 0; // local entries of one field in each layout
  // Counts and displacements (in doubles, one field) for the row-to-column transpose. The
  // column-to-row transpose uses the same arrays with send and receive swapped.
  std::vector<int> to_col_send_counts, to_col_send_displs, to_col_recv_counts, to_col_recv_displs;
};

/* The log of a 1D Gibbs factor on a line of L cells: logk[i L + j] = log(w(i - j)) - h^2 (i - j)^2
   / eps, with w = 1 (plain) or w = h^2 (i - j)^2 (cost-weighted, -inf on the diagonal). */
struct LineKernel
{
  PetscInt length = 0;
  std::vector<double> logk;
};

/* Which 1D factor carries the cost weight in a separable application: (K o C) = (K_r o C_r) (x) K_c
   + K_r (x) (K_c o C_c), where the row pass sums over columns (C_c) and the column pass over rows.
 */
enum class KernelWeight { kPlain, kCostInRowPass, kCostInColumnPass };

/* Statistics of one Sinkhorn solve (all annealing stages). */
struct SinkhornStats
{
  PetscInt iterations = 0, stages = 0;
  double marginal_error = 0;
  bool converged = false;
};

/* Profiling events, registered once. */
struct OTEvents
{
  PetscLogEvent sinkhorn, symmetric, line_pass, transpose, hess_mult, implicit_solve;
};
PetscErrorCode RegisterEvents(OTEvents *events);
} // namespace ot_detail

struct OTSolver::Impl
{
  ot_detail::SlabLayout layout;
  ot_detail::OTEvents events{};

  // Kernels for the current eps.
  double kernel_eps = 0;
  ot_detail::LineKernel row_plain, row_cost, col_plain, col_cost;

  // Work buffers: up to two fields in each layout, plus the Alltoallv buffers.
  std::vector<double> work_row, work_col, send_buffer, recv_buffer;

  // The current problem. a and b are normalised, 0 at masked cells.
  double eps = 0;
  std::vector<double> a_row, b_row, b_col;
  std::vector<double> log_a_row, log_b_row, log_b_col;
  std::vector<char> a_masked, b_masked;            // row layout
  PetscInt a_domain_cells = 0, b_domain_cells = 0; // cells not masked, over all ranks

  // Potentials: f, f_aa, f_bb in row layout, g in column layout.
  std::vector<double> f_row, g_col, f_aa, f_bb;
  bool have_divergence = false; // f_aa is valid for the current problem
};

namespace ot_detail
{
// kernel.cpp: layouts, transposes and log-domain separable kernel applications.
PetscErrorCode SetupSlabLayout(MPI_Comm comm, PetscInt nrow, PetscInt ncol, double cell_size,
                               SlabLayout *layout);
PetscErrorCode DestroySlabLayout(SlabLayout *layout);
PetscErrorCode TransposeRowsToColumns(OTSolver::Impl &impl, PetscInt nfields, const double *in_row,
                                      double *out_col);
PetscErrorCode TransposeColumnsToRows(OTSolver::Impl &impl, PetscInt nfields, const double *in_col,
                                      double *out_row);
void BuildLineKernel(PetscInt length, double h, double eps, bool cost_weighted, LineKernel *kernel);
PetscErrorCode LogConvolveLines(OTSolver::Impl &impl, PetscInt nlines, const LineKernel &kernel,
                                const double *in, double *out);
PetscErrorCode SetKernelEps(OTSolver::Impl &impl, double eps);
PetscErrorCode LogApplyFromRows(OTSolver::Impl &impl, PetscInt nfields, KernelWeight weight,
                                const double *in_row, double *out_col);
PetscErrorCode LogApplyFromColumns(OTSolver::Impl &impl, PetscInt nfields, KernelWeight weight,
                                   const double *in_col, double *out_row);
double ExpNonPositive(double x);

// plan.cpp: products with the plan and its variants, in linear (not log) values.
PetscErrorCode SignedApplyFromColumns(OTSolver::Impl &impl, KernelWeight weight,
                                      const std::vector<double> &row_log,
                                      const std::vector<double> &col_log, const double *z_col,
                                      double *out_row);
PetscErrorCode SignedApplyFromRows(OTSolver::Impl &impl, KernelWeight weight,
                                   const std::vector<double> &row_log,
                                   const std::vector<double> &col_log, const double *z_row,
                                   double *out_col);
PetscErrorCode SignedApplyRowsToRows(OTSolver::Impl &impl, const std::vector<double> &out_log,
                                     const std::vector<double> &in_log, const double *z_row,
                                     double *out_row);
PetscErrorCode CostWeightedFromColumns(OTSolver::Impl &impl, const std::vector<double> &row_log,
                                       const std::vector<double> &col_log, double *out_row);
PetscErrorCode CostWeightedFromRows(OTSolver::Impl &impl, const std::vector<double> &row_log,
                                    const std::vector<double> &col_log, double *out_col);
PetscErrorCode SumOverRanks(MPI_Comm comm, double local, double *global);

// sinkhorn.cpp: the fixed-point iterations.
PetscErrorCode UpdateRowPotential(OTSolver::Impl &impl, const std::vector<double> &g_col,
                                  std::vector<double> *f_row);
PetscErrorCode UpdateColumnPotential(OTSolver::Impl &impl, const std::vector<double> &f_row,
                                     std::vector<double> *g_col);
PetscErrorCode SymmetricTransform(OTSolver::Impl &impl, const std::vector<double> &log_w_row,
                                  const std::vector<double> &f_row, std::vector<double> *t_row);
PetscErrorCode SolveSinkhorn(OTSolver::Impl &impl, const OTSettings &settings, bool warm,
                             SinkhornStats *stats);
PetscErrorCode SolveSymmetric(OTSolver::Impl &impl, const OTSettings &settings,
                              const std::vector<double> &log_w_row, bool warm,
                              std::vector<double> *f_row, SinkhornStats *stats);
std::vector<double> EpsSchedule(const OTSolver::Impl &impl, const OTSettings &settings, bool warm);

// implicit.cpp: implicit differentiation through the Sinkhorn fixed point.
PetscErrorCode SharpCostGradient(OTSolver::Impl &impl, std::vector<double> *gradient_a_row,
                                 std::vector<double> *gradient_b_row, OTReport *report);
PetscErrorCode DivergenceHessianProduct(OTSolver::Impl &impl, const std::vector<double> &v_row,
                                        std::vector<double> *hv_row, OTReport *report);
} // namespace ot_detail
} // namespace birdflow
