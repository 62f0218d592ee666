// The backends behind kernels/backend.h run the same model: the integer CPU kernels
// (--kernels real) give the reference's (--kernels sim) logits bit for bit, a linear
// they cannot run falls back to the reference bit for bit, and bad choices are named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/kernels/cpu_int/w4a4.h"
#include "lrc/kernels/registry.h"
#include "lrc/model/layer_linears.h"
#include "lrc/model/forward.h"
#include "lrc/pipeline/linear_quantizer.h"
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

// Every quantized linear of m runs on the integer kernels (none falls back to the reference).
void expect_all_on_integer_kernels(const LlamaModel& m) {
  for (const LlamaLayer& layer : m.layers)
    for (const auto& t : kLayerLinears) {
      const Linear& L = t.of(layer);
      ASSERT_TRUE(L.packed) << t.name;
      EXPECT_EQ(kernels::cpu_int::unsupported_reason(*L.packed, L.act, L.d_out, L.d_in), "")
          << t.name;
    }
}

// The simulation sums the integer products exactly and scales them in the kernels' order, and
// both add the low-rank branch through one function: the logits are the same floats, for a
// prefill (n >= 16 tokens: the GEMM path, sgemm for the branch) and for decoding step by step
// (one token: the GEMV path, sgemv for the branch).
TEST(Backends, IntegerKernelsGiveTheSimulatedLogitsBitForBit) {
  for (auto [method, rank] : {std::pair{QuantMethod::RTN, 0.0}, {QuantMethod::LRC, 0.1}}) {
    LlamaModel m = quantized_model(method, rank);
    expect_all_on_integer_kernels(m);
    const CalibrationSet probe = test::random_calibration(61, 2, 24, 9);
    m.backend = make_backend("cpu", "sim");
    const std::vector<float> sim = forward_logits(m, probe.tokens.data(), 2, 24);
    m.backend = make_backend("cpu", "real");
    EXPECT_NE(m.run_backend().name().find("cpu-int"), std::string::npos);
    const std::vector<float> real = forward_logits(m, probe.tokens.data(), 2, 24);
    ASSERT_EQ(sim.size(), real.size());
    EXPECT_TRUE(sim == real) << "rank " << rank;

    for (bool decoding_sim : {false, true}) {
      m.backend = make_backend("cpu", "sim", decoding_sim);
      Decoder ds(m, 24);
      std::vector<std::vector<float>> sim_steps;
      for (int i = 0; i < 24; ++i) sim_steps.push_back(ds.step(probe.tokens[i]));
      m.backend = make_backend("cpu", "real", true);
      Decoder dr(m, 24);
      for (int i = 0; i < 24; ++i)
        ASSERT_TRUE(dr.step(probe.tokens[i]) == sim_steps[i]) << "rank " << rank << " step " << i;
    }
  }
}

// --lm-head q8 (src/cli/backend_flags.h): the LM head as 8-bit codes, one absmax scale per
// row. Decode steps (one token: the 8-bit GEMV, kernels/cpu_int/w8.h) and a prefill (the
// dequantized sgemm) give the same floats on both backends, and the prefill's logits stay
// within the 8-bit rounding of the fp32 head's (the GEMV itself: test_kernels_cpu_int).
TEST(Backends, EightBitLmHeadIsTheSameOnBothBackends) {
  LlamaModel m = quantized_model(QuantMethod::LRC, 0.1);
  const CalibrationSet probe = test::random_calibration(61, 1, 20, 4);
  m.backend = make_backend("cpu", "sim");
  const std::vector<float> fp_head = forward_logits(m, probe.tokens.data(), 1, 20);
  WeightQuantSpec spec;
  spec.bits = 8;
  spec.mse_clip = false;
  m.lm_head.packed = quantize_rtn(m.lm_head.w.data(), m.lm_head.d_out, m.lm_head.d_in, spec);
  m.lm_head.w.clear();
  const std::vector<float> sim = forward_logits(m, probe.tokens.data(), 1, 20);
  m.backend = make_backend("cpu", "real");
  EXPECT_TRUE(sim == forward_logits(m, probe.tokens.data(), 1, 20));
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < sim.size(); ++i) {
    max_diff = std::max(max_diff, double(std::fabs(sim[i] - fp_head[i])));
    max_abs = std::max(max_abs, double(std::fabs(fp_head[i])));
  }
  EXPECT_GT(max_diff, 0.0);               // the head did change
  EXPECT_LT(max_diff, 2e-2 * max_abs);   // by 8-bit rounding, not by a wrong code or scale

  m.backend = make_backend("cpu", "sim", true);
  Decoder ds(m, 20);
  std::vector<std::vector<float>> steps;
  for (int i = 0; i < 20; ++i) steps.push_back(ds.step(probe.tokens[i]));
  m.backend = make_backend("cpu", "real", true);
  Decoder dr(m, 20);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(dr.step(probe.tokens[i]) == steps[i]) << "step " << i;
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

// Backend::take_over (lrc eval / generate): the integer kernels keep the only copy of the
// codes and of the fp16 U, V; the model's arrays are freed, the logits (prefill and decode)
// stay the simulation's bit for bit.
TEST(Backends, TakeOverFreesTheModelsCopiesAndKeepsTheLogits) {
  LlamaModel m = quantized_model(QuantMethod::LRC, 0.1);
  const CalibrationSet probe = test::random_calibration(61, 2, 24, 9);
  m.backend = make_backend("cpu", "sim");
  const std::vector<float> sim = forward_logits(m, probe.tokens.data(), 2, 24);
  Decoder ds(m, 24);
  std::vector<std::vector<float>> steps;
  for (int i = 0; i < 24; ++i) steps.push_back(ds.step(probe.tokens[i]));

  m.backend = make_backend("cpu", "real", true);
  EXPECT_GT(hand_over_linears(m), 0);
  for (const LlamaLayer& layer : m.layers)
    for (const auto& t : kLayerLinears) {
      const Linear& L = t.of(layer);
      EXPECT_TRUE(L.packed->codes.empty()) << t.name;
      EXPECT_GT(L.lr.rank, 0) << t.name;
      EXPECT_TRUE(L.lr.u.empty() && L.lr.v.empty()) << t.name << ": U, V are fp16 values";
    }
  EXPECT_TRUE(forward_logits(m, probe.tokens.data(), 2, 24) == sim);
  Decoder dr(m, 24);
  for (int i = 0; i < 24; ++i) ASSERT_TRUE(dr.step(probe.tokens[i]) == steps[i]) << "step " << i;
  // The reference backend takes nothing over.
  LlamaModel r = quantized_model(QuantMethod::LRC, 0.1);
  r.backend = make_backend("cpu", "sim");
  EXPECT_EQ(hand_over_linears(r), 0);
  EXPECT_FALSE(r.layers[0].wq.packed->codes.empty());
}

// Resident size against the bits-per-weight accounting (issue 26, acceptance 4) at SmolLM2's
// widths (576 / 1536): after take_over the linears occupy within 5% of 4-bit codes + 16-bit
// scales + 16-bit U, V.
TEST(Backends, TakenOverLinearsMatchTheBitsAccounting) {
  LlamaModel m = test::random_model(test::tiny_config(576, 1536, 1, 9, 3, 61, 32), 7);
  QuantizeOptions opt;
  opt.method = QuantMethod::LRC;
  opt.rank = 0.1;
  opt.nsamples = 2;
  opt.seq = 32;
  (void)quantize_model(m, test::random_calibration(61, 2, 32, 3), opt);
  double accounted = 0;
  for (const auto& t : kLayerLinears) accounted += linear_bits(t.of(m.layers[0])) / 8;
  m.backend = make_backend("cpu", "real");
  double resident = static_cast<double>(hand_over_linears(m));
  for (const auto& t : kLayerLinears)
    resident += static_cast<double>(t.of(m.layers[0]).resident_bytes());
  EXPECT_NEAR(resident / accounted, 1.0, 0.05) << resident << " vs " << accounted;
}
