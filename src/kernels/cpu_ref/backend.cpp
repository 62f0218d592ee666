// The CPU reference backend: the forward's tensor work as lrc has always done it (OpenBLAS
// sgemm, loops on the calling thread). A quantized linear runs as the simulation, in one of
// two forms:
//  * integer form (4-bit-style weights with integer zero points, per-token Q_a: what the
//    quantizer produces): the product is computed from the codes themselves,
//    y = s_x · s_w · Σ_j (c_w − z)·c_x, the sum taken exactly (integer-valued floats, see
//    integer_linear) and scaled in the same order as the integer kernels (cpu_int) do. Both
//    backends therefore produce the same floats: `--kernels real` and `sim` agree bit for bit.
//  * dequantized form (anything else: activation groups, unquantized activations, fractional
//    zero points): Ŵ = s_w·(c_w − z) and Q_a(x) = s_x·c_x in fp32, then sgemm.
#include "lrc/kernels/backend.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/parallel_threshold.h"
#include "lrc/core/error.h"
#include "lrc/core/fast_exp.h"
#include "lrc/kernels/cpu_int/w8.h"
#include "lrc/kernels/kv_quant.h"
#include "lrc/kernels/low_rank_branch.h"
#include "lrc/kernels/rmsnorm.h"

namespace lrc {

namespace {

void check_act_bits(const ActQuantSpec& act) {
  if (act.enabled() && (act.bits < 2 || act.bits > 8))
    fail("linear", "activation bits must be in 2..8 (or 16 for none), got " +
                       std::to_string(act.bits));
}

void check_low_rank(const Linear& L) {
  const LowRankPair& lr = L.lr;
  if (lr.rank > 0 && (lr.u.size() != static_cast<size_t>(L.d_out) * lr.rank ||
                      lr.v.size() != static_cast<size_t>(L.d_in) * lr.rank))
    fail("linear", "low-rank factors do not match rank " + std::to_string(lr.rank));
}

// Whether L is an 8-bit weight-only linear with one scale and integer zero point per row (the
// LM head under `--lm-head q8`): few tokens run on the 8-bit GEMV (kernels/cpu_int/w8.h).
bool w8_weight_only(const Linear& L) {
  if (!L.packed || L.act.enabled() || L.packed->bits != 8 || L.packed->n_groups() != 1)
    return false;
  for (float z : L.packed->zeros)
    if (z != std::nearbyint(z)) return false;
  return true;
}

// Whether L runs in integer form: packed weights with integer zero points and one activation
// scale per token (the configurations the integer kernels run; kernels/cpu_int/w4a4.h).
bool integer_form(const Linear& L) {
  if (!L.packed || !L.act.enabled()) return false;
  if (L.act.groupsize != 0 && L.act.groupsize != L.d_in) return false;
  for (float z : L.packed->zeros)
    if (z != std::nearbyint(z)) return false;
  return true;
}

// y[n x d_out] = x Wᵀ (+ the low-rank branch), W [d_out x d_in] fp32, x [n x d_in] quantized
// by Q_a first (quantized then dequantized: s_x·c_x in fp32) when L.act is on; dec as
// integer_linear's.
void dequantized_linear(const Linear& L, const float* W, const float* x, int64_t n, float* y,
                        const LowRankDecode* dec) {
  const int d_out = L.d_out, d_in = L.d_in;
  const ActQuantSpec& act = L.act;
  if (n > INT_MAX) fail("linear", "too many rows for one sgemm: " + std::to_string(n));
  check_act_bits(act);
  check_low_rank(L);

  // Q_a(x), row by row on this thread (an OpenMP region right before the sgemm would leave
  // libgomp's idle worker spinning on a core OpenBLAS needs; see cpu_ref/attention.cpp).
  const float* xa = x;
  std::vector<float> xq;
  if (act.enabled()) {
    xq.resize(static_cast<size_t>(n) * d_in);
    const int g = act.groupsize > 0 ? act.groupsize : d_in;
    std::vector<int8_t> codes(d_in);
    std::vector<float> scales(d_in / g + 1);
    for (int64_t i = 0; i < n; ++i) {
      quantize_activation_row(x + i * d_in, d_in, act, codes.data(), scales.data());
      float* row = xq.data() + i * d_in;
      for (int j = 0; j < d_in; ++j) row[j] = scales[j / g] * static_cast<float>(codes[j]);
    }
    xa = xq.data();
  }
  if (n == 1)  // one token (decode): sgemv streams W once; sgemm would pack it first
    cblas_sgemv(CblasRowMajor, CblasNoTrans, d_out, d_in, 1.f, W, d_in, xa, 1, 0.f, y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), d_out, d_in, 1.f,
                xa, d_in, W, d_in, 0.f, y, d_out);
  std::vector<float> t;
  add_low_rank(x, n, d_in, L.lr.u.data(), L.lr.v.data(), L.lr.rank, d_out, y, t, dec);
}

// The integer form: y[n x d_out] for x[n x d_in]. C [d_out x d_in] holds c_w − z as floats
// (integers); dec: the kept one-token layout of U, V, or null. Per weight group g
// the sum a_g = Σ_{j in g} (c_w − z)·c_x is an integer; a product of sgemm on integer-valued
// floats is EXACT, whatever the order of its additions, as long as every partial sum stays
// below 2^24 in magnitude: guaranteed when group_size · max|c_w − z| · max|c_x| <= 2^24 (4-bit
// weights and activations: d_in up to 139810). Beyond that bound the sums run in float64
// (exact to 2^53) and are rounded to float once, as the integer kernels' int32 → float
// conversion does. Then, in the kernels' order:
//   one group:  y = (float(a) · s_w) · s_x
//   groups:     f = fma(float(a_g), s_w,g, f) over g = 0, 1, ...;  y = f · s_x
// and the low-rank branch is added by the same function as in cpu_int.
void integer_linear(const Linear& L, const float* C, const float* x, int64_t n, float* y,
                    const LowRankDecode* dec) {
  const PackedWeight& p = *L.packed;
  const int d_out = L.d_out, d_in = L.d_in, ng = p.n_groups(), gs = p.group_size();
  if (n > INT_MAX) fail("linear", "too many rows for one sgemm: " + std::to_string(n));
  check_act_bits(L.act);
  check_low_rank(L);
  const int rows = static_cast<int>(n);

  ActQuantSpec act = L.act;
  act.groupsize = 0;  // one scale per token (integer_form)
  std::vector<float> cx(static_cast<size_t>(n) * d_in), sx(static_cast<size_t>(n));
  std::vector<int8_t> codes(d_in);
  for (int64_t i = 0; i < n; ++i) {
    quantize_activation_row(x + i * d_in, d_in, act, codes.data(), &sx[i]);
    std::copy(codes.begin(), codes.end(), cx.begin() + i * d_in);
  }

  const double max_cw = (1 << p.bits) - 1, max_cx = 1 << (act.bits - 1);
  const bool fp32_exact = static_cast<double>(gs) * max_cw * max_cx <= double(1 << 24);
  std::vector<float> a(ng > 1 ? static_cast<size_t>(n) * d_out : 0);
  std::vector<double> cxd, Cd, ad;
  if (!fp32_exact) {
    cxd.assign(cx.begin(), cx.end());
    Cd.assign(C, C + static_cast<size_t>(d_out) * d_in);
    ad.resize(static_cast<size_t>(n) * d_out);
  }
  for (int g = 0; g < ng; ++g) {
    // a_g [n x d_out] (into y itself for one group)
    float* ag = ng > 1 ? a.data() : y;
    const int64_t off = static_cast<int64_t>(g) * gs;
    if (fp32_exact) {
      if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, d_out, gs, 1.f, C + off, d_in, cx.data() + off,
                    1, 0.f, ag, 1);
      else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d_out, gs, 1.f,
                    cx.data() + off, d_in, C + off, d_in, 0.f, ag, d_out);
    } else {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d_out, gs, 1.0,
                  cxd.data() + off, d_in, Cd.data() + off, d_in, 0.0, ad.data(), d_out);
      for (size_t k = 0; k < ad.size(); ++k) ag[k] = static_cast<float>(ad[k]);
    }
    if (ng == 1) break;
    for (int64_t i = 0; i < n; ++i)
      for (int r = 0; r < d_out; ++r) {
        float& f = y[i * d_out + r];
        f = std::fma(ag[i * d_out + r], p.scales[static_cast<size_t>(r) * ng + g],
                     g == 0 ? 0.f : f);
      }
  }
  for (int64_t i = 0; i < n; ++i)
    for (int r = 0; r < d_out; ++r) {
      float& v = y[i * d_out + r];
      v = ng == 1 ? v * p.scales[r] * sx[i] : v * sx[i];
    }
  std::vector<float> t;
  add_low_rank(x, n, d_in, L.lr.u.data(), L.lr.v.data(), L.lr.rank, d_out, y, t, dec);
}

// C[d_out x d_in] = code − zero, integers as floats (PackedWeight::dequantize without the
// scale).
void centered_codes(const PackedWeight& p, float* C) {
  p.validate("linear");
  const int ng = p.n_groups(), gs = p.group_size(), d_in = p.d_in;
#pragma omp parallel for schedule(static) if (p.count() >= quant_detail::kMinParallelWork)
  for (int r = 0; r < p.d_out; ++r) {
    float* out = C + static_cast<size_t>(r) * d_in;
    const float* z = p.zeros.data() + static_cast<size_t>(r) * ng;
    if (p.bits == 4 && d_in % 2 == 0 && gs % 2 == 0) {  // whole bytes, low nibble first
      const uint8_t* row = p.codes.data() + static_cast<size_t>(r) * (d_in / 2);
      for (int j = 0; j < d_in; j += 2) {
        out[j] = static_cast<float>(row[j / 2] & 15) - z[j / gs];
        out[j + 1] = static_cast<float>(row[j / 2] >> 4) - z[j / gs];
      }
      continue;
    }
    for (int j = 0; j < d_in; ++j) out[j] = static_cast<float>(p.code(r, j)) - z[j / gs];
  }
}

class CpuReferenceBackend final : public Backend {
 public:
  explicit CpuReferenceBackend(bool keep_dequantized) : keep_(keep_dequantized) {}
  std::string name() const override { return "cpu-ref"; }

  void linear(const Linear& L, const float* x, int64_t n, float* y) const override {
    if (n <= 0) return;
    if (L.packed) {
      const PackedWeight& p = *L.packed;
      if (p.d_out != L.d_out || p.d_in != L.d_in)
        fail("linear", "packed weight is " + std::to_string(p.d_out) + " x " +
                           std::to_string(p.d_in) + ", the linear " + std::to_string(L.d_out) +
                           " x " + std::to_string(L.d_in));
      if (integer_form(L)) {
        integer_linear(L, weights(p, /*centered=*/true), x, n, y, low_rank_decode(L, n));
      } else if (w8_weight_only(L) && n < kernels::cpu_int::kW8MaxTokens) {
        p.validate("linear");
        check_low_rank(L);
        kernels::cpu_int::w8_linear(p.codes.data(), p.scales.data(), p.zeros.data(), L.d_out,
                                    L.d_in, x, n, y);
        std::vector<float> t;
        add_low_rank(x, n, L.d_in, L.lr.u.data(), L.lr.v.data(), L.lr.rank, L.d_out, y, t,
                     low_rank_decode(L, n));
      } else {
        dequantized_linear(L, weights(p, /*centered=*/false), x, n, y, low_rank_decode(L, n));
      }
      return;
    }
    if (L.w.size() != static_cast<size_t>(L.d_out) * L.d_in)
      fail("linear", "weight has " + std::to_string(L.w.size()) + " elements, shape is [" +
                         std::to_string(L.d_out) + ", " + std::to_string(L.d_in) + "]");
    dequantized_linear(L, L.w.data(), x, n, y, low_rank_decode(L, n));
  }


  void rmsnorm(const float* x, const float* w, int64_t n, int d, float eps,
               float* y) const override {
    lrc::rmsnorm(x, w, n, d, eps, y);
  }

  void rope(float* x, int64_t n_rows, int n_heads, int head_dim, RopeStyle style,
            const RopeTable& table, int period, int first) const override {
    apply_rope(x, n_rows, n_heads, head_dim, style, table, period, first);
  }

  void attention(const float* q, const float* k, const float* v, int n_seq, int n_q, int pos0,
                 int64_t kv_seq_stride, const AttentionShape& shape, float* out) const override {
    causal_attention(q, k, v, n_seq, n_q, pos0, kv_seq_stride, shape, out);
  }

  void online_transform(const OnlineTransform& t, float* x, int64_t n_rows) const override {
    t.apply(x, n_rows);
  }

  void kv_quantize(float* x, int64_t n_rows, int head_dim,
                   const KvQuantSpec& spec) const override {
    lrc::kv_quantize(x, n_rows, head_dim, spec);
  }

  void add(float* h, const float* d, int64_t n) const override {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) h[i] += d[i];
  }

  void add_bias(float* y, const float* b, int64_t n, int d) const override {
    for (int64_t i = 0; i < n; ++i) {
      float* r = y + i * d;
#pragma omp simd
      for (int j = 0; j < d; ++j) r[j] += b[j];
    }
  }

  void swiglu(float* g, const float* u, int64_t n) const override {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float a = g[i];
      g[i] = a / (1.f + fast_expf(-a)) * u[i];  // silu(a) = a * sigmoid(a)
    }
  }

  void embed(const float* table, int vocab, int dim, const int32_t* tokens, int64_t n,
             float* h) const override {
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(table + static_cast<int64_t>(tokens[i]) * dim, dim, h + i * dim);
  }

  void nll_rows(const float* logits, int64_t n, int vocab, const int32_t* targets,
                double* out) const override {
    // -log softmax(l)[y] = log Σ_j exp(l_j - max) + max - l_y, the sum in float64.
    for (int64_t i = 0; i < n; ++i) {
      const float* l = logits + i * vocab;
      float mx = l[0];
#pragma omp simd reduction(max : mx)
      for (int j = 0; j < vocab; ++j) mx = std::max(mx, l[j]);
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j < vocab; ++j) sum += fast_expf(l[j] - mx);
      out[i] = std::log(sum) + mx - l[targets[i]];
    }
  }

 private:
  // Ŵ in fp32 (centered: c_w − z, the integer form's operand; else s_w·(c_w − z)): made
  // for this call only (the model holds no fp32 copy of a quantized linear), or once per
  // matrix when keep_ (decoding, where one token's work is one pass over the weights and
  // expanding them would double it).
  const float* weights(const PackedWeight& p, bool centered) const {
    auto fill = [&](std::vector<float>& W) {
      W.resize(static_cast<size_t>(p.d_out) * p.d_in);
      if (centered)
        centered_codes(p, W.data());
      else
        p.dequantize(W.data());
    };
    if (keep_) {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<float>& W = kept_[centered ? 1 : 0][&p];
      if (W.empty()) fill(W);
      return W.data();
    }
    static thread_local std::vector<float> W;
    fill(W);
    return W.data();
  }

  // U, V laid out for one token (fp16 when they are fp16 values), kept per pair when keep_;
  // null otherwise (add_low_rank then lays them out for the call: the same arithmetic).
  const LowRankDecode* low_rank_decode(const Linear& L, int64_t n) const {
    if (!keep_ || n != 1 || L.lr.rank <= 0) return nullptr;
    check_low_rank(L);
    return &kept_lr_.get(L.lr, L.d_in, L.d_out);
  }

  bool keep_;
  mutable std::mutex mu_;
  LowRankDecodeCache kept_lr_;
  mutable std::unordered_map<const PackedWeight*, std::vector<float>> kept_[2];
};

}  // namespace

const Backend& cpu_reference_backend() {
  static const CpuReferenceBackend backend(/*keep_dequantized=*/false);
  return backend;
}

BackendPtr make_cpu_reference_backend(bool keep_dequantized) {
  return std::make_shared<const CpuReferenceBackend>(keep_dequantized);
}

}  // namespace lrc
