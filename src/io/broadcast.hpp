// Byte-buffer packing, so rank 0 can read a file and send every rank the same contents in one
// broadcast (internal to src/io).
#pragma once

#include <petscsys.h>

#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace birdflow::io
{
/* Appends trivially copyable values, vectors of them and strings to a byte buffer and reads them
   back in the same order. */
class Packer
{
public:
  template <typename T> void Put(const T &value)
  {
    static_assert(std::is_trivially_copyable_v<T>);
    const char *bytes = reinterpret_cast<const char *>(&value);
    buffer_.insert(buffer_.end(), bytes, bytes + sizeof(T));
  }
  template <typename T> void Put(const std::vector<T> &values)
  {
    static_assert(std::is_trivially_copyable_v<T>);
    Put<unsigned long long>(values.size());
    const char *bytes = reinterpret_cast<const char *>(values.data());
    buffer_.insert(buffer_.end(), bytes, bytes + values.size() * sizeof(T));
  }
  void Put(const std::string &text)
  {
    Put<unsigned long long>(text.size());
    buffer_.insert(buffer_.end(), text.begin(), text.end());
  }

  template <typename T> void Get(T *value)
  {
    std::memcpy(value, buffer_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
  }
  template <typename T> void Get(std::vector<T> *values)
  {
    unsigned long long count = 0;
    Get(&count);
    values->resize(count);
    std::memcpy(values->data(), buffer_.data() + offset_, count * sizeof(T));
    offset_ += count * sizeof(T);
  }
  void Get(std::string *text)
  {
    unsigned long long count = 0;
    Get(&count);
    text->assign(buffer_.data() + offset_, count);
    offset_ += count;
  }

  /* Sends the buffer of rank `root` to every rank and rewinds it for reading. Collective. */
  PetscErrorCode Broadcast(MPI_Comm comm, int root = 0);

private:
  std::vector<char> buffer_;
  size_t offset_ = 0;
};

/* Sends rank 0's error (code 0 for none) to every rank and returns it there as one PETSc error
   with the same message. Collective. */
PetscErrorCode BroadcastError(MPI_Comm comm, PetscErrorCode code, const std::string &message);

/* Returns the error of the lowest rank whose `code` is not 0 on every rank, with that rank's
   message, or success when no rank has an error. Collective. */
PetscErrorCode ShareFirstError(MPI_Comm comm, PetscErrorCode code, const std::string &message);
} // namespace birdflow::io
