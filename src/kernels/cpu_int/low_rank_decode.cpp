// One token's low-rank branch (kernels/low_rank_branch.h): two streaming passes, V row by row
// into t[rank], then Uᵀ row by row into an accumulator per output, both vectorized along the
// contiguous dimension (no horizontal sums), fp16 or fp32 storage read the same way.
// GCC 12 reports its own _mm512_undefined_* inside the conversion intrinsics as maybe
// uninitialized once inlined; the value is never read (as in w4a4_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "lrc/core/half.h"
#include "lrc/kernels/cpu_int/w4a4.h"
#include "lrc/kernels/low_rank_branch.h"

namespace lrc {

LowRankDecode make_low_rank_decode(const float* u, const float* v, int rank, int d_in,
                                   int d_out) {
  LowRankDecode d;
  d.d_in = d_in;
  d.d_out = d_out;
  d.rank = rank;
  const size_t nv = static_cast<size_t>(d_in) * rank, nu = static_cast<size_t>(d_out) * rank;
  d.half = true;
  for (size_t i = 0; i < nv && d.half; ++i) d.half = f16_to_f32(f32_to_f16(v[i])) == v[i];
  for (size_t i = 0; i < nu && d.half; ++i) d.half = f16_to_f32(f32_to_f16(u[i])) == u[i];
  if (d.half) {
    d.v16.resize(nv);
    d.ut16.resize(nu);
    for (size_t i = 0; i < nv; ++i) d.v16[i] = f32_to_f16(v[i]);
    for (int r = 0; r < d_out; ++r)
      for (int k = 0; k < rank; ++k)
        d.ut16[static_cast<size_t>(k) * d_out + r] =
            f32_to_f16(u[static_cast<size_t>(r) * rank + k]);
  } else {
    d.v32.assign(v, v + nv);
    d.ut32.resize(nu);
    for (int r = 0; r < d_out; ++r)
      for (int k = 0; k < rank; ++k)
        d.ut32[static_cast<size_t>(k) * d_out + r] = u[static_cast<size_t>(r) * rank + k];
  }
  return d;
}

namespace {

// acc[0..len) = fma(s, row[0..len), acc) — the one update both passes are made of.
template <class T>
void axpy_portable(float s, const T* row, int len, float* acc) {
  for (int i = 0; i < len; ++i) {
    float w;
    if constexpr (sizeof(T) == 2)
      w = f16_to_f32(row[i]);
    else
      w = row[i];
    acc[i] = std::fma(s, w, acc[i]);
  }
}

// GCC's target pragma; clang (the fuzz build) ignores it and takes the attribute instead.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,f16c,fma")
#endif

template <class T>
inline __m512 load16(const T* p, __mmask16 m) {
  if constexpr (sizeof(T) == 2)
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  else
    return _mm512_maskz_loadu_ps(m, p);
}

template <class T>
void axpy_avx512(float s, const T* row, int len, float* acc) {
  const __m512 vs = _mm512_set1_ps(s);
  for (int i = 0; i < len; i += 16) {
    const __mmask16 m = len - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (len - i)) - 1u);
    const __m512 a = _mm512_maskz_loadu_ps(m, acc + i);
    _mm512_mask_storeu_ps(acc + i, m, _mm512_fmadd_ps(vs, load16(row + i, m), a));
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// y[d_out] += Uᵀ-layout ut [rank x d_out] times (v [d_in x rank]ᵀ x[d_in]), storage type T.
template <class T>
void run(const T* v, const T* ut, const LowRankDecode& lr, const float* x, float* y) {
  static const bool avx512 =
      kernels::cpu_int::detect_isa() == kernels::cpu_int::Isa::kAvx512Vnni;
  auto axpy = avx512 ? axpy_avx512<T> : axpy_portable<T>;
  thread_local std::vector<float> t, acc;
  t.assign(static_cast<size_t>(lr.rank), 0.f);
  for (int j = 0; j < lr.d_in; ++j)
    axpy(x[j], v + static_cast<size_t>(j) * lr.rank, lr.rank, t.data());
  acc.assign(static_cast<size_t>(lr.d_out), 0.f);
  for (int k = 0; k < lr.rank; ++k)
    axpy(t[static_cast<size_t>(k)], ut + static_cast<size_t>(k) * lr.d_out, lr.d_out, acc.data());
  for (int r = 0; r < lr.d_out; ++r) y[r] += acc[static_cast<size_t>(r)];
}

}  // namespace

void add_low_rank_decode(const LowRankDecode& lr, const float* x, float* y) {
  if (lr.rank <= 0) return;
  if (lr.half)
    run(lr.v16.data(), lr.ut16.data(), lr, x, y);
  else
    run(lr.v32.data(), lr.ut32.data(), lr, x, y);
}

}  // namespace lrc
