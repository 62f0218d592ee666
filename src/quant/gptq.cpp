#include "lrc/quant/gptq.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/format/code_packing.h"
#include "lrc/quant/damping.h"
#include "quant/finite_check.h"
#include "quant/spd_solve.h"
#include "core/parallel_threshold.h"

namespace lrc {

namespace {

// R: upper Cholesky factor of H⁻¹ (H⁻¹ = RᵀR), row-major with the strict lower part zeroed, in
// H's own storage. This is the one place an explicit inverse is formed: GPTQ's sweep needs the
// rows of R. H is symmetric in full storage, so its row-major array is also its column-major
// one: LAPACK runs column-major in place (LAPACKE's row-major calls would each transpose a d²
// copy) and gives bit for bit the row-major calls' factors, transposed.
std::vector<double> inverse_hessian_upper_factor(std::vector<double> H, int n) {
  lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, H.data(), n);
  if (info > 0)  // retried by gptq() with more damping (damping.h)
    throw FactorizationFailed(
        "gptq: H + damping is not positive definite (Cholesky failed at leading minor " +
        std::to_string(info) + " of " + std::to_string(n) + "); is H a Gram matrix X Xᵀ?");
  if (info < 0) fail("gptq", "dpotrf argument " + std::to_string(-info));
  info = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', n, H.data(), n);  // H⁻¹ in the row-major upper
  if (info != 0) fail("gptq", "dpotri failed (info " + std::to_string(info) + ")");
  quant_detail::mirror_upper_to_lower(H.data(), n);
  info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', n, H.data(), n);  // Rᵀ in the row-major lower
  if (info != 0)
    throw FactorizationFailed("gptq: H⁻¹ is not numerically positive definite (info " +
                              std::to_string(info) +
                              "); H is too ill-conditioned, raise the damping");
  quant_detail::transpose_square(H.data(), n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < i; ++j) H[static_cast<size_t>(i) * n + j] = 0.0;
  return H;
}

}  // namespace

PackedWeight gptq(const float* W, int d_out, int d_in, const double* H, const WeightQuantSpec& spec,
                  const GptqOptions& opt) {
  return gptq_ridged(W, d_out, d_in, H, 0.0, spec, opt);
}

// GPTQ (paper App. A; Frantar et al. 2022, Alg. 1 with lazy batch updates) on H + ridge·I.
PackedWeight gptq_ridged(const float* W, int d_out, int d_in, const double* H, double ridge,
                         const WeightQuantSpec& spec, const GptqOptions& opt) {
  const char* where = "gptq";
  if (d_out <= 0 || d_in <= 0)
    fail(where, "bad shape " + std::to_string(d_out) + " x " + std::to_string(d_in));
  check_weight_quant_spec(spec, d_in, where);
  if (opt.block < 1)
    fail(where, "GptqOptions.block must be >= 1, got " + std::to_string(opt.block));
  if (!(opt.damp >= 0) || !std::isfinite(opt.damp))
    fail(where, "GptqOptions.damp must be finite and >= 0, got " + std::to_string(opt.damp));
  if (!(ridge >= 0) || !std::isfinite(ridge))
    fail(where, "ridge must be finite and >= 0, got " + std::to_string(ridge));
  quant_detail::require_finite(W, d_out, d_in, where, "W");
  quant_detail::require_finite(H, d_in, d_in, where, "H");

  const int n = d_in;
  const size_t nn = static_cast<size_t>(n) * n;
  const int ng = weight_groups_per_row(spec, n);
  const int gs = n / ng;
  const int maxq = weight_maxq(spec.bits);
  const bool grouped = spec.groupsize > 0;

  // H's diagonal with the ridge. Dead inputs (never active): any value works for those
  // weights, so quantize them as 0 (and H_jj := 1).
  std::vector<double> hdiag(n);
  std::vector<char> dead(n, 0);
  for (int j = 0; j < n; ++j) {
    hdiag[j] = H[static_cast<size_t>(j) * n + j] + ridge;
    if (hdiag[j] == 0.0) {
      hdiag[j] = 1.0;
      dead[j] = 1;
    }
  }
  std::vector<double> w(W, W + static_cast<size_t>(d_out) * n);
  for (int j = 0; j < n; ++j)
    if (dead[j])
      for (int r = 0; r < d_out; ++r) w[static_cast<size_t>(r) * n + j] = 0.0;

  // Grids fixed up front: per row (no groups), or per row-group under act_order.
  std::vector<QuantParams> params(static_cast<size_t>(d_out) * ng);
  const bool static_grids = !grouped || opt.act_order;
  if (static_grids) {
#pragma omp parallel for schedule(static) if (int64_t{d_out} * n >= quant_detail::kMinParallelWork)
    for (int r = 0; r < d_out; ++r)
      for (int g = 0; g < ng; ++g)
        params[static_cast<size_t>(r) * ng + g] = choose_quant_params(
            w.data() + static_cast<size_t>(r) * n + static_cast<size_t>(g) * gs, gs, spec);
  }

  // act_order: sweep columns by decreasing H_jj (stable, so ties keep their order).
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (opt.act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int a, int b) { return hdiag[a] > hdiag[b]; });
  std::vector<double> wp;
  if (opt.act_order) {
    wp.resize(static_cast<size_t>(d_out) * n);
    for (int r = 0; r < d_out; ++r)
      for (int j = 0; j < n; ++j)
        wp[static_cast<size_t>(r) * n + j] = w[static_cast<size_t>(r) * n + perm[j]];
    w = {};
  } else {
    wp = std::move(w);
  }

  // Damping: H += damp * mean(diag H) * I; raised ×10 while H's factorisation fails (damping.h).
  // Each try builds the permuted, ridged, damped H from the caller's H (one d² array, factored
  // in place): a d x d copy of H kept for the retries would be 1.6 GB at d_in = 14336.
  double mean_diag = 0.0;
  for (int j = 0; j < n; ++j) mean_diag += hdiag[perm[j]];
  mean_diag /= n;
  const std::vector<double> R = with_damping(opt.damp, "gptq: damp", opt.log, [&](double damp) {
    std::vector<double> hd(nn);
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(nn) >= quant_detail::kMinParallelWork)
    for (int i = 0; i < n; ++i) {
      const double* hrow = H + static_cast<size_t>(perm[i]) * n;
      double* out = hd.data() + static_cast<size_t>(i) * n;
      for (int j = 0; j < n; ++j) out[j] = hrow[perm[j]];
      out[i] = hdiag[perm[i]] + damp * mean_diag;
    }
    quant_detail::mirror_lower_to_upper(hd.data(), n);  // only H's lower triangle is read
    return inverse_hessian_upper_factor(std::move(hd), n);
  });

  std::vector<uint8_t> codes(static_cast<size_t>(d_out) * n);
  const int B = opt.block;
  std::vector<double> err(static_cast<size_t>(d_out) * B);
  for (int i1 = 0; i1 < n; i1 += B) {
    const int i2 = std::min(i1 + B, n);
    const int cnt = i2 - i1;
    // Within a block the rows are independent: each row sweeps its cnt columns, quantizing
    // column j and spreading the scaled error e = (w_j - q_j) / R_jj over the block's later
    // columns with row j of R (the Optimal Brain Quantizer update).
#pragma omp parallel for schedule(static) if (int64_t{d_out} * cnt * cnt >= \
                                              quant_detail::kMinParallelWork)
    for (int r = 0; r < d_out; ++r) {
      double* wr = wp.data() + static_cast<size_t>(r) * n;
      double* er = err.data() + static_cast<size_t>(r) * B;
      for (int i = 0; i < cnt; ++i) {
        const int j = i1 + i;
        const int col = perm[j];
        const int g = col / gs;
        QuantParams& q = params[static_cast<size_t>(r) * ng + g];
        // Dynamic groups (no act_order, so col == j): the grid of a group is chosen when the
        // sweep reaches its first column, from the weights as updated so far.
        if (!static_grids && col % gs == 0) q = choose_quant_params(wr + j, gs, spec);
        const int code = quantize_weight_code(wr[j], q, maxq);
        codes[static_cast<size_t>(r) * n + col] = static_cast<uint8_t>(code);
        const double* Rj = R.data() + static_cast<size_t>(j) * n;
        const double e = (wr[j] - dequantize_weight_code(code, q)) / Rj[j];
        er[i] = e;
        for (int jj = j + 1; jj < i2; ++jj) wr[jj] -= e * Rj[jj];
      }
    }
    // Lazy batch update of all later columns: W[:, i2:] -= E R[i1:i2, i2:].
    if (i2 < n)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d_out, n - i2, cnt, -1.0, err.data(),
                  B, R.data() + static_cast<size_t>(i1) * n + i2, n, 1.0, wp.data() + i2, n);
  }

  PackedWeight p;
  p.d_out = d_out;
  p.d_in = d_in;
  p.bits = spec.bits;
  p.groupsize = spec.groupsize;
  p.symmetric = spec.symmetric;
  p.scales.resize(params.size());
  p.zeros.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    p.scales[i] = params[i].scale;
    p.zeros[i] = params[i].zero;
  }
  p.codes = pack_codes(codes.data(), static_cast<int64_t>(d_out) * n, spec.bits);
  return p;
}

}  // namespace lrc
