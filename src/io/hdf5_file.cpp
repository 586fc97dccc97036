#include "hdf5_file.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace birdflow::io
{
std::string Format(const char *format, ...)
{
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  int length = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string text(length > 0 ? (size_t)length : 0, '\0');
  if (length > 0) std::vsnprintf(text.data(), text.size() + 1, format, args);
  va_end(args);
  return text;
}

Hid &Hid::operator=(Hid &&other) noexcept
{
  if (this != &other) {
    Reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

bool Hid::Reset()
{
  bool ok = true;
  if (id_ >= 0 && closer_) ok = closer_(id_) >= 0;
  id_ = -1;
  return ok;
}

QuietHdf5Errors::QuietHdf5Errors()
{
  H5Eget_auto2(H5E_DEFAULT, &old_function_, &old_data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

QuietHdf5Errors::~QuietHdf5Errors()
{
  H5Eset_auto2(H5E_DEFAULT, old_function_, old_data_);
}

namespace
{
// Rejects a path that does not name a readable regular file, with the reason.
void CheckReadableFile(const std::string &path)
{
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw FileError(PETSC_ERR_FILE_OPEN,
                    Format("%s: file not found; check the path (a BirdFlowR .hdf5 species file)",
                           path.c_str()));
  if (fs::is_directory(path, ec))
    throw FileError(PETSC_ERR_FILE_OPEN,
                    Format("%s: is a folder; give a BirdFlowR .hdf5 species file", path.c_str()));
  std::ifstream probe(path, std::ios::binary);
  if (!probe)
    throw FileError(PETSC_ERR_FILE_OPEN, Format("%s: cannot open for reading (%s); check the "
                                                "file permissions",
                                                path.c_str(), std::strerror(errno)));
}

// Returns a signed integer of `size` bytes stored at `bytes`, honouring `is_signed`.
long long DecodeInteger(const unsigned char *bytes, size_t size, bool is_signed)
{
  switch (size) {
  case 1:
    return is_signed ? (long long)*(const int8_t *)bytes : (long long)*(const uint8_t *)bytes;
  case 2:
    return is_signed ? (long long)*(const int16_t *)bytes : (long long)*(const uint16_t *)bytes;
  case 4:
    return is_signed ? (long long)*(const int32_t *)bytes : (long long)*(const uint32_t *)bytes;
  default:
    return is_signed ? *(const int64_t *)bytes : (long long)*(const uint64_t *)bytes;
  }
}

std::string ShapeText(const std::vector<hsize_t> &shape)
{
  if (shape.empty()) return "a scalar";
  std::string text = "shape (";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string((unsigned long long)shape[i]);
  return text + ")";
}

size_t ElementCount(const std::vector<hsize_t> &shape)
{
  size_t count = 1;
  for (hsize_t extent : shape)
    count *= (size_t)extent;
  return count;
}
} // namespace

SpeciesFile::SpeciesFile(const std::string &path) : path_(path)
{
  CheckReadableFile(path);
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    Format("%s: not an HDF5 file; give a BirdFlowR .hdf5 species file (written "
                           "by export_birdflow() or a fitted model)",
                           path.c_str()));
  file_ = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file_.valid())
    throw FileError(PETSC_ERR_FILE_OPEN,
                    Format("%s: HDF5 cannot open the file; check that it is complete and not "
                           "being written (on a file system without locking, set "
                           "HDF5_USE_FILE_LOCKING=FALSE)",
                           path.c_str()));
}

std::string SpeciesFile::Where(const std::string &name) const
{
  return path_ + ": dataset " + name;
}

bool SpeciesFile::Exists(const std::string &name) const
{
  size_t end = 0;
  while (end != std::string::npos) {
    end = name.find('/', end + 1);
    std::string prefix = name.substr(0, end);
    if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

Hid SpeciesFile::OpenDataset(const std::string &name) const
{
  if (!Exists(name))
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    Where(name) + " is missing; give a BirdFlowR species file that contains it");
  Hid dataset(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid())
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    Where(name) + " cannot be opened as a dataset (is it a group?)");
  return dataset;
}

std::vector<hsize_t> SpeciesFile::Shape(const std::string &name) const
{
  Hid dataset = OpenDataset(name);
  Hid space(H5Dget_space(dataset.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) throw FileError(PETSC_ERR_FILE_UNEXPECTED, Where(name) + " has no valid shape");
  std::vector<hsize_t> shape((size_t)rank);
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), shape.data(), nullptr);
  return shape;
}

bool SpeciesFile::IsString(const std::string &name) const
{
  Hid dataset = OpenDataset(name);
  Hid type(H5Dget_type(dataset.get()), H5Tclose);
  return H5Tget_class(type.get()) == H5T_STRING;
}

std::vector<double> SpeciesFile::ReadDoubles(const std::string &name,
                                             std::vector<hsize_t> *shape) const
{
  Hid dataset = OpenDataset(name);
  Hid type(H5Dget_type(dataset.get()), H5Tclose);
  H5T_class_t type_class = H5Tget_class(type.get());
  if (type_class != H5T_FLOAT && type_class != H5T_INTEGER)
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    Where(name) + " is not numeric; expected float64 (or an integer type)");
  *shape = Shape(name);
  std::vector<double> values(ElementCount(*shape));
  if (!values.empty() &&
      H5Dread(dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
    throw FileError(PETSC_ERR_FILE_READ, Where(name) + " cannot be read; the file may be damaged");
  return values;
}

std::vector<long long> SpeciesFile::ReadIntegers(const std::string &name,
                                                 std::vector<hsize_t> *shape) const
{
  Hid dataset = OpenDataset(name);
  Hid type(H5Dget_type(dataset.get()), H5Tclose);
  H5T_class_t type_class = H5Tget_class(type.get());
  if (type_class != H5T_INTEGER && type_class != H5T_ENUM)
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    Where(name) + " is not a logical; expected int8 or int32 (R logical) or an "
                                  "int8 enum (h5py bool)");
  *shape = Shape(name);
  size_t count = ElementCount(*shape);
  std::vector<long long> values(count);
  if (count == 0) return values;
  herr_t status;
  if (type_class == H5T_INTEGER) {
    status = H5Dread(dataset.get(), H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  } else {
    // HDF5 converts no enum to an integer type, so read the enum's own bytes and decode its base.
    Hid native(H5Tget_native_type(type.get(), H5T_DIR_ASCEND), H5Tclose);
    Hid base(H5Tget_super(type.get()), H5Tclose);
    size_t size = H5Tget_size(native.get());
    bool is_signed = H5Tget_sign(base.get()) == H5T_SGN_2;
    std::vector<unsigned char> bytes(count * size);
    status = H5Dread(dataset.get(), native.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
    for (size_t i = 0; i < count; ++i)
      values[i] = DecodeInteger(bytes.data() + i * size, size, is_signed);
  }
  if (status < 0)
    throw FileError(PETSC_ERR_FILE_READ, Where(name) + " cannot be read; the file may be damaged");
  return values;
}

std::string SpeciesFile::ReadString(const std::string &name) const
{
  Hid dataset = OpenDataset(name);
  Hid type(H5Dget_type(dataset.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw FileError(PETSC_ERR_FILE_UNEXPECTED, Where(name) + " is not a string");
  std::vector<hsize_t> shape = Shape(name);
  if (ElementCount(shape) != 1)
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    Where(name) + " has " + ShapeText(shape) + "; expected one string");

  Hid memory_type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_cset(memory_type.get(), H5Tget_cset(type.get()));
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Tset_size(memory_type.get(), H5T_VARIABLE);
    char *text = nullptr;
    if (H5Dread(dataset.get(), memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &text) < 0)
      throw FileError(PETSC_ERR_FILE_READ, Where(name) + " cannot be read");
    std::string value = text ? text : "";
    Hid space(H5Dget_space(dataset.get()), H5Sclose);
    H5Dvlen_reclaim(memory_type.get(), space.get(), H5P_DEFAULT, &text);
    return value;
  }

  // A fixed-length string: read it with one spare byte so it is always NUL-terminated.
  size_t size = H5Tget_size(type.get());
  H5Tset_size(memory_type.get(), size + 1);
  H5Tset_strpad(memory_type.get(), H5T_STR_NULLTERM);
  std::vector<char> buffer(size + 1, '\0');
  if (H5Dread(dataset.get(), memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0)
    throw FileError(PETSC_ERR_FILE_READ, Where(name) + " cannot be read");
  std::string value(buffer.data());
  while (!value.empty() && value.back() == ' ')
    value.pop_back();
  return value;
}

double SpeciesFile::ReadNumber(const std::string &name) const
{
  std::vector<hsize_t> shape;
  std::vector<double> values = ReadDoubles(name, &shape);
  if (values.size() != 1)
    throw FileError(PETSC_ERR_FILE_UNEXPECTED,
                    Where(name) + " has " + ShapeText(shape) + "; expected one number");
  return values[0];
}
} // namespace birdflow::io
