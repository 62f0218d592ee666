// ggml block formats: blocks built by hand, decoded by lrc::gguf::dequantize, compared with the
// reference formulas written out independently here (value j of a block of 32):
//   Q4_0  d * (nib(j) - 8)              nib(j) = j < 16 ? qs[j] & 15 : qs[j-16] >> 4
//   Q4_1  d * nib(j) + m
//   Q5_0  d * ((nib(j) | bit(qh, j) << 4) - 16)
//   Q5_1  d * (nib(j) | bit(qh, j) << 4) + m
//   Q8_0  d * qs[j]
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/gguf.h"
#include "lrc/io/gguf_dequant.h"

using namespace lrc;
using namespace lrc::gguf;

namespace {

int nib(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4; }
int bit(uint32_t qh, int j) { return (qh >> j) & 1; }

template <typename B>
std::vector<uint8_t> as_bytes(const std::vector<B>& blocks) {
  std::vector<uint8_t> out(blocks.size() * sizeof(B));
  std::memcpy(out.data(), blocks.data(), out.size());
  return out;
}

std::vector<float> run(GgmlType t, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n), -999.f);
  dequantize(static_cast<uint32_t>(t), bytes.data(), n, y.data());
  return y;
}

struct Rng {
  std::mt19937 g{1234};
  uint8_t byte() { return static_cast<uint8_t>(g() & 0xff); }
  uint16_t half(float lo, float hi) {
    return f32_to_f16(std::uniform_real_distribution<float>(lo, hi)(g));
  }
};

}  // namespace

TEST(GgufDequant, HandComputedQ4_0Block) {
  BlockQ4_0 b{};
  b.d = f32_to_f16(0.5f);
  b.qs[0] = 0x1F;   // value 0: 15 - 8 = 7 -> 3.5; value 16: 1 - 8 = -7 -> -3.5
  b.qs[15] = 0x80;  // value 15: 0 - 8 -> -4; value 31: 8 - 8 -> 0
  for (int j = 1; j < 15; ++j) b.qs[j] = 0x88;  // all zeros
  auto y = run(GgmlType::Q4_0, as_bytes(std::vector<BlockQ4_0>{b}), 32);
  EXPECT_FLOAT_EQ(y[0], 3.5f);
  EXPECT_FLOAT_EQ(y[16], -3.5f);
  EXPECT_FLOAT_EQ(y[15], -4.f);
  EXPECT_FLOAT_EQ(y[31], 0.f);
  EXPECT_FLOAT_EQ(y[7], 0.f);
}

TEST(GgufDequant, HandComputedQ5_1Block) {
  BlockQ5_1 b{};
  b.d = f32_to_f16(0.25f);
  b.m = f32_to_f16(-1.f);
  const uint32_t qh = (1u << 0) | (1u << 17);  // 5th bit of values 0 and 17
  std::memcpy(b.qh, &qh, 4);
  b.qs[0] = 0x3F;  // value 0: 15 | 16 = 31 -> 0.25*31 - 1 = 6.75; value 16: 3 -> -0.25
  b.qs[1] = 0x20;  // value 1: 0 -> -1; value 17: 2 | 16 = 18 -> 3.5
  auto y = run(GgmlType::Q5_1, as_bytes(std::vector<BlockQ5_1>{b}), 32);
  EXPECT_FLOAT_EQ(y[0], 6.75f);
  EXPECT_FLOAT_EQ(y[16], -0.25f);
  EXPECT_FLOAT_EQ(y[1], -1.f);
  EXPECT_FLOAT_EQ(y[17], 3.5f);
}

TEST(GgufDequant, RandomBlocksMatchReferenceFormulas) {
  Rng r;
  const int nb = 3;  // three blocks: 96 values
  {
    std::vector<BlockQ4_0> bl(nb);
    for (auto& b : bl) {
      b.d = r.half(-2, 2);
      for (auto& q : b.qs) q = r.byte();
    }
    auto y = run(GgmlType::Q4_0, as_bytes(bl), nb * 32);
    for (int i = 0; i < nb; ++i)
      for (int j = 0; j < 32; ++j)
        ASSERT_FLOAT_EQ(y[i * 32 + j], f16_to_f32(bl[i].d) * (nib(bl[i].qs, j) - 8))
            << i << "," << j;
  }
  {
    std::vector<BlockQ4_1> bl(nb);
    for (auto& b : bl) {
      b.d = r.half(0, 2);
      b.m = r.half(-3, 0);
      for (auto& q : b.qs) q = r.byte();
    }
    auto y = run(GgmlType::Q4_1, as_bytes(bl), nb * 32);
    for (int i = 0; i < nb; ++i)
      for (int j = 0; j < 32; ++j)
        ASSERT_FLOAT_EQ(y[i * 32 + j],
                        f16_to_f32(bl[i].d) * nib(bl[i].qs, j) + f16_to_f32(bl[i].m));
  }
  {
    std::vector<BlockQ5_0> bl(nb);
    for (auto& b : bl) {
      b.d = r.half(-2, 2);
      for (auto& q : b.qh) q = r.byte();
      for (auto& q : b.qs) q = r.byte();
    }
    auto y = run(GgmlType::Q5_0, as_bytes(bl), nb * 32);
    for (int i = 0; i < nb; ++i) {
      uint32_t qh;
      std::memcpy(&qh, bl[i].qh, 4);
      for (int j = 0; j < 32; ++j)
        ASSERT_FLOAT_EQ(y[i * 32 + j],
                        f16_to_f32(bl[i].d) * ((nib(bl[i].qs, j) | bit(qh, j) << 4) - 16));
    }
  }
  {
    std::vector<BlockQ5_1> bl(nb);
    for (auto& b : bl) {
      b.d = r.half(0, 2);
      b.m = r.half(-3, 0);
      for (auto& q : b.qh) q = r.byte();
      for (auto& q : b.qs) q = r.byte();
    }
    auto y = run(GgmlType::Q5_1, as_bytes(bl), nb * 32);
    for (int i = 0; i < nb; ++i) {
      uint32_t qh;
      std::memcpy(&qh, bl[i].qh, 4);
      for (int j = 0; j < 32; ++j)
        ASSERT_FLOAT_EQ(y[i * 32 + j], f16_to_f32(bl[i].d) * (nib(bl[i].qs, j) | bit(qh, j) << 4) +
                                           f16_to_f32(bl[i].m));
    }
  }
  {
    std::vector<BlockQ8_0> bl(nb);
    for (auto& b : bl) {
      b.d = r.half(-0.1f, 0.1f);
      for (auto& q : b.qs) q = static_cast<int8_t>(r.byte());
    }
    auto y = run(GgmlType::Q8_0, as_bytes(bl), nb * 32);
    for (int i = 0; i < nb; ++i)
      for (int j = 0; j < 32; ++j)
        ASSERT_FLOAT_EQ(y[i * 32 + j], f16_to_f32(bl[i].d) * bl[i].qs[j]);
  }
}

TEST(GgufDequant, PlainFloatTypes) {
  const std::vector<float> x = {0.f, -1.5f, 3.25f, 65504.f, 1e-3f};
  std::vector<uint8_t> f32(x.size() * 4), f16(x.size() * 2), bf16(x.size() * 2);
  std::memcpy(f32.data(), x.data(), f32.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const uint16_t h = f32_to_f16(x[i]), b = f32_to_bf16(x[i]);
    std::memcpy(&f16[2 * i], &h, 2);
    std::memcpy(&bf16[2 * i], &b, 2);
  }
  EXPECT_EQ(run(GgmlType::F32, f32, 5), x);
  auto h = run(GgmlType::F16, f16, 5);
  auto b = run(GgmlType::BF16, bf16, 5);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_FLOAT_EQ(h[i], f16_to_f32(f32_to_f16(x[i])));
    EXPECT_FLOAT_EQ(b[i], bf16_to_f32(f32_to_bf16(x[i])));
  }
  EXPECT_FLOAT_EQ(h[2], 3.25f);  // exact in both
  EXPECT_FLOAT_EQ(b[1], -1.5f);
}

TEST(GgufDequant, TypeTable) {
  EXPECT_EQ(ggml_type_name(3), "Q4_1");
  EXPECT_EQ(ggml_type_traits(8)->block_bytes, 34u);
  EXPECT_EQ(ggml_type_traits(12)->block_elems, 256);  // Q4_K: known size, not dequantizable
  EXPECT_FALSE(ggml_type_traits(12)->dequantizable);
  EXPECT_FALSE(ggml_type_traits(4).has_value());  // ids 4 and 5 were removed from ggml
  EXPECT_EQ(ggml_type_name(99), "unknown type 99");
}

TEST(GgufDequant, RejectsUnsupportedTypeAndPartialBlocks) {
  std::vector<uint8_t> bytes(1024);
  std::vector<float> y(256);
  try {
    dequantize(static_cast<uint32_t>(GgmlType::Q4_K), bytes.data(), 256, y.data(),
               "f.gguf: tensor 'w'");
    FAIL() << "Q4_K accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f.gguf: tensor 'w'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Q4_K"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dequantize(static_cast<uint32_t>(GgmlType::Q8_0), bytes.data(), 33, y.data()),
               Error);
  EXPECT_THROW(dequantize(77, bytes.data(), 32, y.data()), Error);
}

// Blocks quantized by the reference implementation (gguf-py, scripts/make-gguf-quant-reference.py)
// decode to exactly gguf-py's dequantized floats.
TEST(GgufDequant, MatchesGgufPyReference) {
  const GgufFile f(std::string(LRC_SOURCE_DIR) + "/tests/data/gguf_py_quant_reference.dat");
  int checked = 0;
  for (const char* type : {"F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"}) {
    const TensorInfo* q = f.find_tensor(type);
    const TensorInfo* ref = f.find_tensor(std::string(type) + ".ref");
    ASSERT_TRUE(q && ref) << type;
    EXPECT_EQ(ggml_type_name(q->type), type);
    EXPECT_EQ(q->shape(), (std::vector<int64_t>{4, 64}));
    const auto got = f.tensor_f32(*q), want = f.tensor_f32(*ref);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-6f * std::max(1.f, std::fabs(want[i]))) << type << " " << i;
    ++checked;
  }
  EXPECT_EQ(checked, 7);
}
