#include "fitted_metadata.hpp"

#include "birdflow/driver.hpp"
#include "hdf5_file.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <set>

namespace birdflow::io
{
namespace
{
// Top-level objects of the input that the fitted file does not keep: BirdFlowPy deletes
// `distances`, and the marginals of a fitted input are replaced by the new ones.
const std::set<std::string> kSkippedRootObjects = {"distances", "marginals"};

// Objects under metadata/ that this writer replaces when the input is itself a fitted file.
const char *kReplacedMetadata[] = {"metadata/hyperparameters", "metadata/loss_values",
                                   "metadata/birdflow_model_date", "metadata/birdflow_hpc"};

herr_t CollectName(hid_t, const char *name, const H5L_info_t *, void *names)
{
  static_cast<std::vector<std::string> *>(names)->push_back(name);
  return 0;
}

std::vector<std::string> RootNames(const SpeciesFile &input)
{
  std::vector<std::string> names;
  if (H5Literate(input.id(), H5_INDEX_NAME, H5_ITER_INC, nullptr, CollectName, &names) < 0)
    throw FileError(PETSC_ERR_FILE_READ,
                    input.path() + ": cannot list the objects of the file; it may be damaged");
  return names;
}

class OutputFile
{
public:
  explicit OutputFile(const std::string &path) : path_(path)
  {
    file_ = Hid(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!file_.valid())
      throw FileError(PETSC_ERR_FILE_OPEN,
                      path + ": cannot create the file; check that the folder exists, is "
                             "writable and has free space");
  }

  hid_t id() const { return file_.get(); }

  void Fail(const std::string &name, const char *reason) const
  {
    throw FileError(PETSC_ERR_FILE_WRITE,
                    path_ + ": cannot write " + name + " (" + reason + "); check free space");
  }

  /* Creates the group `name` unless it exists. */
  void EnsureGroup(const std::string &name) const
  {
    if (H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) > 0) return;
    Hid group(H5Gcreate2(file_.get(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              H5Gclose);
    if (!group.valid()) Fail(name, "group creation failed");
  }

  /* Writes `count` values of `memory_type` from `data` as dataset `name` of `file_type`; a
     count of -1 writes an HDF5 scalar. */
  void Write(const std::string &name, hid_t file_type, hid_t memory_type, const void *data,
             long long count) const
  {
    hsize_t extent = count < 0 ? 0 : (hsize_t)count;
    Hid space(count < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &extent, nullptr), H5Sclose);
    Hid dataset(H5Dcreate2(file_.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT,
                           H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose);
    if (!dataset.valid()) Fail(name, "dataset creation failed");
    if (count != 0 && H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
      Fail(name, "write failed");
  }

  void WriteDouble(const std::string &name, double value) const
  {
    Write(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, -1);
  }

  void WriteInt64(const std::string &name, long long value) const
  {
    Write(name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &value, -1);
  }

  /* Writes a bool as h5py does: a scalar int8 enum {FALSE = 0, TRUE = 1}. */
  void WriteEnumBool(const std::string &name, bool value) const
  {
    Hid type(H5Tenum_create(H5T_NATIVE_SCHAR), H5Tclose);
    signed char false_value = 0, true_value = 1, stored = value ? 1 : 0;
    H5Tenum_insert(type.get(), "FALSE", &false_value);
    H5Tenum_insert(type.get(), "TRUE", &true_value);
    Write(name, type.get(), type.get(), &stored, -1);
  }

  /* Writes a scalar variable-length UTF-8 string, as h5py stores a Python str. */
  void WriteString(const std::string &name, const std::string &value) const
  {
    Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_cset(type.get(), H5T_CSET_UTF8);
    const char *text = value.c_str();
    Write(name, type.get(), type.get(), &text, -1);
  }

  void WriteDoubles(const std::string &name, const std::vector<double> &values) const
  {
    Write(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values.data(), (long long)values.size());
  }

  void Delete(const std::string &name) const
  {
    if (H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) <= 0) return;
    if (H5Ldelete(file_.get(), name.c_str(), H5P_DEFAULT) < 0) Fail(name, "delete failed");
  }

  void Close()
  {
    if (!file_.Reset()) Fail("the file", "close failed");
  }

private:
  std::string path_;
  Hid file_;
};

// Copies one attribute of the input's root group to the output's root group (H5Ocopy copies
// objects with their attributes, but the root group itself cannot be copied).
herr_t CopyRootAttribute(hid_t input_root, const char *name, const H5A_info_t *, void *output_root)
{
  Hid attribute(H5Aopen(input_root, name, H5P_DEFAULT), H5Aclose);
  Hid type(H5Aget_type(attribute.get()), H5Tclose);
  Hid space(H5Aget_space(attribute.get()), H5Sclose);
  if (!attribute.valid() || !type.valid() || !space.valid()) return -1;
  hssize_t count = H5Sget_simple_extent_npoints(space.get());
  std::vector<unsigned char> buffer((size_t)std::max<hssize_t>(count, 1) * H5Tget_size(type.get()));
  if (H5Aread(attribute.get(), type.get(), buffer.data()) < 0) return -1;
  hid_t target = *static_cast<hid_t *>(output_root);
  Hid copy(H5Acreate2(target, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  herr_t status = copy.valid() ? H5Awrite(copy.get(), type.get(), buffer.data()) : -1;
  // Variable-length members were allocated by H5Aread and must be released.
  if (H5Tdetect_class(type.get(), H5T_VLEN) > 0 || H5Tis_variable_str(type.get()) > 0)
    H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, buffer.data());
  return status;
}

void CopyRootAttributes(const SpeciesFile &input, const OutputFile &output)
{
  Hid input_root(H5Gopen2(input.id(), "/", H5P_DEFAULT), H5Gclose);
  Hid output_root(H5Gopen2(output.id(), "/", H5P_DEFAULT), H5Gclose);
  hid_t target = output_root.get();
  if (!input_root.valid() || !output_root.valid() ||
      H5Aiterate2(input_root.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, CopyRootAttribute,
                  &target) < 0)
    throw FileError(PETSC_ERR_FILE_WRITE, input.path() +
                                              ": cannot copy the attributes of the root group "
                                              "into the fitted file");
}

void CopyInput(const SpeciesFile &input, const OutputFile &output)
{
  CopyRootAttributes(input, output);
  for (const std::string &name : RootNames(input)) {
    if (kSkippedRootObjects.count(name)) continue;
    if (H5Ocopy(input.id(), name.c_str(), output.id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT) < 0)
      throw FileError(PETSC_ERR_FILE_WRITE,
                      input.path() + ": cannot copy " + name +
                          " into the fitted file; check free space in the output folder");
  }
  for (const char *name : kReplacedMetadata)
    output.Delete(name);
}

void WriteHyperparameters(const OutputFile &output, const TrainingRecord &record)
{
  const std::string group = "metadata/hyperparameters/";
  output.EnsureGroup("metadata");
  output.EnsureGroup("metadata/hyperparameters");
  output.WriteDouble(group + "obs_weight", record.obs_weight);
  output.WriteDouble(group + "ent_weight", record.ent_weight);
  output.WriteDouble(group + "dist_weight", record.dist_weight);
  output.WriteDouble(group + "dist_pow", record.dist_pow);
  output.WriteDouble(group + "learning_rate", record.learning_rate);
  output.WriteInt64(group + "training_steps", record.training_steps);
  output.WriteInt64(group + "rng_seed", record.rng_seed);
  output.WriteEnumBool(group + "normalized", record.normalized);
}

void WriteLossValues(const OutputFile &output, const TrainingRecord &record)
{
  output.EnsureGroup("metadata/loss_values");
  output.WriteDoubles("metadata/loss_values/total", record.loss_total);
  output.WriteDoubles("metadata/loss_values/obs", record.loss_obs);
  output.WriteDoubles("metadata/loss_values/dist", record.loss_dist);
  output.WriteDoubles("metadata/loss_values/ent", record.loss_ent);
}

void WriteRunSettings(const OutputFile &output, const TrainingRecord &record)
{
  output.EnsureGroup("metadata/birdflow_hpc");
  std::map<std::string, std::string> settings = record.extra;
  settings.emplace("build", BuildDescription());
  for (const auto &[key, value] : settings)
    output.WriteString("metadata/birdflow_hpc/" + key, value);
  // Outside metadata/loss_values, which keeps BirdFlowPy's four columns.
  if (!record.loss_w2.empty()) output.WriteDoubles("metadata/birdflow_hpc/loss_w2", record.loss_w2);
}
} // namespace

std::string ModelDate()
{
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  long long micro =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[64];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &local);
  return Format("%s.%06lld", text, micro);
}

void WriteInputCopyAndMetadata(const SpeciesData &species, const std::string &partial_path,
                               const TrainingRecord &record)
{
  OutputFile output(partial_path);
  {
    SpeciesFile input(species.path);
    CopyInput(input, output);
  }
  WriteHyperparameters(output, record);
  WriteLossValues(output, record);
  output.WriteString("metadata/birdflow_model_date", ModelDate());
  WriteRunSettings(output, record);
  output.Close();
}
} // namespace birdflow::io
