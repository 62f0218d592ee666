// AVX2 W4A4 tile (CPUs without AVX-512 VNNI). Same kernel layout: a 64-byte weight block is
// read as two 32-byte halves; each gives, after AND / shift+AND, the codes of 8 rows x 4
// inputs (rows 0-7 | 16-23 from the first half, 8-15 | 24-31 from the second). vpmaddubsw
// multiplies u8 codes by the broadcast s8 activations and adds pairs into int16 (at most
// 2 x 15 x 128 = 3840, no saturation), vpmaddwd with ones adds the pairs into int32 lanes.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu_int/w4a4_impl.h"

// GCC's target pragma; clang (the fuzz build) ignores it and takes the attribute instead.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi,bmi2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2")
#endif

namespace lrc::kernels::cpu_int::detail {
namespace {

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// raw[MR x 32] = Σ over steps s0..s1 of codes x activations for MR (<= 2) tokens; token m
// of step s at x + s*xs + 4m (the interleaved tile input).
template <int MR>
void accumulate(const uint8_t* wp, const int8_t* x, int64_t xs, int s0, int s1, int32_t* raw) {
  const __m256i lo = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256i acc[MR][4];
  for (int m = 0; m < MR; ++m)
    for (int q = 0; q < 4; ++q) acc[m][q] = _mm256_setzero_si256();
  const uint8_t* b = wp + int64_t(s0) * 64;
  for (int s = s0; s < s1; ++s, b += 64) {
    const __m256i v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 32));
    const __m256i w[4] = {_mm256_and_si256(v0, lo), _mm256_and_si256(v1, lo),
                          _mm256_and_si256(_mm256_srli_epi16(v0, 4), lo),
                          _mm256_and_si256(_mm256_srli_epi16(v1, 4), lo)};
    for (int m = 0; m < MR; ++m) {
      const __m256i a = _mm256_set1_epi32(load4(x + s * xs + kStepK * m));
      for (int q = 0; q < 4; ++q)
        acc[m][q] = _mm256_add_epi32(acc[m][q],
                                     _mm256_madd_epi16(_mm256_maddubs_epi16(w[q], a), ones));
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int q = 0; q < 4; ++q)  // q = 0..3 hold rows 0-7, 8-15, 16-23, 24-31
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(raw + m * kPanelRows + 8 * q), acc[m][q]);
}

}  // namespace

void tile_avx2(const TileJob& j) {
  const W4A4Cpu& w = *j.w;
  const int steps_per_group = w.n_groups == 1 ? w.ksteps : w.groupsize / kStepK;
  const uint8_t* wp = w.codes.data() + int64_t(j.p) * w.ksteps * 64;
  alignas(32) int32_t raw[kMaxTileTokens * kPanelRows];
  alignas(32) float ftile[kMaxTileTokens * kPanelRows] = {};
  for (int g = 0; g < w.n_groups; ++g) {
    const int s0 = g * steps_per_group;
    const int s1 = s0 + steps_per_group < w.ksteps ? s0 + steps_per_group : w.ksteps;
    for (int m = 0; m < j.mr; m += 2) {
      if (j.mr - m >= 2)
        accumulate<2>(wp, j.x + kStepK * m, j.xs, s0, s1, raw + m * kPanelRows);
      else
        accumulate<1>(wp, j.x + kStepK * m, j.xs, s0, s1, raw + m * kPanelRows);
    }
    epilogue_portable(j, g, raw, ftile);
  }
  if (!j.iout && w.n_groups > 1) store_ftile(j, ftile);
}

}  // namespace lrc::kernels::cpu_int::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
