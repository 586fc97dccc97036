// Reading numeric tables (plain or gzip-compressed text, HDF5) for the Lasso demo.
#pragma once

#include <petscsys.h>

#include <string>
#include <vector>

namespace birdflow::lasso
{
/* A dense table of doubles in row-major order, as read from a file. */
struct Table
{
  PetscInt rows = 0;
  PetscInt cols = 0;
  std::vector<double> values;
};

/* ReadTable - Reads a numeric table from `path`. Collective: every rank reads the whole file, so
   every rank reaches the same verdict on bad input.

   Formats: text with fields separated by spaces, tabs or commas and one row per line, blank lines
   skipped. Text may be gzip-compressed, which zlib detects from the content. A path ending in .h5
   or .hdf5, optionally followed by ":<dataset>", is read as HDF5 (default dataset
   `default_dataset`). A one-dimensional HDF5 dataset becomes a one-column table.

   Errors (PETSC_ERR_FILE_OPEN, PETSC_ERR_FILE_UNEXPECTED): a missing file, a non-numeric field or
   a row whose field count differs from the first row's; the message names `option_name`, the file
   and the line. */
PetscErrorCode ReadTable(MPI_Comm comm, const std::string &path, const char *option_name,
                         const char *default_dataset, Table *table);

/* Parses text already in memory (as ReadTable does after decompression). Returns an empty string on
   success, else a one-line reason naming `source` and the line. Not collective. */
std::string ParseTextTable(const std::string &text, const std::string &source, Table *table);
} // namespace birdflow::lasso
