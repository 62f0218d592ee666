#include "lrc/kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <numbers>
#include <string>
#include <vector>

#include "lrc/core/error.h"

namespace lrc {

const char* rope_scaling_name(RopeScaling::Kind k) {
  switch (k) {
    case RopeScaling::Kind::None:
      return "none";
    case RopeScaling::Kind::Llama3:
      return "llama3";
    case RopeScaling::Kind::LongRope:
      return "longrope";
    case RopeScaling::Kind::FreqFactors:
      return "freq_factors";
  }
  return "?";
}

std::vector<double> rope_frequencies(int head_dim, double theta, const RopeScaling& s,
                                     int end_pos) {
  const int half = head_dim / 2;
  std::vector<double> f(half);
  for (int i = 0; i < half; ++i) f[i] = std::pow(theta, -2.0 * i / head_dim);
  if (s.kind == RopeScaling::Kind::Llama3) {
    const double lo = s.low_freq_factor, hi = s.high_freq_factor, orig = s.original;
    const double low_wavelen = orig / lo, high_wavelen = orig / hi;
    for (double& fi : f) {
      const double wavelen = 2.0 * std::numbers::pi / fi;
      if (wavelen > low_wavelen) {
        fi /= s.factor;
      } else if (wavelen >= high_wavelen) {  // HF: neither < high nor > low
        const double sm = (orig / wavelen - lo) / (hi - lo);
        fi = (1.0 - sm) * fi / s.factor + sm * fi;
      }
    }
  } else if (s.kind == RopeScaling::Kind::LongRope) {
    // HF switches to the long factors once a sequence is longer than the original context.
    const std::vector<float>& ext = end_pos > s.original ? s.long_factor : s.short_factor;
    if (static_cast<int>(ext.size()) != half)
      fail("rope", "longrope factors: " + std::to_string(ext.size()) + " values for " +
                       std::to_string(half) + " frequencies");
    for (int i = 0; i < half; ++i) f[i] /= ext[i];
  } else if (s.kind == RopeScaling::Kind::FreqFactors) {
    if (static_cast<int>(s.short_factor.size()) != half)
      fail("rope", "frequency factors: " + std::to_string(s.short_factor.size()) + " values for " +
                       std::to_string(half) + " frequencies");
    for (int i = 0; i < half; ++i) f[i] /= s.short_factor[i];
  }
  return f;
}

RopeTable::RopeTable(int head_dim, float theta_, int pos0_, int n_pos_, const RopeScaling* scaling)
    : pos0(pos0_), n_pos(n_pos_), half(head_dim / 2), theta(theta_) {
  cos.resize(static_cast<size_t>(n_pos) * half);
  sin.resize(cos.size());
  if (scaling && scaling->enabled()) {
    scaled = true;
    const std::vector<double> f = rope_frequencies(head_dim, theta_, *scaling, pos0 + n_pos);
    const double mscale = scaling->kind == RopeScaling::Kind::LongRope ? scaling->attention_factor
                                                                       : 1.0;
    for (int p = 0; p < n_pos; ++p)
      for (int i = 0; i < half; ++i) {
        const double a = static_cast<double>(pos0 + p) * f[i];
        cos[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(a) * mscale);
        sin[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(a) * mscale);
      }
    return;
  }
  std::vector<double> freq(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) freq[i] = std::pow(static_cast<double>(theta_), -2.0 * i / head_dim);
  for (int p = 0; p < n_pos; ++p)
    for (int i = 0; i < half; ++i) {
      // Angles in float64: positions up to 10^5 keep full float32 accuracy in cos/sin.
      const double a = static_cast<double>(pos0 + p) * freq[i];
      cos[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(a));
      sin[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(a));
    }
}

namespace {

bool same_scaling(const RopeScaling* a, const RopeScaling& b) {
  if (!a || !a->enabled()) return !b.enabled();
  return a->kind == b.kind && a->factor == b.factor && a->low_freq_factor == b.low_freq_factor &&
         a->high_freq_factor == b.high_freq_factor && a->original == b.original &&
         a->short_factor == b.short_factor && a->long_factor == b.long_factor &&
         a->attention_factor == b.attention_factor;
}

}  // namespace

std::shared_ptr<const RopeTable> shared_rope_table(int head_dim, float theta, int pos0, int n_pos,
                                                   const RopeScaling* scaling) {
  struct Entry {
    int head_dim, pos0, n_pos;
    float theta;
    RopeScaling scaling;
    std::shared_ptr<const RopeTable> table;
  };
  constexpr size_t kEntries = 8;
  constexpr size_t kMaxBytes = size_t{16} << 20;  // larger tables are made for the call alone
  static std::mutex mu;
  static std::vector<Entry> cache;  // oldest first
  const size_t bytes = static_cast<size_t>(std::max(n_pos, 0)) * (head_dim / 2) * 2 * sizeof(float);
  if (bytes > kMaxBytes) return std::make_shared<const RopeTable>(head_dim, theta, pos0, n_pos, scaling);
  {
    const std::lock_guard<std::mutex> lock(mu);
    for (const Entry& e : cache)
      if (e.head_dim == head_dim && e.pos0 == pos0 && e.n_pos == n_pos && e.theta == theta &&
          same_scaling(scaling, e.scaling))
        return e.table;
  }
  auto table = std::make_shared<const RopeTable>(head_dim, theta, pos0, n_pos, scaling);
  const std::lock_guard<std::mutex> lock(mu);
  if (cache.size() == kEntries) cache.erase(cache.begin());
  cache.push_back({head_dim, pos0, n_pos, theta, scaling ? *scaling : RopeScaling{}, table});
  return table;
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
