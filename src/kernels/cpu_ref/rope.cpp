#include "lrc/kernels/rope.h"

#include <cmath>

#include "lrc/core/error.h"

namespace lrc {

RopeTable::RopeTable(int head_dim, float theta_, int pos0_, int n_pos_)
    : pos0(pos0_), n_pos(n_pos_), half(head_dim / 2), theta(theta_) {
  cos.resize(static_cast<size_t>(n_pos) * half);
  sin.resize(cos.size());
  for (int p = 0; p < n_pos; ++p)
    for (int i = 0; i < half; ++i) {
      // Angles in float64: positions up to 10^5 keep full float32 accuracy in cos/sin.
      const double freq = std::pow(static_cast<double>(theta_), -2.0 * i / head_dim);
      const double a = static_cast<double>(pos0 + p) * freq;
      cos[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(a));
      sin[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(a));
    }
}

void apply_rope(float* x, int64_t n_rows, int n_heads, int head_dim, RopeStyle style,
                const RopeTable& t, int period, int first) {
  if (head_dim / 2 != t.half || first < 0 || first + period > t.n_pos)
    fail("apply_rope", "table does not cover head_dim " + std::to_string(head_dim) + " and " +
                           std::to_string(period) + " positions from " + std::to_string(first));
  const int half = t.half;
  // For pair i: HalfSplit pairs (i, i+half) — stride 1 between pairs, offset `half` within;
  // Interleaved pairs (2i, 2i+1) — stride 2 between pairs, offset 1 within.
  const int step = style == RopeStyle::HalfSplit ? 1 : 2;
  const int off = style == RopeStyle::HalfSplit ? half : 1;
  for (int64_t r = 0; r < n_rows; ++r) {
    const int p = first + static_cast<int>(r % period);
    const float* c = t.cos.data() + static_cast<size_t>(p) * half;
    const float* s = t.sin.data() + static_cast<size_t>(p) * half;
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + r * n_heads * head_dim + static_cast<int64_t>(h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const float a = v[i * step], b = v[i * step + off];
        v[i * step] = a * c[i] - b * s[i];
        v[i * step + off] = a * s[i] + b * c[i];
      }
    }
  }
}

}  // namespace lrc
