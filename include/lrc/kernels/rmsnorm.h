// RMSNorm (Zhang & Sennrich 2019), as Llama uses it:
//   out = x / sqrt(mean(x²) + eps) ⊙ weight       (per row; the mean is taken in float64)
#pragma once

#include <cstdint>

namespace lrc {

// x, out [n x d] row-major (out may alias x); weight [d].
void rmsnorm(const float* x, const float* weight, int64_t n, int d, float eps, float* out);

}  // namespace lrc
