// Reading and writing zero-shot task files (JSONL; format in include/lrc/eval/tasks.h).
// Every problem is reported as "<file>:<line>: <what>" so a broken generated file can be
// fixed by opening it at that line.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/eval/tasks.h"

namespace lrc {

using nlohmann::json;

const char* task_kind_name(TaskKind k) {
  return k == TaskKind::MultipleChoice ? "multiple_choice" : "last_word";
}

namespace {

// The string field `key` of object `j`; `where` is "<file>:<line>".
std::string string_field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) fail(where, std::string("missing field \"") + key + "\"");
  if (!it->is_string()) fail(where, std::string("field \"") + key + "\" must be a string");
  return it->get<std::string>();
}

// One line -> one example; also reports which kind of example the line is.
TaskExample parse_example(const std::string& line, const std::string& where, TaskKind* kind) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number overflow
    fail(where, std::string("malformed JSON (") + e.what() + ")");
  }
  if (!j.is_object()) fail(where, "expected a JSON object");

  TaskExample ex;
  ex.context = string_field(j, "context", where);
  const bool has_choices = j.contains("choices"), has_target = j.contains("target");
  if (has_choices && has_target) fail(where, "has both \"choices\" and \"target\"");
  if (!has_choices && !has_target)
    fail(where, "missing field \"choices\" (multiple choice) or \"target\" (last word)");

  if (has_target) {
    *kind = TaskKind::LastWord;
    ex.target = string_field(j, "target", where);
    if (ex.target.empty()) fail(where, "field \"target\" is empty");
    return ex;
  }

  *kind = TaskKind::MultipleChoice;
  const json& choices = j["choices"];
  if (!choices.is_array()) fail(where, "field \"choices\" must be an array of strings");
  if (choices.empty()) fail(where, "field \"choices\" is empty");
  for (const json& c : choices) {
    if (!c.is_string()) fail(where, "field \"choices\" must be an array of strings");
    ex.choices.push_back(c.get<std::string>());
  }
  if (ex.choices.size() < 2) fail(where, "field \"choices\" needs at least 2 choices");
  auto label = j.find("label");
  if (label == j.end()) fail(where, "missing field \"label\"");
  if (!label->is_number_integer()) fail(where, "field \"label\" must be an integer");
  const int64_t l = label->get<int64_t>();
  if (l < 0 || l >= static_cast<int64_t>(ex.choices.size()))
    fail(where, "label " + std::to_string(l) + " out of range for " +
                    std::to_string(ex.choices.size()) + " choices");
  ex.label = static_cast<int>(l);
  return ex;
}

}  // namespace

TaskSet read_task_file(const std::string& path, int64_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open task file");
  TaskSet set;
  set.path = path;
  set.name = std::filesystem::path(path).stem().string();

  std::string line;
  int64_t line_no = 0;
  bool have_kind = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
    const std::string where = path + ":" + std::to_string(line_no);
    TaskKind kind;
    TaskExample ex = parse_example(line, where, &kind);
    if (!have_kind) {
      set.kind = kind;
      have_kind = true;
    } else if (kind != set.kind) {
      fail(where, std::string("a ") + task_kind_name(kind) + " example in a file of " +
                      task_kind_name(set.kind) + " examples");
    }
    // Past the limit we still validate the line, so a bad file fails the same way always.
    if (limit < 0 || static_cast<int64_t>(set.examples.size()) < limit)
      set.examples.push_back(std::move(ex));
  }
  if (in.bad()) fail(path, "read error");
  if (!have_kind) fail(path, "no examples (empty task file)");
  return set;
}

void write_task_file(const std::string& path, TaskKind kind,
                     const std::vector<TaskExample>& examples) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, "cannot create " + tmp);
    for (const TaskExample& ex : examples) {
      json j;
      j["context"] = ex.context;
      if (kind == TaskKind::MultipleChoice) {
        j["choices"] = ex.choices;
        j["label"] = ex.label;
      } else {
        j["target"] = ex.target;
      }
      // Invalid UTF-8 in the source text becomes U+FFFD rather than an exception.
      out << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    }
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      fail(path, "write failed");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail(path, "cannot rename " + tmp + ": " + ec.message());
  }
}

}  // namespace lrc
