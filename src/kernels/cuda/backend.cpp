// The CUDA backend (include/lrc/kernels/cuda/backend.h): every Backend operation on device
// memory, on one stream. Matrix products are cuBLAS (column-major: a row-major [r x c] matrix
// is a column-major [c x r] one, so each call below is written as the transpose of the
// row-major product it computes); the small kernels are ops.cu; quantized linears in real mode
// are W4A4Linear (w4a4_linear.cu).
#include "lrc/kernels/cuda/backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/core/scope_profile.h"
#include "lrc/kernels/cuda/w4a4.h"
#include "lrc/kernels/cuda/w4a4_from_linear.h"
#include "ops.h"

namespace lrc {

namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("cuda", std::string(what) + ": " + cudaGetErrorString(e));
}
void ck(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail("cublas", std::string(what) + ": status " + std::to_string(static_cast<int>(s)));
}
#define LRC_CK(call) ck((call), #call)

// LRC_CUDA_PROFILE=1 (lrc/core/scope_profile.h): one forward operation's device time, the
// stream synchronised where it starts and ends; off, one branch.
class OpScope {
 public:
  OpScope(cudaStream_t s, const char* name)
      : scope_(
            name,
            [](const void* st) {
              cudaStreamSynchronize(static_cast<cudaStream_t>(const_cast<void*>(st)));
            },
            s) {}

 private:
  scope_profile::Scope scope_;
};

int to_int(int64_t n, const char* what) {
  if (n > INT_MAX) fail("cuda backend", std::string(what) + ": " + std::to_string(n) + " rows");
  return static_cast<int>(n);
}

// Device memory owned by the backend (parameters, scratch): cudaMalloc'd, freed on destruction.
class DevMem {
 public:
  DevMem() = default;
  explicit DevMem(size_t bytes) : bytes_(bytes) {
    if (bytes) LRC_CK(cudaMalloc(&p_, bytes));
  }
  ~DevMem() {
    if (p_) cudaFree(p_);
  }
  DevMem(DevMem&& o) noexcept : p_(o.p_), bytes_(o.bytes_) {
    o.p_ = nullptr;
    o.bytes_ = 0;
  }
  DevMem& operator=(DevMem&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFree(p_);
      p_ = o.p_;
      bytes_ = o.bytes_;
      o.p_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  size_t bytes() const { return bytes_; }
  // Grows to at least `bytes` (contents lost when it grows).
  void reserve(size_t bytes) {
    if (bytes > bytes_) *this = DevMem(bytes);
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// A cheap check that cached parameters are still the ones at an address: sizes and 16 spread
// samples of each array. A pipeline that frees a layer and loads the next can get the same
// addresses back; this turns that into a re-upload instead of stale weights (it is not a
// hash of everything: code that rewrites weights in place must call forget_parameters()).
template <typename T>
uint64_t mix_samples(uint64_t h, const T* p, size_t n) {
  h = h * 1000003u ^ n;
  for (size_t i = 0; i < 16 && n > 0; ++i) {
    T v = p[i * (n - 1) / 15];
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T) < 8 ? sizeof(T) : 8);
    h = (h ^ bits) * 0x100000001b3ull;
  }
  return h;
}
uint64_t fingerprint(const Linear& L) {
  uint64_t h =
      mix_samples<float>(static_cast<uint64_t>(L.d_out) << 32 | L.d_in, L.w.data(), L.w.size());
  if (L.packed) {
    h = mix_samples(h, L.packed->codes.data(), L.packed->codes.size());
    h = mix_samples(h, L.packed->scales.data(), L.packed->scales.size());
  }
  h = mix_samples(h, L.lr.u.data(), L.lr.u.size());
  h = mix_samples(h, L.lr.v.data(), L.lr.v.size());
  return h ^ (static_cast<uint64_t>(L.act.bits) << 8) ^ static_cast<uint64_t>(L.act.groupsize);
}

// One Linear on the device, in the form its path needs.
struct DevLinear {
  uint64_t print = 0;
  int d_out = 0, d_in = 0;
  std::unique_ptr<cuda::W4A4Linear> w4a4;  // real: quantized linear on the W4A4 kernels
  DevMem w16;                              // real: FP linear, fp16 [d_out x d_in]
  DevMem w32;                              // sim (or fallback): fp32 Ŵ or W [d_out x d_in]
  DevMem u, v;                             // sim: fp32 U [d_out x rank], V [d_in x rank]
  int rank = 0;
  ActQuantSpec act;
  bool quantized = false;
};

// An online transform as (A ⊗ H_K)·diag(s) on the device (format/online_transform.h).
struct DevTransform {
  int n = 0, m = 1, K = 1;
  bool walsh = false;
  DevMem a, signs;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, bool real, bool tf32) : device_(device), real_(real), tf32_(tf32) {
    std::string why;
    if (!cuda::device_available(&why)) fail("--device cuda", why);
    int count = 0;
    LRC_CK(cudaGetDeviceCount(&count));
    if (device < 0 || device >= count)
      fail("--device", "cuda:" + std::to_string(device) + " does not exist (" +
                           std::to_string(count) + " device(s))");
    LRC_CK(cudaSetDevice(device));
    cudaDeviceProp prop{};
    LRC_CK(cudaGetDeviceProperties(&prop, device));
    gpu_ = prop.name;
    LRC_CK(cudaStreamCreate(&stream_));
    LRC_CK(cublasCreate(&blas_));
    // --gpu-math tf32: fp32 GEMMs on TF32 tensor cores; otherwise IEEE fp32 (no TF32).
    LRC_CK(cublasSetMathMode(blas_, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    LRC_CK(cublasSetStream(blas_, stream_));
    // Stream-ordered allocations come from the device's pool; keep freed memory in it (the
    // forward allocates its scratch per call) instead of returning it at each synchronize.
    cudaMemPool_t pool;
    LRC_CK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t keep = UINT64_MAX;
    LRC_CK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override {
    return std::string("cuda-") + (real_ ? "w4a4" : "sim") + (tf32_ ? " tf32" : "") + " (" +
           gpu_ + ")";
  }

  // ---- memory
  bool host_memory() const override { return false; }
  void* allocate(size_t bytes) const override {
    void* p = nullptr;
    LRC_CK(cudaMallocAsync(&p, bytes ? bytes : 1, stream_));
    return p;
  }
  void release(void* p) const noexcept override { cudaFreeAsync(p, stream_); }
  void upload(void* dst, const void* src, size_t bytes) const override {
    const OpScope prof(stream_, "fwd: upload");
    LRC_CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void download(void* dst, const void* src, size_t bytes) const override {
    const OpScope prof(stream_, "fwd: download");
    LRC_CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    LRC_CK(cudaStreamSynchronize(stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) const override {
    const OpScope prof(stream_, "fwd: copy");
    LRC_CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void zero(void* p, size_t bytes) const override { LRC_CK(cudaMemsetAsync(p, 0, bytes, stream_)); }
  void synchronize() const override { LRC_CK(cudaStreamSynchronize(stream_)); }
  void forget_parameters() const override {
    std::lock_guard<std::mutex> lock(mu_), plock(param_mu_);
    LRC_CK(cudaStreamSynchronize(stream_));
    linears_.clear();
    params_.clear();
    transforms_.clear();
  }

  // ---- operations
  void linear(const Linear& L, const float* x, int64_t n, float* y) const override {
    if (n <= 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    const DevLinear& d = [&]() -> const DevLinear& {
      const OpScope prof(stream_, "fwd: linear (weights to device)");
      return dev_linear(L);
    }();
    const int rows = to_int(n, "linear");
    const OpScope prof(stream_, d.w4a4 ? "fwd: linear w4a4" : d.w16.bytes() ? "fwd: linear fp16"
                                : d.quantized ? "fwd: linear sim (Q_a, Ŵ, U Vᵀ)"
                                              : "fwd: linear sim fp32");
    if (d.w4a4) {
      // fp32 in and out, as the simulation: Q_a sees the same x. cuBLASLt wants y's rows
      // 16-byte aligned: else through a padded scratch.
      cuda::ForwardOptions fo;
      fo.split_low_rank = split_low_rank_;
      if (d.d_out % 4 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0) {
        d.w4a4->forward_f32(x, rows, y, d.d_out, stream_, fo);
      } else {
        const int ldy = (d.d_out + 3) / 4 * 4;
        y32_.reserve(static_cast<size_t>(n) * ldy * 4);
        d.w4a4->forward_f32(x, rows, y32_.as<float>(), ldy, stream_, fo);
        LRC_CK(cudaMemcpy2DAsync(y, static_cast<size_t>(d.d_out) * 4, y32_.as<void>(),
                                 static_cast<size_t>(ldy) * 4, static_cast<size_t>(d.d_out) * 4,
                                 static_cast<size_t>(n), cudaMemcpyDeviceToDevice, stream_));
      }
      return;
    }
    const float one = 1.f, zero = 0.f;
    if (d.w16.bytes()) {
      // y [n x d_out] = x16 · W16ᵀ: column-major yᵀ = W16 · x16ᵀ, fp32 accumulate and output.
      x16_.reserve(static_cast<size_t>(n) * d.d_in * 2);
      cuda::ops::f32_to_f16(x, n, d.d_in, d.d_in, x16_.as<uint16_t>(), d.d_in, stream_);
      LRC_CK(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, d.d_out, rows, d.d_in, &one,
                          d.w16.as<void>(), CUDA_R_16F, d.d_in, x16_.as<void>(), CUDA_R_16F, d.d_in,
                          &zero, y, CUDA_R_32F, d.d_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return;
    }
    // The simulation: y = Q_a(x) · Ŵᵀ (+ (x V) Uᵀ), fp32.
    // LRC_CUDA_SIM_ROUND=fp16 (a diagnostic): a quantized linear sees x rounded to fp16 and
    // its y is rounded to fp16, as in the real kernels, to tell their rounding from a bug.
    if (round_fp16_ && d.quantized) {
      x16_.reserve(static_cast<size_t>(n) * d.d_in * 2);
      xr_.reserve(static_cast<size_t>(n) * d.d_in * 4);
      cuda::ops::f32_to_f16(x, n, d.d_in, d.d_in, x16_.as<uint16_t>(), d.d_in, stream_);
      cuda::ops::f16_to_f32(x16_.as<uint16_t>(), n, d.d_in, d.d_in, xr_.as<float>(), d.d_in,
                            stream_);
      x = xr_.as<float>();
    }
    const float* xa = x;
    if (d.act.enabled()) {
      qa_.reserve(static_cast<size_t>(n) * d.d_in * 4);
      cuda::ops::act_quant_dequant(x, n, d.d_in, d.act.bits, d.act.clip, d.act.groupsize,
                                   qa_.as<float>(), stream_);
      xa = qa_.as<float>();
    }
    LRC_CK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, d.d_out, rows, d.d_in, &one,
                       d.w32.as<float>(), d.d_in, xa, d.d_in, &zero, y, d.d_out));
    if (d.rank > 0) {
      // t [n x rank] = x V (the UNquantized x): tᵀ = Vᵀ(col-major V) · xᵀ.
      t_.reserve(static_cast<size_t>(n) * d.rank * 4);
      LRC_CK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, d.rank, rows, d.d_in, &one,
                         d.v.as<float>(), d.rank, x, d.d_in, &zero, t_.as<float>(), d.rank));
      // y += t Uᵀ: yᵀ += U · tᵀ.
      LRC_CK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, d.d_out, rows, d.rank, &one,
                         d.u.as<float>(), d.rank, t_.as<float>(), d.rank, &one, y, d.d_out));
    }
    if (round_fp16_ && d.quantized) {
      y16_.reserve(static_cast<size_t>(n) * d.d_out * 2);
      cuda::ops::f32_to_f16(y, n, d.d_out, d.d_out, y16_.as<uint16_t>(), d.d_out, stream_);
      cuda::ops::f16_to_f32(y16_.as<uint16_t>(), n, d.d_out, d.d_out, y, d.d_out, stream_);
    }
  }

  void rmsnorm(const float* x, const float* w, int64_t n, int d, float eps,
               float* y) const override {
    const OpScope prof(stream_, "fwd: rmsnorm");
    cuda::ops::rmsnorm(x, param(w, d), n, d, eps, y, stream_);
  }

  void rope(float* x, int64_t n_rows, int n_heads, int head_dim, RopeStyle style,
            const RopeTable& table, int period, int first) const override {
    const OpScope prof(stream_, "fwd: rope");
    if (head_dim / 2 != table.half || first < 0 || first + period > table.n_pos)
      fail("rope", "table does not cover head_dim " + std::to_string(head_dim) + " and " +
                       std::to_string(period) + " positions from " + std::to_string(first));
    std::lock_guard<std::mutex> lock(mu_);
    if (table.scaled) {  // llama3 / longrope frequencies: the host table itself
      // Uploaded when it differs from the last one (a forward asks for the same table at
      // every layer: shared_rope_table), then synchronised once: the host table may go before
      // the copy ran.
      const uint64_t print = mix_samples(
          mix_samples(static_cast<uint64_t>(table.pos0) << 32 ^ static_cast<uint64_t>(table.n_pos),
                      table.cos.data(), table.cos.size()),
          table.sin.data(), table.sin.size());
      float* cs = rope_tab_.as<float>();
      if (!cs || print != rope_tab_print_ || rope_tab_len_ != table.cos.size()) {
        const size_t bytes = table.cos.size() * 4;
        rope_tab_.reserve(2 * bytes);
        cs = rope_tab_.as<float>();
        LRC_CK(cudaMemcpyAsync(cs, table.cos.data(), bytes, cudaMemcpyHostToDevice, stream_));
        LRC_CK(cudaMemcpyAsync(cs + table.cos.size(), table.sin.data(), bytes,
                               cudaMemcpyHostToDevice, stream_));
        LRC_CK(cudaStreamSynchronize(stream_));
        rope_tab_print_ = print;
        rope_tab_len_ = table.cos.size();
      }
      cuda::ops::rope(x, n_rows, n_heads, head_dim, style == RopeStyle::Interleaved, cs,
                      cs + table.cos.size(), 0, period, first, stream_);
      return;
    }
    const int need = table.pos0 + table.n_pos;
    if (rope_theta_ != table.theta || rope_hd_ != head_dim || rope_n_ < need) {
      // One table of every position so far, rebuilt (doubling) when positions run past it.
      int n_pos = std::max(need, 2 * rope_n_);
      if (rope_theta_ != table.theta || rope_hd_ != head_dim) n_pos = std::max(need, 4096);
      const size_t bytes = static_cast<size_t>(n_pos) * (head_dim / 2) * 4;
      rope_cos_ = DevMem(bytes);
      rope_sin_ = DevMem(bytes);
      cuda::ops::rope_table(table.theta, head_dim, n_pos, rope_cos_.as<float>(),
                            rope_sin_.as<float>(), stream_);
      rope_theta_ = table.theta;
      rope_hd_ = head_dim;
      rope_n_ = n_pos;
    }
    cuda::ops::rope(x, n_rows, n_heads, head_dim, style == RopeStyle::Interleaved,
                    rope_cos_.as<float>(), rope_sin_.as<float>(), table.pos0, period, first,
                    stream_);
  }

  // Per sequence and block of queries: S = scale·Q Kᵀ for every head (fp32 cuBLAS, batched over
  // the kv heads, one call per query head of a group), causal softmax over S, O = P V.
  void attention(const float* q, const float* k, const float* v, int n_seq, int n_q, int pos0,
                 int64_t kv_seq_stride, const AttentionShape& a, float* out) const override {
    std::lock_guard<std::mutex> lock(mu_);
    const OpScope prof(stream_, "fwd: attention");
    const int hd = a.head_dim, H = a.n_heads, KVH = a.n_kv_heads, g = H / KVH;
    const int q_dim = H * hd, kv_dim = KVH * hd;
    const float scale = 1.f / std::sqrt(static_cast<float>(hd));
    const float one = 1.f, zero = 0.f;
    // Query block: S for all heads of the block stays under 256 MB.
    const int64_t keys_max = static_cast<int64_t>(pos0) + n_q;
    const int nb_max = static_cast<int>(
        std::max<int64_t>(1, std::min<int64_t>(n_q, (int64_t{64} << 20) / (H * keys_max))));
    scores_.reserve(static_cast<size_t>(H) * nb_max * keys_max * 4);
    float* S = scores_.as<float>();
    for (int s = 0; s < n_seq; ++s)
      for (int i0 = 0; i0 < n_q; i0 += nb_max) {
        const int nb = std::min(nb_max, n_q - i0);
        const int n_keys = pos0 + i0 + nb;  // keys the block's last query sees
        const int64_t s_head = static_cast<int64_t>(nb) * n_keys;
        const float* ks = k + s * kv_seq_stride;
        const float* vs = v + s * kv_seq_stride;
        const float* qs = q + (static_cast<int64_t>(s) * n_q + i0) * q_dim;
        float* os = out + (static_cast<int64_t>(s) * n_q + i0) * q_dim;
        for (int i = 0; i < g; ++i) {  // query heads h = j·g + i, j over the kv heads
          // S_hᵀ [n_keys x nb] = K_j (col-major [hd x n_keys])ᵀ · Q_h (col-major [hd x nb]).
          LRC_CK(cublasSgemmStridedBatched(blas_, CUBLAS_OP_T, CUBLAS_OP_N, n_keys, nb, hd, &scale,
                                           ks, kv_dim, hd, qs + static_cast<int64_t>(i) * hd, q_dim,
                                           static_cast<int64_t>(g) * hd, &zero, S + i * s_head,
                                           n_keys, g * s_head, KVH));
        }
        cuda::ops::causal_softmax(S, static_cast<int64_t>(H) * nb, nb, n_keys, pos0 + i0, a.window,
                                  stream_);
        for (int i = 0; i < g; ++i) {
          // O_hᵀ [hd x nb] = V_j (col-major [hd x n_keys]) · P_hᵀ (col-major [n_keys x nb]).
          LRC_CK(cublasSgemmStridedBatched(blas_, CUBLAS_OP_N, CUBLAS_OP_N, hd, nb, n_keys, &one,
                                           vs, kv_dim, hd, S + i * s_head, n_keys, g * s_head,
                                           &zero, os + static_cast<int64_t>(i) * hd, q_dim,
                                           static_cast<int64_t>(g) * hd, KVH));
        }
      }
  }

  void online_transform(const OnlineTransform& t, float* x, int64_t n_rows) const override {
    if (n_rows <= 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    const OpScope prof(stream_, "fwd: online transform");
    const DevTransform& d = dev_transform(t);
    if (d.walsh || d.signs.bytes())
      cuda::ops::signs_walsh(x, n_rows, d.m, d.K, d.signs.as<float>(), stream_);
    if (d.m == 1) return;
    // Each row, as X [m x K], becomes A·X (into scratch, then copied back).
    const float one = 1.f, zero = 0.f;
    tmp_.reserve(static_cast<size_t>(n_rows) * d.n * 4);
    if (d.K == 1) {
      // All rows at once: Y [n_rows x n] = X Aᵀ, i.e. Yᵀ = A · Xᵀ.
      LRC_CK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, d.n, to_int(n_rows, "transform"), d.n,
                         &one, d.a.as<float>(), d.n, x, d.n, &zero, tmp_.as<float>(), d.n));
    } else {
      // Per row: Y_rᵀ [K x m] = X_rᵀ · Aᵀ (A row-major is Aᵀ column-major).
      LRC_CK(cublasSgemmStridedBatched(blas_, CUBLAS_OP_N, CUBLAS_OP_N, d.K, d.m, d.m, &one, x, d.K,
                                       d.n, d.a.as<float>(), d.m, 0, &zero, tmp_.as<float>(), d.K,
                                       d.n, to_int(n_rows, "transform")));
    }
    LRC_CK(cudaMemcpyAsync(x, tmp_.as<float>(), static_cast<size_t>(n_rows) * d.n * 4,
                           cudaMemcpyDeviceToDevice, stream_));
  }

  void kv_quantize(float* x, int64_t n_rows, int head_dim, const KvQuantSpec& spec) const override {
    if (!spec.enabled()) return;
    const OpScope prof(stream_, "fwd: kv quantize");
    if (spec.bits < 2 || spec.bits > 8)
      fail("kv quantizer",
           "bits must be in 2..8 (or 16 for none), got " + std::to_string(spec.bits));
    cuda::ops::kv_quantize(x, n_rows, head_dim, spec.bits, spec.clip, stream_);
  }

  void add(float* h, const float* d, int64_t n) const override {
    const OpScope prof(stream_, "fwd: add");
    cuda::ops::add(h, d, n, stream_);
  }
  void add_bias(float* y, const float* b, int64_t n, int d) const override {
    cuda::ops::add_bias(y, param(b, static_cast<size_t>(d)), n, d, stream_);
  }
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
               size_t rows) const override {
    if (rows == 0 || width == 0) return;
    LRC_CK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDeviceToDevice,
                             stream_));
  }
  void swiglu(float* g, const float* u, int64_t n) const override {
    const OpScope prof(stream_, "fwd: swiglu");
    cuda::ops::swiglu(g, u, n, stream_);
  }
  void embed(const float* table, int vocab, int dim, const int32_t* tokens, int64_t n,
             float* h) const override {
    const OpScope prof(stream_, "fwd: embed");
    cuda::ops::embed(param(table, static_cast<size_t>(vocab) * dim), dim, tokens, n, h, stream_);
  }
  void nll_rows(const float* logits, int64_t n, int vocab, const int32_t* targets,
                double* out) const override {
    const OpScope prof(stream_, "fwd: nll");
    cuda::ops::nll_rows(logits, n, vocab, targets, out, stream_);
  }

 private:
  // Device copy of an fp32 parameter of n floats, uploaded the first time.
  const float* param(const float* host, size_t n) const {
    std::lock_guard<std::mutex> lock(param_mu_);
    const uint64_t print = mix_samples(0, host, n);
    auto it = params_.find(host);
    if (it != params_.end() && it->second.print == print) return it->second.mem.as<float>();
    Param p{print, DevMem(n * 4)};
    LRC_CK(cudaMemcpy(p.mem.as<void>(), host, n * 4, cudaMemcpyHostToDevice));
    return (params_[host] = std::move(p)).mem.as<float>();
  }
  struct Param {
    uint64_t print = 0;
    DevMem mem;
  };

  // Upload fp32 host data into a fresh device buffer.
  static DevMem upload_f32(const float* host, size_t n) {
    DevMem d(n * 4);
    if (n) LRC_CK(cudaMemcpy(d.as<void>(), host, n * 4, cudaMemcpyHostToDevice));
    return d;
  }

  // The device form of L (mu_ held). Keyed by the PackedWeight (quantized) or the weight array
  // (FP), the storage that changes if the linear is re-quantized.
  const DevLinear& dev_linear(const Linear& L) const {
    const void* key =
        L.packed ? static_cast<const void*>(&*L.packed) : static_cast<const void*>(L.w.data());
    const uint64_t print = fingerprint(L);
    auto it = linears_.find(key);
    if (it != linears_.end() && it->second.print == print) return it->second;
    DevLinear d;
    d.print = print;
    d.d_out = L.d_out;
    d.d_in = L.d_in;
    d.act = L.act;
    d.quantized = L.packed.has_value();
    const size_t nw = static_cast<size_t>(L.d_out) * L.d_in;
    if (L.packed) {
      const PackedWeight& p = *L.packed;
      if (p.d_out != L.d_out || p.d_in != L.d_in)
        fail("linear", "packed weight is " + std::to_string(p.d_out) + " x " +
                           std::to_string(p.d_in) + ", the linear " + std::to_string(L.d_out) +
                           " x " + std::to_string(L.d_in));
      if (real_ && w4a4_supported(L)) {
        d.w4a4 = std::make_unique<cuda::W4A4Linear>(cuda::w4a4_layout_from_linear(L, "linear"));
        return linears_[key] = std::move(d);
      }
      std::vector<float> W(nw);
      p.dequantize(W.data());
      d.w32 = upload_f32(W.data(), nw);
    } else {
      if (L.w.size() != nw)
        fail("linear", "weight has " + std::to_string(L.w.size()) + " elements, shape is [" +
                           std::to_string(L.d_out) + ", " + std::to_string(L.d_in) + "]");
      if (real_ && L.lr.rank == 0 && !L.act.enabled()) {
        // FP linear in fp16: through an fp32 staging copy, converted on the device.
        DevMem w32 = upload_f32(L.w.data(), nw);
        d.w16 = DevMem(nw * 2);
        cuda::ops::weights_to_f16(w32.as<float>(), static_cast<int64_t>(nw), d.w16.as<uint16_t>(),
                                  stream_);
        LRC_CK(cudaStreamSynchronize(stream_));  // before w32 is freed
        return linears_[key] = std::move(d);
      }
      d.w32 = upload_f32(L.w.data(), nw);
    }
    if (L.act.enabled() && (L.act.bits < 2 || L.act.bits > 8))
      fail("linear",
           "activation bits must be in 2..8 (or 16 for none), got " + std::to_string(L.act.bits));
    if (L.act.enabled() && L.act.groupsize > 0 && L.d_in % L.act.groupsize != 0)
      fail("linear", "feature size " + std::to_string(L.d_in) +
                         " is not a multiple of activation group size " +
                         std::to_string(L.act.groupsize));
    if (L.lr.rank > 0) {
      if (L.lr.u.size() != static_cast<size_t>(L.d_out) * L.lr.rank ||
          L.lr.v.size() != static_cast<size_t>(L.d_in) * L.lr.rank)
        fail("linear", "low-rank factors do not match rank " + std::to_string(L.lr.rank));
      d.rank = L.lr.rank;
      d.u = upload_f32(L.lr.u.data(), L.lr.u.size());
      d.v = upload_f32(L.lr.v.data(), L.lr.v.size());
    }
    return linears_[key] = std::move(d);
  }

  // What W4A4Linear takes: 4-bit symmetric per-row weights, 4-bit per-token activations.
  static bool w4a4_supported(const Linear& L) {
    const PackedWeight& p = *L.packed;
    if (p.bits != 4 || p.groupsize != 0 || !p.symmetric) return false;
    if (L.act.bits != 4 || L.act.groupsize != 0) return false;
    for (float z : p.zeros)
      if (z != 8.f) return false;
    return true;
  }

  const DevTransform& dev_transform(const OnlineTransform& t) const {
    auto it = transforms_.find(&t);
    if (it != transforms_.end() && it->second.n == t.size()) return it->second;
    const OnlineTransformFactors f = t.factors();
    DevTransform d;
    d.n = t.size();
    d.m = f.m;
    d.K = d.n / f.m;
    d.walsh = f.walsh && d.K > 1;
    if (f.m < 1 || d.n % f.m != 0 || f.a.size() != static_cast<size_t>(f.m) * f.m ||
        (!f.signs.empty() && f.signs.size() != static_cast<size_t>(d.n)))
      fail("cuda online transform", "inconsistent factors of " + t.describe());
    if (f.m > 1)
      d.a = upload_f32(f.a.data(), f.a.size());
    else if (f.a.size() == 1 && f.a[0] != 1.f)
      fail("cuda online transform", t.describe() + ": a 1x1 factor other than 1");
    if (!f.signs.empty()) d.signs = upload_f32(f.signs.data(), f.signs.size());
    // signs_walsh runs the Walsh transform over each segment of K: without one, K must be 1.
    if (!d.walsh && d.signs.bytes() && d.K > 1)
      fail("cuda online transform", t.describe() + ": signs without a Walsh factor");
    return transforms_[&t] = std::move(d);
  }

  int device_;
  bool real_;
  bool tf32_;
  std::string gpu_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  mutable std::mutex mu_, param_mu_;
  mutable std::unordered_map<const void*, DevLinear> linears_;
  mutable std::unordered_map<const void*, Param> params_;
  mutable std::unordered_map<const OnlineTransform*, DevTransform> transforms_;
  // Scratch, grown on demand (stream order makes reuse across calls safe).
  mutable DevMem x16_, y16_, y32_, qa_, t_, scores_, tmp_, xr_;
  const bool round_fp16_ = [] {
    const char* e = std::getenv("LRC_CUDA_SIM_ROUND");
    return e != nullptr && std::string(e) == "fp16";
  }();
  // LRC_CUDA_LOWRANK=split (an experiment until measured): the W4A4 prefill's low-rank branch
  // in near-fp32 (cuda::ForwardOptions::split_low_rank), at twice the branch's cost.
  const bool split_low_rank_ = [] {
    const char* e = std::getenv("LRC_CUDA_LOWRANK");
    if (e == nullptr || std::string(e) == "fp16") return false;
    if (std::string(e) == "split") return true;
    fail("LRC_CUDA_LOWRANK", std::string("'") + e + "' is not fp16 or split");
  }();
  mutable DevMem rope_cos_, rope_sin_;
  mutable DevMem rope_tab_;  // the last scaled table's cos and sin
  mutable uint64_t rope_tab_print_ = 0;  // which host table rope_tab_ holds (scaled RoPE)
  mutable size_t rope_tab_len_ = 0;
  mutable float rope_theta_ = 0.f;
  mutable int rope_hd_ = 0, rope_n_ = 0;
};

}  // namespace

BackendPtr make_cuda_backend(int device, bool real_kernels, bool tf32) {
  return std::make_shared<const CudaBackend>(device, real_kernels, tf32);
}

}  // namespace lrc
