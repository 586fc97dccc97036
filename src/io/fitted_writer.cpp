// Writing a fitted model: rank 0 copies the input and writes the metadata with serial HDF5, then
// every rank writes its own rows of each marginal through parallel HDF5 (MPI-IO).
#include "birdflow/output_file.hpp"
#include "birdflow/petsc_compat.hpp"
#include "birdflow/species.hpp"
#include "broadcast.hpp"
#include "fitted_metadata.hpp"
#include "hdf5_file.hpp"
#include "io_log.hpp"

#include <algorithm>
#include <cmath>

namespace birdflow
{
namespace
{
using io::Format;
using io::Hid;

std::string MarginalName(PetscInt t)
{
  return Format("marginals/Week%d_to_%d", (int)t + 1, (int)t + 2);
}

// Returns a message when this rank's description of its rows is wrong, or "".
std::string CheckLocalRows(const SpeciesData &species, const std::vector<MarginalRows> &rows)
{
  size_t transitions = species.n_timesteps > 1 ? (size_t)species.n_timesteps - 1 : 0;
  if (rows.size() != transitions)
    return Format("WriteFittedModel: got rows for %zu transitions; %s has %zu", rows.size(),
                  species.path.c_str(), transitions);
  for (size_t t = 0; t < transitions; ++t) {
    const MarginalRows &block = rows[t];
    PetscInt n_from = species.CellsInWeek((PetscInt)t), n_to = species.CellsInWeek((PetscInt)t + 1);
    if (block.n_cols != n_to || block.row_start < 0 || block.row_count < 0 ||
        block.row_start + block.row_count > n_from || (block.row_count > 0 && !block.values))
      return Format("WriteFittedModel: rows %d..%d with %d columns do not fit %s, which is "
                    "%d x %d",
                    (int)block.row_start, (int)(block.row_start + block.row_count),
                    (int)block.n_cols, MarginalName((PetscInt)t).c_str(), (int)n_from, (int)n_to);
    size_t count = (size_t)block.row_count * (size_t)block.n_cols;
    for (size_t k = 0; k < count; ++k)
      if (!std::isfinite(block.values[k]) || block.values[k] < 0)
        return Format("WriteFittedModel: %s is %g at row %d, column %d (0-based); a marginal "
                      "must be finite and non-negative",
                      MarginalName((PetscInt)t).c_str(), block.values[k],
                      (int)(block.row_start + (PetscInt)(k / (size_t)block.n_cols)),
                      (int)(k % (size_t)block.n_cols));
  }
  return "";
}

// Checks that the row blocks of all ranks tile every transition exactly once. Collective.
PetscErrorCode CheckRowPartition(MPI_Comm comm, const SpeciesData &species,
                                 const std::vector<MarginalRows> &rows)
{
  PetscMPIInt size;
  size_t transitions = rows.size();

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  std::vector<long long> local(2 * transitions), all(2 * transitions * (size_t)size);
  for (size_t t = 0; t < transitions; ++t) {
    local[2 * t] = rows[t].row_start;
    local[2 * t + 1] = rows[t].row_count;
  }
  PetscCallMPI(MPI_Allgather(local.data(), (int)local.size(), MPI_LONG_LONG, all.data(),
                             (int)local.size(), MPI_LONG_LONG, comm));
  for (size_t t = 0; t < transitions; ++t) {
    std::vector<std::pair<long long, long long>> blocks;
    for (PetscMPIInt r = 0; r < size; ++r) {
      size_t offset = 2 * transitions * (size_t)r + 2 * t;
      if (all[offset + 1] > 0) blocks.emplace_back(all[offset], all[offset + 1]);
    }
    std::sort(blocks.begin(), blocks.end());
    long long next = 0;
    for (const auto &[start, count] : blocks) {
      PetscCheck(start == next, comm, PETSC_ERR_ARG_WRONG,
                 "WriteFittedModel: the ranks' rows of %s %s at row %lld; every row must belong "
                 "to exactly one rank",
                 MarginalName((PetscInt)t).c_str(), start < next ? "overlap" : "leave a gap",
                 std::min(start, next));
      next = start + count;
    }
    PetscCheck(next == species.CellsInWeek((PetscInt)t), comm, PETSC_ERR_ARG_WRONG,
               "WriteFittedModel: the ranks' rows of %s end at row %lld but it has %d rows",
               MarginalName((PetscInt)t).c_str(), next, (int)species.CellsInWeek((PetscInt)t));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

std::string CheckRecord(const TrainingRecord &record)
{
  size_t steps = record.loss_total.size();
  if (record.loss_obs.size() != steps || record.loss_dist.size() != steps ||
      record.loss_ent.size() != steps)
    return Format("WriteFittedModel: loss_values total, obs, dist and ent have %zu, %zu, %zu and "
                  "%zu values; BirdFlowR needs the same length",
                  steps, record.loss_obs.size(), record.loss_dist.size(), record.loss_ent.size());
  if (!record.loss_w2.empty() && record.loss_w2.size() != steps)
    return Format("WriteFittedModel: the W2 loss history has %zu values but total has %zu",
                  record.loss_w2.size(), steps);
  for (const auto &entry : record.extra)
    if (entry.first.empty() || entry.first.find_first_of("/.") != std::string::npos)
      return "WriteFittedModel: run setting name '" + entry.first +
             "' is not a valid dataset name; use letters, digits and underscores";
  return "";
}

// Checks everything about the request before any file is touched. Collective.
PetscErrorCode CheckWriteRequest(MPI_Comm comm, const SpeciesData &species,
                                 const std::vector<MarginalRows> &rows,
                                 const TrainingRecord &record)
{
  PetscFunctionBeginUser;
  std::string message = CheckLocalRows(species, rows);
  if (message.empty()) message = CheckRecord(record);
  PetscCall(io::ShareFirstError(comm, message.empty() ? 0 : PETSC_ERR_ARG_WRONG, message));
  PetscCall(CheckRowPartition(comm, species, rows));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Rank 0 creates the partial file from the input and the record. Collective.
PetscErrorCode WriteSerialPart(MPI_Comm comm, const SpeciesData &species,
                               const std::string &partial, const TrainingRecord &record)
{
  PetscMPIInt rank;
  PetscErrorCode code = PETSC_SUCCESS;
  std::string message;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    io::QuietHdf5Errors quiet;
    try {
      io::WriteInputCopyAndMetadata(species, partial, record);
    } catch (const io::FileError &error) {
      code = error.code();
      message = error.what();
    }
  }
  PetscCall(io::BroadcastError(comm, code, message));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Creates one marginal dataset collectively and writes this rank's rows into it. Returns a
// message on failure, or "".
std::string WriteMarginal(hid_t file, PetscInt t, const MarginalRows &block, PetscInt n_from)
{
  std::string name = MarginalName(t);
  hsize_t dims[2] = {(hsize_t)n_from, (hsize_t)block.n_cols};
  Hid file_space(H5Screate_simple(2, dims, nullptr), H5Sclose);
  Hid dataset(H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, file_space.get(), H5P_DEFAULT,
                         H5P_DEFAULT, H5P_DEFAULT),
              H5Dclose);
  if (!dataset.valid()) return "cannot create " + name;

  hsize_t start[2] = {(hsize_t)block.row_start, 0};
  hsize_t count[2] = {(hsize_t)block.row_count, (hsize_t)block.n_cols};
  hsize_t local_size = std::max<hsize_t>(count[0] * count[1], 1);
  Hid memory_space(H5Screate_simple(1, &local_size, nullptr), H5Sclose);
  if (block.row_count > 0) {
    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  } else {
    H5Sselect_none(file_space.get());
    H5Sselect_none(memory_space.get());
  }
  // Stored as float32, like BirdFlowPy's files; the model is computed in double.
  std::vector<float> values(local_size, 0.0f);
  for (size_t k = 0; k < (size_t)(count[0] * count[1]); ++k)
    values[k] = (float)block.values[k];

  Hid transfer(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  H5Pset_dxpl_mpio(transfer.get(), H5FD_MPIO_COLLECTIVE);
  if (H5Dwrite(dataset.get(), H5T_NATIVE_FLOAT, memory_space.get(), file_space.get(),
               transfer.get(), values.data()) < 0)
    return "cannot write the rows of " + name;
  return "";
}

// Every rank opens the partial file with MPI-IO and writes its rows of every marginal.
// Collective.
PetscErrorCode WriteMarginals(MPI_Comm comm, const SpeciesData &species, const std::string &partial,
                              const std::vector<MarginalRows> &rows)
{
  io::QuietHdf5Errors quiet;
  std::string failure;

  PetscFunctionBeginUser;
  Hid access(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_mpio(access.get(), comm, MPI_INFO_NULL);
  Hid file(H5Fopen(partial.c_str(), H5F_ACC_RDWR, access.get()), H5Fclose);
  if (!file.valid())
    failure = partial + ": cannot open for parallel writing; check that the folder is on a file "
                        "system all ranks share (on one without locking, set "
                        "HDF5_USE_FILE_LOCKING=FALSE)";
  PetscCall(io::ShareFirstError(comm, failure.empty() ? 0 : PETSC_ERR_FILE_OPEN, failure));

  Hid group(H5Gcreate2(file.get(), "marginals", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!group.valid()) failure = partial + ": cannot create group marginals";
  PetscCall(io::ShareFirstError(comm, failure.empty() ? 0 : PETSC_ERR_FILE_WRITE, failure));

  for (size_t t = 0; t < rows.size(); ++t) {
    std::string problem =
        WriteMarginal(file.get(), (PetscInt)t, rows[t], species.CellsInWeek((PetscInt)t));
    if (!problem.empty()) failure = partial + ": " + problem + "; check free space";
    PetscCall(io::ShareFirstError(comm, failure.empty() ? 0 : PETSC_ERR_FILE_WRITE, failure));
  }

  group.Reset();
  if (!file.Reset()) failure = partial + ": closing the file failed; check free space";
  PetscCall(io::ShareFirstError(comm, failure.empty() ? 0 : PETSC_ERR_FILE_WRITE, failure));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode WritePartialFile(MPI_Comm comm, const SpeciesData &species,
                                const std::string &output_path,
                                const std::vector<MarginalRows> &rows, const TrainingRecord &record)
{
  const io::IoLog *log;
  std::string partial = PartialPath(output_path);

  PetscFunctionBeginUser;
  PetscCall(io::GetIoLog(&log));
  PetscCall(PetscLogEventBegin(log->copy, 0, 0, 0, 0));
  PetscErrorCode code = WriteSerialPart(comm, species, partial, record);
  PetscCall(PetscLogEventEnd(log->copy, 0, 0, 0, 0));
  PetscCall(code);

  PetscCall(PetscLogEventBegin(log->write, 0, 0, 0, 0));
  code = WriteMarginals(comm, species, partial, rows);
  PetscCall(PetscLogEventEnd(log->write, 0, 0, 0, 0));
  PetscCall(code);
  PetscCall(CommitOutputFile(comm, output_path));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace

PetscErrorCode WriteFittedModel(MPI_Comm comm, const SpeciesData &species,
                                const std::string &output_path,
                                const std::vector<MarginalRows> &rows, const TrainingRecord &record)
{
  const io::IoLog *log;

  PetscFunctionBeginUser;
  PetscCall(io::GetIoLog(&log));
  PetscCall(PetscLogStagePush(log->stage));
  PetscErrorCode code = CheckWriteRequest(comm, species, rows, record);
  if (code == PETSC_SUCCESS) code = WritePartialFile(comm, species, output_path, rows, record);
  if (code != PETSC_SUCCESS) DiscardOutputFile(comm, output_path);
  PetscCall(PetscLogStagePop());
  PetscCall(code);
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
