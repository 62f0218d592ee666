#include "lrc/kernels/kv_quant.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "lrc/core/error.h"

namespace lrc {

void kv_quantize(float* x, int64_t n_rows, int head_dim, const KvQuantSpec& spec) {
  if (!spec.enabled()) return;
  if (spec.bits < 2 || spec.bits > 8)
    fail("kv quantizer", "bits must be in 2..8 (or 16 for none), got " + std::to_string(spec.bits));
  const float maxq = static_cast<float>((1 << spec.bits) - 1);
  for (int64_t r = 0; r < n_rows; ++r) {
    float* v = x + r * head_dim;
    float lo = 0.f, hi = 0.f;
    for (int j = 0; j < head_dim; ++j) {
      lo = std::min(lo, v[j]);
      hi = std::max(hi, v[j]);
    }
    lo *= spec.clip;
    hi *= spec.clip;
    if (lo == 0.f && hi == 0.f) continue;  // all zeros: exactly representable
    const float scale = (hi - lo) / maxq;
    const float zero = std::nearbyint(-lo / scale);
    for (int j = 0; j < head_dim; ++j) {
      const float q = std::clamp(std::nearbyint(v[j] / scale) + zero, 0.f, maxq);
      v[j] = scale * (q - zero);
    }
  }
}

}  // namespace lrc
