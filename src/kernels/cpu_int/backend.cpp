// The integer CPU backend: the reference backend for everything but the quantized linears,
// which run on the W4A4 integer kernels (w4a4.h) from a kernel-layout copy of their codes,
// made once per PackedWeight the first time it runs. take_over() makes that copy (and the
// fp16 U, V of the decode layout) the only one, freeing the model's.
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/kernels/backend.h"
#include "lrc/kernels/cpu_int/w4a4.h"
#include "lrc/kernels/low_rank_branch.h"

namespace lrc {

namespace {

using kernels::cpu_int::W4A4Cpu;

class CpuIntBackend final : public Backend {
 public:
  std::string name() const override {
    return std::string("cpu-int-") + kernels::cpu_int::isa_name(kernels::cpu_int::detect_isa());
  }

  void linear(const Linear& L, const float* x, int64_t n, float* y) const override {
    if (n <= 0) return;
    const W4A4Cpu* w = kernel_weight(L);
    if (!w) return ref().linear(L, x, n, y);
    const bool taken = taken_over(L.lr);  // U, V live only in the decode layout
    if (L.lr.rank > 0 && !taken &&
        (L.lr.u.size() != size_t(L.d_out) * L.lr.rank ||
         L.lr.v.size() != size_t(L.d_in) * L.lr.rank))
      return ref().linear(L, x, n, y);  // which names the mismatch
    if (n == 1 && L.lr.rank > 0) {
      // Decode: the low-rank branch from the kept one-token layout (fp16 U, V when they are
      // fp16 values: half the bytes), the arithmetic the reference uses for one token.
      kernels::cpu_int::w4a4_linear(*w, L.act, nullptr, nullptr, 0, x, n, y);
      std::vector<float> t;
      add_low_rank(x, 1, L.d_in, L.lr.u.data(), L.lr.v.data(), L.lr.rank, L.d_out, y, t,
                   low_rank_decode(L));
      return;
    }
    if (taken && L.lr.rank > 0) {
      // Prefill after take_over: U, V back in fp32 in their stored layout (exact), so the
      // branch's sgemms see the floats the reference sees.
      thread_local std::vector<float> u, v;
      unpack_low_rank(*low_rank_decode(L), u, v);
      kernels::cpu_int::w4a4_linear(*w, L.act, u.data(), v.data(), L.lr.rank, x, n, y);
      return;
    }
    kernels::cpu_int::w4a4_linear(*w, L.act, L.lr.u.data(), L.lr.v.data(), L.lr.rank, x, n, y);
  }

  int64_t take_over(Linear& L) const override {
    const W4A4Cpu* w = kernel_weight(L);
    if (!w) return 0;  // the reference runs L, from L as it is
    int64_t bytes = static_cast<int64_t>(w->codes.size()) +
                    static_cast<int64_t>(w->scales.size() + w->zeros.size()) * 4;
    if (L.lr.rank > 0 && L.lr.u.size() == size_t(L.d_out) * L.lr.rank &&
        L.lr.v.size() == size_t(L.d_in) * L.lr.rank) {
      const LowRankDecode* d = low_rank_decode(L);
      if (d->half) {  // fp16 values (a checkpoint's): the decode layout holds them exactly
        std::vector<float>().swap(L.lr.u);
        std::vector<float>().swap(L.lr.v);
        std::lock_guard<std::mutex> lock(mu_);
        taken_.insert(&L.lr);
      }
      bytes += d->bytes();
    }
    // The kernel layout (codes, scales, zero points) is the copy that runs.
    std::vector<uint8_t>().swap(L.packed->codes);
    std::vector<float>().swap(L.packed->scales);
    std::vector<float>().swap(L.packed->zeros);
    return bytes;
  }

  void rmsnorm(const float* x, const float* w, int64_t n, int d, float eps,
               float* y) const override {
    ref().rmsnorm(x, w, n, d, eps, y);
  }
  void rope(float* x, int64_t n_rows, int n_heads, int head_dim, RopeStyle style,
            const RopeTable& table, int period, int first) const override {
    ref().rope(x, n_rows, n_heads, head_dim, style, table, period, first);
  }
  void attention(const float* q, const float* k, const float* v, int n_seq, int n_q, int pos0,
                 int64_t kv_seq_stride, const AttentionShape& shape, float* out) const override {
    ref().attention(q, k, v, n_seq, n_q, pos0, kv_seq_stride, shape, out);
  }
  void online_transform(const OnlineTransform& t, float* x, int64_t n_rows) const override {
    ref().online_transform(t, x, n_rows);
  }
  void kv_quantize(float* x, int64_t n_rows, int head_dim,
                   const KvQuantSpec& spec) const override {
    ref().kv_quantize(x, n_rows, head_dim, spec);
  }
  void add(float* h, const float* d, int64_t n) const override { ref().add(h, d, n); }
  void add_bias(float* y, const float* b, int64_t n, int d) const override {
    ref().add_bias(y, b, n, d);
  }
  void swiglu(float* g, const float* u, int64_t n) const override { ref().swiglu(g, u, n); }
  void embed(const float* table, int vocab, int dim, const int32_t* tokens, int64_t n,
             float* h) const override {
    ref().embed(table, vocab, dim, tokens, n, h);
  }
  void nll_rows(const float* logits, int64_t n, int vocab, const int32_t* targets,
                double* out) const override {
    ref().nll_rows(logits, n, vocab, targets, out);
  }

 private:
  static const Backend& ref() { return cpu_reference_backend(); }

  // The kernel layout of L's codes, or null when the kernels cannot run L (then the
  // reference does). Keyed by the PackedWeight's address: the models this backend runs are
  // loaded checkpoints that neither change nor move.
  const W4A4Cpu* kernel_weight(const Linear& L) const {
    if (!L.packed) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = packed_.find(L.packed.operator->());
    if (it == packed_.end()) {
      std::unique_ptr<W4A4Cpu> w;
      if (kernels::cpu_int::unsupported_reason(*L.packed, L.act, L.d_out, L.d_in).empty())
        w = std::make_unique<W4A4Cpu>(kernels::cpu_int::pack_w4a4_cpu(*L.packed, L.d_out, L.d_in));
      it = packed_.emplace(L.packed.operator->(), std::move(w)).first;
    }
    return it->second.get();
  }

  // The one-token layout of L's U, V (low_rank_branch.h), kept per pair like the weights.
  const LowRankDecode* low_rank_decode(const Linear& L) const {
    return &low_rank_.get(L.lr, L.d_in, L.d_out);
  }

  bool taken_over(const LowRankPair& lr) const {
    std::lock_guard<std::mutex> lock(mu_);
    return taken_.count(&lr) > 0;
  }

  // u [d_out x rank], v [d_in x rank] in fp32 from a half decode layout (v16 as stored, ut16
  // transposed).
  static void unpack_low_rank(const LowRankDecode& d, std::vector<float>& u, std::vector<float>& v) {
    u.resize(static_cast<size_t>(d.d_out) * d.rank);
    v.resize(static_cast<size_t>(d.d_in) * d.rank);
    for (size_t i = 0; i < v.size(); ++i) v[i] = f16_to_f32(d.v16[i]);
    for (int k = 0; k < d.rank; ++k)
      for (int r = 0; r < d.d_out; ++r)
        u[static_cast<size_t>(r) * d.rank + k] = f16_to_f32(d.ut16[static_cast<size_t>(k) * d.d_out + r]);
  }

  mutable std::mutex mu_;
  mutable std::map<const PackedWeight*, std::unique_ptr<W4A4Cpu>> packed_;
  LowRankDecodeCache low_rank_;
  mutable std::set<const LowRankPair*> taken_;  // pairs whose U, V only the decode layout holds
};

}  // namespace

BackendPtr make_cpu_int_backend() { return std::make_shared<const CpuIntBackend>(); }

}  // namespace lrc
