// Running task files through the scorer: accuracy, confidence interval, target perplexity and
// the forward work that context sharing saved, per task file.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/eval/zero_shot.h"

namespace lrc {

double accuracy_ci95(double p, int64_t n) {
  if (n <= 0) return 0.0;
  return 1.96 * std::sqrt(p * (1.0 - p) / static_cast<double>(n));
}

namespace {
// Examples handed to the scorer at once; it runs their token trees in passes of up to 2048
// rows (about a dozen last-word contexts, or thirty cloze examples).
constexpr size_t kTaskBatch = 64;
}  // namespace

TaskResult evaluate_task_set(ContinuationScorer& scorer, const TaskSet& set) {
  const auto t0 = std::chrono::steady_clock::now();
  const ForwardWork before = scorer.work();
  TaskResult r;
  r.name = set.name;
  r.path = set.path;
  r.kind = set.kind;
  r.n = static_cast<int64_t>(set.examples.size());
  if (r.n == 0) fail(set.path, "no examples to evaluate");

  int64_t correct = 0, correct_norm = 0, target_tokens = 0;
  double target_logprob = 0.0;
  const bool mc = set.kind == TaskKind::MultipleChoice;
  std::vector<ScoreRequest> requests;
  for (size_t e0 = 0; e0 < set.examples.size(); e0 += kTaskBatch) {
    const size_t e1 = std::min(set.examples.size(), e0 + kTaskBatch);
    requests.clear();
    for (size_t e = e0; e < e1; ++e) {
      const TaskExample& ex = set.examples[e];
      requests.push_back(scorer.encode(
          ex.context, mc ? multiple_choice_continuations(ex) : last_word_continuations(ex)));
    }
    const std::vector<std::vector<ContinuationScore>> scores = scorer.score_batch(requests);
    for (size_t e = e0; e < e1; ++e) {
      const TaskExample& ex = set.examples[e];
      if (mc) {
        const MultipleChoiceScore s = multiple_choice_result(ex, scores[e - e0]);
        correct += s.pred == ex.label;
        correct_norm += s.pred_norm == ex.label;
      } else {
        const LastWordScore s = last_word_result(scores[e - e0]);
        correct += s.correct;
        target_logprob += s.logprob;
        target_tokens += s.n_tokens;
      }
    }
  }
  const double n = static_cast<double>(r.n);
  r.acc = static_cast<double>(correct) / n;
  r.acc_ci = accuracy_ci95(r.acc, r.n);
  if (set.kind == TaskKind::MultipleChoice) {
    r.acc_norm = static_cast<double>(correct_norm) / n;
    r.acc_norm_ci = accuracy_ci95(r.acc_norm, r.n);
  } else {
    r.target_ppl = std::exp(-target_logprob / static_cast<double>(target_tokens));
  }
  r.work.shared = scorer.work().shared - before.shared;
  r.work.separate = scorer.work().separate - before.separate;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

ZeroShotResults evaluate_tasks(const LlamaModel& model, const Tokenizer& tokenizer,
                               const std::vector<std::string>& files, int64_t limit,
                               std::FILE* log) {
  if (files.empty()) fail("zero-shot evaluation", "no task files given");
  if (tokenizer.vocab_size() > model.cfg.vocab_size)
    fail("zero-shot evaluation", "tokenizer vocabulary (" + std::to_string(tokenizer.vocab_size()) +
                                     ") is larger than the model's (" +
                                     std::to_string(model.cfg.vocab_size) + ")");
  // Read every file first: a bad line fails before minutes of scoring.
  std::vector<TaskSet> sets;
  std::set<std::string> names;
  for (const std::string& f : files) {
    sets.push_back(read_task_file(f, limit));
    if (!names.insert(sets.back().name).second) sets.back().name = f;  // same stem twice
  }

  ContinuationScorer scorer(model, tokenizer);
  ZeroShotResults out;
  for (const TaskSet& set : sets) {
    out.tasks.push_back(evaluate_task_set(scorer, set));
    const TaskResult& t = out.tasks.back();
    out.acc_avg += t.acc / static_cast<double>(sets.size());
    out.work += t.work;
    out.seconds += t.seconds;
    if (log)
      std::fprintf(log, "%s: %lld examples, acc %.4f, %.1f s (%.1f examples/s)\n", t.name.c_str(),
                   static_cast<long long>(t.n), t.acc, t.seconds,
                   static_cast<double>(t.n) / t.seconds);
  }
  return out;
}

}  // namespace lrc
