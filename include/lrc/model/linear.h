// A linear layer as lrc runs it:  y = Ŵ · Q_a(x) + U · (Vᵀ · x)   (paper, Fig. 1 / eq. 2).
// For an FP model act is off, rank is 0 and w holds W. A quantized layer keeps the
// dequantized Ŵ in w (simulated kernels) plus its integer form in `packed`.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "lrc/quant/act_quant.h"

namespace lrc {

// Integer weight storage: codes row-major [d_out x d_in], `bits` wide (two 4-bit codes a
// byte, low nibble first), unsigned with zero point: w = scale * (code - zero).
// One (scale, zero) per row and group of `groupsize` input features (groupsize 0 = per row).
struct PackedWeight {
  int bits = 4;
  int groupsize = 0;
  bool symmetric = true;
  std::vector<uint8_t> codes;  // packed
  std::vector<float> scales;   // [d_out x n_groups]
  std::vector<float> zeros;    // [d_out x n_groups]
};

struct Linear {
  int d_out = 0, d_in = 0;
  std::vector<float> w;  // [d_out x d_in] row-major (dequantized Ŵ once quantized)
  ActQuantSpec act;      // Q_a applied to x before w; identity by default
  int rank = 0;          // low-rank branch on the UNquantized x
  std::vector<float> u;  // [d_out x rank]
  std::vector<float> v;  // [d_in x rank]
  std::optional<PackedWeight> packed;

  // y[n x d_out] = w · Q_a(x) + u · (vᵀ x), x[n x d_in] (one token a row).
  void forward(const float* x, int64_t n, float* y) const;
};

}  // namespace lrc
