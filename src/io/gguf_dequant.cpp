// Dequantization of the ggml block formats (layouts in include/lrc/io/gguf_dequant.h),
// following the reference dequantize_row_* of ggml-quants.c.
#include "lrc/io/gguf_dequant.h"

#include <cstring>

#include "lrc/core/error.h"
#include "lrc/core/half.h"

namespace lrc::gguf {

namespace {

// Every known type: {id, name, values per block, bytes per block, dequantizable}.
struct TypeRow {
  uint32_t id;
  TypeTraits t;
};
constexpr TypeRow kTypes[] = {
    {0, {"F32", 1, 4, true}},          {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 18, true}},       {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, true}},       {7, {"Q5_1", 32, 24, true}},
    {8, {"Q8_0", 32, 34, true}},       {9, {"Q8_1", 32, 40, false}},
    {10, {"Q2_K", 256, 84, false}},    {11, {"Q3_K", 256, 110, false}},
    {12, {"Q4_K", 256, 144, false}},   {13, {"Q5_K", 256, 176, false}},
    {14, {"Q6_K", 256, 210, false}},   {15, {"Q8_K", 256, 292, false}},
    {16, {"IQ2_XXS", 256, 66, false}}, {17, {"IQ2_XS", 256, 74, false}},
    {18, {"IQ3_XXS", 256, 98, false}}, {19, {"IQ1_S", 256, 50, false}},
    {20, {"IQ4_NL", 32, 18, false}},   {21, {"IQ3_S", 256, 110, false}},
    {22, {"IQ2_S", 256, 82, false}},   {23, {"IQ4_XS", 256, 136, false}},
    {24, {"I8", 1, 1, false}},         {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},        {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, true}},         {29, {"IQ1_M", 256, 56, false}},
    {30, {"BF16", 1, 2, true}},        {34, {"TQ1_0", 256, 54, false}},
    {35, {"TQ2_0", 256, 66, false}},
};

template <typename Block>
Block load_block(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(Block));  // file data may be unaligned
  return b;
}

void dq_q4_0(const uint8_t* p, float* y) {
  const auto b = load_block<BlockQ4_0>(p);
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < QK / 2; ++j) {
    y[j] = d * static_cast<float>((b.qs[j] & 0x0f) - 8);
    y[j + QK / 2] = d * static_cast<float>((b.qs[j] >> 4) - 8);
  }
}

void dq_q4_1(const uint8_t* p, float* y) {
  const auto b = load_block<BlockQ4_1>(p);
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  for (int j = 0; j < QK / 2; ++j) {
    y[j] = d * static_cast<float>(b.qs[j] & 0x0f) + m;
    y[j + QK / 2] = d * static_cast<float>(b.qs[j] >> 4) + m;
  }
}

uint32_t load_qh(const uint8_t qh[4]) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
         static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
}

void dq_q5_0(const uint8_t* p, float* y) {
  const auto b = load_block<BlockQ5_0>(p);
  const float d = f16_to_f32(b.d);
  const uint32_t qh = load_qh(b.qh);
  for (int j = 0; j < QK / 2; ++j) {
    const int hi0 = static_cast<int>((qh >> j) & 1u) << 4;             // 5th bit of value j
    const int hi1 = static_cast<int>((qh >> (j + QK / 2)) & 1u) << 4;  // ... of value j+16
    y[j] = d * static_cast<float>(((b.qs[j] & 0x0f) | hi0) - 16);
    y[j + QK / 2] = d * static_cast<float>(((b.qs[j] >> 4) | hi1) - 16);
  }
}

void dq_q5_1(const uint8_t* p, float* y) {
  const auto b = load_block<BlockQ5_1>(p);
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  const uint32_t qh = load_qh(b.qh);
  for (int j = 0; j < QK / 2; ++j) {
    const int hi0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int hi1 = static_cast<int>((qh >> (j + QK / 2)) & 1u) << 4;
    y[j] = d * static_cast<float>((b.qs[j] & 0x0f) | hi0) + m;
    y[j + QK / 2] = d * static_cast<float>((b.qs[j] >> 4) | hi1) + m;
  }
}

void dq_q8_0(const uint8_t* p, float* y) {
  const auto b = load_block<BlockQ8_0>(p);
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < QK; ++j) y[j] = d * static_cast<float>(b.qs[j]);
}

void dq_f32(const uint8_t* p, float* y) { std::memcpy(y, p, 4); }
void dq_f16(const uint8_t* p, float* y) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  *y = f16_to_f32(h);
}
void dq_bf16(const uint8_t* p, float* y) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  *y = bf16_to_f32(h);
}
void dq_f64(const uint8_t* p, float* y) {
  double v;
  std::memcpy(&v, p, 8);
  *y = static_cast<float>(v);
}

using BlockFn = void (*)(const uint8_t*, float*);

BlockFn block_fn(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32:
      return dq_f32;
    case GgmlType::F16:
      return dq_f16;
    case GgmlType::BF16:
      return dq_bf16;
    case GgmlType::F64:
      return dq_f64;
    case GgmlType::Q4_0:
      return dq_q4_0;
    case GgmlType::Q4_1:
      return dq_q4_1;
    case GgmlType::Q5_0:
      return dq_q5_0;
    case GgmlType::Q5_1:
      return dq_q5_1;
    case GgmlType::Q8_0:
      return dq_q8_0;
    default:
      return nullptr;
  }
}

}  // namespace

std::optional<TypeTraits> ggml_type_traits(uint32_t type) {
  for (const auto& row : kTypes)
    if (row.id == type) return row.t;
  return std::nullopt;
}

std::string ggml_type_name(uint32_t type) {
  if (auto t = ggml_type_traits(type)) return t->name;
  return "unknown type " + std::to_string(type);
}

void require_dequantizable(uint32_t type, const std::string& what) {
  const auto traits = ggml_type_traits(type);
  if (!traits || !traits->dequantizable || !block_fn(type))
    fail(what, "tensor type " + ggml_type_name(type) +
                   " is not supported (lrc reads F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, "
                   "Q8_0)");
}

void dequantize(uint32_t type, const uint8_t* src, int64_t n, float* dst, const std::string& what) {
  require_dequantizable(type, what);
  const auto traits = ggml_type_traits(type);
  const BlockFn fn = block_fn(type);
  if (n < 0 || n % traits->block_elems != 0)
    fail(what, std::to_string(n) + " values is not a whole number of " + traits->name +
                   " blocks of " + std::to_string(traits->block_elems));
  const int64_t n_blocks = n / traits->block_elems;
  const int64_t be = traits->block_elems;
  const size_t bb = traits->block_bytes;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n_blocks; ++i) fn(src + static_cast<size_t>(i) * bb, dst + i * be);
}

}  // namespace lrc::gguf
