// KV-cache quantization after RoPE (QuaRot): each head vector of each token, k or v, is
// quantized asymmetrically with its own scale and zero point and immediately dequantized
// (simulated quantization). With maxq = 2^bits − 1 and c the clip ratio:
//   lo = c · min(min(x), 0),  hi = c · max(max(x), 0)        (the range always holds 0)
//   scale = (hi − lo) / maxq,  zero = round(−lo / scale)
//   x̂ = scale · (clamp(round(x / scale) + zero, 0, maxq) − zero)
// so |x − x̂| ≤ scale / 2 for every x in [lo, hi].
#pragma once

#include <cstdint>

#include "lrc/format/act_quant.h"

namespace lrc {

// In place on x [n_rows x head_dim] (one head vector a row). No-op when spec is off.
void kv_quantize(float* x, int64_t n_rows, int head_dim, const KvQuantSpec& spec);

}  // namespace lrc
