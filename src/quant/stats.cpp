#include "lrc/quant/stats.h"

#include <cblas.h>

#include <algorithm>
#include <string>

#include "lrc/core/error.h"
#include "quant/finite_check.h"
#include "quant/spd_solve.h"
#include "core/parallel_threshold.h"

namespace lrc {

// Tokens converted to float64 per BLAS call: large enough for dsyrk/dgemm to run at full speed,
// small enough to bound the scratch memory (2 x 2048 x d doubles).
static constexpr int64_t kChunkTokens = 2048;

const char* stats_precision_name(StatsPrecision p) {
  return p == StatsPrecision::Mixed ? "mixed" : "f64";
}

StatsPrecision parse_stats_precision(const std::string& s) {
  if (s == "f64") return StatsPrecision::Float64;
  if (s == "mixed") return StatsPrecision::Mixed;
  fail("--stats-precision", "expected f64 or mixed, got '" + s + "'");
}

StatsAccumulator::StatsAccumulator(int d, const ActQuantSpec& act, bool cross,
                                   StatsPrecision precision)
    : d_(d), act_(act), cross_(cross), precision_(precision) {
  if (d <= 0) fail("StatsAccumulator", "feature size d must be positive, got " + std::to_string(d));
  if (act.enabled()) {
    if (act.bits < 2 || act.bits > 8)
      fail("StatsAccumulator",
           "activation bits must be in 2..8 (or >= 16 for none), got " + std::to_string(act.bits));
    if (act.groupsize < 0 || (act.groupsize > 0 && d % act.groupsize != 0))
      fail("StatsAccumulator", "activation groupsize " + std::to_string(act.groupsize) +
                                   " does not divide d = " + std::to_string(d));
  }
  const size_t dd = static_cast<size_t>(d) * d;
  xx_.assign(dd, 0.0);
  if (act_.enabled() && cross_) {
    yy_.assign(dd, 0.0);
    xy_.assign(dd, 0.0);
  }
}

void StatsAccumulator::skip_xx() {
  if (!(act_.enabled() && cross_))
    fail("StatsAccumulator::skip_xx", "needs cross statistics with activation quantization on");
  if (n_ > 0) fail("StatsAccumulator::skip_xx", "call it before add()");
  skip_xx_ = true;
  xx_ = {};
}

// Paper Alg. 1 lines 3-5 (unregularised), streamed.
void StatsAccumulator::add(const float* x, int64_t n_tokens, const float* x_fp) {
  if (n_tokens < 0) fail("StatsAccumulator::add", "negative token count");
  if ((x_fp != nullptr) != !fx_.empty() && n_ > 0)
    fail("StatsAccumulator::add", "FP-model inputs must come with every call or with none");
  if (n_tokens == 0) return;
  quant_detail::require_finite(x, n_tokens, d_, "StatsAccumulator::add", "activations x");
  if (x_fp) {
    quant_detail::require_finite(x_fp, n_tokens, d_, "StatsAccumulator::add", "FP activations");
    if (fx_.empty()) fx_.assign(static_cast<size_t>(d_) * d_, 0.0);
  }
  if (precision_ == StatsPrecision::Mixed) {
    add_mixed(x, n_tokens, x_fp);
    n_ += n_tokens;
    return;
  }
  const int d = d_;
  const int64_t chunk = std::min(n_tokens, kChunkTokens);
  std::vector<double> xd(static_cast<size_t>(chunk) * d);
  const bool quantized = act_.enabled() && cross_;
  std::vector<double> yd(quantized ? static_cast<size_t>(chunk) * d : 0);
  std::vector<float> yf(quantized ? static_cast<size_t>(chunk) * d : 0);
  std::vector<double> fd(x_fp ? static_cast<size_t>(chunk) * d : 0);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
    const int64_t m = std::min(chunk, n_tokens - t0);
    const float* xc = x + t0 * d;
    const int64_t len = m * d;
#pragma omp parallel for schedule(static) if (len >= quant_detail::kMinParallelWork)
    for (int64_t i = 0; i < len; ++i) xd[i] = xc[i];
    if (x_fp) {  // X̄Xᵀ += X̄cᵀ Xc
      const float* fc = x_fp + t0 * d;
#pragma omp parallel for schedule(static) if (len >= quant_detail::kMinParallelWork)
      for (int64_t i = 0; i < len; ++i) fd[i] = fc[i];
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, static_cast<int>(m), 1.0,
                  fd.data(), d, xd.data(), d, 1.0, fx_.data(), d);
    }
    // XXᵀ += Xcᵀ Xc (tokens are rows here, so the paper's X Xᵀ is xᵀ x); upper triangle.
    if (!skip_xx_)
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, static_cast<int>(m), 1.0, xd.data(), d,
                  1.0, xx_.data(), d);
    if (!quantized) continue;
    // Y = Q_a(X), then YYᵀ (upper) and XYᵀ (full: not symmetric).
    quantize_activations(xc, m, d, act_, yf.data());
#pragma omp parallel for schedule(static) if (len >= quant_detail::kMinParallelWork)
    for (int64_t i = 0; i < len; ++i) yd[i] = yf[i];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, static_cast<int>(m), 1.0, yd.data(), d,
                1.0, yy_.data(), d);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, static_cast<int>(m), 1.0, xd.data(),
                d, yd.data(), d, 1.0, xy_.data(), d);
  }
  n_ += n_tokens;
}

namespace {

// acc += c on the upper triangle (upper_only) or on every entry of the d x d matrices.
void add_to_double(const std::vector<float>& c, std::vector<double>& acc, int d, bool upper_only) {
  const int64_t entries = static_cast<int64_t>(d) * d;
#pragma omp parallel for schedule(static) if (entries >= quant_detail::kMinParallelWork)
  for (int i = 0; i < d; ++i) {
    const size_t row = static_cast<size_t>(i) * d;
    for (int j = upper_only ? i : 0; j < d; ++j) acc[row + j] += c[row + j];
  }
}

}  // namespace

// The same sums as add(), each block's in float32 (StatsPrecision::Mixed), totals in float64.
void StatsAccumulator::add_mixed(const float* x, int64_t n_tokens, const float* x_fp) {
  const int d = d_;
  const int64_t chunk = std::min(n_tokens, kChunkTokens);
  const bool quantized = act_.enabled() && cross_;
  std::vector<float> yf(quantized ? static_cast<size_t>(chunk) * d : 0);
  std::vector<float> c(static_cast<size_t>(d) * d);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
    const int m = static_cast<int>(std::min(chunk, n_tokens - t0));
    const float* xc = x + t0 * d;
    if (x_fp) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, m, 1.f, x_fp + t0 * d, d, xc, d,
                  0.f, c.data(), d);
      add_to_double(c, fx_, d, false);
    }
    if (!skip_xx_) {
      cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, m, 1.f, xc, d, 0.f, c.data(), d);
      add_to_double(c, xx_, d, true);
    }
    if (!quantized) continue;
    quantize_activations(xc, m, d, act_, yf.data());
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, m, 1.f, yf.data(), d, 0.f, c.data(), d);
    add_to_double(c, yy_, d, true);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, m, 1.f, xc, d, yf.data(), d, 0.f,
                c.data(), d);
    add_to_double(c, xy_, d, false);
  }
}

LayerStats StatsAccumulator::finish() const {
  StatsAccumulator copy(*this);
  return copy.take();
}

LayerStats StatsAccumulator::take() {
  LayerStats s;
  s.d = d_;
  s.n = n_;
  const int d = d_;
  if (!skip_xx_) {
    quant_detail::mirror_upper_to_lower(xx_.data(), d);
    s.xx = std::move(xx_);
  }
  s.fx = std::move(fx_);
  if (cross_) {
    if (act_.enabled()) {
      quant_detail::mirror_upper_to_lower(yy_.data(), d);
      s.yy = std::move(yy_);
      s.xy = std::move(xy_);
    } else {
      s.yy = s.xx;
      s.xy = s.xx;
    }
  }
  xx_ = {};
  yy_ = {};
  xy_ = {};
  fx_ = {};
  return s;
}

void check_layer_stats(const LayerStats& s, int d, const char* where, bool xx_only) {
  if (s.d != d)
    fail(where,
         "LayerStats.d = " + std::to_string(s.d) + " does not match d_in = " + std::to_string(d));
  if (s.device_only)
    fail(where, "the statistics are in GPU memory only (StatsSink::skip_host_copy); the CPU "
                "solvers need the host matrices");
  const size_t dd = static_cast<size_t>(d) * d;
  if (xx_only && !s.has_cross()) {
    if (s.xx.size() != dd)
      fail(where, "LayerStats xx must have d*d = " + std::to_string(dd) + " entries, got " +
                      std::to_string(s.xx.size()));
    quant_detail::require_finite(s.xx.data(), d, d, where, "LayerStats.xx");
    return;
  }
  if (s.xx.size() != dd || s.yy.size() != dd || s.xy.size() != dd)
    fail(where, "LayerStats xx/yy/xy must have d*d = " + std::to_string(dd) + " entries, got " +
                    std::to_string(s.xx.size()) + "/" + std::to_string(s.yy.size()) + "/" +
                    std::to_string(s.xy.size()));
  quant_detail::require_finite(s.xx.data(), d, d, where, "LayerStats.xx");
  quant_detail::require_finite(s.yy.data(), d, d, where, "LayerStats.yy");
  quant_detail::require_finite(s.xy.data(), d, d, where, "LayerStats.xy");
}

}  // namespace lrc
