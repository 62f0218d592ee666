// The SVD baseline (LQER-style, Zhang et al. 2024): Ŵ = GPTQ(W, H = XXᵀ) as in QuaRot, then
// the correction U Vᵀ is the best rank-k approximation of W - Ŵ in the Frobenius norm
// (truncated SVD via the top-k eigenvectors of its Gram), fed the UNquantized x like LRC's.
// It ignores the activation quantization error that LRC's correction targets.
#pragma once

#include "lrc/quant/gptq.h"
#include "lrc/quant/lrc_solver.h"

namespace lrc {

// Result fields as for lrc_quantize; eigenvalues are the squared singular values of W - Ŵ.
LowRankQuantized svd_quantize(const float* W, int d_out, int d_in, const LayerStats& stats,
                              int rank, const WeightQuantSpec& spec, const GptqOptions& gopt);

}  // namespace lrc
