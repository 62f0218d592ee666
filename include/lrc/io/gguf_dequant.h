// ggml tensor types and their block formats, as GGUF files store them (ggml/src/ggml-common.h).
//
// A quantized type packs QK consecutive values of a row into one block: a float16 scale d
// (and for the "_1" types a float16 offset m) followed by the codes. Values:
//
//   Q4_0  x = d * (q - 8)             q: 4 bits, low nibbles = values 0..15, high = 16..31
//   Q4_1  x = d * q + m               q: 4 bits, same nibble order
//   Q5_0  x = d * (q - 16)            q: 4 low bits from qs, 5th bit from the 32-bit qh
//   Q5_1  x = d * q + m               q: 5 bits as Q5_0
//   Q8_0  x = d * q                   q: int8
//
// GGUF rows are ne[0] values long and every row holds a whole number of blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace lrc::gguf {

// ggml_type ids (the values are part of the file format).
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
};

constexpr int QK = 32;  // values per block of the 32-wide types below

struct BlockQ4_0 {
  uint16_t d;          // float16 scale
  uint8_t qs[QK / 2];  // nibbles: value j in the low nibble of qs[j], value j+16 in the high
};
struct BlockQ4_1 {
  uint16_t d, m;  // float16 scale and minimum
  uint8_t qs[QK / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // little-endian uint32: bit j = 5th bit of value j
  uint8_t qs[QK / 2];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[QK / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[QK];
};
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
                  sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34,
              "ggml block layouts must have no padding");

struct TypeTraits {
  const char* name;     // "Q4_1"
  int64_t block_elems;  // values per block (1 for plain types)
  size_t block_bytes;   // bytes per block
  bool dequantizable;   // lrc can convert it to float32
};

// Traits of a known ggml type id, nullopt for an id lrc does not know (sizes of known but
// unsupported types are still needed to bounds-check the file).
std::optional<TypeTraits> ggml_type_traits(uint32_t type);
// "Q4_1", or "unknown type 99".
std::string ggml_type_name(uint32_t type);

// Throws lrc::Error naming `what` and the type unless lrc can dequantize `type`.
void require_dequantizable(uint32_t type, const std::string& what);

// dst[0..n) = the n values at src as float32. n must be a multiple of the type's block size
// and the type dequantizable (else lrc::Error naming `what`). src need not be aligned.
// Parallel (OpenMP) over blocks for large n.
void dequantize(uint32_t type, const uint8_t* src, int64_t n, float* dst,
                const std::string& what = "dequantize");

}  // namespace lrc::gguf
