// The inner loops of the structured rotations, for float (online transforms) and double (weight
// fusion). Plain loops over contiguous memory that the compiler vectorises; no model code here.
#pragma once

#include <cstdint>
#include <cstring>

namespace lrc::detail {

// In-place unnormalised fast Walsh–Hadamard transform of x[K], K a power of two:
// x ← H_K·x with Sylvester's H_K = H_2 ⊗ ... ⊗ H_2, K·log2(K) additions.
// Two butterfly levels per pass (radix 4) halve the passes over memory.
template <typename T>
inline void fwht(T* __restrict x, int K) {
  int h = 1;
  for (; 4 * h <= K; h *= 4) {
    for (int i = 0; i < K; i += 4 * h) {
      T* __restrict a = x + i;
      T* __restrict b = a + h;
      T* __restrict c = b + h;
      T* __restrict d = c + h;
#pragma omp simd
      for (int j = 0; j < h; ++j) {
        const T s0 = a[j] + b[j], d0 = a[j] - b[j];  // level h on (a, b) and (c, d)
        const T s1 = c[j] + d[j], d1 = c[j] - d[j];
        a[j] = s0 + s1;  // level 2h on (a, c) and (b, d)
        b[j] = d0 + d1;
        c[j] = s0 - s1;
        d[j] = d0 - d1;
      }
    }
  }
  if (2 * h <= K) {  // one radix-2 level left when log2(K) is odd
    for (int i = 0; i < K; i += 2 * h) {
      T* __restrict a = x + i;
      T* __restrict b = a + h;
#pragma omp simd
      for (int j = 0; j < h; ++j) {
        const T s = a[j] + b[j], d = a[j] - b[j];
        a[j] = s;
        b[j] = d;
      }
    }
  }
}

// A strip of one cache line (16 floats / 8 doubles) as a GCC vector: one AVX-512 register or
// two AVX2 ones. Loads and stores go through memcpy, so no alignment is assumed.
template <typename T>
struct Strip {
  typedef T V __attribute__((vector_size(64)));
  static constexpr int kLanes = 64 / sizeof(T);
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
};

// y[m x K] = A[m x m] · x[m x K]: mixes the m rows of x (a row of length m·K seen as an m x K
// matrix, A acting along its first axis). A is the Hadamard base H_m or a rotation across heads.
// Register tiling: one strip of columns for 4 output rows at a time, so each load of x feeds
// 4 FMAs and the 4 accumulators stay in registers over the whole sum on b.
template <typename T, typename TA>
inline void mix_leading_axis(const TA* __restrict A, int m, const T* __restrict x, int K,
                             T* __restrict y) {
  using S = Strip<T>;
  using V = typename S::V;
  int k0 = 0;
  for (; k0 + S::kLanes <= K; k0 += S::kLanes) {
    int a = 0;
    for (; a + 4 <= m; a += 4) {
      const TA* __restrict A0 = A + static_cast<int64_t>(a) * m;
      V acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
      for (int b = 0; b < m; ++b) {
        const V v = S::load(x + static_cast<int64_t>(b) * K + k0);
        acc0 += static_cast<T>(A0[b]) * v;
        acc1 += static_cast<T>(A0[m + b]) * v;
        acc2 += static_cast<T>(A0[2 * m + b]) * v;
        acc3 += static_cast<T>(A0[3 * m + b]) * v;
      }
      T* ya = y + static_cast<int64_t>(a) * K + k0;
      S::store(ya, acc0);
      S::store(ya + K, acc1);
      S::store(ya + 2 * K, acc2);
      S::store(ya + 3 * K, acc3);
    }
    for (; a < m; ++a) {  // the last m % 4 rows
      V acc = {};
      for (int b = 0; b < m; ++b)
        acc += static_cast<T>(A[static_cast<int64_t>(a) * m + b]) *
               S::load(x + static_cast<int64_t>(b) * K + k0);
      S::store(y + static_cast<int64_t>(a) * K + k0, acc);
    }
  }
  if (k0 == K) return;
  for (int a = 0; a < m; ++a) {  // the remaining K - k0 columns (fewer than a strip)
    T* __restrict ya = y + static_cast<int64_t>(a) * K;
    for (int k = k0; k < K; ++k) ya[k] = T(0);
    for (int b = 0; b < m; ++b) {
      const T c = static_cast<T>(A[static_cast<int64_t>(a) * m + b]);
      const T* __restrict xb = x + static_cast<int64_t>(b) * K;
      for (int k = k0; k < K; ++k) ya[k] += c * xb[k];
    }
  }
}

// The Hadamard rotation of one row x[m·K] in place: x ← (H_m ⊗ H_K)·diag(scaled_signs)·x,
// scaled_signs = s/√n. tmp has room for m·K values.
template <typename T, typename TH>
inline void hadamard_rotate_row(T* __restrict x, const T* __restrict scaled_signs,
                                const TH* __restrict h_m, int m, int K, T* __restrict tmp) {
  const int n = m * K;
#pragma omp simd
  for (int i = 0; i < n; ++i) x[i] *= scaled_signs[i];
  for (int a = 0; a < m; ++a) fwht(x + static_cast<int64_t>(a) * K, K);  // H_K along each row
  if (m == 1) return;
  mix_leading_axis(h_m, m, x, K, tmp);  // H_m along the columns
  for (int i = 0; i < n; ++i) x[i] = tmp[i];
}

}  // namespace lrc::detail
