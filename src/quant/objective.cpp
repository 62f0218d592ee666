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

namespace {

// <A, B> over n elements.
double dot(const double* a, const double* b, int64_t n) {
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n >= quant_detail::kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void check_eq2_candidate(const Eq2Candidate& c, int d_out, int d_in, const char* where) {
  check_rank(c.rank, d_out, d_in, where);
  quant_detail::require_finite(c.w_hat, d_out, d_in, where, "w_hat");
  if (c.rank > 0) {
    quant_detail::require_finite(c.u, d_out, c.rank, where, "u");
    quant_detail::require_finite(c.v, d_in, c.rank, where, "v");
  }
}

std::vector<double> eq2_objectives(const float* W, int d_out, int d_in,
                                   const std::vector<Eq2Candidate>& candidates,
                                   const LayerStats& stats, double* energy) {
  const char* where = "eq2_objectives";
  if (d_out <= 0 || d_in <= 0)
    fail(where, "bad shape " + std::to_string(d_out) + " x " + std::to_string(d_in));
  check_layer_stats(stats, d_in, where);
  quant_detail::require_finite(W, d_out, d_in, where, "W");
  for (const Eq2Candidate& c : candidates) check_eq2_candidate(c, d_out, d_in, where);
  std::vector<double> out;
  // Y = X: ‖(A - Ŵ) X‖² directly (lrc_objective), no cancellation to share.
  if (stats.yy == stats.xx && stats.xy == stats.xx) {
    for (const Eq2Candidate& c : candidates)
      out.push_back(lrc_objective(W, c.w_hat, c.u, c.v, c.rank, d_out, d_in, stats));
    if (energy) *energy = output_energy(W, d_out, d_in, stats);
    return out;
  }
  const int d = d_in;
  const size_t nc = candidates.size();
  out.assign(nc, 0.0);
  // Per candidate with a low-rank part: V [d x k], Z = Vᵀ XYᵀ [k x d] and <UᵀU, Vᵀ XXᵀ V>.
  std::vector<std::vector<double>> Vd(nc), Z(nc);
  for (size_t c = 0; c < nc; ++c) {
    const int k = candidates[c].rank;
    if (k == 0) continue;
    Vd[c].assign(candidates[c].v, candidates[c].v + static_cast<size_t>(d) * k);
    Z[c].resize(static_cast<size_t>(k) * d);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, d, d, 1.0, Vd[c].data(), k,
                stats.xy.data(), d, 0.0, Z[c].data(), d);
    std::vector<double> SV(static_cast<size_t>(d) * k), VSV(static_cast<size_t>(k) * k);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, k, d, 1.0, stats.xx.data(), d,
                Vd[c].data(), k, 0.0, SV.data(), k);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, d, 1.0, Vd[c].data(), k, SV.data(),
                k, 0.0, VSV.data(), k);
    const std::vector<double> Ud(candidates[c].u, candidates[c].u + static_cast<size_t>(d_out) * k);
    std::vector<double> UtU(static_cast<size_t>(k) * k);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, d_out, 1.0, Ud.data(), k, Ud.data(),
                k, 0.0, UtU.data(), k);
    out[c] += dot(UtU.data(), VSV.data(), static_cast<int64_t>(k) * k);
  }
  double e = 0.0;
  std::vector<double> Wc, P, Q, Hc, S, T, Uc;
  for (int r0 = 0; r0 < d_out; r0 += kRowChunk) {
    const int m = std::min(kRowChunk, d_out - r0);
    const size_t off = static_cast<size_t>(r0) * d, len = static_cast<size_t>(m) * d;
    Wc.assign(W + off, W + off + len);
    P.resize(len);
    Q.resize(len);
    S.resize(len);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, d, 1.0, Wc.data(), d,
                stats.xx.data(), d, 0.0, P.data(), d);  // P = W XXᵀ
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, d, 1.0, Wc.data(), d,
                stats.xy.data(), d, 0.0, Q.data(), d);  // Q = W XYᵀ
    const double pw = dot(P.data(), Wc.data(), static_cast<int64_t>(len));
    e += pw;
    for (size_t c = 0; c < nc; ++c) {
      const Eq2Candidate& cand = candidates[c];
      Hc.assign(cand.w_hat + off, cand.w_hat + off + len);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, d, 1.0, Hc.data(), d,
                  stats.yy.data(), d, 0.0, S.data(), d);  // S = Ŵ YYᵀ
      double o = pw - 2.0 * dot(Q.data(), Hc.data(), static_cast<int64_t>(len)) +
                 dot(S.data(), Hc.data(), static_cast<int64_t>(len));
      const int k = cand.rank;
      if (k > 0) {
        Uc.assign(cand.u + static_cast<size_t>(r0) * k, cand.u + static_cast<size_t>(r0 + m) * k);
        T.resize(static_cast<size_t>(m) * k);
        // -2 <P V, U> + 2 <Ŵ Zᵀ, U>  =  -2 <(P V - Ŵ Zᵀ), U>
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, d, 1.0, P.data(), d,
                    Vd[c].data(), k, 0.0, T.data(), k);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, d, -1.0, Hc.data(), d,
                    Z[c].data(), d, 1.0, T.data(), k);
        o -= 2.0 * dot(T.data(), Uc.data(), static_cast<int64_t>(m) * k);
      }
      out[c] += o;
    }
  }
  if (energy) *energy = e;
  // Sums of squares: clamp the roundoff of the trace differences at 0.
  for (double& o : out) o = std::max(o, 0.0);
  return out;
}

}  // namespace lrc
