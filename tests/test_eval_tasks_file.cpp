// Task files: round trip, --limit, and one error per kind of bad line, each naming the file
// and the line number.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "lrc/core/error.h"
#include "lrc/eval/tasks.h"
#include "support/paths.h"

namespace {

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The lrc::Error message of reading `text` as a task file ("" if it reads fine).
std::string read_error(const std::string& text) {
  static const std::string dir = lrc::test::temp_dir("eval-task-file-errors");
  const std::string path = write_file(dir, "bad.jsonl", text);
  try {
    lrc::read_task_file(path);
  } catch (const lrc::Error& e) {
    return e.what();
  }
  return "";
}

const char* kGood = R"({"context": "a b", "choices": ["c", "d"], "label": 1})"
                    "\n";

TEST(EvalTasksFile, RoundTripAndLimit) {
  const std::string dir = lrc::test::temp_dir("eval-task-file");
  std::vector<lrc::TaskExample> mc(3);
  for (int i = 0; i < 3; ++i) {
    mc[i].context = "context \"" + std::to_string(i) + "\" é\n";
    mc[i].choices = {"x", "y", "z " + std::to_string(i)};
    mc[i].label = i;
  }
  const std::string path = dir + "/mc.jsonl";
  lrc::write_task_file(path, lrc::TaskKind::MultipleChoice, mc);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const lrc::TaskSet set = lrc::read_task_file(path);
  EXPECT_EQ(set.name, "mc");
  EXPECT_EQ(set.kind, lrc::TaskKind::MultipleChoice);
  ASSERT_EQ(set.examples.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(set.examples[i].context, mc[i].context);
    EXPECT_EQ(set.examples[i].choices, mc[i].choices);
    EXPECT_EQ(set.examples[i].label, i);
  }
  EXPECT_EQ(lrc::read_task_file(path, 2).examples.size(), 2u);
  EXPECT_EQ(lrc::read_task_file(path, 0).examples.size(), 0u);

  std::vector<lrc::TaskExample> lw(1);
  lw[0].context = "the end of the";
  lw[0].target = "story";
  lrc::write_task_file(dir + "/lw.jsonl", lrc::TaskKind::LastWord, lw);
  const lrc::TaskSet l = lrc::read_task_file(dir + "/lw.jsonl");
  EXPECT_EQ(l.kind, lrc::TaskKind::LastWord);
  EXPECT_EQ(l.examples.at(0).target, "story");

  // Blank lines are skipped, CRLF is accepted.
  const std::string crlf = write_file(
      dir, "crlf.jsonl", "\r\n" + std::string(R"({"context": "a", "target": "b"})") + "\r\n\n");
  EXPECT_EQ(lrc::read_task_file(crlf).examples.size(), 1u);
}

TEST(EvalTasksFile, EachBadLineNamesFileAndLine) {
  auto expect = [](const std::string& text, const std::string& line, const std::string& what) {
    const std::string e = read_error(text);
    EXPECT_NE(e.find("bad.jsonl:" + line + ": "), std::string::npos) << e;
    EXPECT_NE(e.find(what), std::string::npos) << e;
  };
  const std::string g = kGood;
  expect(g + "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"label\": 0\n", "2",
         "malformed JSON");
  expect(g + g + "[1, 2]\n", "3", "expected a JSON object");
  expect(R"({"choices": ["c", "d"], "label": 0})", "1", "missing field \"context\"");
  expect(R"({"context": 3, "choices": ["c", "d"], "label": 0})", "1",
         "field \"context\" must be a string");
  expect(R"({"context": "a"})", "1", "missing field \"choices\"");
  expect(g + R"({"context": "a", "choices": [], "label": 0})", "2", "\"choices\" is empty");
  expect(R"({"context": "a", "choices": ["only"], "label": 0})", "1", "at least 2 choices");
  expect(R"({"context": "a", "choices": ["b", 4], "label": 0})", "1", "array of strings");
  expect(R"({"context": "a", "choices": ["b", "c"]})", "1", "missing field \"label\"");
  expect(R"({"context": "a", "choices": ["b", "c"], "label": 2})", "1", "label 2 out of range");
  expect(R"({"context": "a", "choices": ["b", "c"], "label": -1})", "1", "label -1 out of range");
  expect(R"({"context": "a", "choices": ["b", "c"], "label": "0"})", "1",
         "\"label\" must be an integer");
  expect(R"({"context": "a", "choices": ["b", "c"], "label": 0.5})", "1",
         "\"label\" must be an integer");
  expect(R"({"context": "a", "target": ""})", "1", "\"target\" is empty");
  expect(R"({"context": "a", "target": "b", "choices": ["b", "c"], "label": 0})", "1", "both");
  expect(g + "\n" + R"({"context": "a", "target": "b"})", "3",
         "a last_word example in a file of multiple_choice examples");
  // A bad line after the --limit still fails: the file is checked as a whole.
  const std::string dir = lrc::test::temp_dir("eval-task-file-limit");
  const std::string p = write_file(dir, "late.jsonl", g + g + "{oops\n");
  EXPECT_THROW(lrc::read_task_file(p, 1), lrc::Error);

  EXPECT_NE(read_error("").find("no examples"), std::string::npos);
  EXPECT_NE(read_error("\n\n").find("no examples"), std::string::npos);
  EXPECT_EQ(read_error(g), "");
  EXPECT_THROW(lrc::read_task_file("/nonexistent/tasks.jsonl"), lrc::Error);
}

TEST(EvalTasksFile, WriteFailureLeavesNoFile) {
  std::vector<lrc::TaskExample> lw(1);
  lw[0].context = "a";
  lw[0].target = "b";
  EXPECT_THROW(lrc::write_task_file("/nonexistent-dir/x.jsonl", lrc::TaskKind::LastWord, lw),
               lrc::Error);
  EXPECT_FALSE(std::filesystem::exists("/nonexistent-dir/x.jsonl"));
}

}  // namespace
