#include "lrc/quant/lrc_clip_search.h"

#include <cmath>
#include <limits>
#include <string>

#include "lrc/core/error.h"
#include "lrc/quant/rank.h"
#include "lrc/quant/stats.h"
#include "quant/finite_check.h"

namespace lrc {

LrcClipSearch::LrcClipSearch(std::vector<const float*> W, std::vector<int> d_outs,
                             std::vector<int> ranks, int d_in, ActQuantSpec base,
                             LrcRegularization reg, double eps_rel, int64_t stride,
                             int64_t max_tokens, std::vector<float> candidates)
    : W_(std::move(W)),
      d_outs_(std::move(d_outs)),
      ranks_(std::move(ranks)),
      d_in_(d_in),
      base_(base),
      reg_(reg),
      eps_rel_(eps_rel),
      candidates_(std::move(candidates)),
      sample_(d_in, stride, max_tokens) {
  const char* where = "LrcClipSearch";
  if (W_.empty() || W_.size() != d_outs_.size() || W_.size() != ranks_.size())
    fail(where, "need one d_out and one rank per weight matrix, and at least one matrix");
  if (d_in <= 0) fail(where, "d_in must be positive, got " + std::to_string(d_in));
  if (!base_.enabled() || base_.bits < 2 || base_.bits > 8)
    fail(where, "activation bits must be in 2..8, got " + std::to_string(base_.bits));
  if (candidates_.empty()) fail(where, "no clip candidates");
  for (float c : candidates_)
    if (!(c > 0.f) || !std::isfinite(c))
      fail(where, "clip candidates must be finite and > 0, got " + std::to_string(c));
  for (size_t m = 0; m < W_.size(); ++m) {
    if (!W_[m] || d_outs_[m] <= 0) fail(where, "matrix " + std::to_string(m) + ": null or empty");
    check_rank(ranks_[m], d_outs_[m], d_in, where);
    quant_detail::require_finite(W_[m], d_outs_[m], d_in, where, "W[" + std::to_string(m) + "]");
  }
}

float LrcClipSearch::best() {
  if (sample_.kept() == 0) fail("LrcClipSearch::best", "no activations were added");
  const size_t nc = candidates_.size();
  err_.assign(nc, std::numeric_limits<double>::infinity());
  std::vector<double> xx;  // XXᵀ does not depend on c: from the first candidate on
  auto eval = [&](size_t c) {
    if (std::isfinite(err_[c])) return;
    ActQuantSpec spec = base_;
    spec.clip = candidates_[c];
    StatsAccumulator acc(d_in_, spec);
    if (!xx.empty()) acc.skip_xx();
    acc.add(sample_.data(), sample_.kept());
    LayerStats st = acc.finish();
    if (xx.empty())
      xx = st.xx;
    else
      st.xx = xx;
    const LrcCovariances cov = regularized_covariances(st, reg_, eps_rel_);
    double j = 0;
    for (double v : relaxed_objectives(W_, d_outs_, ranks_, d_in_, cov)) j += v;
    err_[c] = j;
  };
  auto argmin = [&] {
    size_t b = 0;
    for (size_t c = 1; c < nc; ++c)
      if (err_[c] < err_[b]) b = c;
    return b;
  };
  // Coarse to fine: every other candidate, then the two neighbours of the best of those.
  for (size_t c = 0; c < nc; c += 2) eval(c);
  const size_t coarse = argmin();
  if (coarse > 0) eval(coarse - 1);
  if (coarse + 1 < nc) eval(coarse + 1);
  return candidates_[argmin()];
}

}  // namespace lrc
