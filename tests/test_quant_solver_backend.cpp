// The solver seam (lrc/quant/solver_backend.h): the CPU backend is today's functions bit for
// bit, and --device is checked with one clear error (a build without CUDA refuses "cuda").
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/pipeline/quantize_options.h"
#include "lrc/quant/gptq.h"
#include "lrc/quant/lrc_solver.h"
#include "lrc/quant/solver_backend.h"
#include "lrc/quant/svd_baseline.h"

namespace {

using namespace lrc;

std::vector<float> randn(size_t n, float s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, s);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST(SolverBackend, CpuBackendIsTheFunctionsBitForBit) {
  const int d = 48, d_out = 40, n = 700;
  const std::vector<float> x = randn(static_cast<size_t>(n) * d, 1.f, 1);
  const std::vector<float> W = randn(static_cast<size_t>(d_out) * d, 0.15f, 2);
  ActQuantSpec act;
  act.bits = 4;
  act.clip = 0.9f;
  const SolverBackendPtr cpu = cpu_solver_backend();
  EXPECT_EQ(cpu->name(), "cpu");
  auto sink = cpu->stats(d, act, true, StatsPrecision::Float64);
  sink->add(x.data(), n);
  const LayerStats s = sink->finish();
  StatsAccumulator acc(d, act);
  acc.add(x.data(), n);
  const LayerStats r = acc.finish();
  EXPECT_EQ(s.xx, r.xx);
  EXPECT_EQ(s.yy, r.yy);
  EXPECT_EQ(s.xy, r.xy);
  EXPECT_FALSE(s.device);

  const WeightQuantSpec ws;
  const GptqOptions go;
  EXPECT_EQ(cpu->gptq(W.data(), d_out, d, s, ws, go).codes,
            gptq(W.data(), d_out, d, s.xx.data(), ws, go).codes);
  LrcOptions lo;
  lo.rank = 6;
  double g = 0;
  lo.gptq_seconds = &g;
  const LowRankQuantized a = cpu->lrc(W.data(), d_out, d, s, lo);
  lo.gptq_seconds = nullptr;
  const LowRankQuantized b = lrc_quantize(W.data(), d_out, d, s, lo);
  EXPECT_EQ(a.packed.codes, b.packed.codes);
  EXPECT_EQ(a.u, b.u);
  EXPECT_EQ(a.v, b.v);
  EXPECT_EQ(a.objective, b.objective);
  EXPECT_GT(g, 0.0) << "Update-Quant's GPTQ is timed";
  EXPECT_GT(cpu->times().gptq, 0.0);
  const LowRankQuantized c = cpu->svd(W.data(), d_out, d, s, 5, ws, go);
  const LowRankQuantized e = svd_quantize(W.data(), d_out, d, s, 5, ws, go);
  EXPECT_EQ(c.u, e.u);
  EXPECT_EQ(c.objective, e.objective);
}

TEST(SolverBackend, DeviceIsCheckedWithOneClearError) {
  auto message = [](const std::string& device) {
    try {
      make_solver_backend(device);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message("gpu").find("--device"), std::string::npos);
  EXPECT_NE(message("cuda:x").find("--device"), std::string::npos);
  EXPECT_NE(message("cuda:").find("--device"), std::string::npos);
  QuantizeOptions o;
  o.device = "tpu";
  EXPECT_THROW(o.validate(), Error);
  o.device = "cuda:0";
  if (!cuda_solver_built()) {
    // -DLRC_CUDA=OFF: the option names the rebuild.
    EXPECT_NE(message("cuda").find("without CUDA"), std::string::npos);
    EXPECT_THROW(o.validate(), Error);
  } else {
    EXPECT_NO_THROW(o.validate());
  }
  // Recorded in a checkpoint only when it is not the CPU (CPU checkpoints keep their bytes).
  EXPECT_FALSE(QuantizeOptions().to_json().contains("device"));
  EXPECT_EQ(QuantizeOptions::from_json(o.to_json()).device, "cuda:0");
}

}  // namespace
