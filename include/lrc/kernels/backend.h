// The one seam between the model's forward and the code that does tensor work. Everything the
// forward (model/forward.cpp) does on tensors goes through a Backend; nothing above this
// folder calls BLAS for the forward. Implementations:
//   cpu_reference_backend()  src/kernels/cpu_ref: OpenBLAS sgemm + scalar/OpenMP loops; runs a
//                            quantized linear as the simulation does (Ŵ dequantized from its
//                            codes, Q_a applied then dequantized, fp32 GEMM), bit for bit the
//                            numbers of docs/results.md.
//   make_cpu_int_backend()   src/kernels/cpu_int: quantized linears on the integer W4A4
//                            kernels, everything else as the reference.
//   make_cuda_backend()      src/kernels/cuda (kernels/cuda/backend.h, built with lrc_cuda):
//                            the whole forward on one GPU, activations in device memory.
// A model chooses its backend (LlamaModel::backend, null = the CPU reference; the CLI's
// --device/--kernels through kernels/registry.h).
//
// Memory. Two kinds of pointers cross this interface:
//  * parameters: the Linear, norm weights, embedding table and OnlineTransform arguments are
//    the model's own host memory. A device backend uploads each the first time it sees it,
//    keyed by address, and keeps it: the models it runs must neither change nor move (call
//    forget_parameters() after changing or freeing weights it has seen).
//  * activations: every other pointer (x, y, h, q/k/v, the KV cache, tokens, targets, logits,
//    NLL) is backend memory: allocate()/Buffer, filled by upload(), read back by download().
//    For a host-memory backend (the CPU ones, host_memory() true) that is any host pointer and
//    the defaults below are plain host memory: the forward hands its own arrays straight
//    through, nothing is copied.
// Rows are tokens, row-major. Operations may run asynchronously (a device stream); download()
// and synchronize() wait for them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "lrc/format/act_quant.h"
#include "lrc/format/linear.h"
#include "lrc/format/online_transform.h"
#include "lrc/kernels/attention.h"
#include "lrc/kernels/rope.h"

namespace lrc {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ---- memory (see the top of this file); the defaults are host memory
  virtual bool host_memory() const { return true; }
  // `bytes` of backend memory (64-byte aligned, contents unspecified); release() frees it.
  virtual void* allocate(size_t bytes) const;
  virtual void release(void* p) const noexcept;
  virtual void upload(void* dst, const void* host_src, size_t bytes) const;    // host -> backend
  virtual void download(void* host_dst, const void* src, size_t bytes) const;  // backend -> host
  // Within backend memory; the ranges must not overlap.
  virtual void copy(void* dst, const void* src, size_t bytes) const;
  // `rows` rows of `width` bytes, row r from src + r·src_pitch to dst + r·dst_pitch (a column
  // block of a row-major matrix: splitting a fused projection's output).
  virtual void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                       size_t width, size_t rows) const;
  virtual void zero(void* p, size_t bytes) const;
  virtual void synchronize() const {}
  // Drops every parameter uploaded so far (no-op for host backends).
  virtual void forget_parameters() const {}
  // The model will run on this backend alone from now on and never change: the backend may
  // move what it needs of L into its own layout and free the rest of L (the integer CPU
  // kernels keep a checkpoint's codes and fp16 U, V as the only copies: issue 26, resident
  // size). L keeps its shape, specs and rank. Returns the bytes the backend now holds for L;
  // 0 = nothing moved (the default).
  virtual int64_t take_over(Linear& L) const {
    (void)L;
    return 0;
  }

  // ---- operations

  // y[n x d_out] = Ŵ · Q_a(x) + U · (Vᵀ · x), x[n x d_in] (FP linear: y = x Wᵀ).
  virtual void linear(const Linear& L, const float* x, int64_t n, float* y) const = 0;
  // y[n x d] = x / sqrt(mean(x²) + eps) ⊙ w; y may alias x.
  virtual void rmsnorm(const float* x, const float* w, int64_t n, int d, float eps,
                       float* y) const = 0;
  // RoPE in place on x[n_rows x n_heads*hd] (positions: kernels/rope.h).
  virtual void rope(float* x, int64_t n_rows, int n_heads, int head_dim, RopeStyle style,
                    const RopeTable& table, int period, int first) const = 0;
  // Causal GQA attention (shapes: kernels/attention.h).
  virtual void attention(const float* q, const float* k, const float* v, int n_seq, int n_q,
                         int pos0, int64_t kv_seq_stride, const AttentionShape& shape,
                         float* out) const = 0;
  // x[n_rows x t.size()] ← rows times H (QuaRot's online Hadamards), in place.
  virtual void online_transform(const OnlineTransform& t, float* x, int64_t n_rows) const = 0;
  // KV-cache quantization in place on x[n_rows x head_dim] (kernels/kv_quant.h).
  virtual void kv_quantize(float* x, int64_t n_rows, int head_dim,
                           const KvQuantSpec& spec) const = 0;
  // h[n] += d[n].
  virtual void add(float* h, const float* d, int64_t n) const = 0;
  // y[n x d] += b[d] on every row (a linear's bias; b is a parameter).
  virtual void add_bias(float* y, const float* b, int64_t n, int d) const = 0;
  // g[n] = silu(g) ⊙ u  (SwiGLU's gate).
  virtual void swiglu(float* g, const float* u, int64_t n) const = 0;
  // h[n x dim] = table rows of tokens[n] (table [vocab x dim], a parameter; tokens in backend
  // memory, each in [0, vocab): the caller checks).
  virtual void embed(const float* table, int vocab, int dim, const int32_t* tokens, int64_t n,
                     float* h) const = 0;
  // out[i] = −log softmax(logits[i])[targets[i]] for n rows of `vocab` logits, in float64
  // (per row, so that the caller's running sum is one order whatever the blocking); targets
  // and out in backend memory.
  virtual void nll_rows(const float* logits, int64_t n, int vocab, const int32_t* targets,
                        double* out) const = 0;

  // ---- MoE expert dispatch (mixtral). rows and w are host arrays (the routing is decided on
  // the host); the defaults are host loops, so only host-memory backends run a MoE model
  // (the forward refuses others).
  // dst[i] = src[rows[i]] for i < n: rows of d floats.
  virtual void gather_rows(float* dst, const float* src, const int32_t* rows, int64_t n,
                           int d) const;
  // out[rows[i]] += w[i] · y[i] for i < n: rows of d floats (rows distinct).
  virtual void scatter_add_rows(float* out, const float* y, const int32_t* rows, const float* w,
                                int64_t n, int d) const;
};

using BackendPtr = std::shared_ptr<const Backend>;

// n elements of T in a backend's memory, owned (move-only; contents unspecified). The backend
// must outlive the buffer.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Backend& be, size_t n)
      : be_(&be), p_(n ? static_cast<T*>(be.allocate(n * sizeof(T))) : nullptr), n_(n) {}
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept
      : be_(o.be_), p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = o.be_;
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() const { return p_; }
  size_t size() const { return n_; }
  void reset() {
    if (p_) be_->release(p_);
    p_ = nullptr;
    n_ = 0;
  }

 private:
  const Backend* be_ = nullptr;
  T* p_ = nullptr;
  size_t n_ = 0;
};

// The CPU reference backend (one process-wide instance): a quantized linear's Ŵ is
// dequantized for each call.
const Backend& cpu_reference_backend();
// The same keeping each Ŵ it dequantized, by the PackedWeight's address (fp32-sized memory,
// decode-speed): only for models that neither change nor move while it runs them.
BackendPtr make_cpu_reference_backend(bool keep_dequantized);
// The integer CPU kernels for quantized linears, the reference for the rest (kernels/registry.h).
BackendPtr make_cpu_int_backend();

}  // namespace lrc
