// Reading BirdFlowR species files: rank 0 reads with serial HDF5 and broadcasts, then every rank
// validates the same data.
#include "birdflow/species.hpp"

#include "birdflow/petsc_compat.hpp"
#include "broadcast.hpp"
#include "hdf5_file.hpp"
#include "io_log.hpp"
#include "species_raw.hpp"

#include <cmath>
#include <cstdlib>

namespace birdflow
{
namespace
{
using io::FileError;
using io::Packer;
using io::RawSpecies;
using io::SpeciesFile;

std::vector<unsigned long long> ToShape(const std::vector<hsize_t> &dims)
{
  return std::vector<unsigned long long>(dims.begin(), dims.end());
}

std::string OptionalString(const SpeciesFile &file, const std::string &name)
{
  if (!file.Exists(name) || !file.IsString(name)) return "";
  return file.ReadString(name);
}

// Returns a number that R may store as f64, as a string (for example ""), or not at all; 0 when
// it is absent or empty.
double OptionalNumber(const SpeciesFile &file, const std::string &name)
{
  if (!file.Exists(name)) return 0;
  if (file.IsString(name)) return std::strtod(file.ReadString(name).c_str(), nullptr);
  return file.ReadNumber(name);
}

// Returns a non-negative whole number, or -1 when it is absent or stored as a string (R writes
// "" for NA).
long long OptionalInteger(const SpeciesFile &file, const std::string &name)
{
  if (!file.Exists(name) || file.IsString(name)) return -1;
  double value = file.ReadNumber(name);
  if (value != std::floor(value) || value < 0)
    throw FileError(PETSC_ERR_FILE_UNEXPECTED, file.Where(name) + " is " + std::to_string(value) +
                                                   "; expected a non-negative whole number");
  return (long long)value;
}

// Returns the paths that import_birdflow() (BirdFlowR, file version 3) requires in every file
// and that `file` lacks.
std::vector<std::string> MissingImportPaths(const SpeciesFile &file)
{
  static const char *required[] = {"geom",
                                   "geom/nrow",
                                   "geom/ncol",
                                   "geom/res",
                                   "geom/ext",
                                   "geom/crs",
                                   "geom/mask",
                                   "geom/dynamic_mask",
                                   "transitions",
                                   "dates",
                                   "distr",
                                   "species",
                                   "species/species_code",
                                   "species/scientific_name",
                                   "species/common_name",
                                   "species/breeding_quality",
                                   "species/breeding_start",
                                   "species/breeding_end",
                                   "species/nonbreeding_quality",
                                   "species/nonbreeding_start",
                                   "species/nonbreeding_end",
                                   "species/postbreeding_migration_quality",
                                   "species/postbreeding_migration_start",
                                   "species/postbreeding_migration_end",
                                   "species/prebreeding_migration_quality",
                                   "species/prebreeding_migration_start",
                                   "species/prebreeding_migration_end",
                                   "metadata",
                                   "metadata/has_marginals",
                                   "metadata/has_transitions",
                                   "metadata/has_distr",
                                   "metadata/n_transitions",
                                   "metadata/n_active",
                                   "metadata/n_timesteps",
                                   "metadata/ebird_version_year",
                                   "metadata/ebird_release_year",
                                   "metadata/ebird_access_end_date",
                                   "metadata/birdflow_preprocess_date",
                                   "metadata/birdflow_model_date",
                                   "metadata/is_sparse",
                                   "metadata/birdflow_version"};
  std::vector<std::string> missing;
  for (const char *name : required)
    if (!file.Exists(name)) missing.push_back(name);
  return missing;
}

// Reads everything ReadSpecies needs, as stored. Throws FileError.
RawSpecies ReadRawSpecies(const std::string &path)
{
  SpeciesFile file(path);
  RawSpecies raw;
  std::vector<hsize_t> shape;
  raw.path = path;
  raw.distr = file.ReadDoubles("distr", &shape);
  raw.distr_shape = ToShape(shape);
  raw.dynamic_mask = file.ReadIntegers("geom/dynamic_mask", &shape);
  raw.dynamic_mask_shape = ToShape(shape);
  raw.mask = file.ReadIntegers("geom/mask", &shape);
  raw.mask_shape = ToShape(shape);
  raw.nrow = file.ReadDoubles("geom/nrow", &shape);
  raw.ncol = file.ReadDoubles("geom/ncol", &shape);
  raw.res = file.ReadDoubles("geom/res", &shape);
  raw.ext = file.ReadDoubles("geom/ext", &shape);
  raw.crs = OptionalString(file, "geom/crs");

  raw.species_code = OptionalString(file, "species/species_code");
  raw.common_name = OptionalString(file, "species/common_name");
  raw.scientific_name = OptionalString(file, "species/scientific_name");
  raw.ebird_version_year = OptionalNumber(file, "metadata/ebird_version_year");
  raw.metadata_n_active = OptionalInteger(file, "metadata/n_active");
  raw.metadata_n_timesteps = OptionalInteger(file, "metadata/n_timesteps");
  raw.has_distances = file.Exists("distances");
  raw.has_marginals = file.Exists("marginals");
  raw.missing_import_paths = MissingImportPaths(file);
  return raw;
}

void PackRaw(const RawSpecies &raw, Packer *packer)
{
  packer->Put(raw.path);
  packer->Put(raw.species_code);
  packer->Put(raw.common_name);
  packer->Put(raw.scientific_name);
  packer->Put(raw.crs);
  packer->Put(raw.ebird_version_year);
  packer->Put(raw.nrow);
  packer->Put(raw.ncol);
  packer->Put(raw.res);
  packer->Put(raw.ext);
  packer->Put(raw.mask);
  packer->Put(raw.dynamic_mask);
  packer->Put(raw.mask_shape);
  packer->Put(raw.dynamic_mask_shape);
  packer->Put(raw.distr_shape);
  packer->Put(raw.distr);
  packer->Put(raw.metadata_n_active);
  packer->Put(raw.metadata_n_timesteps);
  packer->Put(raw.has_distances);
  packer->Put(raw.has_marginals);
  packer->Put((unsigned long long)raw.missing_import_paths.size());
  for (const std::string &name : raw.missing_import_paths)
    packer->Put(name);
}

void UnpackRaw(Packer *packer, RawSpecies *raw)
{
  packer->Get(&raw->path);
  packer->Get(&raw->species_code);
  packer->Get(&raw->common_name);
  packer->Get(&raw->scientific_name);
  packer->Get(&raw->crs);
  packer->Get(&raw->ebird_version_year);
  packer->Get(&raw->nrow);
  packer->Get(&raw->ncol);
  packer->Get(&raw->res);
  packer->Get(&raw->ext);
  packer->Get(&raw->mask);
  packer->Get(&raw->dynamic_mask);
  packer->Get(&raw->mask_shape);
  packer->Get(&raw->dynamic_mask_shape);
  packer->Get(&raw->distr_shape);
  packer->Get(&raw->distr);
  packer->Get(&raw->metadata_n_active);
  packer->Get(&raw->metadata_n_timesteps);
  packer->Get(&raw->has_distances);
  packer->Get(&raw->has_marginals);
  unsigned long long missing = 0;
  packer->Get(&missing);
  raw->missing_import_paths.resize(missing);
  for (std::string &name : raw->missing_import_paths)
    packer->Get(&name);
}

// Runs `read` on rank 0 with HDF5's own error printing off, turns a FileError into one PETSc error
// on every rank, and otherwise broadcasts what `read` packed. Collective.
template <typename ReadFunction>
PetscErrorCode ReadOnRankZero(MPI_Comm comm, ReadFunction read, Packer *packer)
{
  const io::IoLog *log;
  PetscMPIInt rank;
  PetscErrorCode code = PETSC_SUCCESS;
  std::string message;

  PetscFunctionBeginUser;
  PetscCall(io::GetIoLog(&log));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(PetscLogEventBegin(log->read, 0, 0, 0, 0));
  if (rank == 0) {
    io::QuietHdf5Errors quiet;
    try {
      read(packer);
    } catch (const FileError &error) {
      code = error.code();
      message = error.what();
    } catch (const std::exception &error) {
      code = PETSC_ERR_FILE_READ;
      message = error.what();
    }
  }
  PetscCall(PetscLogEventEnd(log->read, 0, 0, 0, 0));
  PetscCall(io::BroadcastError(comm, code, message));
  PetscCall(PetscLogEventBegin(log->broadcast, 0, 0, 0, 0));
  PetscCall(packer->Broadcast(comm));
  PetscCall(PetscLogEventEnd(log->broadcast, 0, 0, 0, 0));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ReadSpeciesInStage(MPI_Comm comm, const std::string &path, SpeciesData *species)
{
  const io::IoLog *log;
  Packer packer;
  RawSpecies raw;

  PetscFunctionBeginUser;
  PetscCall(io::GetIoLog(&log));
  auto read = [&path](Packer *out) { PackRaw(ReadRawSpecies(path), out); };
  PetscCall(ReadOnRankZero(comm, read, &packer));
  UnpackRaw(&packer, &raw);
  PetscCall(PetscLogEventBegin(log->validate, 0, 0, 0, 0));
  PetscErrorCode code = io::ValidateSpecies(comm, raw, species);
  PetscCall(PetscLogEventEnd(log->validate, 0, 0, 0, 0));
  PetscCall(code);
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Reads `distances` on rank 0 (called from ReadOnRankZero). Throws FileError.
void ReadPackedDistances(const SpeciesData &species, Packer *packer)
{
  SpeciesFile file(species.path);
  if (!file.Exists("distances"))
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    file.Where("distances") +
                        " is missing (fitted files drop it); give the preprocessed file the "
                        "model was trained from");
  std::vector<hsize_t> shape;
  std::vector<double> distances = file.ReadDoubles("distances", &shape);
  size_t n = (size_t)species.n_active, expected = n * (n - 1) / 2;
  if (shape.size() != 1 || distances.size() != expected)
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    io::Format("%s has %zu values; expected n_active * (n_active - 1) / 2 = %zu "
                               "for %zu active cells",
                               file.Where("distances").c_str(), distances.size(), expected, n));
  for (size_t k = 0; k < distances.size(); ++k)
    if (!std::isfinite(distances[k]) || distances[k] < 0)
      throw FileError(PETSC_ERR_USER_INPUT,
                      io::Format("%s is %g at entry %zu (0-based, upper-triangle order); "
                                 "expected a finite non-negative great-circle distance in km",
                                 file.Where("distances").c_str(), distances[k], k));
  packer->Put(distances);
}

// Reads every marginals/Week{t}_to_{t+1} on rank 0 (called from ReadOnRankZero). Throws FileError.
void ReadAllMarginals(const SpeciesData &species, Packer *packer)
{
  SpeciesFile file(species.path);
  if (!file.Exists("marginals"))
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    file.path() + ": group marginals is missing, so this is not a fitted model; "
                                  "give the output of birdflow-train or of BirdFlowPy");
  for (PetscInt t = 0; t + 1 < species.n_timesteps; ++t) {
    std::string name = io::Format("marginals/Week%d_to_%d", (int)t + 1, (int)t + 2);
    std::vector<hsize_t> shape;
    std::vector<double> values = file.ReadDoubles(name, &shape);
    std::vector<hsize_t> expected{(hsize_t)species.CellsInWeek(t),
                                  (hsize_t)species.CellsInWeek(t + 1)};
    if (shape != expected)
      throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                      io::Format("%s has %zu dimensions of sizes %llu x %llu; the dynamic mask "
                                 "gives %llu x %llu cells",
                                 file.Where(name).c_str(), shape.size(),
                                 shape.size() > 0 ? (unsigned long long)shape[0] : 0ull,
                                 shape.size() > 1 ? (unsigned long long)shape[1] : 0ull,
                                 (unsigned long long)expected[0], (unsigned long long)expected[1]));
    packer->Put(values);
  }
}
} // namespace

PetscErrorCode ReadSpecies(MPI_Comm comm, const std::string &path, SpeciesData *species)
{
  const io::IoLog *log;

  PetscFunctionBeginUser;
  PetscCall(io::GetIoLog(&log));
  PetscCall(PetscLogStagePush(log->stage));
  PetscErrorCode code = ReadSpeciesInStage(comm, path, species);
  PetscCall(PetscLogStagePop());
  PetscCall(code);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ReadDistances(MPI_Comm comm, const SpeciesData &species,
                             std::vector<double> *distances_km)
{
  const io::IoLog *log;
  Packer packer;

  PetscFunctionBeginUser;
  PetscCall(io::GetIoLog(&log));
  PetscCall(PetscLogStagePush(log->stage));
  auto read = [&species](Packer *out) { ReadPackedDistances(species, out); };
  PetscErrorCode code = ReadOnRankZero(comm, read, &packer);
  PetscCall(PetscLogStagePop());
  PetscCall(code);
  packer.Get(distances_km);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode ReadMarginals(MPI_Comm comm, const SpeciesData &species,
                             std::vector<std::vector<double>> *marginals)
{
  const io::IoLog *log;
  Packer packer;

  PetscFunctionBeginUser;
  PetscCall(io::GetIoLog(&log));
  PetscCall(PetscLogStagePush(log->stage));
  auto read = [&species](Packer *out) { ReadAllMarginals(species, out); };
  PetscErrorCode code = ReadOnRankZero(comm, read, &packer);
  PetscCall(PetscLogStagePop());
  PetscCall(code);
  marginals->assign(species.n_timesteps > 1 ? species.n_timesteps - 1 : 0, {});
  for (auto &matrix : *marginals)
    packer.Get(&matrix);
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
