#include "lrc/quant/weight_quant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "lrc/core/error.h"
#include "lrc/format/code_packing.h"
#include "quant/finite_check.h"
#include "core/parallel_threshold.h"

namespace lrc {

// The MSE clip grid: p = 1.00, 0.99, ..., 0.70 (31 candidates, p = 1 first).
static constexpr int kClipSteps = 31;
static constexpr double kClipStep = 0.01;

void check_weight_quant_spec(const WeightQuantSpec& spec, int d_in, const char* where) {
  if (spec.bits < 2 || spec.bits > 8)
    fail(where, "weight bits must be in 2..8, got " + std::to_string(spec.bits));
  if (spec.groupsize < 0)
    fail(where, "weight groupsize must be >= 0, got " + std::to_string(spec.groupsize));
  if (spec.groupsize > 0 && d_in % spec.groupsize != 0)
    fail(where, "weight groupsize " + std::to_string(spec.groupsize) +
                    " does not divide d_in = " + std::to_string(d_in));
}

int weight_groups_per_row(const WeightQuantSpec& spec, int d_in) {
  return spec.groupsize > 0 ? d_in / spec.groupsize : 1;
}

int quantize_weight_code(double w, QuantParams p, int maxq) {
  const double q = std::nearbyint(w / static_cast<double>(p.scale)) + static_cast<double>(p.zero);
  return static_cast<int>(std::clamp(q, 0.0, static_cast<double>(maxq)));
}

namespace {

// The grid for clip ratio p given the group's range [lo, hi] (lo <= 0 <= hi).
QuantParams grid_for_clip(double lo, double hi, double p, const WeightQuantSpec& spec) {
  const int maxq = weight_maxq(spec.bits);
  QuantParams g;
  if (spec.symmetric) {
    // Signed levels -2^(b-1) .. 2^(b-1)-1 around zero = 2^(b-1); max|w| maps to 2^(b-1)-1.
    const double amax = p * std::max(-lo, hi);
    const double half = static_cast<double>((1 << (spec.bits - 1)) - 1);
    g.zero = static_cast<float>(1 << (spec.bits - 1));
    g.scale = static_cast<float>(amax / half);
  } else {
    // [p*lo, p*hi] onto 0..maxq, zero point rounded to an integer code.
    g.scale = static_cast<float>(p * (hi - lo) / maxq);
    g.zero = 0.f;
    if (g.scale > 0.f && std::isfinite(g.scale))
      g.zero = static_cast<float>(std::clamp(std::nearbyint(-p * lo / static_cast<double>(g.scale)),
                                             0.0, static_cast<double>(maxq)));
  }
  // An all-zero group (or one so small that the scale underflows) decodes to exact zeros.
  if (!(g.scale > 0.f) || !std::isfinite(g.scale)) g.scale = 1.f;
  return g;
}

template <class T>
QuantParams choose_params(const T* w, int n, const WeightQuantSpec& spec) {
  double lo = 0.0, hi = 0.0;  // the range always includes 0 (GPTQ/QuaRot)
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, static_cast<double>(w[i]));
    hi = std::max(hi, static_cast<double>(w[i]));
  }
  if (!spec.mse_clip) return grid_for_clip(lo, hi, 1.0, spec);
  const double maxq = weight_maxq(spec.bits);
  // Every candidate's squared error in one pass over w, each summed in w's order exactly as one
  // candidate at a time would (quantize_weight_code, dequantize_weight_code: q is integral in
  // [0, maxq], so scale·(q − zero) is the decoded code), so the loop over the candidates
  // vectorizes. The first candidate with the smallest error wins; a candidate-at-a-time search
  // may stop a sum once it passes the best, which changes no choice.
  QuantParams g[kClipSteps];
  double scale[kClipSteps], zero[kClipSteps], err[kClipSteps];
  for (int s = 0; s < kClipSteps; ++s) {
    g[s] = grid_for_clip(lo, hi, 1.0 - kClipStep * s, spec);
    scale[s] = static_cast<double>(g[s].scale);
    zero[s] = static_cast<double>(g[s].zero);
    err[s] = 0.0;
  }
  for (int i = 0; i < n; ++i) {
    const double x = static_cast<double>(w[i]);
    for (int s = 0; s < kClipSteps; ++s) {
      const double q = std::clamp(std::nearbyint(x / scale[s]) + zero[s], 0.0, maxq);
      const double e = x - scale[s] * (q - zero[s]);
      err[s] += e * e;
    }
  }
  int best = 0;
  double best_err = std::numeric_limits<double>::infinity();
  for (int s = 0; s < kClipSteps; ++s)
    if (err[s] < best_err) {
      best_err = err[s];
      best = s;
    }
  return g[best];
}

}  // namespace

QuantParams choose_quant_params(const float* w, int n, const WeightQuantSpec& spec) {
  return choose_params(w, n, spec);
}
QuantParams choose_quant_params(const double* w, int n, const WeightQuantSpec& spec) {
  return choose_params(w, n, spec);
}

// RTN weight quantization (paper §2, the constraint set C(b)).
PackedWeight quantize_rtn(const float* W, int d_out, int d_in, const WeightQuantSpec& spec) {
  const char* where = "quantize_rtn";
  if (d_out <= 0 || d_in <= 0)
    fail(where, "bad shape " + std::to_string(d_out) + " x " + std::to_string(d_in));
  check_weight_quant_spec(spec, d_in, where);
  quant_detail::require_finite(W, d_out, d_in, where, "W");
  const int ng = weight_groups_per_row(spec, d_in);
  const int gs = d_in / ng;
  const int maxq = weight_maxq(spec.bits);
  PackedWeight p;
  p.d_out = d_out;
  p.d_in = d_in;
  p.bits = spec.bits;
  p.groupsize = spec.groupsize;
  p.symmetric = spec.symmetric;
  p.scales.resize(static_cast<size_t>(d_out) * ng);
  p.zeros.resize(static_cast<size_t>(d_out) * ng);
  std::vector<uint8_t> codes(static_cast<size_t>(d_out) * d_in);
#pragma omp parallel for schedule(static) if (int64_t{d_out} * d_in >= \
                                              quant_detail::kMinParallelWork)
  for (int r = 0; r < d_out; ++r) {
    for (int g = 0; g < ng; ++g) {
      const float* w = W + static_cast<size_t>(r) * d_in + static_cast<size_t>(g) * gs;
      const QuantParams q = choose_quant_params(w, gs, spec);
      p.scales[static_cast<size_t>(r) * ng + g] = q.scale;
      p.zeros[static_cast<size_t>(r) * ng + g] = q.zero;
      uint8_t* c = codes.data() + static_cast<size_t>(r) * d_in + static_cast<size_t>(g) * gs;
      for (int j = 0; j < gs; ++j) c[j] = static_cast<uint8_t>(quantize_weight_code(w[j], q, maxq));
    }
  }
  p.codes = pack_codes(codes.data(), static_cast<int64_t>(d_out) * d_in, spec.bits);
  return p;
}

}  // namespace lrc
