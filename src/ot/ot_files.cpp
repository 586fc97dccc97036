// birdflow-w2 input and output files.
#include "birdflow/ot_files.hpp"

#include "birdflow/output_file.hpp"
#include "birdflow/petsc_compat.hpp"

#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

namespace birdflow
{
namespace
{
// Formats a number for a message (PETSc's own %g prints 3 as "3.").
std::string Number(double value)
{
  char text[64];
  std::snprintf(text, sizeof(text), "%.10g", value);
  return text;
}

std::string CellText(PetscInt index, PetscInt ncol)
{
  return "(row " + std::to_string(index / ncol) + ", column " + std::to_string(index % ncol) + ")";
}

/* Closes an HDF5 identifier when it goes out of scope. */
struct Hdf5Handle
{
  hid_t id = -1;
  herr_t (*close)(hid_t) = nullptr;
  ~Hdf5Handle()
  {
    if (id >= 0 && close) close(id);
  }
};

/* Silences HDF5's error stack printing while alive. */
struct QuietHdf5
{
  H5E_auto2_t function = nullptr;
  void *data = nullptr;
  QuietHdf5()
  {
    H5Eget_auto2(H5E_DEFAULT, &function, &data);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, function, data); }
};

// Reads a 2D numeric dataset as double. Returns an empty message on success.
std::string ReadMatrix(hid_t file, const std::string &path, const char *name,
                       std::vector<hsize_t> *shape, std::vector<double> *values)
{
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
    return path + ": dataset " + name + " not found; the file needs 2D datasets a and b";
  Hdf5Handle dataset{H5Dopen2(file, name, H5P_DEFAULT), H5Dclose};
  if (dataset.id < 0) return path + ": cannot open dataset " + name;
  Hdf5Handle space{H5Dget_space(dataset.id), H5Sclose};
  int rank = H5Sget_simple_extent_ndims(space.id);
  if (rank != 2)
    return path + ": dataset " + name + " has " + std::to_string(rank) +
           " dimensions; expected a 2D array (nrow x ncol)";
  shape->resize(2);
  H5Sget_simple_extent_dims(space.id, shape->data(), nullptr);
  Hdf5Handle type{H5Dget_type(dataset.id), H5Tclose};
  H5T_class_t type_class = H5Tget_class(type.id);
  if (type_class != H5T_FLOAT && type_class != H5T_INTEGER)
    return path + ": dataset " + name + " is not numeric; expected float or integer values";
  values->resize((*shape)[0] * (*shape)[1]);
  if (!values->empty() &&
      H5Dread(dataset.id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values->data()) < 0)
    return path + ": cannot read dataset " + name;
  return "";
}

std::string ShapeText(const std::vector<hsize_t> &shape)
{
  return std::to_string(shape[0]) + " x " + std::to_string(shape[1]);
}

// Applies the optional `mask` dataset: masked cells become NaN, NaN at active cells is an error.
std::string ApplyMask(const std::string &path, const std::vector<double> &mask, OTInput *input)
{
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] == 0) {
      input->a[i] = input->b[i] = NAN;
      continue;
    }
    for (auto [name, values] : {std::pair{"a", &input->a}, std::pair{"b", &input->b}})
      if (std::isnan((*values)[i]))
        return path + ": dataset " + name + " is NaN at cell " + CellText(i, input->ncol) +
               ", which dataset mask marks active; give a value or set mask to 0 there";
  }
  return "";
}

// Rank 0's part of ReadOTInput: returns an error message, or "" after filling input.
std::string ReadOnRoot(const std::string &path, OTInput *input, PetscErrorCode *code)
{
  namespace fs = std::filesystem;
  std::error_code ec;
  QuietHdf5 quiet;
  *code = PETSC_ERR_FILE_OPEN;
  if (!fs::is_regular_file(path, ec)) return path + ": file not found; check --input";
  if (H5Fis_hdf5(path.c_str()) <= 0) return path + ": not an HDF5 file; check --input";
  Hdf5Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (file.id < 0) return path + ": HDF5 cannot open the file";

  *code = PETSC_ERR_FILE_UNEXPECTED;
  std::vector<hsize_t> shape_a, shape_b, shape_mask;
  std::string message = ReadMatrix(file.id, path, "a", &shape_a, &input->a);
  if (message.empty()) message = ReadMatrix(file.id, path, "b", &shape_b, &input->b);
  if (!message.empty()) return message;
  if (shape_a != shape_b)
    return path + ": datasets a (" + ShapeText(shape_a) + ") and b (" + ShapeText(shape_b) +
           ") differ in shape; both must be nrow x ncol on the same grid";
  if (shape_a[0] == 0 || shape_a[1] == 0) return path + ": datasets a and b are empty";
  input->nrow = (PetscInt)shape_a[0];
  input->ncol = (PetscInt)shape_a[1];
  if (H5Lexists(file.id, "mask", H5P_DEFAULT) > 0) {
    std::vector<double> mask;
    message = ReadMatrix(file.id, path, "mask", &shape_mask, &mask);
    if (message.empty() && shape_mask != shape_a)
      message = path + ": dataset mask (" + ShapeText(shape_mask) + ") differs in shape from a (" +
                ShapeText(shape_a) + ")";
    if (message.empty()) message = ApplyMask(path, mask, input);
    if (!message.empty()) return message;
  }
  *code = 0;
  return "";
}

// Writes a scalar or an nrow x ncol double dataset; returns false on failure.
bool WriteDoubles(hid_t file, const char *name, const double *values, hsize_t nrow, hsize_t ncol)
{
  hsize_t dims[2] = {nrow, ncol};
  Hdf5Handle space{nrow ? H5Screate_simple(2, dims, nullptr) : H5Screate(H5S_SCALAR), H5Sclose};
  Hdf5Handle dataset{
      H5Dcreate2(file, name, H5T_IEEE_F64LE, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose};
  return dataset.id >= 0 &&
         H5Dwrite(dataset.id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0;
}

bool WriteInteger(hid_t file, const char *name, long long value)
{
  Hdf5Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  Hdf5Handle dataset{
      H5Dcreate2(file, name, H5T_STD_I64LE, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose};
  return dataset.id >= 0 &&
         H5Dwrite(dataset.id, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) >= 0;
}

bool WriteString(hid_t file, const char *name, const std::string &text)
{
  Hdf5Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(type.id, text.size() + 1);
  Hdf5Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  Hdf5Handle dataset{
      H5Dcreate2(file, name, type.id, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose};
  return dataset.id >= 0 &&
         H5Dwrite(dataset.id, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.c_str()) >= 0;
}

// Gathers row slabs on rank 0 (the full array there, empty elsewhere). Collective.
PetscErrorCode GatherOnRoot(MPI_Comm comm, const std::vector<double> &local,
                            std::vector<double> *global)
{
  PetscMPIInt size, rank;
  int n = (int)local.size();

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  std::vector<int> counts(size), displs(size, 0);
  PetscCallMPI(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm));
  for (int p = 1; p < size; ++p)
    displs[p] = displs[p - 1] + counts[p - 1];
  if (rank == 0) global->resize(displs[size - 1] + counts[size - 1]);
  PetscCallMPI(MPI_Gatherv(local.data(), n, MPI_DOUBLE, global->data(), counts.data(),
                           displs.data(), MPI_DOUBLE, 0, comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

// Writes every dataset of the record to `partial` on rank 0; returns "" or an error message.
std::string WriteOnRoot(const std::string &partial, const OTOutputRecord &record,
                        const std::vector<std::vector<double>> &fields,
                        const std::vector<const char *> &names)
{
  QuietHdf5 quiet;
  const OTResult &result = *record.result;
  Hdf5Handle file{H5Fcreate(partial.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
  if (file.id < 0) return "cannot create " + partial;
  bool ok = WriteDoubles(file.id, "value", &result.value, 0, 0);
  for (size_t k = 0; k < fields.size(); ++k)
    ok = ok && WriteDoubles(file.id, names[k], fields[k].data(), record.nrow, record.ncol);
  ok = ok && WriteInteger(file.id, "iterations", result.report.iterations);
  ok = ok && WriteDoubles(file.id, "marginal_error", &result.report.marginal_error, 0, 0);
  ok = ok && WriteInteger(file.id, "converged", result.report.converged ? 1 : 0);
  ok = ok && WriteDoubles(file.id, "epsilon", &record.epsilon, 0, 0);
  ok = ok && WriteDoubles(file.id, "cell_size", &record.cell_size_km, 0, 0);
  ok = ok && WriteString(file.id, "quantity", record.quantity);
  if (record.implicit)
    ok = ok && WriteInteger(file.id, "ksp_iterations", result.report.ksp_iterations);
  if (!ok) return "cannot write the datasets of " + partial + "; check the free disk space";
  if (H5Fflush(file.id, H5F_SCOPE_GLOBAL) < 0) return "cannot flush " + partial;
  return "";
}
} // namespace

PetscErrorCode ReadOTInput(MPI_Comm comm, const std::string &path, OTInput *input)
{
  PetscMPIInt rank;
  PetscErrorCode code = 0;
  char message[1024] = "";
  long long shape[2] = {0, 0};

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  // NOTE: rank 0 reads the whole raster and every rank keeps a copy. That is fine for grids of a
  // few million cells; larger grids would want each rank to read its row slab in parallel.
  if (rank == 0) {
    std::string text = ReadOnRoot(path, input, &code);
    std::snprintf(message, sizeof(message), "%s", text.c_str());
    shape[0] = input->nrow;
    shape[1] = input->ncol;
  }
  PetscCallMPI(MPI_Bcast(&code, 1, MPI_INT, 0, comm));
  PetscCallMPI(MPI_Bcast(message, sizeof(message), MPI_CHAR, 0, comm));
  PetscCheck(code == 0, comm, code, "%s", message);
  PetscCallMPI(MPI_Bcast(shape, 2, MPI_LONG_LONG, 0, comm));
  input->nrow = (PetscInt)shape[0];
  input->ncol = (PetscInt)shape[1];
  input->a.resize(shape[0] * shape[1]);
  input->b.resize(shape[0] * shape[1]);
  PetscCallMPI(MPI_Bcast(input->a.data(), (int)input->a.size(), MPI_DOUBLE, 0, comm));
  PetscCallMPI(MPI_Bcast(input->b.data(), (int)input->b.size(), MPI_DOUBLE, 0, comm));
  input->source = path;
  input->cell_size_km = 0;
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode SpeciesWeekPair(MPI_Comm comm, const SpeciesData &species, PetscInt week_a,
                               PetscInt week_b, OTInput *input)
{
  const Grid &grid = species.grid;
  const PetscInt weeks = species.n_timesteps;

  PetscFunctionBeginUser;
  for (PetscInt week : {week_a, week_b})
    PetscCheck(week >= 1 && week <= weeks, comm, PETSC_ERR_ARG_OUTOFRANGE,
               "--weeks: week %" PetscInt_FMT " is outside 1..%" PetscInt_FMT " of %s", week, weeks,
               species.path.c_str());
  PetscCheck(std::fabs(grid.xres - grid.yres) <= 1e-6 * std::fabs(grid.xres), comm,
             PETSC_ERR_FILE_UNEXPECTED,
             "%s: cells are %s x %s m, not square; the W2 cost needs square cells",
             species.path.c_str(), Number(grid.xres).c_str(), Number(grid.yres).c_str());
  input->nrow = grid.nrow;
  input->ncol = grid.ncol;
  input->cell_size_km = grid.xres / 1000.0;
  input->a.assign(grid.nrow * grid.ncol, NAN);
  input->b.assign(grid.nrow * grid.ncol, NAN);
  for (PetscInt k = 0; k < species.n_active; ++k) {
    input->a[grid.active_cells[k]] = species.Distr(k, week_a - 1);
    input->b[grid.active_cells[k]] = species.Distr(k, week_b - 1);
  }
  input->source = species.path + " weeks " + std::to_string(week_a) + "," + std::to_string(week_b);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CheckOTInput(MPI_Comm comm, bool normalize, OTInput *input)
{
  PetscFunctionBeginUser;
  for (auto [name, values] : {std::pair{"a", &input->a}, std::pair{"b", &input->b}}) {
    double sum = 0;
    for (size_t i = 0; i < values->size(); ++i) {
      double v = (*values)[i];
      if (std::isnan(v)) continue;
      PetscCheck(v >= 0 && std::isfinite(v), comm, PETSC_ERR_ARG_OUTOFRANGE,
                 "%s: %s is %s at cell %s; entries must be non-negative and finite (NaN marks a "
                 "masked cell)",
                 input->source.c_str(), name, Number(v).c_str(), CellText(i, input->ncol).c_str());
      sum += v;
    }
    PetscCheck(sum > 0, comm, PETSC_ERR_ARG_OUTOFRANGE,
               "%s: %s has no mass (its unmasked entries sum to 0)", input->source.c_str(), name);
    PetscCheck(normalize || std::fabs(sum - 1.0) <= kOTSumTolerance, comm, PETSC_ERR_ARG_OUTOFRANGE,
               "%s: %s sums to %s, not 1 (tolerance %s); pass --normalize to rescale it",
               input->source.c_str(), name, Number(sum).c_str(), Number(kOTSumTolerance).c_str());
    for (double &v : *values)
      if (!std::isnan(v)) v /= sum;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode WriteOTOutput(MPI_Comm comm, const std::string &path, const OTOutputRecord &record)
{
  const OTResult &result = *record.result;
  PetscMPIInt rank;
  char message[1024] = "";
  std::vector<const char *> names = {"f", "g"};
  std::vector<const std::vector<double> *> locals = {&result.f, &result.g};

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (record.gradient) {
    names.insert(names.end(), {"gradient_a", "gradient_b"});
    locals.insert(locals.end(), {&result.gradient_a, &result.gradient_b});
  }
  std::vector<std::vector<double>> fields(names.size());
  for (size_t k = 0; k < names.size(); ++k)
    PetscCall(GatherOnRoot(comm, *locals[k], &fields[k]));
  if (rank == 0) {
    std::string text = WriteOnRoot(PartialPath(path), record, fields, names);
    std::snprintf(message, sizeof(message), "%s", text.c_str());
  }
  PetscCallMPI(MPI_Bcast(message, sizeof(message), MPI_CHAR, 0, comm));
  if (message[0]) DiscardOutputFile(comm, path);
  PetscCheck(message[0] == '\0', comm, PETSC_ERR_FILE_WRITE, "%s", message);
  PetscCall(CommitOutputFile(comm, path));
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
