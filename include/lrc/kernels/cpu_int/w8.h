// Weight-only 8-bit product for few tokens (decoding): the LM head stored as 8-bit codes
// (`--lm-head q8`, docs/results.md) is a quarter of its fp32 size, and a decode step reads
// all of it. Both CPU backends run an 8-bit weight-only linear of fewer than kW8MaxTokens
// tokens through this one function (cpu_ref calls it; cpu_int runs such a linear through
// cpu_ref), so `--kernels real` and `sim` give the same floats.
#pragma once

#include <cstdint>

namespace lrc::kernels::cpu_int {

// Up to this many tokens the weight-only GEMV streams the codes once per token block; more
// take the dequantized sgemm (the codes expanded to fp32 once per call).
inline constexpr int kW8MaxTokens = 16;

// y[n x d_out] = s[r] · Σ_j (c[r][j] − z[r]) · x[i][j] for codes c [d_out x d_in] (one byte
// each, row-major), per-row scale s[d_out] and integer-valued zero point z[d_out], x [n x d_in].
// The sum runs in fp32 in a fixed order (16 lanes, four accumulators over consecutive blocks
// of 16 inputs, then reduced), the same for any thread count; OpenMP over blocks of rows for
// large matrices.
void w8_linear(const uint8_t* codes, const float* scales, const float* zeros, int d_out,
               int d_in, const float* x, int64_t n, float* y);

}  // namespace lrc::kernels::cpu_int
