#include "birdflow/output_file.hpp"

#include "birdflow/petsc_compat.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace birdflow
{
namespace fs = std::filesystem;

std::string PartialPath(const std::string &path)
{
  fs::path target(path);
  fs::path partial = target.parent_path() / ("." + target.filename().string() + ".partial");
  return partial.string();
}

PetscErrorCode CheckOutputPath(MPI_Comm comm, const std::string &path, const char *option_name)
{
  PetscMPIInt rank;
  char reason[512] = "";

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    fs::path target(path);
    fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    std::error_code ec;
    if (path.empty())
      std::snprintf(reason, sizeof(reason), "%s is empty; give a file path", option_name);
    else if (fs::is_directory(target, ec))
      std::snprintf(reason, sizeof(reason), "%s %s is a folder; give a file path", option_name,
                    path.c_str());
    else if (!fs::is_directory(folder, ec))
      std::snprintf(reason, sizeof(reason), "%s %s: folder %s does not exist; create it first",
                    option_name, path.c_str(), folder.c_str());
    else if (access(folder.c_str(), W_OK) != 0)
      std::snprintf(reason, sizeof(reason), "%s %s: folder %s is not writable (%s)", option_name,
                    path.c_str(), folder.c_str(), std::strerror(errno));
  }
  PetscCallMPI(MPI_Bcast(reason, sizeof(reason), MPI_CHAR, 0, comm));
  PetscCheck(reason[0] == '\0', comm, PETSC_ERR_FILE_OPEN, "%s", reason);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CheckOutputNotInput(MPI_Comm comm, const std::string &path, const char *option_name,
                                   const std::string &input, const char *input_option)
{
  PetscMPIInt rank;
  int same = 0;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0 && !path.empty() && !input.empty()) {
    std::error_code ec;
    same = fs::equivalent(path, input, ec) ? 1 : 0;
  }
  PetscCallMPI(MPI_Bcast(&same, 1, MPI_INT, 0, comm));
  PetscCheck(!same, comm, PETSC_ERR_USER_INPUT,
             "%s %s is the same file as %s; give another path so the input is kept", option_name,
             path.c_str(), input_option);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CommitOutputFile(MPI_Comm comm, const std::string &path)
{
  PetscMPIInt rank;
  char reason[512] = "";

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    std::string partial = PartialPath(path);
    if (std::rename(partial.c_str(), path.c_str()) != 0)
      std::snprintf(reason, sizeof(reason), "cannot rename %s to %s: %s", partial.c_str(),
                    path.c_str(), std::strerror(errno));
  }
  PetscCallMPI(MPI_Bcast(reason, sizeof(reason), MPI_CHAR, 0, comm));
  PetscCheck(reason[0] == '\0', comm, PETSC_ERR_FILE_WRITE, "%s", reason);
  PetscFunctionReturn(PETSC_SUCCESS);
}

void DiscardOutputFile(MPI_Comm comm, const std::string &path)
{
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0) return;
  std::error_code ec;
  fs::remove(PartialPath(path), ec);
}
} // namespace birdflow
