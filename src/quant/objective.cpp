#include "lrc/quant/objective.h"

#include <cblas.h>

#include <algorithm>
#include <string>

#include "lrc/core/error.h"
#include "lrc/quant/rank.h"
#include "quant/finite_check.h"
#include "core/parallel_threshold.h"

namespace lrc {

// Output rows per pass: bounds the float64 scratch to a few rows x d_in.
static constexpr int kRowChunk = 512;

namespace {

// sum_ij (A B)_ij * C_ij for A [m x d], B [d x d], C [m x d] (all row-major): tr(A B Cᵀ).
double trace_abct(const double* A, const double* B, const double* C, int m, int d,
                  std::vector<double>& scratch) {
  scratch.resize(static_cast<size_t>(m) * d);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, d, 1.0, A, d, B, d, 0.0,
              scratch.data(), d);
  const int64_t len = static_cast<int64_t>(m) * d;
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (len >= quant_detail::kMinParallelWork)
  for (int64_t i = 0; i < len; ++i) s += scratch[i] * C[i];
  return s;
}

}  // namespace

// Paper eq. 2 from statistics.
double lrc_objective(const float* W, const float* w_hat, const float* u, const float* v, int rank,
                     int d_out, int d_in, const LayerStats& stats) {
  const char* where = "lrc_objective";
  if (d_out <= 0 || d_in <= 0)
    fail(where, "bad shape " + std::to_string(d_out) + " x " + std::to_string(d_in));
  check_rank(rank, d_out, d_in, where);
  check_layer_stats(stats, d_in, where);
  quant_detail::require_finite(W, d_out, d_in, where, "W");
  quant_detail::require_finite(w_hat, d_out, d_in, where, "w_hat");
  if (rank > 0) {
    quant_detail::require_finite(u, d_out, rank, where, "u");
    quant_detail::require_finite(v, d_in, rank, where, "v");
  }
  // With activations unquantized (Y = X) the three traces collapse to ‖(A - Ŵ) X‖², which is
  // evaluated directly to avoid cancellation.
  const bool y_is_x = stats.yy == stats.xx && stats.xy == stats.xx;
  std::vector<double> vd;
  if (rank > 0) vd.assign(v, v + static_cast<size_t>(d_in) * rank);
  std::vector<double> A, Wh, ud, scratch;
  double total = 0.0;
  for (int r0 = 0; r0 < d_out; r0 += kRowChunk) {
    const int m = std::min(kRowChunk, d_out - r0);
    const size_t off = static_cast<size_t>(r0) * d_in, len = static_cast<size_t>(m) * d_in;
    // A = W - U Vᵀ on these rows.
    A.assign(W + off, W + off + len);
    if (rank > 0) {
      ud.assign(u + static_cast<size_t>(r0) * rank, u + static_cast<size_t>(r0 + m) * rank);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, d_in, rank, -1.0, ud.data(), rank,
                  vd.data(), rank, 1.0, A.data(), d_in);
    }
    Wh.assign(w_hat + off, w_hat + off + len);
    if (y_is_x) {
      for (size_t i = 0; i < len; ++i) A[i] -= Wh[i];
      total += trace_abct(A.data(), stats.xx.data(), A.data(), m, d_in, scratch);
    } else {
      total += trace_abct(A.data(), stats.xx.data(), A.data(), m, d_in, scratch) -
               2.0 * trace_abct(A.data(), stats.xy.data(), Wh.data(), m, d_in, scratch) +
               trace_abct(Wh.data(), stats.yy.data(), Wh.data(), m, d_in, scratch);
    }
  }
  // A sum of squares: clamp the roundoff of the trace differences at 0.
  return std::max(total, 0.0);
}

double output_energy(const float* W, int d_out, int d_in, const LayerStats& stats) {
  const char* where = "output_energy";
  check_layer_stats(stats, d_in, where);
  std::vector<double> A, scratch;
  double total = 0.0;
  for (int r0 = 0; r0 < d_out; r0 += kRowChunk) {
    const int m = std::min(kRowChunk, d_out - r0);
    const size_t off = static_cast<size_t>(r0) * d_in;
    A.assign(W + off, W + off + static_cast<size_t>(m) * d_in);
    total += trace_abct(A.data(), stats.xx.data(), A.data(), m, d_in, scratch);
  }
  return total;
}

}  // namespace lrc
