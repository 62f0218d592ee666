// A linear layer as lrc stores it:  y = Ŵ · Q_a(x) + U · (Vᵀ · x)   (paper, Fig. 1 / eq. 2).
// Either full precision (w holds W, no packed) or quantized (packed holds Ŵ, w is empty): a
// quantized linear has no fp32 copy of its weights; backends read the codes (kernels/backend.h
// runs it). act is Q_a (identity for an FP layer); lr the correction on the UNquantized x.
#pragma once

#include <optional>
#include <vector>

#include "lrc/format/act_quant.h"
#include "lrc/format/low_rank.h"
#include "lrc/format/packed_weight.h"

namespace lrc {

struct Linear {
  int d_out = 0, d_in = 0;
  std::vector<float> w;                // W [d_out x d_in] row-major; empty once quantized
  std::optional<PackedWeight> packed;  // Ŵ, shape (d_out, d_in)
  ActQuantSpec act;                    // Q_a applied to x before Ŵ; identity by default
  LowRankPair lr;                      // rank 0 = no correction
  std::vector<float> bias;             // [d_out] added to y (qwen2's q/k/v); empty = none.
                                       // Never quantized: y − b is what Ŵ, U, V approximate.

  bool quantized() const { return packed.has_value(); }
  // Ŵ (or W) as fp32 [d_out x d_in]: the packed codes dequantized, or w itself.
  std::vector<float> dense_weight() const;
  // Bytes of parameters this object holds in memory (w, bias, codes, scales, zeros, U, V).
  int64_t resident_bytes() const;
};

}  // namespace lrc
