// AVX-512 VNNI W4A4 tile and activation quantizer. Compiled for AVX-512 by the target pragma
// below (the library itself may be built without -march=native); called only when
// __builtin_cpu_supports says the CPU has avx512f/bw/vl/vnni (see w4a4_linear.cpp).
//
// Register block: 12 tokens x 32 rows = 24 zmm int32 accumulators. Per 4-input step one
// 64-byte weight load gives, after AND with 0x0F and with 0xF0, the unsigned codes of rows
// 0..15 and 16 x the codes of rows 16..31 (4 inputs each; no shift: the high rows' sums come
// out exactly 16x too large and one arithmetic shift per tile undoes it — the reason for the
// d_in <= 65536 limit, 240·128·d_in < 2^31); every token's 4 activation codes are broadcast as a
// 32-bit lane and vpdpbusd adds the four u8 x s8 products into each row's int32 lane.
// Small token blocks (decode) unroll the input loop by 2 with two accumulator sets, so the
// vpdpbusd latency chain does not limit a memory-bound GEMV.
// GCC 12 reports its own _mm512_undefined_ps (inside _mm512_max_ps & co.) as maybe
// uninitialized once inlined; the value is never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/cpu_int/w4a4_impl.h"

// GCC's target pragma; clang (the fuzz build) ignores it and takes the attribute instead.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,bmi,bmi2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,bmi,bmi2")
#endif

namespace lrc::kernels::cpu_int::detail {
namespace {

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// int32 -> float; the maskz form because GCC 12 warns (maybe-uninitialized) on the
// _mm512_undefined_ps inside _mm512_cvtepi32_ps.
inline __m512 to_float(__m512i v) { return _mm512_maskz_cvtepi32_ps(__mmask16(0xFFFF), v); }

// out[2m + h] = Σ over steps s0..s1 of codes x activations (no zero-point correction) for
// token m and row half h. x is the tile's interleaved input: step s, token m at x + s*xs + 4m.
// The 24 accumulators are named variables (macros below, guarded by `if constexpr (m < MR)`)
// and the function is noinline: inlined into tile(), GCC 12 spilled them to the stack around
// the epilogue, turning the kernel into a load/store loop; on its own the loop keeps all of
// them in registers (the call happens once per weight group). One pointer serves all
// tokens' broadcasts (constant offsets 4m), leaving the general registers free.
#define LRC_FOR12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define LRC_DECL(m) [[maybe_unused]] __m512i a##m##0 = z, a##m##1 = z, b##m##0 = z, b##m##1 = z;
#define LRC_STEP(m)                                                     \
  if constexpr (m < MR) {                                               \
    const __m512i x4 = _mm512_set1_epi32(load4(xk + 4 * m));            \
    a##m##0 = _mm512_dpbusd_epi32(a##m##0, w0, x4);                     \
    a##m##1 = _mm512_dpbusd_epi32(a##m##1, w1, x4);                     \
  }
#define LRC_STEP2(m)                                                    \
  if constexpr (m < MR) {                                               \
    const __m512i x4 = _mm512_set1_epi32(load4(xk + 4 * m));            \
    const __m512i y4 = _mm512_set1_epi32(load4(xk + xs + 4 * m));       \
    a##m##0 = _mm512_dpbusd_epi32(a##m##0, w00, x4);                    \
    a##m##1 = _mm512_dpbusd_epi32(a##m##1, w01, x4);                    \
    b##m##0 = _mm512_dpbusd_epi32(b##m##0, w10, y4);                    \
    b##m##1 = _mm512_dpbusd_epi32(b##m##1, w11, y4);                    \
  }
#define LRC_OUT(m)                                                      \
  if constexpr (m < MR) {                                               \
    out[2 * m] = _mm512_add_epi32(a##m##0, b##m##0);                    \
    out[2 * m + 1] = _mm512_srai_epi32(_mm512_add_epi32(a##m##1, b##m##1), 4); \
  }

template <int MR>
__attribute__((noinline)) void accumulate(const uint8_t* wp, const int8_t* x,
                                                      int64_t xs, int s0, int s1, __m512i* out) {
  const __m512i lo = _mm512_set1_epi8(0x0F), hi = _mm512_set1_epi8(char(0xF0)),
                z = _mm512_setzero_si512();
  LRC_FOR12(LRC_DECL)
  const uint8_t* b = wp + int64_t(s0) * 64;
  const int8_t* xk = x + int64_t(s0) * xs;
  int s = s0;
  if constexpr (MR <= 4) {
    // Decode-sized blocks: two independent accumulator sets over even / odd steps, so the
    // vpdpbusd latency does not serialize a memory-bound stream.
    for (; s + 1 < s1; s += 2, b += 128, xk += 2 * xs) {
      const __m512i v0 = _mm512_load_si512(b), v1 = _mm512_load_si512(b + 64);
      const __m512i w00 = _mm512_and_si512(v0, lo);
      const __m512i w01 = _mm512_and_si512(v0, hi);
      const __m512i w10 = _mm512_and_si512(v1, lo);
      const __m512i w11 = _mm512_and_si512(v1, hi);
      LRC_FOR12(LRC_STEP2)
    }
  }
  for (; s < s1; ++s, b += 64, xk += xs) {
    const __m512i v = _mm512_load_si512(b);
    const __m512i w0 = _mm512_and_si512(v, lo);
    const __m512i w1 = _mm512_and_si512(v, hi);
    LRC_FOR12(LRC_STEP)
  }
  LRC_FOR12(LRC_OUT)
}
#undef LRC_FOR12
#undef LRC_DECL
#undef LRC_STEP
#undef LRC_STEP2
#undef LRC_OUT

template <int MR>
void tile(const TileJob& j) {
  const W4A4Cpu& w = *j.w;
  const int steps_per_group = w.n_groups == 1 ? w.ksteps : w.groupsize / kStepK;
  const uint8_t* wp = w.codes.data() + int64_t(j.p) * w.ksteps * 64;
  const int rows = w.d_out - j.p * kPanelRows;
  const __mmask16 mask0 = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1u);
  const __mmask16 mask1 = rows >= 32   ? __mmask16(0xFFFF)
                          : rows <= 16 ? __mmask16(0)
                                       : __mmask16((1u << (rows - 16)) - 1u);
  alignas(64) float ftile[MR * kPanelRows];
  if (w.n_groups > 1) std::memset(ftile, 0, sizeof ftile);
  __m512i acc[MR][2];
  for (int g = 0; g < w.n_groups; ++g) {
    const int s0 = g * steps_per_group;
    const int s1 = s0 + steps_per_group < w.ksteps ? s0 + steps_per_group : w.ksteps;
    accumulate<MR>(wp, j.x, j.xs, s0, s1, &acc[0][0]);
    const int64_t off = int64_t(g) * w.rows_padded() + int64_t(j.p) * kPanelRows;
    const __m512i z0 = _mm512_loadu_si512(w.zeros.data() + off);
    const __m512i z1 = _mm512_loadu_si512(w.zeros.data() + off + 16);
    const __m512 sw0 = _mm512_loadu_ps(w.scales.data() + off);
    const __m512 sw1 = _mm512_loadu_ps(w.scales.data() + off + 16);
#pragma GCC unroll 12
    for (int m = 0; m < MR; ++m) {
      const __m512i cs = _mm512_set1_epi32(j.csum[m * w.n_groups + g]);
      const __m512i c0 = _mm512_sub_epi32(acc[m][0], _mm512_mullo_epi32(z0, cs));
      const __m512i c1 = _mm512_sub_epi32(acc[m][1], _mm512_mullo_epi32(z1, cs));
      if (j.iout) {
        int32_t* o = j.iout + (int64_t(g) * MR + m) * kPanelRows;
        _mm512_storeu_si512(o, c0);
        _mm512_storeu_si512(o + 16, c1);
      } else if (w.n_groups == 1) {
        const __m512 s = _mm512_set1_ps(j.sx[m]);
        float* yo = j.y + m * j.ys + j.p * kPanelRows;
        _mm512_mask_storeu_ps(yo, mask0,
                              _mm512_mul_ps(_mm512_mul_ps(to_float(c0), sw0), s));
        _mm512_mask_storeu_ps(yo + 16, mask1,
                              _mm512_mul_ps(_mm512_mul_ps(to_float(c1), sw1), s));
      } else {
        float* f = ftile + m * kPanelRows;
        _mm512_store_ps(f, _mm512_fmadd_ps(to_float(c0), sw0, _mm512_load_ps(f)));
        _mm512_store_ps(f + 16,
                        _mm512_fmadd_ps(to_float(c1), sw1, _mm512_load_ps(f + 16)));
      }
    }
  }
  if (!j.iout && w.n_groups > 1) {
    for (int m = 0; m < MR; ++m) {
      const __m512 s = _mm512_set1_ps(j.sx[m]);
      float* yo = j.y + m * j.ys + j.p * kPanelRows;
      _mm512_mask_storeu_ps(yo, mask0, _mm512_mul_ps(_mm512_load_ps(ftile + m * kPanelRows), s));
      _mm512_mask_storeu_ps(yo + 16, mask1,
                            _mm512_mul_ps(_mm512_load_ps(ftile + m * kPanelRows + 16), s));
    }
  }
}

}  // namespace

void tile_avx512(const TileJob& j) {
  switch (j.mr) {
    case 1: return tile<1>(j);
    case 2: return tile<2>(j);
    case 3: return tile<3>(j);
    case 4: return tile<4>(j);
    case 5: return tile<5>(j);
    case 6: return tile<6>(j);
    case 7: return tile<7>(j);
    case 8: return tile<8>(j);
    case 9: return tile<9>(j);
    case 10: return tile<10>(j);
    case 11: return tile<11>(j);
    default: return tile<12>(j);
  }
}

// Same arithmetic as quantize_activation_row, 16 lanes at a time: the max of |x| is exact in
// any order; scale = (clip * amax) / maxq is the same scalar expression; x / scale is an
// IEEE division either way and roundscale(NEAREST) is nearbyint in the default rounding
// mode, so the codes are bit-identical (the test checks it).
void quantize_row_avx512(const float* x, int d, int kp, const ActQuantSpec& act, int gsize,
                         int8_t* codes, float* scale_out, int32_t* csum) {
  __m512 vmax = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= d; i += 16) vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), vmax);
  if (i < d) {
    const __mmask16 m = __mmask16((1u << (d - i)) - 1u);
    vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + i)), vmax);
  }
  const float amax = _mm512_reduce_max_ps(vmax);
  const float maxq = static_cast<float>((1 << (act.bits - 1)) - 1);
  float scale = act.clip * amax / maxq;
  if (!(scale > 0.f)) scale = 1.f;
  *scale_out = scale;
  const __m512 vs = _mm512_set1_ps(scale), lo = _mm512_set1_ps(-maxq - 1.f),
               hi = _mm512_set1_ps(maxq);
  __m512i vsum = _mm512_setzero_si512();
  for (i = 0; i < d; i += 16) {
    const __mmask16 m = d - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (d - i)) - 1u);
    __m512 q = _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
    q = _mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
    const __m512i c = _mm512_maskz_mov_epi32(m, _mm512_cvtps_epi32(q));
    vsum = _mm512_add_epi32(vsum, c);
    _mm512_mask_cvtepi32_storeu_epi8(codes + i, m, c);
  }
  std::memset(codes + d, 0, size_t(kp - d));
  if (gsize <= 0 || gsize >= d) {
    csum[0] = _mm512_reduce_add_epi32(vsum);
    return;
  }
  for (int g = 0; g < d / gsize; ++g) {
    int32_t s = 0;
    for (int t = g * gsize; t < (g + 1) * gsize; ++t) s += codes[t];
    csum[g] = s;
  }
}

}  // namespace lrc::kernels::cpu_int::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
