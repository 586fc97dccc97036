// Serial HDF5 reading helpers for the species-file reader (internal to src/io).
//
// The reader runs on one rank and reports problems as FileError exceptions, which the public
// functions catch, broadcast and turn into one PETSc error on every rank. Nothing here calls
// PETSc, so no exception crosses a PETSc callback.
#pragma once

#include <hdf5.h>
#include <petscsys.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace birdflow::io
{
/* A problem with a species file: a PETSc error code and a one-line message for the user. */
class FileError : public std::runtime_error
{
public:
  FileError(PetscErrorCode code, const std::string &message)
      : std::runtime_error(message), code_(code)
  {
  }
  PetscErrorCode code() const { return code_; }

private:
  PetscErrorCode code_;
};

/* Owner of an HDF5 identifier; closes it with the matching H5?close function. */
class Hid
{
public:
  using Closer = herr_t (*)(hid_t);
  Hid() = default;
  Hid(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Hid(const Hid &) = delete;
  Hid &operator=(const Hid &) = delete;
  Hid(Hid &&other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Hid &operator=(Hid &&other) noexcept;
  ~Hid() { Reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  /* Closes the identifier now; returns false when the close call failed. */
  bool Reset();

private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

/* Turns off HDF5's automatic error-stack printing while it lives, so our one-line messages are
   the only output, and restores the previous setting afterwards. */
class QuietHdf5Errors
{
public:
  QuietHdf5Errors();
  ~QuietHdf5Errors();
  QuietHdf5Errors(const QuietHdf5Errors &) = delete;
  QuietHdf5Errors &operator=(const QuietHdf5Errors &) = delete;

private:
  H5E_auto2_t old_function_ = nullptr;
  void *old_data_ = nullptr;
};

/* A BirdFlowR species file opened read-only. Every method throws FileError naming the file and
   the dataset on failure. */
class SpeciesFile
{
public:
  /* Opens `path`; fails with PETSC_ERR_FILE_OPEN when it is missing or unreadable and with
     PETSC_ERR_FILE_UNEXPECTED when it is not an HDF5 file. */
  explicit SpeciesFile(const std::string &path);

  const std::string &path() const { return path_; }
  hid_t id() const { return file_.get(); }

  /* Returns true when every component of the slash-separated `name` exists. */
  bool Exists(const std::string &name) const;

  /* Returns the shape of dataset `name` (empty for an HDF5 scalar). */
  std::vector<hsize_t> Shape(const std::string &name) const;

  /* Reads a numeric (float or integer) dataset as double, with its shape. */
  std::vector<double> ReadDoubles(const std::string &name, std::vector<hsize_t> *shape) const;

  /* Reads an integer or enum dataset (R logicals are int8 or int32, h5py bools are int8 enums)
     as long long, with its shape. */
  std::vector<long long> ReadIntegers(const std::string &name, std::vector<hsize_t> *shape) const;

  /* Reads a string stored as an HDF5 scalar or a length-1 array, fixed or variable length. */
  std::string ReadString(const std::string &name) const;

  /* Reads one number stored as an HDF5 scalar or a length-1 array. */
  double ReadNumber(const std::string &name) const;

  /* Returns true when `name` is a dataset of the HDF5 string class. */
  bool IsString(const std::string &name) const;

  /* Returns the message prefix "<path>: dataset <name>". */
  std::string Where(const std::string &name) const;

private:
  Hid OpenDataset(const std::string &name) const;

  std::string path_;
  Hid file_;
};

/* Formats like printf into a std::string. */
std::string Format(const char *format, ...) __attribute__((format(printf, 1, 2)));
} // namespace birdflow::io
