// The host cost of RoPE tables in a forward (issue 24: the GPU evaluation's host time).
//
//   BM_RopeTableFresh/<n_pos>   RopeTable(64, 1e5, 0, n_pos): cos/sin of every position and pair
//                               in float64, what the forward built at every layer of every prefill
//                               (since made ~2.3x faster itself: θ^(-2i/hd) once per pair)
//   BM_RopeTableShared/<n_pos>  shared_rope_table with the same arguments (made once, then
//                               looked up): what it does now
//
// After the run, the host seconds a SmolLM2 wikitext2-test evaluation (141 chunks of 2048
// tokens, 30 layers) spends on tables either way are printed, with their ratio.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "lrc/kernels/rope.h"

namespace {

std::map<std::string, double> g_seconds;  // benchmark name -> seconds a table

void BM_RopeTableFresh(benchmark::State& st) {
  const int n_pos = static_cast<int>(st.range(0));
  for (auto _ : st) {
    const lrc::RopeTable t(64, 100000.f, 0, n_pos);
    benchmark::DoNotOptimize(t.cos.data());
  }
}
BENCHMARK(BM_RopeTableFresh)->Arg(512)->Arg(2048)->Unit(benchmark::kMicrosecond);

void BM_RopeTableShared(benchmark::State& st) {
  const int n_pos = static_cast<int>(st.range(0));
  for (auto _ : st) {
    const auto t = lrc::shared_rope_table(64, 100000.f, 0, n_pos);
    benchmark::DoNotOptimize(t.get());
  }
}
BENCHMARK(BM_RopeTableShared)->Arg(512)->Arg(2048)->Unit(benchmark::kMicrosecond);

class Recorder : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (r.iterations > 0)
        g_seconds[r.benchmark_name()] = r.GetAdjustedRealTime() /
                                        benchmark::GetTimeUnitMultiplier(r.time_unit);
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  Recorder rec;
  benchmark::RunSpecifiedBenchmarks(&rec);
  const auto fresh = g_seconds.find("BM_RopeTableFresh/2048");
  const auto shared = g_seconds.find("BM_RopeTableShared/2048");
  if (fresh != g_seconds.end() && shared != g_seconds.end()) {
    const double before = fresh->second * 30 * 141, after = fresh->second + shared->second * 30 * 141;
    std::printf("SmolLM2 wikitext2-test at 2048 tokens (141 chunks x 30 layers), host time on "
                "RoPE tables: a table at every layer %.2f s (%.3f ms each), shared %.4f s (%.0fx)\n",
                before, fresh->second * 1e3, after, before / after);
  }
  benchmark::Shutdown();
  return 0;
}
