#include "birdflow/lasso_io.hpp"

#include "birdflow/petsc_compat.hpp"

#include <hdf5.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace birdflow::lasso
{
namespace
{
// Reads a whole file through zlib, which passes uncompressed files through unchanged.
std::string ReadMaybeCompressed(const std::string &path, std::string *text)
{
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) return "cannot open " + path + ": " + std::strerror(errno);
  char buffer[1 << 16];
  int count;
  while ((count = gzread(file, buffer, sizeof(buffer))) > 0)
    text->append(buffer, count);
  int status = 0;
  const char *message = gzerror(file, &status);
  std::string reason;
  if (count < 0 || (status != Z_OK && status != Z_STREAM_END))
    reason = "cannot read " + path + ": " + (message ? message : "zlib error");
  gzclose(file);
  return reason;
}

// Splits `line` on spaces, tabs and commas.
std::vector<std::string> SplitFields(const std::string &line)
{
  std::vector<std::string> fields;
  std::string field;
  for (char c : line) {
    if (c == ' ' || c == '\t' || c == ',' || c == '\r') {
      if (!field.empty()) fields.push_back(field);
      field.clear();
    } else {
      field.push_back(c);
    }
  }
  if (!field.empty()) fields.push_back(field);
  return fields;
}

bool ParseDouble(const std::string &field, double *value)
{
  char *end = nullptr;
  errno = 0;
  *value = std::strtod(field.c_str(), &end);
  return end && *end == '\0' && errno == 0 && std::isfinite(*value);
}

bool IsHdf5Path(const std::string &path, std::string *file, std::string *dataset)
{
  for (const char *ext : {".h5", ".hdf5"}) {
    std::string::size_type at = path.find(ext);
    if (at == std::string::npos) continue;
    std::string::size_type end = at + std::strlen(ext);
    if (end == path.size()) {
      *file = path;
      return true;
    }
    if (path[end] == ':') {
      *file = path.substr(0, end);
      *dataset = path.substr(end + 1);
      return true;
    }
  }
  return false;
}

std::string ReadHdf5(const std::string &file, const std::string &dataset, Table *table)
{
  H5E_auto2_t old_handler;
  void *old_data;
  H5Eget_auto2(H5E_DEFAULT, &old_handler, &old_data);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  std::string reason;
  hid_t fid = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t did = fid < 0 ? -1 : H5Dopen2(fid, dataset.c_str(), H5P_DEFAULT);
  if (fid < 0)
    reason = "cannot open HDF5 file " + file;
  else if (did < 0)
    reason = "dataset " + dataset + " not found in " + file;
  if (reason.empty()) {
    hid_t space = H5Dget_space(did);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[2] = {0, 1};
    if (rank == 1 || rank == 2) H5Sget_simple_extent_dims(space, dims, nullptr);
    H5Sclose(space);
    if (rank != 1 && rank != 2) {
      reason = "dataset " + dataset + " in " + file + " has " + std::to_string(rank) +
               " dimensions; expected 1 or 2";
    } else {
      table->rows = static_cast<PetscInt>(dims[0]);
      table->cols = static_cast<PetscInt>(dims[1]);
      table->values.assign(dims[0] * dims[1], 0.0);
      if (H5Dread(did, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, table->values.data()) < 0)
        reason = "cannot read dataset " + dataset + " of " + file + " as double";
    }
  }
  if (did >= 0) H5Dclose(did);
  if (fid >= 0) H5Fclose(fid);
  H5Eset_auto2(H5E_DEFAULT, old_handler, old_data);
  for (double v : table->values)
    if (reason.empty() && !std::isfinite(v))
      reason = "dataset " + dataset + " of " + file + " contains a NaN or infinite value";
  return reason;
}
} // namespace

std::string ParseTextTable(const std::string &text, const std::string &source, Table *table)
{
  table->rows = 0;
  table->cols = 0;
  table->values.clear();
  std::istringstream stream(text);
  std::string line;
  for (long number = 1; std::getline(stream, line); ++number) {
    std::vector<std::string> fields = SplitFields(line);
    if (fields.empty()) continue;
    if (table->rows == 0) table->cols = static_cast<PetscInt>(fields.size());
    if (static_cast<PetscInt>(fields.size()) != table->cols)
      return source + " line " + std::to_string(number) + " has " + std::to_string(fields.size()) +
             " fields but line 1 has " + std::to_string(table->cols) +
             "; every row needs the same number of fields";
    for (const std::string &field : fields) {
      double value;
      if (!ParseDouble(field, &value))
        return source + " line " + std::to_string(number) + ": '" + field +
               "' is not a finite number";
      table->values.push_back(value);
    }
    ++table->rows;
  }
  if (table->rows == 0) return source + " contains no data rows";
  return "";
}

PetscErrorCode ReadTable(MPI_Comm comm, const std::string &path, const char *option_name,
                         const char *default_dataset, Table *table)
{
  std::string reason, file, dataset = default_dataset;

  PetscFunctionBeginUser;
  // NOTE: every rank reads the whole file, which keeps validation collective without messages but
  // limits the data to what one rank can hold.
  if (IsHdf5Path(path, &file, &dataset)) {
    reason = ReadHdf5(file, dataset, table);
  } else {
    std::string text;
    reason = ReadMaybeCompressed(path, &text);
    if (reason.empty()) reason = ParseTextTable(text, path, table);
  }
  PetscCheck(reason.empty(), comm, PETSC_ERR_FILE_UNEXPECTED, "%s: %s", option_name,
             reason.c_str());
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow::lasso
