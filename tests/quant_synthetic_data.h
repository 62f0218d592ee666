// Synthetic inputs for the quantization-core tests: weights and LLM-like activations
// (correlated, heavy-tailed, with a few outlier channels), deterministic in the seed.
#pragma once

#include <cblas.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace lrc::test {

inline std::vector<float> gaussian(size_t n, uint64_t seed, float sd = 1.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// W ~ N(0, 1/d_in), [d_out x d_in].
inline std::vector<float> random_weight(int d_out, int d_in, uint64_t seed) {
  return gaussian(static_cast<size_t>(d_out) * d_in, seed,
                  1.f / std::sqrt(static_cast<float>(d_in)));
}

// X = Z Aᵀ (one token a row, [n x d]): Z Student-t with `dof` degrees of freedom, A a random
// mixing matrix with a decaying spectrum (so features are correlated); then `outliers`
// channels are scaled by `outlier_gain` (the massive-activation channels of LLMs).
inline std::vector<float> heavy_tailed_activations(int64_t n, int d, uint64_t seed,
                                                   int outliers = 3, float outlier_gain = 12.f,
                                                   double dof = 4.0) {
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> t(dof);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> z(static_cast<size_t>(n) * d), a(static_cast<size_t>(d) * d);
  for (auto& v : z) v = t(rng);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j)
      a[static_cast<size_t>(i) * d + j] =
          nd(rng) / std::sqrt(static_cast<float>(d)) * (1.f / (1.f + 0.05f * j)) +
          (i == j ? 0.3f : 0.f);
  std::vector<float> x(static_cast<size_t>(n) * d);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), d, d, 1.f, z.data(), d,
              a.data(), d, 0.f, x.data(), d);
  for (int o = 0; o < outliers && o < d; ++o) {
    const int ch = (o * 7919 + 13) % d;
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i) * d + ch] *= outlier_gain;
  }
  return x;
}

}  // namespace lrc::test
