// Zero-shot scoring speed on the default model: 1000 four-choice (HellaSwag-style) examples
// generated from WikiText-2 test (seed 0), scored the lrc way (each context once, its choices
// as branches of a token tree, the trees of 64 examples in one pass) and, on the first 200,
// one example's tree per pass, and every (context + choice) forwarded from scratch (the
// lm-eval way). Counters: examples/s, the share of forward token-work that sharing saved, and
// acc as a sanity check (all ways must agree).
//
//   build-bench/bench_tasks --benchmark_counters_tabular=true
// Assets: ../shared beside the checkout (LRC_SHARED overrides).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "lrc/eval/continuation_scorer.h"
#include "lrc/eval/task_generators.h"
#include "lrc/eval/text_corpus.h"
#include "lrc/eval/zero_shot.h"
#include "lrc/io/model_loader.h"

namespace {

std::string shared_path(const std::string& rel) {
  const char* s = std::getenv("LRC_SHARED");
  return (s && *s ? std::string(s) : std::string(LRC_SOURCE_DIR) + "/../shared") + "/" + rel;
}

struct Fixture {
  lrc::LoadedModel model = lrc::load_model(shared_path("models/llama-22m-debtext"));
  std::vector<lrc::TaskExample> examples = lrc::generate_continuation(
      lrc::read_text_corpus(shared_path("data/wikitext2-test.txt")), 1000, 0);
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

enum class Mode { Batched, OneExampleAtATime, Separate };

void run(benchmark::State& state, Mode mode, size_t n) {
  Fixture& f = fixture();
  lrc::TaskSet set;
  set.name = "continuation";
  set.examples.assign(f.examples.begin(), f.examples.begin() + static_cast<std::ptrdiff_t>(n));
  lrc::TaskResult r;
  for (auto _ : state) {
    lrc::ContinuationScorer scorer(f.model.model, *f.model.tokenizer, -1, mode != Mode::Separate);
    if (mode == Mode::OneExampleAtATime) {
      const auto t0 = std::chrono::steady_clock::now();
      int64_t correct = 0, correct_norm = 0;
      for (const lrc::TaskExample& ex : set.examples) {
        const lrc::MultipleChoiceScore s = lrc::score_multiple_choice(scorer, ex);
        correct += s.pred == ex.label;
        correct_norm += s.pred_norm == ex.label;
      }
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      r.acc = static_cast<double>(correct) / static_cast<double>(n);
      r.acc_norm = static_cast<double>(correct_norm) / static_cast<double>(n);
      r.work = scorer.work();
    } else {
      r = lrc::evaluate_task_set(scorer, set);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.counters["examples"] = static_cast<double>(n);
  state.counters["examples_per_s"] = static_cast<double>(n) / r.seconds;
  state.counters["tokens_forwarded"] = static_cast<double>(r.work.shared);
  state.counters["tokens_lm_eval_way"] = static_cast<double>(r.work.separate);
  state.counters["work_saved"] = r.work.saved_share();
  state.counters["acc"] = r.acc;
  state.counters["acc_norm"] = r.acc_norm;
}

void BM_FourChoiceSharedContext(benchmark::State& state) { run(state, Mode::Batched, 1000); }
void BM_FourChoiceSharedContext200(benchmark::State& state) { run(state, Mode::Batched, 200); }
void BM_FourChoiceOneExampleAtATime200(benchmark::State& state) {
  run(state, Mode::OneExampleAtATime, 200);
}
void BM_FourChoiceSeparate(benchmark::State& state) { run(state, Mode::Separate, 200); }

BENCHMARK(BM_FourChoiceSharedContext)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_FourChoiceSharedContext200)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_FourChoiceOneExampleAtATime200)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();
BENCHMARK(BM_FourChoiceSeparate)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
