// Online Hadamard transform vs a dense matrix-vector product, one activation row at a time,
// for the row sizes of real Llama layers: 1024, 1536 = 12·128, 4096, 11008 = 172·64.
// Both single-threaded (one row is what a decode step rotates). Prints the speed-up at the end,
// from CPU time (robust to other processes sharing the machine).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdio>
#include <map>
#include <random>

#include "lrc/rotate/online_transforms.h"

namespace {

const int kSizes[] = {1024, 1536, 4096, 11008};

std::vector<float> random_vector(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

void BM_OnlineHadamard(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const lrc::HadamardTransform t(lrc::make_rotation(lrc::RotationKind::Hadamard, n, 1));
  std::vector<float> x = random_vector(n, 2);
  for (auto _ : state) {
    t.apply(x.data(), 1);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(t.describe());
}

void BM_DenseMatvec(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  // Any dense matrix costs the same as the rotation's: a random one spares building it.
  const std::vector<float> r = random_vector(static_cast<size_t>(n) * n, 3);
  std::vector<float> x = random_vector(n, 2), y(n);
  for (auto _ : state) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, n, 1.f, r.data(), n, x.data(), 1, 0.f, y.data(), 1);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
}

BENCHMARK(BM_OnlineHadamard)
    ->Arg(1024)
    ->Arg(1536)
    ->Arg(4096)
    ->Arg(11008)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DenseMatvec)
    ->Arg(1024)
    ->Arg(1536)
    ->Arg(4096)
    ->Arg(11008)
    ->Unit(benchmark::kMicrosecond);

// Console output as usual, plus the time of every run kept for the ratio table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> ns;  // "BM_x/n" -> CPU time per iteration
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.run_type == Run::RT_Iteration && r.iterations > 0)
        ns[r.benchmark_name()] = r.cpu_accumulated_time * 1e9 / static_cast<double>(r.iterations);
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  openblas_set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n%8s %14s %14s %10s\n", "n", "online (us)", "dense (us)", "speed-up");
  for (int n : kSizes) {
    char online[64], dense[64];
    std::snprintf(online, sizeof online, "BM_OnlineHadamard/%d", n);
    std::snprintf(dense, sizeof dense, "BM_DenseMatvec/%d", n);
    const auto a = reporter.ns.find(online), b = reporter.ns.find(dense);
    if (a == reporter.ns.end() || b == reporter.ns.end()) continue;
    std::printf("%8d %14.2f %14.2f %9.1fx\n", n, a->second / 1e3, b->second / 1e3,
                b->second / a->second);
  }
  benchmark::Shutdown();
  return 0;
}
