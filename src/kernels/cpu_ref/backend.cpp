// The CPU reference backend: the forward's tensor work as lrc has always done it (OpenBLAS
// sgemm, loops on the calling thread). A quantized linear runs as the simulation: Ŵ is
// dequantized from its codes for each call (the same floats the quantizer produced, so every
// number equals the one of the fp32 copy lrc used to keep), Q_a quantizes and dequantizes x.
#include "lrc/kernels/backend.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <unordered_map>
#include <cmath>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/core/fast_exp.h"
#include "lrc/kernels/kv_quant.h"
#include "lrc/kernels/rmsnorm.h"

namespace lrc {

namespace {

// y[n x d_out] = Q_a(x) · Wᵀ + (x V) Uᵀ with W [d_out x d_in] fp32.
void simulated_linear(const Linear& L, const float* W, const float* x, int64_t n, float* y) {
  const int d_out = L.d_out, d_in = L.d_in;
  const ActQuantSpec& act = L.act;
  if (n > INT_MAX) fail("linear", "too many rows for one sgemm: " + std::to_string(n));
  const int rows = static_cast<int>(n);

  // Q_a(x), row by row on this thread (an OpenMP region right before the sgemm would leave
  // libgomp's idle worker spinning on a core OpenBLAS needs; see cpu_ref/attention.cpp).
  const float* xa = x;
  std::vector<float> xq;
  if (act.enabled()) {
    if (act.bits < 2 || act.bits > 8)
      fail("linear",
           "activation bits must be in 2..8 (or 16 for none), got " + std::to_string(act.bits));
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
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d_out, d_in, 1.f, xa, d_in, W, d_in,
              0.f, y, d_out);

  const LowRankPair& lr = L.lr;
  if (lr.rank > 0) {
    if (lr.u.size() != static_cast<size_t>(d_out) * lr.rank ||
        lr.v.size() != static_cast<size_t>(d_in) * lr.rank)
      fail("linear", "low-rank factors do not match rank " + std::to_string(lr.rank));
    // T = X · V [n x rank]: the branch sees the UNquantized x.
    std::vector<float> t(static_cast<size_t>(n) * lr.rank);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, lr.rank, d_in, 1.f, x, d_in,
                lr.v.data(), lr.rank, 0.f, t.data(), lr.rank);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d_out, lr.rank, 1.f, t.data(),
                lr.rank, lr.u.data(), lr.rank, 1.f, y, d_out);
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
      simulated_linear(L, dequantized(p), x, n, y);
      return;
    }
    if (L.w.size() != static_cast<size_t>(L.d_out) * L.d_in)
      fail("linear", "weight has " + std::to_string(L.w.size()) + " elements, shape is [" +
                         std::to_string(L.d_out) + ", " + std::to_string(L.d_in) + "]");
    simulated_linear(L, L.w.data(), x, n, y);
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
  // Ŵ in fp32: dequantized for this call only (the model holds no fp32 copy of a quantized
  // linear), or once per matrix when keep_ (decoding, where one token's work is one pass
  // over the weights and dequantizing them would double it).
  const float* dequantized(const PackedWeight& p) const {
    if (keep_) {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<float>& W = kept_[&p];
      if (W.empty()) {
        W.resize(static_cast<size_t>(p.d_out) * p.d_in);
        p.dequantize(W.data());
      }
      return W.data();
    }
    static thread_local std::vector<float> W;
    W.resize(static_cast<size_t>(p.d_out) * p.d_in);
    p.dequantize(W.data());
    return W.data();
  }

  bool keep_;
  mutable std::mutex mu_;
  mutable std::unordered_map<const PackedWeight*, std::vector<float>> kept_;
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
