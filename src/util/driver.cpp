#include "birdflow/driver.hpp"

#include "birdflow/build_info.hpp"
#include "birdflow/petsc_compat.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

namespace birdflow
{
namespace
{
// How long a failed rank waits for the other ranks to fail the same way before it aborts the job.
constexpr double kErrorAgreementSeconds = 10.0;

// Returns true when every rank of comm enters this call within the wait, false on a timeout.
bool AllRanksFailed(MPI_Comm comm)
{
  MPI_Request request;
  MPI_Ibarrier(comm, &request);
  auto start = std::chrono::steady_clock::now();
  int done = 0;
  while (!done) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    std::chrono::duration<double> waited = std::chrono::steady_clock::now() - start;
    if (!done && waited.count() > kErrorAgreementSeconds) return false;
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Returns the message PETSc stored for the error that produced `code`.
std::string PetscErrorText(PetscErrorCode code)
{
  const char *text = nullptr;
  char *specific = nullptr;
  PetscErrorMessage(code, &text, &specific);
  if (specific && specific[0]) return specific;
  if (text) return text;
  return "PETSc error " + std::to_string(static_cast<int>(code));
}

// Rejects tokens that look like long options but that CLI11 did not know; PETSc would silently
// ignore them. Returns the first such token, or an empty string.
std::string FindUnknownLongOption(const std::vector<std::string> &extras)
{
  for (const auto &token : extras)
    if (token.size() > 2 && token[0] == '-' && token[1] == '-') return token;
  return "";
}
} // namespace

std::string BuildDescription()
{
  return std::string(BIRDFLOW_VERSION) + " (commit " + GitCommit() + ")";
}

PetscErrorCode PrintConfiguration(MPI_Comm comm, const CLI::App &app)
{
  PetscMPIInt size;
  char petsc_version[256];

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(PetscGetVersion(petsc_version, sizeof(petsc_version)));
  PetscCall(PetscPrintf(comm, "%s %s on %d MPI ranks, %s\n", app.get_name().c_str(),
                        BuildDescription().c_str(), size, petsc_version));
  std::string config = app.config_to_str(true, false);
  PetscCall(PetscPrintf(comm, "%s", config.c_str()));
  PetscFunctionReturn(PETSC_SUCCESS);
}

int RunDriver(int argc, char **argv, CLI::App &app, const char *petsc_help,
              const std::function<PetscErrorCode()> &body)
{
  // 1. MPI first, so PETSc receives only the tokens that CLI11 leaves over.
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const std::string program = app.get_name();

  // 2. Long options only; a single-dash token belongs to PETSc.
  app.allow_extras();
  app.set_help_flag("--help", "Print this help and exit (PETSc options: -help)");
  try {
    app.parse(argc, argv);
    std::string unknown = FindUnknownLongOption(app.remaining());
    if (!unknown.empty())
      throw CLI::ExtrasError("unknown option " + unknown, CLI::ExitCodes::ExtrasError);
  } catch (const CLI::ParseError &e) {
    // --help ends with status 0 and prints the help; a real parse error gets the same one-line
    // form as every other error of the driver.
    int status = e.get_exit_code();
    if (status == 0 && rank == 0) app.exit(e);
    if (status != 0 && rank == 0)
      std::fprintf(stderr, "%s: error: %s; run %s --help for the options\n", program.c_str(),
                   e.what(), program.c_str());
    MPI_Finalize();
    return status;
  }

  // 3. PETSc gets argv[0] and the pass-through tokens, in their original order.
  std::vector<std::string> extras = app.remaining();
  std::vector<char *> petsc_argv{argv[0]};
  for (auto &token : extras) petsc_argv.push_back(token.data());
  petsc_argv.push_back(nullptr);
  int petsc_argc = static_cast<int>(petsc_argv.size()) - 1;
  char **petsc_args = petsc_argv.data();
  if (PetscInitialize(&petsc_argc, &petsc_args, nullptr, petsc_help)) {
    if (rank == 0) std::fprintf(stderr, "%s: error: PETSc failed to initialise\n", program.c_str());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Comm error_comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &error_comm);

  // 4. Errors come back as codes with their message; we print them as one line.
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  PetscErrorCode code = 0;
  std::string message;
  try {
    code = body();
    if (code) message = PetscErrorText(code);
  } catch (const std::exception &e) {
    code = PETSC_ERR_LIB;
    message = e.what();
  }
  PetscPopErrorHandler();

  // 5. A failure on every rank ends cleanly; a failure on some ranks aborts the job.
  int status = 0;
  if (code) {
    if (!AllRanksFailed(error_comm)) {
      std::fprintf(stderr, "%s: error on rank %d: %s\n", program.c_str(), rank, message.c_str());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) std::fprintf(stderr, "%s: error: %s\n", program.c_str(), message.c_str());
    status = 1;
  }
  MPI_Comm_free(&error_comm);
  PetscFinalize();
  MPI_Finalize();
  return status;
}
} // namespace birdflow
