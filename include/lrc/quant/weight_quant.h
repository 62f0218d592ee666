// Weight quantizer (paper §2, "Weight Quantization"): round-to-nearest on a uniform grid,
// one (scale, zero) per output row and group of `groupsize` input features.
//
//   code = clamp(round(w / scale) + zero, 0, 2^b - 1),    ŵ = scale * (code - zero)
//
// Symmetric (QuaRot's convention): scale = p * max|w| / (2^(b-1) - 1), zero = 2^(b-1), so the
// signed value code - zero lies in [-2^(b-1), 2^(b-1) - 1].
// Asymmetric (GPTQ's convention): the range [min(w,0), max(w,0)] shrunk by p is mapped onto
// 0..2^b-1: scale = p * (max - min) / (2^b - 1), zero = round(-p * min / scale).
// p is the clip ratio: 1 without MSE clipping; with mse_clip the grid p = 1.00, 0.99, ..., 0.70
// is searched and the p with the smallest squared error sum_j (w_j - ŵ_j)^2 wins (p = 1 is a
// candidate, so clipping never increases the error). The packed form is PackedWeight
// (include/lrc/format/linear.h), codes laid out by code_packing.h.
#pragma once

#include <cstdint>

#include "lrc/format/packed_weight.h"

namespace lrc {

struct WeightQuantSpec {
  int bits = 4;       // 2..8
  int groupsize = 0;  // 0 = one (scale, zero) per row; otherwise must divide d_in
  bool symmetric = true;
  bool mse_clip = true;  // search the clip ratio p in [0.70, 1.00] per row-group
};

// Throws lrc::Error (naming `where`) unless bits is in 2..8 and groupsize is 0 or a positive
// divisor of d_in.
void check_weight_quant_spec(const WeightQuantSpec& spec, int d_in, const char* where);

// Number of groups per row: d_in / groupsize, or 1 for per-row quantization.
int weight_groups_per_row(const WeightQuantSpec& spec, int d_in);

// The grid of one row-group. Scales are stored (and used) in float, as in PackedWeight.
struct QuantParams {
  float scale = 1.f;
  float zero = 0.f;
};

inline int weight_maxq(int bits) { return (1 << bits) - 1; }

// code = clamp(round(w / scale) + zero, 0, maxq); round half to even like torch.round.
int quantize_weight_code(double w, QuantParams p, int maxq);
inline double dequantize_weight_code(int code, QuantParams p) {
  return static_cast<double>(p.scale) * (code - static_cast<double>(p.zero));
}

// (scale, zero) for the n values w[0], w[stride], ..., w[(n-1)*stride] of one row-group, with
// the MSE clip search when spec.mse_clip. GPTQ calls this per group as it sweeps the columns.
// An all-zero group gets scale 1 (every code then decodes to exactly 0).
QuantParams choose_quant_params(const float* w, int n, const WeightQuantSpec& spec);
QuantParams choose_quant_params(const double* w, int n, const WeightQuantSpec& spec);

// RTN: every row-group quantized independently with choose_quant_params. W is [d_out x d_in]
// row-major and must be finite.
PackedWeight quantize_rtn(const float* W, int d_out, int d_in, const WeightQuantSpec& spec);


}  // namespace lrc
