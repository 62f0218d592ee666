#include "lrc/quant/svd_baseline.h"

#include <cblas.h>

#include <cmath>
#include <string>

#include "lrc/core/error.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/rank.h"
#include "quant/finite_check.h"
#include "quant/top_singular.h"

namespace lrc {

// The "QuaRot + SVD of the weight error" baseline of paper §4.1 (LQER-style).
LowRankQuantized svd_quantize(const float* W, int d_out, int d_in, const LayerStats& stats,
                              int rank, const WeightQuantSpec& spec, const GptqOptions& gopt) {
  const char* where = "svd_quantize";
  if (d_out <= 0 || d_in <= 0)
    fail(where, "bad shape " + std::to_string(d_out) + " x " + std::to_string(d_in));
  check_rank(rank, d_out, d_in, where);
  check_layer_stats(stats, d_in, where, /*xx_only=*/true);
  LowRankQuantized out;
  // QuaRot's GPTQ on the unquantized-input Hessian H = XXᵀ.
  out.packed = gptq(W, d_out, d_in, stats.xx.data(), spec, gopt);
  const size_t len = static_cast<size_t>(d_out) * d_in;
  out.w_hat.resize(len);
  dequantize(out.packed, d_out, d_in, out.w_hat.data());
  out.rank = rank;
  if (rank > 0) {
    // E = W - Ŵ; U = top-k left singular vectors of E, V = EᵀU, so UVᵀ = U Uᵀ E = E_k.
    std::vector<double> E(len);
    for (size_t i = 0; i < len; ++i)
      E[i] = static_cast<double>(W[i]) - static_cast<double>(out.w_hat[i]);
    quant_detail::TopEigen te = quant_detail::top_left_singular(E.data(), d_out, d_in, rank);
    std::vector<double> v(static_cast<size_t>(d_in) * rank);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d_in, rank, d_out, 1.0, E.data(), d_in,
                te.u.data(), rank, 0.0, v.data(), rank);
    out.u.assign(te.u.begin(), te.u.end());
    out.v.assign(v.begin(), v.end());
    out.eigenvalues = std::move(te.lambda);
  }
  out.objective = stats.has_cross() ? lrc_objective(W, out.w_hat.data(), out.u.data(), out.v.data(),
                                                    rank, d_out, d_in, stats)
                                    : std::nan("");
  return out;
}

}  // namespace lrc
