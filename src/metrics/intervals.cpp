// Interval tables: CSV parsing (RFC 4180) and checks against a model.
#include "birdflow/metrics.hpp"

#include "birdflow/petsc_compat.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

namespace birdflow
{
namespace
{
struct CsvRecord
{
  PetscInt line = 0; // line on which the record starts
  std::vector<std::string> fields;
};

[[noreturn]] void Fail(const std::string &source, PetscInt line, const std::string &what)
{
  throw std::runtime_error(source + ":" + std::to_string(line) + ": " + what);
}

// Splits RFC 4180 text into records. A quoted field may contain commas, doubled quotes and line
// breaks; a record ends at LF or CRLF outside quotes. Blank lines are skipped.
std::vector<CsvRecord> SplitCsv(const std::string &text, const std::string &source)
{
  std::vector<CsvRecord> records;
  CsvRecord record;
  std::string field;
  bool in_quotes = false, field_was_quoted = false, record_open = false;
  PetscInt line = 1;
  record.line = 1;

  auto end_field = [&]() {
    record.fields.push_back(field);
    field.clear();
    field_was_quoted = false;
  };
  auto end_record = [&]() {
    if (record_open) {
      end_field();
      records.push_back(record);
    }
    record = CsvRecord{};
    record_open = false;
  };

  for (size_t k = 0; k < text.size(); ++k) {
    char c = text[k];
    if (!record_open) record.line = line;
    if (in_quotes) {
      if (c == '"' && k + 1 < text.size() && text[k + 1] == '"') {
        field += '"';
        ++k;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '\r' && k + 1 < text.size() && text[k + 1] == '\n') continue;
    if (c == '\n') {
      end_record();
      ++line;
      continue;
    }
    record_open = true;
    if (c == ',') {
      end_field();
    } else if (c == '"' && field.empty() && !field_was_quoted) {
      in_quotes = field_was_quoted = true;
    } else if (field_was_quoted) {
      Fail(source, line, "character '" + std::string(1, c) + "' after a closing quote");
    } else {
      field += c;
    }
  }
  if (in_quotes) Fail(source, record.line, "quoted field is not closed before the end of file");
  end_record();
  return records;
}

bool IsMissing(const std::string &value)
{
  return value.empty() || value == "NA";
}

// Parses a non-negative integer; NA or empty gives kMissingIndex.
PetscInt ParseIndex(const std::string &value, const std::string &source, PetscInt line,
                    const std::string &column)
{
  if (IsMissing(value)) return kMissingIndex;
  long long parsed = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (error != std::errc() || end != value.data() + value.size() || parsed < 0)
    Fail(source, line,
         "column " + column + ": invalid value \"" + value +
             "\" (expected a 1-based integer or NA); fix the value in the interval table");
  return static_cast<PetscInt>(parsed);
}

double ParseReal(const std::string &value, const std::string &source, PetscInt line,
                 const std::string &column)
{
  if (IsMissing(value)) return kNotAvailable;
  double parsed = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (error != std::errc() || end != value.data() + value.size() || !std::isfinite(parsed))
    Fail(source, line,
         "column " + column + ": invalid value \"" + value +
             "\" (expected a finite number or NA); fix the value in the interval table");
  return parsed;
}

// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil algorithm).
long long DaysFromCivil(long long y, unsigned m, unsigned d)
{
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

// Parses YYYY-MM-DD into a day number; NA or empty gives nullopt.
std::optional<long long> ParseDate(const std::string &value, const std::string &source,
                                   PetscInt line, const std::string &column)
{
  if (IsMissing(value)) return std::nullopt;
  int y = 0;
  unsigned m = 0, d = 0;
  char tail = 0;
  bool shaped = value.size() == 10 && value[4] == '-' && value[7] == '-' &&
                std::sscanf(value.c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &tail) == 3;
  static const unsigned month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  bool valid_day =
      shaped && m >= 1 && m <= 12 && d >= 1 && d <= month_days[m - 1] + (m == 2 && leap ? 1u : 0u);
  if (!valid_day)
    Fail(source, line,
         "column " + column + ": invalid date \"" + value +
             "\" (expected YYYY-MM-DD or NA); fix the value in the interval table");
  long long days = DaysFromCivil(y, m, d);
  return days;
}

// Maps column names to positions; the first of several accepted names wins.
std::optional<size_t> FindColumn(const std::map<std::string, size_t> &columns,
                                 std::initializer_list<const char *> names)
{
  for (const char *name : names) {
    auto found = columns.find(name);
    if (found != columns.end()) return found->second;
  }
  return std::nullopt;
}
} // namespace

std::vector<Interval> ParseIntervalsCsv(const std::string &text, const std::string &source)
{
  // Spreadsheet programs may start a UTF-8 file with a byte-order mark; it is not part of a name.
  const std::string bom = "\xEF\xBB\xBF";
  const bool has_bom = text.compare(0, bom.size(), bom) == 0;
  std::vector<CsvRecord> records = SplitCsv(has_bom ? text.substr(bom.size()) : text, source);
  if (records.empty()) Fail(source, 1, "the file is empty; expected a header line");

  // 1. Header: required and optional columns.
  std::map<std::string, size_t> columns;
  for (size_t c = 0; c < records[0].fields.size(); ++c)
    columns.emplace(records[0].fields[c], c);
  auto required = [&](std::initializer_list<const char *> names) {
    auto position = FindColumn(columns, names);
    if (!position)
      Fail(source, records[0].line,
           std::string("missing column ") + *names.begin() +
               " in the header; an interval table needs interval_id, t1, t2, i1 and i2");
    return *position;
  };
  const size_t c_id = required({"interval_id"}), c_t1 = required({"t1", "timestep1"}),
               c_t2 = required({"t2", "timestep2"}), c_i1 = required({"i1"}),
               c_i2 = required({"i2"});
  auto c_date1 = FindColumn(columns, {"date1"}), c_date2 = FindColumn(columns, {"date2"});
  auto c_lat1 = FindColumn(columns, {"lat1"}), c_lon1 = FindColumn(columns, {"lon1"});
  auto c_lat2 = FindColumn(columns, {"lat2"}), c_lon2 = FindColumn(columns, {"lon2"});
  const size_t n_columns = records[0].fields.size();

  // 2. Records.
  std::vector<Interval> intervals;
  std::set<std::string> seen;
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord &record = records[r];
    if (record.fields.size() != n_columns)
      Fail(source, record.line,
           "expected " + std::to_string(n_columns) + " fields as in the header, found " +
               std::to_string(record.fields.size()));
    auto field = [&](size_t c) -> const std::string & { return record.fields[c]; };
    auto real = [&](std::optional<size_t> c, const char *name) {
      return c ? ParseReal(field(*c), source, record.line, name) : kNotAvailable;
    };

    Interval interval;
    interval.line = record.line;
    interval.id = field(c_id);
    if (IsMissing(interval.id))
      Fail(source, record.line, "column interval_id: missing value; every interval needs an id");
    if (!seen.insert(interval.id).second)
      Fail(source, record.line, "column interval_id: duplicate id \"" + interval.id + "\"");
    interval.t1 = ParseIndex(field(c_t1), source, record.line, "t1");
    interval.t2 = ParseIndex(field(c_t2), source, record.line, "t2");
    interval.i1 = ParseIndex(field(c_i1), source, record.line, "i1");
    interval.i2 = ParseIndex(field(c_i2), source, record.line, "i2");
    if (c_date1 && c_date2) {
      auto date1 = ParseDate(field(*c_date1), source, record.line, "date1");
      auto date2 = ParseDate(field(*c_date2), source, record.line, "date2");
      if (date1 && date2) interval.elapsed_days = static_cast<double>(*date2 - *date1);
    }
    interval.lat1 = real(c_lat1, "lat1");
    interval.lon1 = real(c_lon1, "lon1");
    interval.lat2 = real(c_lat2, "lat2");
    interval.lon2 = real(c_lon2, "lon2");
    intervals.push_back(interval);
  }
  return intervals;
}

PetscErrorCode ReadIntervals(MPI_Comm comm, const std::string &path,
                             std::vector<Interval> *intervals)
{
  PetscMPIInt rank;
  std::string text;
  long long length = 0;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream buffer;
    if (in) buffer << in.rdbuf();
    length = in ? static_cast<long long>(buffer.str().size()) : -1;
    text = buffer.str();
  }
  PetscCallMPI(MPI_Bcast(&length, 1, MPI_LONG_LONG, 0, comm));
  PetscCheck(length >= 0, comm, PETSC_ERR_FILE_OPEN,
             "cannot read the interval table %s; check the path given to --intervals",
             path.c_str());
  text.resize(static_cast<size_t>(length));
  PetscCallMPI(MPI_Bcast(text.data(), static_cast<int>(length), MPI_CHAR, 0, comm));

  std::string error;
  try {
    *intervals = ParseIntervalsCsv(text, path);
  } catch (const std::exception &e) {
    error = e.what();
  }
  PetscCheck(error.empty(), comm, PETSC_ERR_USER_INPUT, "%s", error.c_str());
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode CheckIntervalsInModel(const std::vector<Interval> &intervals,
                                     const std::string &source, const ForwardModel &model)
{
  PetscFunctionBeginUser;
  for (const Interval &interval : intervals) {
    const std::pair<const char *, PetscInt> weeks[] = {{"t1", interval.t1}, {"t2", interval.t2}};
    for (auto [column, week] : weeks)
      PetscCheck(week == kMissingIndex || (week >= 1 && week <= model.n_weeks), PETSC_COMM_SELF,
                 PETSC_ERR_USER_INPUT,
                 "%s:%" PetscInt_FMT ": column %s: week %" PetscInt_FMT
                 " is outside 1..%" PetscInt_FMT " of the model; use the model's timesteps",
                 source.c_str(), interval.line, column, week, model.n_weeks);
    const std::pair<const char *, PetscInt> cells[] = {{"i1", interval.i1}, {"i2", interval.i2}};
    for (auto [column, cell] : cells)
      PetscCheck(cell == kMissingIndex || (cell >= 1 && cell <= model.n_active), PETSC_COMM_SELF,
                 PETSC_ERR_USER_INPUT,
                 "%s:%" PetscInt_FMT ": column %s: cell %" PetscInt_FMT
                 " is outside the grid's active cells 1..%" PetscInt_FMT
                 "; was the table made for another model?",
                 source.c_str(), interval.line, column, cell, model.n_active);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
