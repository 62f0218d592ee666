// Zero-shot scoring speed on the default model: 1000 four-choice (HellaSwag-style) examples
// generated from WikiText-2 test (seed 0), scored with the context shared through the KV cache
// (the lrc way) and, on the first 200, with every (context + choice) forwarded from scratch
// (the lm-eval way). Counters: examples/s, the share of forward token-work that sharing saved,
// and acc as a sanity check (both ways must agree).
//
//   build-bench/bench_tasks --benchmark_counters_tabular=true
// Assets: ../shared beside the checkout (LRC_SHARED overrides).
#include <benchmark/benchmark.h>

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

void run(benchmark::State& state, bool share, size_t n) {
  Fixture& f = fixture();
  lrc::TaskSet set;
  set.name = "continuation";
  set.examples.assign(f.examples.begin(), f.examples.begin() + static_cast<std::ptrdiff_t>(n));
  lrc::TaskResult r;
  for (auto _ : state) {
    lrc::ContinuationScorer scorer(f.model.model, *f.model.tokenizer, -1, share);
    r = lrc::evaluate_task_set(scorer, set);
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

void BM_FourChoiceSharedContext(benchmark::State& state) { run(state, true, 1000); }
void BM_FourChoiceSeparate(benchmark::State& state) { run(state, false, 200); }
void BM_FourChoiceSharedContext200(benchmark::State& state) { run(state, true, 200); }

BENCHMARK(BM_FourChoiceSharedContext)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_FourChoiceSharedContext200)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_FourChoiceSeparate)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
