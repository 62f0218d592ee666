#include "lrc/quant/act_clip_search.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "lrc/core/error.h"
#include "quant/finite_check.h"
#include "core/parallel_threshold.h"

namespace lrc {

// Tokens per sgemm: bounds the scratch (a few chunk x d floats).
static constexpr int64_t kChunkTokens = 1024;

std::vector<float> default_act_clip_candidates() {
  std::vector<float> c;
  for (int i = 0; i <= 12; ++i) c.push_back(1.0f - 0.05f * static_cast<float>(i));
  return c;
}

ActClipSearch::ActClipSearch(std::vector<const float*> W, std::vector<int> d_outs, int d_in,
                             ActQuantSpec base, std::vector<float> candidates)
    : W_(std::move(W)),
      d_outs_(std::move(d_outs)),
      d_in_(d_in),
      base_(base),
      candidates_(std::move(candidates)) {
  const char* where = "ActClipSearch";
  if (W_.empty() || W_.size() != d_outs_.size())
    fail(where, "need one d_out per weight matrix and at least one matrix (got " +
                    std::to_string(W_.size()) + " matrices, " + std::to_string(d_outs_.size()) +
                    " d_outs)");
  if (d_in <= 0) fail(where, "d_in must be positive, got " + std::to_string(d_in));
  if (!base_.enabled() || base_.bits < 2 || base_.bits > 8)
    fail(where, "activation bits must be in 2..8, got " + std::to_string(base_.bits));
  if (base_.groupsize < 0 || (base_.groupsize > 0 && d_in % base_.groupsize != 0))
    fail(where, "activation groupsize " + std::to_string(base_.groupsize) +
                    " does not divide d_in = " + std::to_string(d_in));
  if (candidates_.empty()) fail(where, "no clip candidates");
  for (float c : candidates_)
    if (!(c > 0.f) || !std::isfinite(c))
      fail(where, "clip candidates must be finite and > 0, got " + std::to_string(c));
  int64_t total_out = 0;
  for (size_t m = 0; m < W_.size(); ++m) {
    if (d_outs_[m] <= 0 || !W_[m])
      fail(where,
           "matrix " + std::to_string(m) + ": null or d_out = " + std::to_string(d_outs_[m]));
    quant_detail::require_finite(W_[m], d_outs_[m], d_in, where, "W[" + std::to_string(m) + "]");
    total_out += d_outs_[m];
  }
  err_.assign(candidates_.size(), 0.0);
  // More outputs than inputs: precompute G = sum_m W_mᵀ W_m (float64, then kept in float).
  if (total_out > d_in) {
    const size_t dd = static_cast<size_t>(d_in) * d_in;
    std::vector<double> g(dd, 0.0);
    for (size_t m = 0; m < W_.size(); ++m) {
      const std::vector<double> wd(W_[m], W_[m] + static_cast<size_t>(d_outs_[m]) * d_in);
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d_in, d_outs_[m], 1.0, wd.data(), d_in,
                  1.0, g.data(), d_in);
    }
    gram_.resize(dd);
    for (int i = 0; i < d_in; ++i)
      for (int j = 0; j < d_in; ++j)
        gram_[static_cast<size_t>(i) * d_in + j] = static_cast<float>(
            j >= i ? g[static_cast<size_t>(i) * d_in + j] : g[static_cast<size_t>(j) * d_in + i]);
  }
}

// Paper §2: the search for the activation clip ratio c.
void ActClipSearch::add(const float* x, int64_t n) {
  const char* where = "ActClipSearch::add";
  if (n < 0) fail(where, "negative token count");
  if (n == 0) return;
  quant_detail::require_finite(x, n, d_in_, where, "activations x");
  const int d = d_in_;
  const int64_t chunk = std::min(n, kChunkTokens);
  std::vector<float> e(static_cast<size_t>(chunk) * d), prod;
  for (int64_t t0 = 0; t0 < n; t0 += chunk) {
    const int m = static_cast<int>(std::min(chunk, n - t0));
    const float* xc = x + t0 * d;
    const int64_t len = static_cast<int64_t>(m) * d;
    for (size_t c = 0; c < candidates_.size(); ++c) {
      // E = X - Q_a^c(X), one token a row.
      ActQuantSpec spec = base_;
      spec.clip = candidates_[c];
      quantize_activations(xc, m, d, spec, e.data());
#pragma omp parallel for schedule(static) if (len >= quant_detail::kMinParallelWork)
      for (int64_t i = 0; i < len; ++i) e[i] = xc[i] - e[i];
      double s = 0.0;
      if (!gram_.empty()) {
        // sum_t e_tᵀ G e_t = sum (E G) ∘ E
        prod.resize(static_cast<size_t>(len));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, d, 1.f, e.data(), d,
                    gram_.data(), d, 0.f, prod.data(), d);
#pragma omp parallel for reduction(+ : s) schedule(static) if (len >= quant_detail::kMinParallelWork)
        for (int64_t i = 0; i < len; ++i) s += static_cast<double>(prod[i]) * e[i];
      } else {
        // sum_m ‖E W_mᵀ‖²
        for (size_t w = 0; w < W_.size(); ++w) {
          const int dout = d_outs_[w];
          const int64_t plen = static_cast<int64_t>(m) * dout;
          prod.resize(static_cast<size_t>(plen));
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, dout, d, 1.f, e.data(), d, W_[w],
                      d, 0.f, prod.data(), dout);
#pragma omp parallel for reduction(+ : s) schedule(static) if (plen >= quant_detail::kMinParallelWork)
          for (int64_t i = 0; i < plen; ++i) s += static_cast<double>(prod[i]) * prod[i];
        }
      }
      err_[c] += s;
    }
  }
  n_ += n;
}

float ActClipSearch::best() const {
  if (n_ == 0) fail("ActClipSearch::best", "no activations were added");
  size_t b = 0;
  for (size_t c = 1; c < err_.size(); ++c)
    if (err_[c] < err_[b]) b = c;
  return candidates_[b];
}

std::vector<double> ActClipSearch::errors() const { return err_; }

}  // namespace lrc
