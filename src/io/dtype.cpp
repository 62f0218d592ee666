#include "lrc/io/dtype.h"

#include <array>
#include <cstring>

#include "lrc/core/error.h"
#include "lrc/core/half.h"

namespace lrc {

namespace {
struct DTypeInfo {
  DType t;
  std::string_view name;
  size_t size;
};
constexpr std::array<DTypeInfo, 13> kDTypes = {{
    {DType::F64, "F64", 8},
    {DType::F32, "F32", 4},
    {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8},
    {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},
    {DType::U64, "U64", 8},
    {DType::U32, "U32", 4},
    {DType::U16, "U16", 2},
    {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
}};
const DTypeInfo& info(DType t) { return kDTypes[static_cast<size_t>(t)]; }
}  // namespace

std::string_view dtype_name(DType t) { return info(t).name; }
size_t dtype_size(DType t) { return info(t).size; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.t;
  return std::nullopt;
}

bool is_float_dtype(DType t) {
  return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

// (Parallel above a few hundred thousand values: a streamed 7B layer is 200M, and a mapped file
// pages in faster from several threads.)
void convert_to_f32(DType t, const uint8_t* src, size_t n, float* dst) {
  const auto count = static_cast<int64_t>(n);
  const bool par = count >= (int64_t{1} << 18);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::F16:
#pragma omp parallel for schedule(static) if (par)
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    case DType::BF16:
#pragma omp parallel for schedule(static) if (par)
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case DType::F64:
#pragma omp parallel for schedule(static) if (par)
      for (int64_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        dst[i] = static_cast<float>(d);
      }
      return;
    default:
      fail("convert_to_f32", "dtype " + std::string(dtype_name(t)) + " is not a float type");
  }
}

}  // namespace lrc
