// Small kernels of the CUDA backend (declarations and shapes: ops.h). Each is memory-bound and
// written plainly: one block per row for row-wise work, a grid-stride loop for element-wise
// work. Where the CPU reference rounds in a particular way (float64 sums, IEEE division,
// round-half-even) the kernel does the same, so GPU and CPU agree to the last bits or close.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "lrc/core/error.h"
#include "block_reduce.cuh"
#include "ops.h"

namespace lrc::cuda::ops {

namespace {

void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail("cuda", std::string(what) + ": " + cudaGetErrorString(e));
}

constexpr int kBlock = 256;

// Blocks for an element-wise loop over n items (grid-stride beyond that).
unsigned grid_for(int64_t n) {
  const int64_t b = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(b < 4096 ? (b > 0 ? b : 1) : 4096);
}

struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

__global__ void f32_to_f16_kernel(const float* x, int64_t rows, int cols, int64_t ldx, __half* y,
                                  int64_t ldy) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    y[r * ldy + c] = __float2half_rn(fminf(fmaxf(x[r * ldx + c], -65504.f), 65504.f));
  }
}

__global__ void f16_to_f32_kernel(const __half* x, int64_t rows, int cols, int64_t ldx, float* y,
                                  int64_t ldy) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    y[r * ldy + c] = __half2float(x[r * ldx + c]);
  }
}

__global__ void weights_to_f16_kernel(const float* w, int64_t n, __half* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = __float2half_rn(w[i]);
}

// One block a row.
__global__ void rmsnorm_kernel(const float* x, const float* w, int d, float eps, float* y) {
  __shared__ double sm[32];
  const float* xr = x + blockIdx.x * int64_t{d};
  float* yr = y + blockIdx.x * int64_t{d};
  double ss = 0.0;
  for (int j = threadIdx.x; j < d; j += blockDim.x) ss += static_cast<double>(xr[j]) * xr[j];
  ss = block_reduce(ss, Sum{}, sm);
  const float inv = static_cast<float>(1.0 / sqrt(ss / d + eps));
  for (int j = threadIdx.x; j < d; j += blockDim.x) yr[j] = xr[j] * inv * w[j];
}

__global__ void rope_table_kernel(float theta, int head_dim, int n_pos, float* cs, float* sn) {
  const int half = head_dim / 2;
  const int64_t n = int64_t{n_pos} * half;
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < n;
       k += int64_t{gridDim.x} * blockDim.x) {
    const int p = static_cast<int>(k / half), i = static_cast<int>(k % half);
    const double freq = pow(static_cast<double>(theta), -2.0 * i / head_dim);
    const double a = static_cast<double>(p) * freq;
    cs[k] = static_cast<float>(cos(a));
    sn[k] = static_cast<float>(sin(a));
  }
}

// One thread per (row, head, pair).
__global__ void rope_kernel(float* x, int64_t n_rows, int n_heads, int head_dim, int step, int off,
                            const float* cs, const float* sn, int pos_base, int period, int first) {
  const int half = head_dim / 2;
  const int64_t n = n_rows * n_heads * half;
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < n;
       k += int64_t{gridDim.x} * blockDim.x) {
    const int i = static_cast<int>(k % half);
    const int64_t rh = k / half;
    const int64_t r = rh / n_heads;
    const int p = pos_base + first + static_cast<int>(r % period);
    const float c = cs[int64_t{p} * half + i], s = sn[int64_t{p} * half + i];
    float* v = x + rh * head_dim;
    const float a = v[i * step], b = v[i * step + off];
    v[i * step] = a * c - b * s;
    v[i * step + off] = a * s + b * c;
  }
}

// One block a row of scores.
__global__ void causal_softmax_kernel(float* scores, int rows_per_head, int len, int first_valid,
                                      int window) {
  __shared__ float fm[32];
  __shared__ float fs[32];
  float* r = scores + blockIdx.x * int64_t{len};
  const int valid = min(len, first_valid + static_cast<int>(blockIdx.x % rows_per_head) + 1);
  const int lo = window > 0 ? max(0, valid - window) : 0;  // sliding window: keys lo..valid-1
  float mx = -INFINITY;
  for (int j = lo + threadIdx.x; j < valid; j += blockDim.x) mx = fmaxf(mx, r[j]);
  mx = block_reduce(mx, Max{}, fm);
  float sum = 0.f;
  for (int j = lo + threadIdx.x; j < valid; j += blockDim.x) {
    const float e = expf(r[j] - mx);
    r[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, Sum{}, fs);
  const float inv = 1.f / sum;
  for (int j = threadIdx.x; j < len; j += blockDim.x) r[j] = j >= lo && j < valid ? r[j] * inv : 0.f;
}

// One warp a head vector (head_dim <= 32·8 handled by a strided loop).
__global__ void kv_quantize_kernel(float* x, int64_t n_rows, int head_dim, float maxq, float clip) {
  const int64_t row = blockIdx.x * int64_t{blockDim.x / 32} + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= n_rows) return;
  float* v = x + row * head_dim;
  float lo = 0.f, hi = 0.f;
  for (int j = lane; j < head_dim; j += 32) {
    lo = fminf(lo, v[j]);
    hi = fmaxf(hi, v[j]);
  }
  for (int o = 16; o > 0; o >>= 1) {
    lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, o));
    hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, o));
  }
  lo *= clip;
  hi *= clip;
  if (lo == 0.f && hi == 0.f) return;
  const float scale = __fdiv_rn(hi - lo, maxq);
  const float zero = rintf(__fdiv_rn(-lo, scale));
  for (int j = lane; j < head_dim; j += 32) {
    const float q = fminf(fmaxf(rintf(__fdiv_rn(v[j], scale)) + zero, 0.f), maxq);
    v[j] = scale * (q - zero);
  }
}

// One block a row; the groups of a row one after another.
__global__ void act_quant_dequant_kernel(const float* x, int d, int g, float maxq, float clip,
                                         float* y) {
  __shared__ float sm[32];
  const float* xr = x + blockIdx.x * int64_t{d};
  float* yr = y + blockIdx.x * int64_t{d};
  for (int g0 = 0; g0 < d; g0 += g) {
    float amax = 0.f;
    for (int j = g0 + threadIdx.x; j < g0 + g; j += blockDim.x) amax = fmaxf(amax, fabsf(xr[j]));
    amax = block_reduce(amax, Max{}, sm);
    float scale = __fdiv_rn(__fmul_rn(clip, amax), maxq);
    if (!(scale > 0.f)) scale = 1.f;
    for (int j = g0 + threadIdx.x; j < g0 + g; j += blockDim.x) {
      const float q = fminf(fmaxf(rintf(__fdiv_rn(xr[j], scale)), -maxq - 1.f), maxq);
      yr[j] = scale * q;
    }
  }
}

__global__ void add_kernel(float* h, const float* d, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    h[i] += d[i];
}

__global__ void add_bias_kernel(float* y, const float* b, int64_t n, int d) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n * d;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] += b[i % d];
}

__global__ void swiglu_kernel(float* g, const float* u, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float a = g[i];
    g[i] = a / (1.f + expf(-a)) * u[i];
  }
}

// One block a token.
__global__ void embed_kernel(const float* table, int dim, const int32_t* tokens, float* h) {
  const float* src = table + int64_t{tokens[blockIdx.x]} * dim;
  float* dst = h + blockIdx.x * int64_t{dim};
  for (int j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = src[j];
}

// One block a row.
__global__ void nll_kernel(const float* logits, int vocab, const int32_t* targets, double* out) {
  __shared__ float fm[32];
  __shared__ double ds[32];
  const float* l = logits + blockIdx.x * int64_t{vocab};
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, l[j]);
  mx = block_reduce(mx, Max{}, fm);
  double sum = 0.0;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(l[j] - mx);
  sum = block_reduce(sum, Sum{}, ds);
  if (threadIdx.x == 0) out[blockIdx.x] = log(sum) + mx - l[targets[blockIdx.x]];
}

// One block a segment of K values (K <= 8192, in shared memory): signs, then log2(K) butterfly
// levels, each a pass over K/2 pairs.
__global__ void signs_walsh_kernel(float* x, int K, const float* signs, int m) {
  extern __shared__ float seg[];
  float* xs = x + blockIdx.x * int64_t{K};
  const float* sg = signs ? signs + int64_t{blockIdx.x % m} * K : nullptr;
  for (int j = threadIdx.x; j < K; j += blockDim.x) seg[j] = sg ? xs[j] * sg[j] : xs[j];
  __syncthreads();
  for (int h = 1; h < K; h *= 2) {
    for (int p = threadIdx.x; p < K / 2; p += blockDim.x) {
      const int i = (p / h) * 2 * h + p % h;
      const float a = seg[i], b = seg[i + h];
      seg[i] = a + b;
      seg[i + h] = a - b;
    }
    __syncthreads();
  }
  for (int j = threadIdx.x; j < K; j += blockDim.x) xs[j] = seg[j];
}

}  // namespace

void f32_to_f16(const float* x, int64_t rows, int cols, int64_t ldx, uint16_t* y, int64_t ldy,
                Stream s) {
  if (rows * cols == 0) return;
  f32_to_f16_kernel<<<grid_for(rows * cols), kBlock, 0, s>>>(x, rows, cols, ldx,
                                                             reinterpret_cast<__half*>(y), ldy);
  check_launch("f32_to_f16");
}

void f16_to_f32(const uint16_t* x, int64_t rows, int cols, int64_t ldx, float* y, int64_t ldy,
                Stream s) {
  if (rows * cols == 0) return;
  f16_to_f32_kernel<<<grid_for(rows * cols), kBlock, 0, s>>>(reinterpret_cast<const __half*>(x),
                                                             rows, cols, ldx, y, ldy);
  check_launch("f16_to_f32");
}

void weights_to_f16(const float* w, int64_t n, uint16_t* y, Stream s) {
  if (n == 0) return;
  weights_to_f16_kernel<<<grid_for(n), kBlock, 0, s>>>(w, n, reinterpret_cast<__half*>(y));
  check_launch("weights_to_f16");
}

void rmsnorm(const float* x, const float* w, int64_t n, int d, float eps, float* y, Stream s) {
  if (n == 0) return;
  rmsnorm_kernel<<<static_cast<unsigned>(n), kBlock, 0, s>>>(x, w, d, eps, y);
  check_launch("rmsnorm");
}

void rope_table(float theta, int head_dim, int n_pos, float* cos, float* sin, Stream s) {
  rope_table_kernel<<<grid_for(int64_t{n_pos} * (head_dim / 2)), kBlock, 0, s>>>(theta, head_dim,
                                                                                 n_pos, cos, sin);
  check_launch("rope_table");
}

void rope(float* x, int64_t n_rows, int n_heads, int head_dim, bool interleaved, const float* cos,
          const float* sin, int pos_base, int period, int first, Stream s) {
  const int64_t n = n_rows * n_heads * (head_dim / 2);
  if (n == 0) return;
  const int step = interleaved ? 2 : 1, off = interleaved ? 1 : head_dim / 2;
  rope_kernel<<<grid_for(n), kBlock, 0, s>>>(x, n_rows, n_heads, head_dim, step, off, cos, sin,
                                             pos_base, period, first);
  check_launch("rope");
}

void causal_softmax(float* scores, int64_t n_rows, int rows_per_head, int len, int first_valid,
                    int window, Stream s) {
  if (n_rows == 0) return;
  causal_softmax_kernel<<<static_cast<unsigned>(n_rows), 128, 0, s>>>(scores, rows_per_head, len,
                                                                      first_valid, window);
  check_launch("causal_softmax");
}

void kv_quantize(float* x, int64_t n_rows, int head_dim, int bits, float clip, Stream s) {
  if (n_rows == 0) return;
  const float maxq = static_cast<float>((1 << bits) - 1);
  constexpr int kWarps = 8;
  kv_quantize_kernel<<<static_cast<unsigned>((n_rows + kWarps - 1) / kWarps), kWarps * 32, 0, s>>>(
      x, n_rows, head_dim, maxq, clip);
  check_launch("kv_quantize");
}

void act_quant_dequant(const float* x, int64_t n, int d, int bits, float clip, int groupsize,
                       float* y, Stream s) {
  if (n == 0) return;
  const float maxq = static_cast<float>((1 << (bits - 1)) - 1);
  act_quant_dequant_kernel<<<static_cast<unsigned>(n), kBlock, 0, s>>>(
      x, d, groupsize > 0 ? groupsize : d, maxq, clip, y);
  check_launch("act_quant_dequant");
}

void add(float* h, const float* d, int64_t n, Stream s) {
  if (n == 0) return;
  add_kernel<<<grid_for(n), kBlock, 0, s>>>(h, d, n);
  check_launch("add");
}

void add_bias(float* y, const float* b, int64_t n, int d, Stream s) {
  if (n == 0 || d == 0) return;
  add_bias_kernel<<<grid_for(n * d), kBlock, 0, s>>>(y, b, n, d);
  check_launch("add_bias");
}

void swiglu(float* g, const float* u, int64_t n, Stream s) {
  if (n == 0) return;
  swiglu_kernel<<<grid_for(n), kBlock, 0, s>>>(g, u, n);
  check_launch("swiglu");
}

void embed(const float* table, int dim, const int32_t* tokens, int64_t n, float* h, Stream s) {
  if (n == 0) return;
  embed_kernel<<<static_cast<unsigned>(n), 128, 0, s>>>(table, dim, tokens, h);
  check_launch("embed");
}

void nll_rows(const float* logits, int64_t n, int vocab, const int32_t* targets, double* out,
              Stream s) {
  if (n == 0) return;
  nll_kernel<<<static_cast<unsigned>(n), kBlock, 0, s>>>(logits, vocab, targets, out);
  check_launch("nll_rows");
}

void signs_walsh(float* x, int64_t n_rows, int m, int K, const float* signs, Stream s) {
  if (n_rows == 0) return;
  if (K > 8192 || (K & (K - 1)) != 0)
    fail("cuda online transform",
         "Walsh length " + std::to_string(K) + " is not a power of two <= 8192");
  const int threads = K / 2 < kBlock ? (K / 2 < 32 ? 32 : K / 2) : kBlock;
  signs_walsh_kernel<<<static_cast<unsigned>(n_rows * m), threads, K * sizeof(float), s>>>(
      x, K, signs, m);
  check_launch("signs_walsh");
}

}  // namespace lrc::cuda::ops
