// Zero-shot accuracy on task files, scored as lm-evaluation-harness scores them.
//
// Multiple choice (PIQA / HellaSwag / ARC / WinoGrande style, src/eval/multiple_choice.cpp):
//   continuation_i = " " + choice_i (lm-eval's target_delimiter), ll_i = log p(continuation_i |
//   context);  acc: argmax_i ll_i == label;  acc_norm: argmax_i ll_i / len(choice_i) == label,
//   len in characters (Unicode code points, as Python's len) of the choice without the delimiter.
//   Ties go to the first choice (numpy argmax).
// Last word (LAMBADA style, src/eval/last_word.cpp):
//   continuation = " " + target;  correct when the greedy argmax reproduces every target token
//   (lm-eval's is_greedy); target perplexity = exp(-sum logp / sum tokens) over the task (per
//   token; lm-eval's lambada "perplexity" is per document instead).
// Each accuracy comes with a 95% normal-approximation interval: +-1.96 sqrt(p(1-p)/n).
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lrc/eval/continuation_scorer.h"
#include "lrc/eval/tasks.h"

namespace lrc {

struct MultipleChoiceScore {
  std::vector<double> logprob;       // per choice
  std::vector<double> logprob_norm;  // per choice, divided by the choice's length
  int pred = 0;                      // argmax of logprob
  int pred_norm = 0;                 // argmax of logprob_norm
};
MultipleChoiceScore score_multiple_choice(ContinuationScorer& scorer, const TaskExample& ex);
// Its two halves, for scoring many examples in one ContinuationScorer::score_batch:
std::vector<std::string> multiple_choice_continuations(const TaskExample& ex);
MultipleChoiceScore multiple_choice_result(const TaskExample& ex,
                                           const std::vector<ContinuationScore>& scores);

struct LastWordScore {
  double logprob = 0.0;
  int n_tokens = 0;
  bool correct = false;
};
LastWordScore score_last_word(ContinuationScorer& scorer, const TaskExample& ex);
std::vector<std::string> last_word_continuations(const TaskExample& ex);
LastWordScore last_word_result(const std::vector<ContinuationScore>& scores);

// Half-width of the 95% confidence interval of an accuracy p over n examples.
double accuracy_ci95(double p, int64_t n);

struct TaskResult {
  std::string name;  // file stem
  std::string path;
  TaskKind kind = TaskKind::MultipleChoice;
  int64_t n = 0;
  double acc = 0.0, acc_ci = 0.0;
  double acc_norm = 0.0, acc_norm_ci = 0.0;  // multiple choice only
  double target_ppl = 0.0;                   // last word only
  ForwardWork work;                          // forward token-work with vs without sharing
  double seconds = 0.0;
};

struct ZeroShotResults {
  std::vector<TaskResult> tasks;
  double acc_avg = 0.0;  // mean of the tasks' acc
  ForwardWork work;      // summed over tasks
  double seconds = 0.0;
};

// Scores a task set (all of its examples), their token trees batched across examples.
TaskResult evaluate_task_set(ContinuationScorer& scorer, const TaskSet& set);

// Reads each file (first `limit` examples when limit >= 0) and scores it on the model.
// log != nullptr gets one progress line per task.
ZeroShotResults evaluate_tasks(const LlamaModel& model, const Tokenizer& tokenizer,
                               const std::vector<std::string>& files, int64_t limit = -1,
                               std::FILE* log = nullptr);

// A fixed-width table: task, kind, n, acc ± ci, acc_norm ± ci, target ppl, share of forward
// token-work saved by sharing the context; then the totals.
std::string format_task_table(const ZeroShotResults& r);

// {"acc": {task: v}, "acc_ci95": {...}, "acc_norm": {task: v (multiple choice)},
//  "acc_norm_ci95": {...}, "target_ppl": {task: v (last word)}, "n": {task: n},
//  "acc_avg": v, "forward_work_saved": share}
nlohmann::json task_results_json(const ZeroShotResults& r);

}  // namespace lrc
