/*
  bench-ot: timings of the separable log-domain Sinkhorn solver.

  Modes:
    --mode pair --input FILE --cell-size H --epsilon E [--repeat R]
        Times OT_eps(a, b) for the datasets a and b of FILE (the problem bench/ot/pot_dense.py
        gives POT) and prints one line: seconds (best of R), iterations, marginal error, value.
    --mode scaling [--sizes 64,128,256,512,1024] [--timing-iterations 5] [--converge-max 256]
        [--fine-max 128]
        On N x N grids over the unit square (h = 1/N) with two Gaussian blobs:
        1. time per Sinkhorn iteration at fixed eps = 0.01 against the separable term count
           4 N^3 (two half-iterations of two line passes, N^2 outputs of N terms each);
        2. iterations to the marginal error 1e-9 with and without annealing and over-relaxation,
           at eps = 0.01 (N <= --converge-max) and at eps / h^2 = 1 (N <= --fine-max);
        3. the implicit gradient of the sharp cost: KSP iterations and time against the forward
           solve (same sizes as 2).

  Sample runs:
    bench-ot --mode scaling --sizes 64,128,256,512,1024
    mpirun -np 2 bench-ot --mode scaling --sizes 256,512 --converge-max 0
*/
#include "birdflow/driver.hpp"
#include "birdflow/ot.hpp"
#include "birdflow/ot_files.hpp"
#include "birdflow/petsc_compat.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace
{
using birdflow::OTQuantity;

struct Options
{
  std::string mode = "scaling", input;
  double cell_size = 1, epsilon = 0.01;
  int repeat = 3, timing_iterations = 5, converge_max = 256, fine_max = 128;
  std::vector<int> sizes = {64, 128, 256, 512, 1024};
};

// Two Gaussian blobs on an n x n grid over the unit square, as this rank's row slabs.
void Blobs(const birdflow::OTSolver &solver, int n, std::vector<double> *a, std::vector<double> *b)
{
  std::vector<double> ga(n * n), gb(n * n);
  double sa = 0, sb = 0;
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      double y = (r + 0.5) / n, x = (c + 0.5) / n;
      ga[r * n + c] = std::exp(-((x - 0.3) * (x - 0.3) + (y - 0.35) * (y - 0.35)) / 0.02);
      gb[r * n + c] = std::exp(-((x - 0.7) * (x - 0.7) + (y - 0.6) * (y - 0.6)) / 0.03);
      sa += ga[r * n + c];
      sb += gb[r * n + c];
    }
  const PetscInt start = solver.RowStart() * n, size = solver.LocalSize();
  a->assign(ga.begin() + start, ga.begin() + start + size);
  b->assign(gb.begin() + start, gb.begin() + start + size);
  for (double &v : *a)
    v /= sa;
  for (double &v : *b)
    v /= sb;
}

// Runs Evaluate and returns its wall time (max over ranks).
PetscErrorCode TimedEvaluate(birdflow::OTSolver &solver, OTQuantity q, const std::vector<double> &a,
                             const std::vector<double> &b, double eps, bool gradient,
                             birdflow::OTResult *result, double *seconds)
{
  PetscLogDouble start, end;
  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
  PetscCall(PetscTime(&start));
  PetscCall(solver.Evaluate(q, a.data(), b.data(), eps, gradient, nullptr, result));
  PetscCallMPI(MPI_Barrier(PETSC_COMM_WORLD));
  PetscCall(PetscTime(&end));
  *seconds = end - start;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode RunPair(const Options &options)
{
  birdflow::OTInput input;
  birdflow::OTSolver solver;
  birdflow::OTResult result;
  double best = INFINITY, seconds;

  PetscFunctionBeginUser;
  PetscCall(birdflow::ReadOTInput(PETSC_COMM_WORLD, options.input, &input));
  PetscCall(birdflow::CheckOTInput(PETSC_COMM_WORLD, false, &input));
  PetscCall(solver.Setup(PETSC_COMM_WORLD, input.nrow, input.ncol, options.cell_size));
  PetscCall(solver.SetFromOptions());
  const PetscInt start = solver.RowStart() * input.ncol, size = solver.LocalSize();
  std::vector<double> a(input.a.begin() + start, input.a.begin() + start + size);
  std::vector<double> b(input.b.begin() + start, input.b.begin() + start + size);
  for (int r = 0; r < options.repeat; ++r) {
    PetscCall(TimedEvaluate(solver, OTQuantity::kEntropic, a, b, options.epsilon, false, &result,
                            &seconds));
    best = std::min(best, seconds);
  }
  PetscCall(
      PetscPrintf(PETSC_COMM_WORLD,
                  "seconds %.6f iterations %" PetscInt_FMT " marginal_error %.3e value %.12g\n",
                  best, result.report.iterations, result.report.marginal_error, result.value));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// 1. Time per iteration: plain Sinkhorn, no annealing, a fixed number of iterations.
PetscErrorCode TimePerIteration(const Options &options, int n)
{
  birdflow::OTSolver solver;
  birdflow::OTResult result;
  std::vector<double> a, b;
  double seconds;

  PetscFunctionBeginUser;
  PetscCall(solver.Setup(PETSC_COMM_WORLD, n, n, 1.0 / n));
  solver.Settings().anneal_factor = 1;
  solver.Settings().omega = 1;
  solver.Settings().tolerance = 1e-300;
  solver.Settings().max_iterations = options.timing_iterations;
  Blobs(solver, n, &a, &b);
  PetscCall(TimedEvaluate(solver, OTQuantity::kEntropic, a, b, 0.01, false, &result, &seconds));
  const double per_iteration = seconds / result.report.iterations;
  const double terms = 4.0 * n * (double)n * n;
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "| %d^2 | %" PetscInt_FMT " | %.4g | %.3g | %.3f |\n", n,
                        result.report.iterations, per_iteration * 1e3, terms,
                        per_iteration / terms * 1e9));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// 2. Iterations to 1e-9 for four solver variants at one eps.
PetscErrorCode IterationsToTolerance(int n, double eps)
{
  const char *names[4] = {"plain", "annealed", "over-relaxed", "annealed + over-relaxed"};
  const double anneal[4] = {1, 0.5, 1, 0.5}, omega[4] = {1, 1, 0, 0};

  PetscFunctionBeginUser;
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "| %d^2 | %.4g |", n, eps * n * n));
  for (int v = 0; v < 4; ++v) {
    birdflow::OTSolver solver;
    birdflow::OTResult result;
    std::vector<double> a, b;
    double seconds;
    PetscCall(solver.Setup(PETSC_COMM_WORLD, n, n, 1.0 / n));
    solver.Settings().anneal_factor = anneal[v];
    solver.Settings().omega = omega[v];
    solver.Settings().max_iterations = 100000;
    Blobs(solver, n, &a, &b);
    PetscCall(TimedEvaluate(solver, OTQuantity::kEntropic, a, b, eps, false, &result, &seconds));
    PetscCall(PetscPrintf(PETSC_COMM_WORLD, " %" PetscInt_FMT "%s (%.3g s) |",
                          result.report.iterations, result.report.converged ? "" : " not converged",
                          seconds));
    (void)names;
  }
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n"));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// 3. Forward solve of the sharp cost against forward + implicit gradient.
PetscErrorCode ImplicitAgainstForward(int n, double eps)
{
  birdflow::OTSolver solver;
  birdflow::OTResult forward, with_gradient;
  std::vector<double> a, b;
  double t_forward, t_gradient;

  PetscFunctionBeginUser;
  PetscCall(solver.Setup(PETSC_COMM_WORLD, n, n, 1.0 / n));
  PetscCall(solver.SetFromOptions());
  Blobs(solver, n, &a, &b);
  PetscCall(TimedEvaluate(solver, OTQuantity::kSharp, a, b, eps, false, &forward, &t_forward));
  PetscCall(
      TimedEvaluate(solver, OTQuantity::kSharp, a, b, eps, true, &with_gradient, &t_gradient));
  PetscCall(PetscPrintf(
      PETSC_COMM_WORLD,
      "| %d^2 | %.4g | %" PetscInt_FMT " | %.3g | %" PetscInt_FMT " (%s) | %.3g | %.3f |\n", n,
      eps * n * n, forward.report.iterations, t_forward, with_gradient.report.ksp_iterations,
      KSPConvergedReasons[with_gradient.report.ksp_reason], t_gradient - t_forward,
      (t_gradient - t_forward) / t_forward));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode RunScaling(const Options &options)
{
  PetscMPIInt size;
  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD,
                        "\n%d MPI ranks\n\nTime per iteration, eps = 0.01:\n\n"
                        "| grid | iterations | ms per iteration | terms 4N^3 | "
                        "ns per term |\n|---|---|---|---|---|\n",
                        size));
  for (int n : options.sizes)
    PetscCall(TimePerIteration(options, n));

  PetscCall(
      PetscPrintf(PETSC_COMM_WORLD,
                  "\nIterations to marginal error 1e-9:\n\n| grid | eps/h^2 | plain | annealed "
                  "| over-relaxed | annealed + over-relaxed |\n|---|---|---|---|---|---|\n"));
  for (int n : options.sizes)
    if (n <= options.converge_max) {
      PetscCall(IterationsToTolerance(n, 0.01));
      if (n <= options.fine_max) PetscCall(IterationsToTolerance(n, 1.0 / ((double)n * n)));
    }

  PetscCall(
      PetscPrintf(PETSC_COMM_WORLD,
                  "\nImplicit gradient of the sharp cost (defaults: annealed, over-relaxed, "
                  "-ot_tol 1e-9, KSP rtol 1e-10):\n\n| grid | eps/h^2 | Sinkhorn iterations | "
                  "forward s | KSP iterations | implicit s | implicit / forward |\n"
                  "|---|---|---|---|---|---|---|\n"));
  for (int n : options.sizes)
    if (n <= options.converge_max) {
      PetscCall(ImplicitAgainstForward(n, 0.01));
      if (n <= options.fine_max) PetscCall(ImplicitAgainstForward(n, 1.0 / ((double)n * n)));
    }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

int main(int argc, char **argv)
{
  // 1. Options.
  CLI::App app{"Timings of the separable Sinkhorn solver", "bench-ot"};
  Options options;
  app.add_option("--mode", options.mode, "pair or scaling")
      ->check(CLI::IsMember({"pair", "scaling"}));
  app.add_option("--input", options.input, "HDF5 file with datasets a and b (--mode pair)");
  app.add_option("--cell-size", options.cell_size, "Cell side (--mode pair)");
  app.add_option("--epsilon", options.epsilon, "eps in squared cell-size units (--mode pair)");
  app.add_option("--repeat", options.repeat, "Timed repetitions (--mode pair)");
  app.add_option("--sizes", options.sizes, "Grid sizes N (--mode scaling)")->delimiter(',');
  app.add_option("--timing-iterations", options.timing_iterations, "Iterations per timing");
  app.add_option("--converge-max", options.converge_max,
                 "Largest N for the runs to tolerance and the implicit solves at eps = 0.01");
  app.add_option("--fine-max", options.fine_max, "Largest N for the same at eps/h^2 = 1");

  // 2. Run.
  return birdflow::RunDriver(argc, argv, app, nullptr, [&]() -> PetscErrorCode {
    PetscFunctionBeginUser;
    if (options.mode == "pair")
      PetscCall(RunPair(options));
    else
      PetscCall(RunScaling(options));
    PetscFunctionReturn(PETSC_SUCCESS);
  });
}
