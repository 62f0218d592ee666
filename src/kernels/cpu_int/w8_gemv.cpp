// The weight-only 8-bit GEMV (w8.h): AVX-512 when the CPU has it (the kernels' ISA choice,
// detect_isa), portable loops otherwise. Per row: the codes, widened to int32 and converted to
// float, minus the zero point (exact: small integers), times x, accumulated by fma.
// GCC 12 reports its own _mm512_undefined_* (inside the widening and conversion intrinsics)
// as maybe uninitialized once inlined; the value is never read (as in w4a4_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <omp.h>

#include <cmath>

#include "lrc/kernels/cpu_int/w4a4.h"
#include "lrc/kernels/cpu_int/w8.h"

namespace lrc::kernels::cpu_int {

namespace {

// y[i][r] for rows r in [r0, r1) of codes [d_out x d_in] and every token i of x [n x d_in]
// (y [n x d_out]), portable loops. Its order differs from the AVX-512 code's, which is fine:
// a machine runs one of the two, for both backends.
void rows_scalar(const uint8_t* codes, const float* scales, const float* zeros, int d_in,
                 const float* x, int64_t n, int64_t d_out, int r0, int r1, float* y) {
  for (int r = r0; r < r1; ++r) {
    const uint8_t* c = codes + static_cast<int64_t>(r) * d_in;
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * d_in;
      float acc = 0.f;
      for (int j = 0; j < d_in; ++j)
        acc = std::fma(static_cast<float>(c[j]) - zeros[r], xi[j], acc);
      y[i * d_out + r] = acc * scales[r];
    }
  }
}

// GCC's target pragma; clang (the fuzz build) ignores it and takes the attribute instead.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma")
#endif

// 16 codes at p as floats minus the zero point.
inline __m512 widen(const uint8_t* p, __m512 z) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)), z);
}

// The same with AVX-512 (shapes as rows_scalar), one row at a time: four accumulators over
// consecutive 16-input blocks (four independent fma chains hide the fma latency), named
// variables so that they stay in registers (arrays of __m512 indexed in a loop were spilled to
// the stack by GCC 12, which made the loop store-bound), then the tail under a mask. x stays
// in L1 across rows.
void rows_avx512(const uint8_t* codes, const float* scales, const float* zeros, int d_in,
                 const float* x, int64_t n, int64_t d_out, int r0, int r1, float* y) {
  const int full = d_in / 16, tail = d_in % 16;
  const __mmask16 tmask = static_cast<__mmask16>((1u << tail) - 1u);
  for (int r = r0; r < r1; ++r) {
    const uint8_t* c = codes + static_cast<int64_t>(r) * d_in;
    const __m512 z = _mm512_set1_ps(zeros[r]);
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * d_in;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int b = 0;
      for (; b + 3 < full; b += 4) {
        a0 = _mm512_fmadd_ps(widen(c + 16 * b, z), _mm512_loadu_ps(xi + 16 * b), a0);
        a1 = _mm512_fmadd_ps(widen(c + 16 * b + 16, z), _mm512_loadu_ps(xi + 16 * b + 16), a1);
        a2 = _mm512_fmadd_ps(widen(c + 16 * b + 32, z), _mm512_loadu_ps(xi + 16 * b + 32), a2);
        a3 = _mm512_fmadd_ps(widen(c + 16 * b + 48, z), _mm512_loadu_ps(xi + 16 * b + 48), a3);
      }
      for (; b < full; ++b)
        a0 = _mm512_fmadd_ps(widen(c + 16 * b, z), _mm512_loadu_ps(xi + 16 * b), a0);
      if (tail) {
        const __m128i cb = _mm_maskz_loadu_epi8(tmask, c + 16 * b);
        const __m512 w =
            _mm512_maskz_sub_ps(tmask, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(cb)), z);
        a1 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(tmask, xi + 16 * b), a1);
      }
      const __m512 sum = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
      y[i * d_out + r] = _mm512_reduce_add_ps(sum) * scales[r];
    }
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

}  // namespace

void w8_linear(const uint8_t* codes, const float* scales, const float* zeros, int d_out,
               int d_in, const float* x, int64_t n, float* y) {
  if (n <= 0) return;
  static const bool avx512 = detect_isa() == Isa::kAvx512Vnni;
  auto rows = [&](int r0, int r1) {
    if (avx512)
      rows_avx512(codes, scales, zeros, d_in, x, n, d_out, r0, r1, y);
    else
      rows_scalar(codes, scales, zeros, d_in, x, n, d_out, r0, r1, y);
  };
  // Below ~2M multiply-adds one thread (no OpenMP region); above, blocks of 256 rows.
  if (n * static_cast<int64_t>(d_out) * d_in < (int64_t(1) << 21)) return rows(0, d_out);
  constexpr int kChunk = 256;
  const int chunks = (d_out + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int ch = 0; ch < chunks; ++ch)
    rows(ch * kChunk, ch * kChunk + kChunk < d_out ? ch * kChunk + kChunk : d_out);
}

}  // namespace lrc::kernels::cpu_int
