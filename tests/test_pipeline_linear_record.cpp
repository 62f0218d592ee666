// A solved linear as bytes (lrc/pipeline/linear_record.h: the broadcast from the rank that solved
// it, issue 30): the decoded linear and report equal the encoded ones exactly (codes, fp16-valued
// scales, U, V, Q_a, every report double bit for bit, NaN included), and bytes that are cut,
// padded or meant for another shape are one error naming the linear.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "lrc/core/error.h"
#include "lrc/pipeline/linear_record.h"
#include "lrc/quant/weight_quant.h"

namespace {

lrc::Linear solved(int d_out, int d_in, int rank, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> w(static_cast<size_t>(d_out) * d_in);
  for (float& x : w) x = n(g);
  lrc::WeightQuantSpec spec;
  spec.groupsize = 16;
  lrc::Linear l;
  l.d_out = d_out;
  l.d_in = d_in;
  l.packed = lrc::quantize_rtn(w.data(), d_out, d_in, spec);
  l.lr.rank = rank;
  l.lr.u.resize(static_cast<size_t>(d_out) * rank);
  l.lr.v.resize(static_cast<size_t>(d_in) * rank);
  for (float& x : l.lr.u) x = n(g);
  for (float& x : l.lr.v) x = n(g);
  l.act.bits = 4;
  l.act.clip = 0.9f;
  l.act.groupsize = 16;
  l.bias = {1.f, 2.f};  // untouched by a decode (every rank has its own)
  return l;
}

TEST(LinearRecord, SolvedLinearRoundTripsExactly) {
  const lrc::Linear a = solved(24, 32, 3, 1);
  lrc::LinearReport r;
  r.name = "layers.0.mlp.up_proj";
  r.d_out = 24;
  r.d_in = 32;
  r.rank = 3;
  r.a_clip = 0.9f;
  r.objective = 0.1 + 1e-17;
  r.objective_fp = std::numeric_limits<double>::quiet_NaN();
  r.objective_gptq = 3.25;
  r.spectrum = {5.0, 1.0 / 3.0};
  r.damping.push_back({"gptq: damp", 0.01, 1.0, 2});
  r.gptq_fallback = true;
  const std::vector<uint8_t> bytes = lrc::encode_solved(a, r);

  lrc::Linear b;
  b.d_out = 24;
  b.d_in = 32;
  b.w.assign(24 * 32, 7.f);  // a rank's FP weights before the broadcast: dropped
  b.bias = {9.f};
  lrc::LinearReport rb;
  lrc::decode_solved(bytes, b, rb, "test");
  ASSERT_TRUE(b.packed.has_value());
  EXPECT_EQ(b.packed->codes, a.packed->codes);
  EXPECT_EQ(b.packed->scales, a.packed->scales);
  EXPECT_EQ(b.packed->zeros, a.packed->zeros);
  EXPECT_EQ(b.packed->groupsize, 16);
  EXPECT_EQ(b.lr.rank, 3);
  EXPECT_EQ(b.lr.u, a.lr.u);
  EXPECT_EQ(b.lr.v, a.lr.v);
  EXPECT_EQ(b.act.bits, 4);
  EXPECT_EQ(b.act.clip, 0.9f);
  EXPECT_EQ(b.act.groupsize, 16);
  EXPECT_TRUE(b.w.empty());
  EXPECT_EQ(b.bias, std::vector<float>{9.f});
  EXPECT_EQ(rb.name, r.name);
  EXPECT_EQ(rb.objective, r.objective);
  EXPECT_TRUE(std::isnan(rb.objective_fp));
  EXPECT_EQ(rb.objective_gptq, 3.25);
  EXPECT_EQ(rb.spectrum, r.spectrum);
  ASSERT_EQ(rb.damping.size(), 1u);
  EXPECT_EQ(rb.damping[0].retries, 2);
  EXPECT_TRUE(rb.gptq_fallback);
}

TEST(LinearRecord, DamagedOrMisdirectedBytesAreOneError) {
  const lrc::Linear a = solved(8, 16, 2, 2);
  const std::vector<uint8_t> bytes = lrc::encode_solved(a, lrc::LinearReport{});
  auto decode = [](std::vector<uint8_t> b, int d_out, int d_in) {
    lrc::Linear l;
    l.d_out = d_out;
    l.d_in = d_in;
    lrc::LinearReport r;
    try {
      lrc::decode_solved(b, l, r, "layers.1.self_attn.k_proj from rank 1");
    } catch (const lrc::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(decode(bytes, 8, 16), "");
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 3);
  EXPECT_NE(decode(cut, 8, 16).find("k_proj from rank 1"), std::string::npos);
  std::vector<uint8_t> padded = bytes;
  padded.push_back(0);
  EXPECT_NE(decode(padded, 8, 16).find("trailing"), std::string::npos);
  EXPECT_NE(decode(bytes, 16, 16).find("shape 8 x 16"), std::string::npos);
}

}  // namespace
