#include "lrc/format/act_quant.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "core/parallel_threshold.h"

namespace lrc {

void quantize_activation_row(const float* x, int d, const ActQuantSpec& spec, int8_t* codes,
                             float* scales) {
  const int g = spec.groupsize > 0 ? spec.groupsize : d;
  if (d % g != 0)
    fail("activation quantizer", "feature size " + std::to_string(d) +
                                     " is not a multiple of group size " + std::to_string(g));
  const float maxq = static_cast<float>((1 << (spec.bits - 1)) - 1);
  for (int g0 = 0, gi = 0; g0 < d; g0 += g, ++gi) {
    float amax = 0.f;
    for (int j = g0; j < g0 + g; ++j) amax = std::max(amax, std::fabs(x[j]));
    // scale = c * max|x| / maxq; an all-zero group gets scale 1 (codes are 0 anyway).
    float scale = spec.clip * amax / maxq;
    if (!(scale > 0.f)) scale = 1.f;
    scales[gi] = scale;
    for (int j = g0; j < g0 + g; ++j) {
      // nearbyint rounds half to even, like torch.round in QuaRot's simulated quantizer.
      const float q = std::nearbyint(x[j] / scale);
      codes[j] = static_cast<int8_t>(std::clamp(q, -maxq - 1.f, maxq));
    }
  }
}

void quantize_activations(const float* x, int64_t n, int d, const ActQuantSpec& spec, float* y) {
  if (!spec.enabled()) {
    if (y != x) std::copy(x, x + n * d, y);
    return;
  }
  if (spec.bits < 2 || spec.bits > 8)
    fail("activation quantizer",
         "bits must be in 2..8 (or 16 for none), got " + std::to_string(spec.bits));
  const int g = spec.groupsize > 0 ? spec.groupsize : d;
  if (d % g != 0)
    fail("activation quantizer", "feature size " + std::to_string(d) +
                                     " is not a multiple of group size " + std::to_string(g));
  const int ng = d / g;
#pragma omp parallel if (n * d >= quant_detail::kMinParallelWork)
  {
    std::vector<int8_t> codes(d);
    std::vector<float> scales(ng > 0 ? ng : 1);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      quantize_activation_row(x + i * d, d, spec, codes.data(), scales.data());
      float* yi = y + i * d;
      for (int j = 0; j < d; ++j) yi[j] = scales[j / g] * static_cast<float>(codes[j]);
    }
  }
}

}  // namespace lrc
