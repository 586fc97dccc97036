// Interval CSV parsing: the accepted layout and the one-line errors for bad input.
#include "birdflow/metrics.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

using birdflow::Interval;
using birdflow::kMissingIndex;
using birdflow::ParseIntervalsCsv;

namespace
{
// Returns the message ParseIntervalsCsv throws for `text`, or "" when it parses.
std::string ParseError(const std::string &text)
{
  try {
    ParseIntervalsCsv(text, "bad.csv");
  } catch (const std::runtime_error &e) {
    return e.what();
  }
  return "";
}

const char *kHeader = "interval_id,bird_id,date1,date2,t1,t2,lat1,lon1,lat2,lon2,i1,i2\n";
} // namespace

TEST(IntervalsCsv, ParsesRewblaLayout)
{
  std::string text = std::string(kHeader) +
                     "7,B1,2019-05-23,2020-05-02,21,18,46.76306,-97.55444,46.75,-97.58333,134,134\n"
                     "8,B2,2020-02-28,2020-03-01,9,9,40,-105,40,-105,187,12\r\n";
  std::vector<Interval> intervals = ParseIntervalsCsv(text, "test.csv");
  ASSERT_EQ(intervals.size(), 2u);
  EXPECT_EQ(intervals[0].id, "7");
  EXPECT_EQ(intervals[0].line, 2);
  EXPECT_EQ(intervals[0].t1, 21);
  EXPECT_EQ(intervals[0].t2, 18);
  EXPECT_EQ(intervals[0].i1, 134);
  EXPECT_DOUBLE_EQ(intervals[0].elapsed_days, 345.0);
  EXPECT_DOUBLE_EQ(intervals[0].lon2, -97.58333);
  EXPECT_EQ(intervals[1].line, 3);
  EXPECT_DOUBLE_EQ(intervals[1].elapsed_days, 2.0); // 2020 is a leap year
  EXPECT_EQ(intervals[1].i2, 12);
}

TEST(IntervalsCsv, AcceptsQuotesNaAndAliases)
{
  std::string text = "\"interval_id\",timestep1,timestep2,i1,i2,note\n"
                     "\"a,1\",NA,3,,5,\"said \"\"hi\"\"\nover two lines\"\n"
                     "b,1,2,3,4,x\n";
  std::vector<Interval> intervals = ParseIntervalsCsv(text, "test.csv");
  ASSERT_EQ(intervals.size(), 2u);
  EXPECT_EQ(intervals[0].id, "a,1");
  EXPECT_EQ(intervals[0].t1, kMissingIndex);
  EXPECT_EQ(intervals[0].i1, kMissingIndex);
  EXPECT_TRUE(std::isnan(intervals[0].elapsed_days));
  EXPECT_EQ(intervals[1].line, 4); // the quoted line break moves the next record down
  EXPECT_EQ(intervals[1].t2, 2);
}

TEST(IntervalsCsv, SkipsByteOrderMark)
{
  std::vector<Interval> intervals =
      ParseIntervalsCsv("\xEF\xBB\xBFinterval_id,t1,t2,i1,i2\n1,2,3,4,5\n", "test.csv");
  ASSERT_EQ(intervals.size(), 1u);
  EXPECT_EQ(intervals[0].i2, 5);
}

TEST(IntervalsCsv, MissingColumnNamesIt)
{
  std::string message = ParseError("interval_id,t1,t2,i1\n1,2,3,4\n");
  EXPECT_NE(message.find("bad.csv:1:"), std::string::npos) << message;
  EXPECT_NE(message.find("missing column i2"), std::string::npos) << message;
}

TEST(IntervalsCsv, UnparsableValueNamesLineAndValue)
{
  std::string message = ParseError("interval_id,t1,t2,i1,i2\n1,2,3,4,5\n2,2,x7,4,5\n");
  EXPECT_NE(message.find("bad.csv:3:"), std::string::npos) << message;
  EXPECT_NE(message.find("column t2"), std::string::npos) << message;
  EXPECT_NE(message.find("\"x7\""), std::string::npos) << message;
}

TEST(IntervalsCsv, RejectsBadRecords)
{
  EXPECT_NE(ParseError("interval_id,t1,t2,i1,i2\n1,2,3,4\n").find("bad.csv:2: expected 5 fields"),
            std::string::npos);
  EXPECT_NE(ParseError("interval_id,t1,t2,i1,i2\n1,2,3,4,-5\n").find("\"-5\""), std::string::npos);
  EXPECT_NE(ParseError("interval_id,t1,t2,i1,i2\n1,2.5,3,4,5\n").find("\"2.5\""),
            std::string::npos);
  EXPECT_NE(ParseError("interval_id,t1,t2,i1,i2\n1,2,3,4,5\n1,2,3,4,5\n").find("duplicate"),
            std::string::npos);
  EXPECT_NE(ParseError("interval_id,t1,t2,i1,i2\n,2,3,4,5\n").find("interval_id"),
            std::string::npos);
  EXPECT_NE(ParseError("interval_id,t1,t2,i1,i2\n\"1,2,3,4,5\n").find("not closed"),
            std::string::npos);
  EXPECT_NE(ParseError("").find("empty"), std::string::npos);
}

TEST(IntervalsCsv, RejectsInvalidDatesAndCoordinates)
{
  const std::string header = "interval_id,t1,t2,i1,i2,date1,date2,lat1\n";
  EXPECT_NE(ParseError(header + "1,2,3,4,5,2019-02-29,2019-03-01,40\n").find("\"2019-02-29\""),
            std::string::npos);
  EXPECT_NE(ParseError(header + "1,2,3,4,5,2019-3-1,2019-03-01,40\n").find("date1"),
            std::string::npos);
  EXPECT_NE(ParseError(header + "1,2,3,4,5,2019-03-01,2019-03-01,north\n").find("lat1"),
            std::string::npos);
  EXPECT_EQ(ParseError(header + "1,2,3,4,5,2020-02-29,NA,NA\n"), "");
}

TEST(IntervalsCsv, ReadIntervalsFailsOnAllRanks)
{
  std::vector<Interval> intervals;
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  PetscErrorCode code =
      birdflow::ReadIntervals(PETSC_COMM_WORLD, "/nonexistent/intervals.csv", &intervals);
  PetscPopErrorHandler();
  ASSERT_TRUE(birdflow::testing::AllRanks(code == PETSC_ERR_FILE_OPEN));
}

TEST(IntervalsCsv, ReadsRewblaTable)
{
  std::vector<Interval> intervals;
  PetscErrorCode code = birdflow::ReadIntervals(
      PETSC_COMM_WORLD, birdflow::testing::DataPath("rewbla/rewbla_banding_intervals.csv"),
      &intervals);
  ASSERT_TRUE(birdflow::testing::AllRanks(code == 0));
  EXPECT_EQ(intervals.size(), 1500u);
  EXPECT_EQ(intervals[0].id, "7");
  EXPECT_EQ(intervals[0].t1, 21);
}
