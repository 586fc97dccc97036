// Layouts, transposes and the log-domain separable Gibbs kernel.
#include "ot_internal.hpp"

#include "birdflow/petsc_compat.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// The hot loops need neither floating-point traps nor signed zeros; without these two flags GCC
// neither vectorises the clamped exponential nor the blocked max. Infinities and NaN keep their
// IEEE meaning (unlike -ffast-math), which the -inf entries of zero-mass cells rely on.
#pragma GCC optimize("no-trapping-math", "no-signed-zeros")

namespace birdflow
{
namespace ot_detail
{
namespace
{
// Splits n items over size parts, the first n % size parts getting one more. Returns size + 1
// start offsets.
std::vector<PetscInt> SplitEvenly(PetscInt n, PetscMPIInt size)
{
  std::vector<PetscInt> start(size + 1, 0);
  for (PetscMPIInt p = 0; p < size; ++p)
    start[p + 1] = start[p] + n / size + (p < n % size);
  return start;
}

// exp(x) for x <= 0 without branches, so GCC vectorises the loops that call it. Inputs below -700
// are clamped (exp(-700) = 1e-304, negligible next to the leading term 1 of every sum it enters).
// Range reduction x = k ln2 + r with |r| <= ln2 / 2, then a degree-13 Taylor polynomial (relative
// truncation error below 2e-16), then 2^k assembled in the exponent bits.
inline double ExpClamped(double x)
{
  constexpr double kLog2e = 1.4426950408889634, kLn2High = 6.93147180369123816490e-01,
                   kLn2Low = 1.90821492927058770002e-10, kShifter = 6755399441055744.0;
  x = x < -700.0 ? -700.0 : x;
  double shifted = x * kLog2e + kShifter;
  double k = shifted - kShifter;
  double r = x - k * kLn2High - k * kLn2Low;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // The low bits of `shifted` hold k in two's complement; move k + 1023 into the exponent field.
  std::int64_t bits;
  std::memcpy(&bits, &shifted, sizeof(bits));
  std::int64_t scale_bits = (bits + 1023) << 52;
  double scale;
  std::memcpy(&scale, &scale_bits, sizeof(scale));
  return p * scale;
}

// Terms more than this below the largest term of a log-sum-exp are skipped: each contributes less
// than exp(-50) = 2e-22 relative to the sum, so a line of L cells loses at most L * 2e-22.
constexpr double kNegligibleLogRatio = 50.0;

// Lanes of the blocked sum below: eight independent partial sums let GCC vectorise it without
// -ffast-math (which would also assume that no -inf occurs).
constexpr PetscInt kLanes = 8;

// Four doubles as a GCC vector (one AVX2 register, two SSE2 registers on the default target).
typedef double Double4 __attribute__((vector_size(32)));

// Returns max_j terms[j] for terms[j] = x[j] + k[j], storing the terms.
inline double TermsAndMax(PetscInt length, const double *x, const double *k, double *terms)
{
  Double4 lane_max = {kNegInf, kNegInf, kNegInf, kNegInf};
  PetscInt j = 0;
  for (; j + 4 <= length; j += 4) {
    Double4 xv, kv;
    std::memcpy(&xv, x + j, sizeof(xv));
    std::memcpy(&kv, k + j, sizeof(kv));
    Double4 t = xv + kv;
    std::memcpy(terms + j, &t, sizeof(t));
    lane_max = t > lane_max ? t : lane_max;
  }
  double m = kNegInf;
  for (; j < length; ++j) {
    terms[j] = x[j] + k[j];
    m = terms[j] > m ? terms[j] : m;
  }
  for (int l = 0; l < 4; ++l)
    m = lane_max[l] > m ? lane_max[l] : m;
  return m;
}

// Returns sum_{j = lo..hi} exp(terms[j] - m).
inline double SumExp(PetscInt lo, PetscInt hi, const double *terms, double m)
{
  double lane_sum[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  PetscInt j = lo;
  for (; j + kLanes <= hi + 1; j += kLanes)
    for (PetscInt l = 0; l < kLanes; ++l)
      lane_sum[l] += ExpClamped(terms[j + l] - m);
  double sum = 0;
  for (; j <= hi; ++j)
    sum += ExpClamped(terms[j] - m);
  for (PetscInt l = 0; l < kLanes; ++l)
    sum += lane_sum[l];
  return sum;
}

// out[i] = log sum_j exp(x[j] + logk[L - 1 + j - i]) for one line, each output shifted by its own
// maximum so nothing overflows and -inf inputs (zero mass) contribute exactly nothing. The
// exponentials run only over the window [lo, hi] of terms within kNegligibleLogRatio of the
// maximum, which at small eps is a few cells wide. `terms` is scratch space of `length` entries.
__attribute__((target_clones("arch=x86-64-v3", "default"))) void
LogConvolveLine(PetscInt length, const double *logk, const double *x, double *out, double *terms)
{
  for (PetscInt i = 0; i < length; ++i) {
    const double m = TermsAndMax(length, x, logk + (length - 1 - i), terms);
    if (m == kNegInf) {
      out[i] = kNegInf;
      continue;
    }
    const double threshold = m - kNegligibleLogRatio;
    PetscInt lo = 0, hi = length - 1;
    while (terms[lo] < threshold)
      ++lo;
    while (terms[hi] < threshold)
      --hi;
    out[i] = m + std::log(SumExp(lo, hi, terms, m));
  }
}
} // namespace

double ExpNonPositive(double x)
{
  return ExpClamped(x);
}

PetscErrorCode RegisterEvents(OTEvents *events)
{
  static bool registered = false;
  static OTEvents stored;
  PetscClassId class_id;

  PetscFunctionBeginUser;
  if (!registered) {
    PetscCall(PetscClassIdRegister("BirdFlow OT", &class_id));
    PetscCall(PetscLogEventRegister("OTSinkhorn", class_id, &stored.sinkhorn));
    PetscCall(PetscLogEventRegister("OTSymmetric", class_id, &stored.symmetric));
    PetscCall(PetscLogEventRegister("OTLinePass", class_id, &stored.line_pass));
    PetscCall(PetscLogEventRegister("OTTranspose", class_id, &stored.transpose));
    PetscCall(PetscLogEventRegister("OTHessMult", class_id, &stored.hess_mult));
    PetscCall(PetscLogEventRegister("OTImplicitSolve", class_id, &stored.implicit_solve));
    registered = true;
  }
  *events = stored;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode SetupSlabLayout(MPI_Comm comm, PetscInt nrow, PetscInt ncol, double cell_size,
                               SlabLayout *layout)
{
  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_dup(comm, &layout->comm));
  PetscCallMPI(MPI_Comm_size(layout->comm, &layout->size));
  PetscCallMPI(MPI_Comm_rank(layout->comm, &layout->rank));
  layout->nrow = nrow;
  layout->ncol = ncol;
  layout->cell_size = cell_size;
  layout->row_start = SplitEvenly(nrow, layout->size);
  layout->col_start = SplitEvenly(ncol, layout->size);
  const PetscMPIInt rank = layout->rank, size = layout->size;
  layout->local_rows = layout->row_start[rank + 1] - layout->row_start[rank];
  layout->local_cols = layout->col_start[rank + 1] - layout->col_start[rank];
  layout->n_row_layout = layout->local_rows * ncol;
  layout->n_col_layout = layout->local_cols * nrow;

  layout->to_col_send_counts.assign(size, 0);
  layout->to_col_send_displs.assign(size, 0);
  layout->to_col_recv_counts.assign(size, 0);
  layout->to_col_recv_displs.assign(size, 0);
  for (PetscMPIInt p = 0; p < size; ++p) {
    PetscInt cols_p = layout->col_start[p + 1] - layout->col_start[p];
    PetscInt rows_p = layout->row_start[p + 1] - layout->row_start[p];
    layout->to_col_send_counts[p] = (int)(layout->local_rows * cols_p);
    layout->to_col_recv_counts[p] = (int)(rows_p * layout->local_cols);
    if (p > 0) {
      layout->to_col_send_displs[p] =
          layout->to_col_send_displs[p - 1] + layout->to_col_send_counts[p - 1];
      layout->to_col_recv_displs[p] =
          layout->to_col_recv_displs[p - 1] + layout->to_col_recv_counts[p - 1];
    }
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode DestroySlabLayout(SlabLayout *layout)
{
  PetscFunctionBeginUser;
  if (layout->comm != MPI_COMM_NULL) PetscCallMPI(MPI_Comm_free(&layout->comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

namespace
{
// Scales one-field counts and displacements to nfields interleaved blocks per peer.
void ScaleCounts(const std::vector<int> &counts, PetscInt nfields, std::vector<int> *scaled,
                 std::vector<int> *displs)
{
  scaled->resize(counts.size());
  displs->assign(counts.size(), 0);
  for (size_t p = 0; p < counts.size(); ++p) {
    (*scaled)[p] = counts[p] * (int)nfields;
    if (p > 0) (*displs)[p] = (*displs)[p - 1] + (*scaled)[p - 1];
  }
}
} // namespace

PetscErrorCode TransposeRowsToColumns(OTSolver::Impl &impl, PetscInt nfields, const double *in_row,
                                      double *out_col)
{
  const SlabLayout &L = impl.layout;
  std::vector<int> send_counts, send_displs, recv_counts, recv_displs;

  PetscFunctionBeginUser;
  PetscCall(PetscLogEventBegin(impl.events.transpose, 0, 0, 0, 0));
  ScaleCounts(L.to_col_send_counts, nfields, &send_counts, &send_displs);
  ScaleCounts(L.to_col_recv_counts, nfields, &recv_counts, &recv_displs);
  impl.send_buffer.resize(nfields * L.n_row_layout + 1);
  impl.recv_buffer.resize(nfields * L.n_col_layout + 1);

  // Pack, per destination q and field, the block (my rows) x (columns of q) column by column.
  for (PetscMPIInt q = 0; q < L.size; ++q) {
    double *dst = impl.send_buffer.data() + send_displs[q];
    for (PetscInt k = 0; k < nfields; ++k) {
      const double *field = in_row + k * L.n_row_layout;
      for (PetscInt c = L.col_start[q]; c < L.col_start[q + 1]; ++c)
        for (PetscInt r = 0; r < L.local_rows; ++r)
          *dst++ = field[r * L.ncol + c];
    }
  }
  PetscCallMPI(MPI_Alltoallv(impl.send_buffer.data(), send_counts.data(), send_displs.data(),
                             MPI_DOUBLE, impl.recv_buffer.data(), recv_counts.data(),
                             recv_displs.data(), MPI_DOUBLE, L.comm));

  // Unpack the block (rows of p) x (my columns) into column-major storage.
  const PetscInt my_col0 = L.col_start[L.rank];
  for (PetscMPIInt p = 0; p < L.size; ++p) {
    const double *src = impl.recv_buffer.data() + recv_displs[p];
    for (PetscInt k = 0; k < nfields; ++k) {
      double *field = out_col + k * L.n_col_layout;
      for (PetscInt c = 0; c < L.local_cols; ++c)
        for (PetscInt r = L.row_start[p]; r < L.row_start[p + 1]; ++r)
          field[c * L.nrow + r] = *src++;
    }
  }
  (void)my_col0;
  PetscCall(PetscLogEventEnd(impl.events.transpose, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode TransposeColumnsToRows(OTSolver::Impl &impl, PetscInt nfields, const double *in_col,
                                      double *out_row)
{
  const SlabLayout &L = impl.layout;
  std::vector<int> send_counts, send_displs, recv_counts, recv_displs;

  PetscFunctionBeginUser;
  PetscCall(PetscLogEventBegin(impl.events.transpose, 0, 0, 0, 0));
  ScaleCounts(L.to_col_recv_counts, nfields, &send_counts, &send_displs);
  ScaleCounts(L.to_col_send_counts, nfields, &recv_counts, &recv_displs);
  impl.send_buffer.resize(nfields * L.n_col_layout + 1);
  impl.recv_buffer.resize(nfields * L.n_row_layout + 1);

  // Pack, per destination q and field, the block (rows of q) x (my columns) row by row.
  for (PetscMPIInt q = 0; q < L.size; ++q) {
    double *dst = impl.send_buffer.data() + send_displs[q];
    for (PetscInt k = 0; k < nfields; ++k) {
      const double *field = in_col + k * L.n_col_layout;
      for (PetscInt r = L.row_start[q]; r < L.row_start[q + 1]; ++r)
        for (PetscInt c = 0; c < L.local_cols; ++c)
          *dst++ = field[c * L.nrow + r];
    }
  }
  PetscCallMPI(MPI_Alltoallv(impl.send_buffer.data(), send_counts.data(), send_displs.data(),
                             MPI_DOUBLE, impl.recv_buffer.data(), recv_counts.data(),
                             recv_displs.data(), MPI_DOUBLE, L.comm));

  // Unpack the block (my rows) x (columns of p) into row-major storage.
  for (PetscMPIInt p = 0; p < L.size; ++p) {
    const double *src = impl.recv_buffer.data() + recv_displs[p];
    for (PetscInt k = 0; k < nfields; ++k) {
      double *field = out_row + k * L.n_row_layout;
      for (PetscInt r = 0; r < L.local_rows; ++r)
        for (PetscInt c = L.col_start[p]; c < L.col_start[p + 1]; ++c)
          field[r * L.ncol + c] = *src++;
    }
  }
  PetscCall(PetscLogEventEnd(impl.events.transpose, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

void BuildLineKernel(PetscInt length, double h, double eps, bool cost_weighted, LineKernel *kernel)
{
  kernel->length = length;
  kernel->logk.resize(2 * (size_t)length - 1);
  for (PetscInt offset = -(length - 1); offset < length; ++offset) {
    double d = (double)offset * h;
    double value = -d * d / eps;
    if (cost_weighted) value = offset == 0 ? kNegInf : value + std::log(d * d);
    kernel->logk[offset + length - 1] = value;
  }
}

PetscErrorCode LogConvolveLines(OTSolver::Impl &impl, PetscInt nlines, const LineKernel &kernel,
                                const double *in, double *out)
{
  const PetscInt length = kernel.length;

  PetscFunctionBeginUser;
  PetscCall(PetscLogEventBegin(impl.events.line_pass, 0, 0, 0, 0));
  std::vector<double> terms(length);
  for (PetscInt l = 0; l < nlines; ++l)
    LogConvolveLine(length, kernel.logk.data(), in + l * length, out + l * length, terms.data());
  // Per term: two adds and a compare for the maximum, about 30 flops for the exponential and sum.
  PetscCall(PetscLogFlops(34.0 * nlines * length * length));
  PetscCall(PetscLogEventEnd(impl.events.line_pass, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode SetKernelEps(OTSolver::Impl &impl, double eps)
{
  const SlabLayout &L = impl.layout;

  PetscFunctionBeginUser;
  if (impl.kernel_eps == eps) PetscFunctionReturn(PETSC_SUCCESS);
  BuildLineKernel(L.ncol, L.cell_size, eps, false, &impl.row_plain);
  BuildLineKernel(L.ncol, L.cell_size, eps, true, &impl.row_cost);
  BuildLineKernel(L.nrow, L.cell_size, eps, false, &impl.col_plain);
  BuildLineKernel(L.nrow, L.cell_size, eps, true, &impl.col_cost);
  impl.kernel_eps = eps;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode LogApplyFromRows(OTSolver::Impl &impl, PetscInt nfields, KernelWeight weight,
                                const double *in_row, double *out_col)
{
  const SlabLayout &L = impl.layout;
  const LineKernel &row_kernel =
      weight == KernelWeight::kCostInRowPass ? impl.row_cost : impl.row_plain;
  const LineKernel &col_kernel =
      weight == KernelWeight::kCostInColumnPass ? impl.col_cost : impl.col_plain;

  PetscFunctionBeginUser;
  impl.work_row.resize(nfields * L.n_row_layout + 1);
  impl.work_col.resize(nfields * L.n_col_layout + 1);
  PetscCall(
      LogConvolveLines(impl, nfields * L.local_rows, row_kernel, in_row, impl.work_row.data()));
  PetscCall(TransposeRowsToColumns(impl, nfields, impl.work_row.data(), impl.work_col.data()));
  PetscCall(
      LogConvolveLines(impl, nfields * L.local_cols, col_kernel, impl.work_col.data(), out_col));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode LogApplyFromColumns(OTSolver::Impl &impl, PetscInt nfields, KernelWeight weight,
                                   const double *in_col, double *out_row)
{
  const SlabLayout &L = impl.layout;
  const LineKernel &row_kernel =
      weight == KernelWeight::kCostInRowPass ? impl.row_cost : impl.row_plain;
  const LineKernel &col_kernel =
      weight == KernelWeight::kCostInColumnPass ? impl.col_cost : impl.col_plain;

  PetscFunctionBeginUser;
  impl.work_row.resize(nfields * L.n_row_layout + 1);
  impl.work_col.resize(nfields * L.n_col_layout + 1);
  PetscCall(
      LogConvolveLines(impl, nfields * L.local_cols, col_kernel, in_col, impl.work_col.data()));
  PetscCall(TransposeColumnsToRows(impl, nfields, impl.work_col.data(), impl.work_row.data()));
  PetscCall(
      LogConvolveLines(impl, nfields * L.local_rows, row_kernel, impl.work_row.data(), out_row));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace ot_detail
} // namespace birdflow
