// Shared start-up, option parsing and error reporting for the birdflow-hpc drivers.
#pragma once

#include <CLI/CLI.hpp>
#include <petscsys.h>

#include <functional>
#include <string>

namespace birdflow
{
/*
  RunDriver - Runs a driver's body between MPI/PETSc start-up and shutdown. Collective on
  MPI_COMM_WORLD.

  Steps: MPI_Init; CLI11 parses the long options of `app` on every rank (tokens CLI11 does not
  know, such as `-log_view` or `-ot_eps_steps 8`, pass through to PETSc); PetscInitialize with those
  tokens only; `body`; PetscFinalize; MPI_Finalize.

  Errors: an unknown `--option` or an invalid value ends the run with CLI11's message and a
  non-zero exit. When `body` fails (a PETSc error code or a C++ exception) on every rank, rank 0
  prints one line, `<program>: error: <message>`, and every rank exits with status 1. When it
  fails on some ranks only, those ranks print their message with their rank and call MPI_Abort, so
  no rank is left waiting in a collective.

  Returns the process exit status.
*/
int RunDriver(int argc, char **argv, CLI::App &app, const char *petsc_help,
              const std::function<PetscErrorCode()> &body);

/* PrintConfiguration - Prints the effective CLI11 settings (as a config file would hold them), the
   version and git commit, the rank count and the PETSc version, on rank 0. Collective. */
PetscErrorCode PrintConfiguration(MPI_Comm comm, const CLI::App &app);

/* Returns "<version> (<git commit>)" of this build. Not collective. */
std::string BuildDescription();
} // namespace birdflow
