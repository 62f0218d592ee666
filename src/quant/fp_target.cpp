#include "lrc/quant/fp_target.h"

#include <cblas.h>

#include <string>

#include "lrc/core/error.h"
#include "lrc/quant/lrc_solver.h"
#include "quant/finite_check.h"
#include "quant/spd_solve.h"

namespace lrc {

// W_t = W (X̄Xᵀ + εx I)(XXᵀ + εx I)⁻¹, computed as W_tᵀ = Σx⁻¹ (X̄Xᵀ + εx I)ᵀ Wᵀ, then
// mixed with W.
std::vector<float> fp_target_weights(const float* W, int d_out, int d_in, const LayerStats& stats,
                                     double eps_rel, const char* where, double mix,
                                     DampingLog* log) {
  const int d = d_in;
  const size_t dd = static_cast<size_t>(d) * d;
  if (stats.d != d || stats.xx.size() != dd)
    fail(where, "FP targets need XXᵀ of size " + std::to_string(d) + "²");
  if (stats.fx.size() != dd)
    fail(where, "FP targets need X̄Xᵀ (LayerStats.fx) of size " + std::to_string(d) + "²");
  quant_detail::require_finite(stats.fx.data(), d, d, where, "LayerStats.fx");
  double eps = 0;
  const std::vector<double> L = with_damping(eps_rel, "fp_target: eps_rel", log, [&](double e) {
    eps = ridge_epsilon(stats.xx, d, e);
    std::vector<double> sx(stats.xx);
    for (int i = 0; i < d; ++i) sx[static_cast<size_t>(i) * d + i] += eps;
    return quant_detail::cholesky_lower(sx.data(), d, where, "XXᵀ + εx I");
  });
  std::vector<double> xf(dd);  // xf = (X̄Xᵀ)ᵀ = X X̄ᵀ
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < d; ++j)
      xf[static_cast<size_t>(j) * d + i] = stats.fx[static_cast<size_t>(i) * d + j];
    xf[static_cast<size_t>(i) * d + i] += eps;
  }
  const std::vector<double> Wd(W, W + static_cast<size_t>(d_out) * d);
  std::vector<double> T(static_cast<size_t>(d) * d_out);  // T = (X X̄ᵀ + εx I) Wᵀ, then Σx⁻¹ T
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d_out, d, 1.0, xf.data(), d, Wd.data(), d,
              0.0, T.data(), d_out);
  quant_detail::cholesky_solve(L.data(), d, T.data(), d_out);
  std::vector<float> out(static_cast<size_t>(d_out) * d);
  for (int r = 0; r < d_out; ++r)
    for (int j = 0; j < d; ++j)
      out[static_cast<size_t>(r) * d + j] =
          static_cast<float>((1 - mix) * Wd[static_cast<size_t>(r) * d + j] +
                             mix * T[static_cast<size_t>(j) * d_out + r]);
  return out;
}

}  // namespace lrc
