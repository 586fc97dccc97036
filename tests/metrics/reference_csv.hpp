// Reads the small reference CSV files of BirdFlowR output shipped in data/.
#pragma once

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace birdflow::testing
{
// A CSV table without quoted commas, as R's write.csv writes numeric and logical columns.
struct ReferenceTable
{
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  size_t Column(const std::string &name) const
  {
    for (size_t c = 0; c < header.size(); ++c)
      if (header[c] == name) return c;
    return header.size();
  }
};

inline std::vector<std::string> SplitUnquoted(std::string line)
{
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::vector<std::string> fields;
  std::stringstream stream(line);
  std::string field;
  while (std::getline(stream, field, ',')) {
    if (field.size() >= 2 && field.front() == '"' && field.back() == '"')
      field = field.substr(1, field.size() - 2);
    fields.push_back(field);
  }
  if (!line.empty() && line.back() == ',') fields.push_back("");
  return fields;
}

inline ReferenceTable ReadReferenceTable(const std::string &path)
{
  ReferenceTable table;
  std::ifstream in(path);
  std::string line;
  if (std::getline(in, line)) table.header = SplitUnquoted(line);
  while (std::getline(in, line))
    if (!line.empty()) table.rows.push_back(SplitUnquoted(line));
  return table;
}
} // namespace birdflow::testing
