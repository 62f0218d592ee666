// Zero-shot task files: JSONL, one example a line (blank lines are skipped).
//
//   multiple choice: {"context": "The cat sat on the", "choices": ["mat", "sky"], "label": 0}
//   last word:       {"context": "He opened the door and saw his", "target": "brother"}
//
// A file holds one kind of example. The scorer puts the target delimiter " " between the
// context and a choice / target (src/eval/continuation_scorer.cpp), so neither carries it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lrc {

enum class TaskKind { MultipleChoice, LastWord };
const char* task_kind_name(TaskKind k);  // "multiple_choice", "last_word"

struct TaskExample {
  std::string context;
  std::vector<std::string> choices;  // multiple choice: the candidate continuations
  int label = 0;                     // multiple choice: index of the correct one
  std::string target;                // last word: the word to predict
};

struct TaskSet {
  std::string path;  // the file it came from
  std::string name;  // the file's stem ("/tmp/cloze.jsonl" -> "cloze"), used in tables
  TaskKind kind = TaskKind::MultipleChoice;
  std::vector<TaskExample> examples;
};

// Reads and validates every line; throws lrc::Error "<path>:<line>: <problem>" for malformed
// JSON, a missing or mistyped field, an empty choice list, a label out of range, or a line
// of the other kind. limit >= 0 keeps only the first `limit` examples (lm-eval's --limit).
TaskSet read_task_file(const std::string& path, int64_t limit = -1);

// Writes one JSON object a line, atomically (a temp file beside `path`, then rename).
void write_task_file(const std::string& path, TaskKind kind,
                     const std::vector<TaskExample>& examples);

}  // namespace lrc
