// The backends behind kernels/backend.h run the same model: the integer CPU kernels
// (--kernels real) give the reference's (--kernels sim) logits up to float rounding, a linear
// they cannot run falls back to the reference bit for bit, and bad choices are named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/kernels/registry.h"
#include "lrc/model/forward.h"
#include "lrc/pipeline/quantize_model.h"
#include "lrc/quant/weight_quant.h"
#include "support/random_calibration.h"
#include "support/random_model.h"

using namespace lrc;

namespace {

// A W4A4 + LRC model (QuaRot, online Hadamards), quantized in memory.
LlamaModel quantized_model(QuantMethod method, double rank) {
  LlamaModel m = test::random_model(test::tiny_config(64, 128, 2, 4, 2, 61, 32), 5);
  QuantizeOptions opt;
  opt.method = method;
  opt.rank = rank;
  opt.nsamples = 4;
  opt.seq = 32;
  (void)quantize_model(m, test::random_calibration(61, 4, 32, 3), opt);
  return m;
}

}  // namespace

TEST(Backends, IntegerKernelsGiveTheSimulatedLogits) {
  for (auto [method, rank] : {std::pair{QuantMethod::RTN, 0.0}, {QuantMethod::LRC, 0.1}}) {
    LlamaModel m = quantized_model(method, rank);
    const CalibrationSet probe = test::random_calibration(61, 2, 24, 9);
    m.backend = make_backend("cpu", "sim");
    const std::vector<float> sim = forward_logits(m, probe.tokens.data(), 2, 24);
    m.backend = make_backend("cpu", "real");
    EXPECT_NE(m.run_backend().name().find("cpu-int"), std::string::npos);
    const std::vector<float> real = forward_logits(m, probe.tokens.data(), 2, 24);
    ASSERT_EQ(sim.size(), real.size());
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < sim.size(); ++i) {
      max_diff = std::max(max_diff, double(std::fabs(sim[i] - real[i])));
      max_abs = std::max(max_abs, double(std::fabs(sim[i])));
    }
    // Same integers; only the order of the fp32 scale products differs. A wrong code, scale or
    // low-rank term moves logits by O(max_abs).
    EXPECT_LT(max_diff, 1e-3 * max_abs) << "rank " << rank;
    EXPECT_GT(max_diff, 0.0) << "the integer path did not run";
  }
}

TEST(Backends, UnsupportedLinearFallsBackToTheReferenceBitForBit) {
  // Activation groups: the integer kernels need one scale per token.
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.f, 1.f);
  Linear L;
  L.d_out = 24;
  L.d_in = 64;
  std::vector<float> W(24 * 64);
  for (auto& w : W) w = nd(rng);
  L.packed = quantize_rtn(W.data(), 24, 64, WeightQuantSpec{});
  L.act.bits = 4;
  L.act.groupsize = 16;
  std::vector<float> x(5 * 64), y_ref(5 * 24), y_int(5 * 24);
  for (auto& v : x) v = nd(rng);
  make_backend("cpu", "sim")->linear(L, x.data(), 5, y_ref.data());
  make_backend("cpu", "real")->linear(L, x.data(), 5, y_int.data());
  EXPECT_EQ(y_ref, y_int);
}

TEST(Backends, BadChoicesAreNamed) {
  auto message = [](const std::string& device, const std::string& kernels) {
    try {
      (void)make_backend(device, kernels);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  // Without CUDA (or without a device) --device cuda is one error naming the option; with a
  // GPU it is a backend (tests/cuda/test_cuda_backend.cpp).
  const std::string cuda = message("cuda", "real");
  EXPECT_TRUE(cuda.empty() || cuda.find("--device") != std::string::npos) << cuda;
  EXPECT_NE(message("cuda:zero", "real").find("--device"), std::string::npos);
  EXPECT_NE(message("tpu", "real").find("--device"), std::string::npos);
  EXPECT_NE(message("cpu", "fast").find("--kernels"), std::string::npos);
  EXPECT_EQ(message("cpu", "sim"), "");
}
