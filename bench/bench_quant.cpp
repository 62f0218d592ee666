// Quantization-core benchmarks (Llama-7B sizes):
//   * dgemm 4096³, the machine's float64 reference speed, measured in the same run;
//   * statistics accumulation (XXᵀ, YYᵀ, XYᵀ with Y = Q_a(X), W4A4) for 65,536 tokens at
//     d_in = 4096, with its achieved GFLOP/s and the ratio to dgemm;
//   * one full LRC solve (rank = 10% budget, T = 1, GPTQ) for 4096x4096 and 11008x4096 from
//     synthetic statistics.
// Each runs once (they take seconds to minutes on a small machine). Time = wall clock; CPU =
// CPU-seconds of the whole process (all BLAS/OpenMP threads), which is what a loaded shared
// machine does not distort: CPU / cores approximates the wall time on an idle machine.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "lrc/quant/lrc_solver.h"
#include "lrc/quant/rank.h"
#include "lrc/quant/stats.h"

namespace {

double g_dgemm_gflops = 0;  // set by BM_Dgemm4096, read by BM_StatsAccumulate

std::vector<double> random_doubles(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  std::vector<double> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

std::vector<float> random_floats(size_t n, uint64_t seed, float sd) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_Dgemm4096(benchmark::State& state) {
  const int n = 4096;
  const std::vector<double> a = random_doubles(size_t(n) * n, 1),
                            b = random_doubles(size_t(n) * n, 2);
  std::vector<double> c(size_t(n) * n);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a.data(), n, b.data(), n,
                0.0, c.data(), n);
    const double s = seconds_since(t0);
    state.SetIterationTime(s);
    g_dgemm_gflops = 2.0 * n * n * double(n) / s / 1e9;
  }
  state.counters["GFLOP/s"] = g_dgemm_gflops;
}

void BM_StatsAccumulate(benchmark::State& state) {
  const int d = 4096;
  const int64_t tokens = 65536, batch = 4096;
  // One 4096-token batch of LLM-like activations, fed 16 times (timing does not depend on values).
  std::vector<float> x = random_floats(size_t(batch) * d, 3, 1.f);
  for (int64_t t = 0; t < batch; ++t) x[size_t(t) * d + 7] *= 20.f;  // an outlier channel
  lrc::ActQuantSpec act;
  act.bits = 4;
  double s = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    lrc::StatsAccumulator acc(d, act);
    for (int64_t t = 0; t < tokens; t += batch) acc.add(x.data(), batch);
    const lrc::LayerStats st = acc.finish();
    benchmark::DoNotOptimize(st.xy.data());
    s = seconds_since(t0);
    state.SetIterationTime(s);
  }
  // XXᵀ and YYᵀ by dsyrk (n·d² each, half the entries), XYᵀ by dgemm (2·n·d²).
  const double gflop = 4.0 * double(tokens) * d * d / 1e9;
  state.counters["GFLOP/s"] = gflop / s;
  state.counters["ratio_to_dgemm"] = g_dgemm_gflops > 0 ? gflop / s / g_dgemm_gflops : 0;
  state.counters["tokens"] = double(tokens);
}

// Synthetic statistics of n_eff tokens: XXᵀ = G Gᵀ with a decaying spectrum, Y = X + E with
// E independent (Q_a-like noise, 5% of the per-feature energy): YYᵀ = XXᵀ + D, XYᵀ = XXᵀ.
lrc::LayerStats synthetic_stats(int d) {
  lrc::LayerStats st;
  st.d = d;
  st.n = 65536;
  std::vector<double> g = random_doubles(size_t(d) * d, 4);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) g[size_t(i) * d + j] *= 1.0 / (1.0 + 0.01 * j);
  st.xx.assign(size_t(d) * d, 0.0);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, g.data(), d, g.data(), d, 0.0,
              st.xx.data(), d);
  st.xy = st.xx;
  st.yy = st.xx;
  for (int i = 0; i < d; ++i) st.yy[size_t(i) * d + i] *= 1.05;
  return st;
}

void BM_LrcSolve(benchmark::State& state) {
  const int d_out = static_cast<int>(state.range(0)), d_in = static_cast<int>(state.range(1));
  const lrc::LayerStats st = synthetic_stats(d_in);
  const std::vector<float> W = random_floats(size_t(d_out) * d_in, 5, 1.f / std::sqrt(float(d_in)));
  lrc::LrcOptions opt;
  opt.rank = lrc::rank_from_fraction(0.1, d_out, d_in);
  opt.iters = 1;
  opt.use_gptq = true;
  opt.w = {4, 0, true, true};
  double objective = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const lrc::LowRankQuantized r = lrc::lrc_quantize(W.data(), d_out, d_in, st, opt);
    state.SetIterationTime(seconds_since(t0));
    objective = r.objective;
  }
  state.counters["rank"] = opt.rank;
  state.counters["objective"] = objective;
}

}  // namespace

BENCHMARK(BM_Dgemm4096)
    ->Iterations(1)
    ->UseManualTime()
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kSecond);
BENCHMARK(BM_StatsAccumulate)
    ->Iterations(1)
    ->UseManualTime()
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kSecond);
BENCHMARK(BM_LrcSolve)
    ->Args({4096, 4096})
    ->Args({11008, 4096})
    ->Iterations(1)
    ->UseManualTime()
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kSecond);

BENCHMARK_MAIN();
