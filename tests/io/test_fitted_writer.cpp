// WriteFittedModel: a round trip of BirdFlowPy's sstspa marginals with the rows split across
// ranks, checked by ReadMarginals and by check_fitted_file.py (BirdFlowR's import rules), and
// failed writes that must leave no partial file and keep an existing output.
#include "birdflow/output_file.hpp"
#include "birdflow/species.hpp"
#include "io_test_helpers.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using birdflow::MarginalRows;
using birdflow::SpeciesData;
using birdflow::TrainingRecord;
using birdflow::testing::AllRanks;
using birdflow::testing::CaptureError;
using birdflow::testing::DataPath;

namespace
{
namespace fs = std::filesystem;

const char *kInput = "sstspa/sstspa_2023_100km_preprocessed.hdf5";
const char *kFitted = "sstspa/sstspa_2023_100km_fitted.hdf5";

int Rank()
{
  int rank;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  return rank;
}

int Size()
{
  int size;
  MPI_Comm_size(PETSC_COMM_WORLD, &size);
  return size;
}

// A fresh folder named after rank 0's process id, shared by all ranks, removed at scope exit.
class TempFolder
{
public:
  TempFolder()
  {
    long long id = (long long)getpid();
    MPI_Bcast(&id, 1, MPI_LONG_LONG, 0, PETSC_COMM_WORLD);
    path_ = fs::temp_directory_path() / ("birdflow_io_test_" + std::to_string(id));
    if (Rank() == 0) fs::create_directories(path_);
    MPI_Barrier(PETSC_COMM_WORLD);
  }
  ~TempFolder()
  {
    MPI_Barrier(PETSC_COMM_WORLD);
    std::error_code ec;
    if (Rank() == 0) fs::remove_all(path_, ec);
  }
  std::string File(const std::string &name) const { return (path_ / name).string(); }

private:
  fs::path path_;
};

// Splits the rows of every transition unevenly: rank r gets a block that grows with r, so the
// last rank holds the most rows and blocks of different sizes meet in the file.
std::vector<MarginalRows> SplitRows(const SpeciesData &species,
                                    const std::vector<std::vector<double>> &marginals)
{
  int rank = Rank(), size = Size();
  long long weight_total = (long long)size * (size + 1) / 2;
  long long weight_before = (long long)rank * (rank + 1) / 2;
  std::vector<MarginalRows> rows(marginals.size());
  for (size_t t = 0; t < marginals.size(); ++t) {
    PetscInt n_from = species.CellsInWeek((PetscInt)t);
    PetscInt n_to = species.CellsInWeek((PetscInt)t + 1);
    PetscInt start = (PetscInt)(n_from * weight_before / weight_total);
    PetscInt end = (PetscInt)(n_from * (weight_before + rank + 1) / weight_total);
    rows[t].row_start = start;
    rows[t].row_count = end - start;
    rows[t].n_cols = n_to;
    rows[t].values = marginals[t].data() + (size_t)start * (size_t)n_to;
  }
  return rows;
}

TrainingRecord SampleRecord()
{
  TrainingRecord record;
  record.obs_weight = 1.0;
  record.ent_weight = 0.0047847;
  record.dist_weight = 0.047847;
  record.dist_pow = 0.9;
  record.learning_rate = 0.1;
  record.training_steps = 5;
  record.rng_seed = 17;
  for (int step = 0; step < 5; ++step) {
    record.loss_obs.push_back(1.0 / (step + 1));
    record.loss_dist.push_back(0.5 / (step + 1));
    record.loss_ent.push_back(2.0 + step);
    record.loss_total.push_back(record.loss_obs.back() +
                                record.dist_weight * record.loss_dist.back() -
                                record.ent_weight * record.loss_ent.back());
  }
  record.extra["location_loss"] = "none";
  record.extra["ranks"] = std::to_string(Size());
  return record;
}

// Runs `command` on rank 0 and returns on every rank whether it exited with status 0.
bool CommandSucceeds(const std::string &command)
{
  int status = 0;
  if (Rank() == 0) status = std::system(command.c_str());
  MPI_Bcast(&status, 1, MPI_INT, 0, PETSC_COMM_WORLD);
  return status == 0;
}

// Runs check_fitted_file.py, which also compares the marginals with those of `reference`.
bool CheckerAccepts(const std::string &fitted, const std::string &reference)
{
  return CommandSucceeds(std::string(BIRDFLOW_PYTHON) + " " + BIRDFLOW_IO_CHECKER + " '" + fitted +
                         "' --reference '" + reference + "'");
}

std::string FileText(const std::string &path)
{
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Inputs
{
  SpeciesData species;
  std::vector<std::vector<double>> marginals;
};

bool ReadInputs(Inputs *inputs)
{
  SpeciesData fitted;
  bool ok = birdflow::ReadSpecies(PETSC_COMM_WORLD, DataPath(kInput), &inputs->species) == 0;
  ok = ok && birdflow::ReadSpecies(PETSC_COMM_WORLD, DataPath(kFitted), &fitted) == 0;
  ok = ok && birdflow::ReadMarginals(PETSC_COMM_WORLD, fitted, &inputs->marginals) == 0;
  return ok && fitted.week_cells == inputs->species.week_cells;
}

// Writes BirdFlowPy's sstspa marginals to `output` with the rows split across the ranks.
bool WriteSampleModel(const Inputs &inputs, const std::string &output, std::string *message)
{
  std::vector<MarginalRows> rows = SplitRows(inputs.species, inputs.marginals);
  auto result = CaptureError([&] {
    return birdflow::WriteFittedModel(PETSC_COMM_WORLD, inputs.species, output, rows,
                                      SampleRecord());
  });
  *message = result.message;
  return AllRanks(result.code == 0);
}
} // namespace

TEST(WriteFittedModel, RoundTripPassesImportCheck)
{
  Inputs inputs;
  ASSERT_TRUE(AllRanks(ReadInputs(&inputs)));
  TempFolder folder;
  std::string output = folder.File("sstspa_fitted.hdf5");
  std::string message;
  ASSERT_TRUE(WriteSampleModel(inputs, output, &message)) << message;
  EXPECT_TRUE(AllRanks(!fs::exists(birdflow::PartialPath(output))));

  SpeciesData written;
  std::vector<std::vector<double>> read_back;
  bool ok = birdflow::ReadSpecies(PETSC_COMM_WORLD, output, &written) == 0;
  ok = ok && birdflow::ReadMarginals(PETSC_COMM_WORLD, written, &read_back) == 0;
  ASSERT_TRUE(AllRanks(ok));
  EXPECT_FALSE(written.has_distances);
  EXPECT_TRUE(written.has_marginals);
  EXPECT_EQ(written.distr, inputs.species.distr);
  EXPECT_EQ(written.species_code, "sstspa");
  // BirdFlowPy's marginals are float32, so the float32 round trip must be exact.
  EXPECT_EQ(read_back, inputs.marginals);

  EXPECT_TRUE(CheckerAccepts(output, DataPath(kFitted)));
}

TEST(WriteFittedModel, RanksWithoutRowsTakePart)
{
  Inputs inputs;
  ASSERT_TRUE(AllRanks(ReadInputs(&inputs)));
  TempFolder folder;
  std::string output = folder.File("last_rank.hdf5");
  // The last rank owns every row, so the other ranks write empty selections.
  std::vector<MarginalRows> rows(inputs.marginals.size());
  for (size_t t = 0; t < rows.size(); ++t) {
    rows[t].n_cols = inputs.species.CellsInWeek((PetscInt)t + 1);
    rows[t].row_count = Rank() == Size() - 1 ? inputs.species.CellsInWeek((PetscInt)t) : 0;
    rows[t].values = inputs.marginals[t].data();
  }
  auto result = CaptureError([&] {
    return birdflow::WriteFittedModel(PETSC_COMM_WORLD, inputs.species, output, rows,
                                      SampleRecord());
  });
  ASSERT_TRUE(AllRanks(result.code == 0)) << result.message;

  SpeciesData written;
  std::vector<std::vector<double>> read_back;
  bool ok = birdflow::ReadSpecies(PETSC_COMM_WORLD, output, &written) == 0;
  ok = ok && birdflow::ReadMarginals(PETSC_COMM_WORLD, written, &read_back) == 0;
  ASSERT_TRUE(AllRanks(ok));
  EXPECT_EQ(read_back, inputs.marginals);
}

TEST(WriteFittedModel, RoundTripPassesRhdf5Import)
{
#ifndef BIRDFLOW_IO_RSCRIPT
  GTEST_SKIP() << "Rscript with rhdf5 was not found at configure time; install r-bioc-rhdf5";
#else
  Inputs inputs;
  ASSERT_TRUE(AllRanks(ReadInputs(&inputs)));
  TempFolder folder;
  std::string output = folder.File("sstspa_fitted.hdf5");
  std::string message;
  ASSERT_TRUE(WriteSampleModel(inputs, output, &message)) << message;
  EXPECT_TRUE(CommandSucceeds(std::string(BIRDFLOW_IO_RSCRIPT) + " " + BIRDFLOW_IO_R_CHECKER +
                              " '" + output + "'"));
#endif
}

TEST(WriteFittedModel, RootAttributesAreKept)
{
  Inputs inputs;
  ASSERT_TRUE(AllRanks(ReadInputs(&inputs)));
  TempFolder folder;
  std::string input = folder.File("with_attributes.hdf5");
  std::string output = folder.File("fitted_with_attributes.hdf5");
  std::string python = std::string(BIRDFLOW_PYTHON) + " -c \"import h5py, numpy, shutil, sys; ";
  ASSERT_TRUE(CommandSucceeds(
      python + "shutil.copyfile(sys.argv[1], sys.argv[2]); f = h5py.File(sys.argv[2], 'r+'); " +
      "f.attrs['title'] = numpy.bytes_('fixed'); f.attrs['note'] = 'variable'; " +
      "f.attrs['numbers'] = [1.0, 2.0, 3.0]\" '" + DataPath(kInput) + "' '" + input + "'"));

  SpeciesData species;
  ASSERT_TRUE(AllRanks(birdflow::ReadSpecies(PETSC_COMM_WORLD, input, &species) == 0));
  std::vector<MarginalRows> rows = SplitRows(species, inputs.marginals);
  auto result = CaptureError([&] {
    return birdflow::WriteFittedModel(PETSC_COMM_WORLD, species, output, rows, SampleRecord());
  });
  ASSERT_TRUE(AllRanks(result.code == 0)) << result.message;
  EXPECT_TRUE(CommandSucceeds(
      python + "f = h5py.File(sys.argv[1], 'r'); " +
      "assert f.attrs['title'] == b'fixed', f.attrs['title']; " +
      "assert f.attrs['note'] == 'variable', f.attrs['note']; " +
      "assert list(f.attrs['numbers']) == [1.0, 2.0, 3.0], f.attrs['numbers']\" '" + output + "'"));
}

TEST(WriteFittedModel, FailedWriteKeepsExistingOutput)
{
  Inputs inputs;
  ASSERT_TRUE(AllRanks(ReadInputs(&inputs)));
  TempFolder folder;
  std::string output = folder.File("existing.hdf5");
  if (Rank() == 0) std::ofstream(output) << "previous model\n";
  MPI_Barrier(PETSC_COMM_WORLD);

  // The input file vanished after it was read: the copy step fails after the partial file exists.
  SpeciesData moved = inputs.species;
  moved.path = folder.File("moved_input.hdf5");
  std::vector<MarginalRows> rows = SplitRows(moved, inputs.marginals);
  auto result = CaptureError([&] {
    return birdflow::WriteFittedModel(PETSC_COMM_WORLD, moved, output, rows, SampleRecord());
  });
  ASSERT_TRUE(AllRanks(result.code == PETSC_ERR_FILE_OPEN)) << result.message;
  EXPECT_NE(result.message.find(moved.path + ": file not found"), std::string::npos)
      << result.message;
  EXPECT_TRUE(AllRanks(!fs::exists(birdflow::PartialPath(output))));
  EXPECT_TRUE(AllRanks(FileText(output) == "previous model\n"));
}

TEST(WriteFittedModel, MissingOutputFolderIsRejected)
{
  Inputs inputs;
  ASSERT_TRUE(AllRanks(ReadInputs(&inputs)));
  TempFolder folder;
  std::string output = folder.File("no_such_folder/model.hdf5");
  std::vector<MarginalRows> rows = SplitRows(inputs.species, inputs.marginals);
  auto result = CaptureError([&] {
    return birdflow::WriteFittedModel(PETSC_COMM_WORLD, inputs.species, output, rows,
                                      SampleRecord());
  });
  ASSERT_TRUE(AllRanks(result.code == PETSC_ERR_FILE_OPEN)) << result.message;
  EXPECT_NE(result.message.find("cannot create the file"), std::string::npos) << result.message;
}

TEST(WriteFittedModel, RowGapIsRejected)
{
  Inputs inputs;
  ASSERT_TRUE(AllRanks(ReadInputs(&inputs)));
  TempFolder folder;
  std::string output = folder.File("gap.hdf5");
  std::vector<MarginalRows> rows = SplitRows(inputs.species, inputs.marginals);
  // The last rank drops the last row of transition 3, leaving a gap at the end.
  if (Rank() == Size() - 1) rows[3].row_count -= 1;

  auto result = CaptureError([&] {
    return birdflow::WriteFittedModel(PETSC_COMM_WORLD, inputs.species, output, rows,
                                      SampleRecord());
  });
  ASSERT_TRUE(AllRanks(result.code == PETSC_ERR_ARG_WRONG)) << result.message;
  EXPECT_NE(result.message.find("marginals/Week4_to_5"), std::string::npos) << result.message;
  EXPECT_TRUE(AllRanks(!fs::exists(output)));
  EXPECT_TRUE(AllRanks(!fs::exists(birdflow::PartialPath(output))));
}

TEST(WriteFittedModel, UnequalLossLengthsAreRejected)
{
  Inputs inputs;
  ASSERT_TRUE(AllRanks(ReadInputs(&inputs)));
  TempFolder folder;
  std::string output = folder.File("loss.hdf5");
  std::vector<MarginalRows> rows = SplitRows(inputs.species, inputs.marginals);
  TrainingRecord record = SampleRecord();
  record.loss_ent.pop_back();

  auto result = CaptureError([&] {
    return birdflow::WriteFittedModel(PETSC_COMM_WORLD, inputs.species, output, rows, record);
  });
  ASSERT_TRUE(AllRanks(result.code == PETSC_ERR_ARG_WRONG)) << result.message;
  EXPECT_NE(result.message.find("loss_values"), std::string::npos) << result.message;
  EXPECT_TRUE(AllRanks(!fs::exists(output)));
  EXPECT_TRUE(AllRanks(!fs::exists(birdflow::PartialPath(output))));
}
