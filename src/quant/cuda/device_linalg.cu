// Device buffers, the Gpu context (cuBLAS / cuSOLVER wrappers) and the small kernels of the
// CUDA SolverBackend. Built with --fmad=false: the element-wise kernels round every product and
// sum as the CPU code does (Q_a and the GPTQ sweep then follow the CPU's arithmetic step for
// step; only cuBLAS/cuSOLVER's own reductions differ in order).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/core/scope_profile.h"
#include "lrc/quant/damping.h"
#include "quant/cuda/device_linalg.cuh"

namespace lrc {
namespace qcuda {

namespace {
std::atomic<int64_t> g_now{0}, g_peak{0};
constexpr int kThreads = 256;
inline unsigned blocks_for(size_t n) {
  return static_cast<unsigned>(std::min<size_t>((n + kThreads - 1) / kThreads, 65535u * 16));
}
}  // namespace

void cuda_fail(const char* call, const std::string& why) {
  throw Error(std::string("cuda: ") + call + ": " + why);
}
void check(cudaError_t e, const char* call) {
  if (e != cudaSuccess) cuda_fail(call, cudaGetErrorString(e));
}
void check(cublasStatus_t s, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS) cuda_fail(call, cublasGetStatusString(s));
}
void check(cusolverStatus_t s, const char* call) {
  if (s != CUSOLVER_STATUS_SUCCESS) cuda_fail(call, "cuSOLVER status " + std::to_string(s));
}

int64_t device_bytes_now() { return g_now.load(); }
int64_t device_bytes_peak() { return g_peak.load(); }

DeviceBuffer::DeviceBuffer(size_t bytes, cudaStream_t s) : bytes_(bytes), s_(s) {
  if (bytes == 0) return;
  const cudaError_t e = cudaMallocAsync(&p_, bytes, s);
  if (e != cudaSuccess) {
    cudaGetLastError();
    p_ = nullptr;
    cuda_fail("cudaMallocAsync", std::string(cudaGetErrorString(e)) + " (" +
                                     std::to_string(bytes >> 20) + " MiB; " +
                                     std::to_string(g_now.load() >> 20) + " MiB in use by lrc)");
  }
  const int64_t now = g_now += static_cast<int64_t>(bytes);
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (!p_) return;
  cudaFreeAsync(p_, s_);
  g_now -= static_cast<int64_t>(bytes_);
}

void DeviceBuffer::swap(DeviceBuffer& o) noexcept {
  std::swap(p_, o.p_);
  std::swap(bytes_, o.bytes_);
  std::swap(s_, o.s_);
}

// ---------------------------------------------------------------- kernels

namespace {

__global__ void k_widen(const float* src, double* dst, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    dst[i] = static_cast<double>(src[i]);
}
__global__ void k_narrow(const double* src, float* dst, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    dst[i] = static_cast<float>(src[i]);
}
__global__ void k_round_to_float(double* a, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    a[i] = static_cast<double>(static_cast<float>(a[i]));
}
__global__ void k_first_non_finite(const float* x, size_t n, unsigned long long* first) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    if (!isfinite(x[i])) atomicMin(first, static_cast<unsigned long long>(i));
}

// One block per (token, group): absmax, then codes. quantize_activation_row's float ops.
__global__ void k_quantize_activations(const float* x, int d, int g, int bits, float clip,
                                       float* y) {
  const int64_t row = blockIdx.x;
  const int g0 = blockIdx.y * g;
  const float* xr = x + row * d + g0;
  float* yr = y + row * d + g0;
  float m = 0.f;
  for (int j = threadIdx.x; j < g; j += blockDim.x) m = fmaxf(m, fabsf(xr[j]));
  __shared__ float red[kThreads];
  red[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
    __syncthreads();
  }
  const float maxq = static_cast<float>((1 << (bits - 1)) - 1);
  float scale = __fdiv_rn(__fmul_rn(clip, red[0]), maxq);
  if (!(scale > 0.f)) scale = 1.f;
  for (int j = threadIdx.x; j < g; j += blockDim.x) {
    const float q = rintf(__fdiv_rn(xr[j], scale));
    const float c = fminf(fmaxf(q, -maxq - 1.f), maxq);
    yr[j] = __fmul_rn(scale, static_cast<float>(static_cast<int>(c)));
  }
}

__global__ void k_accumulate(const float* c, double* acc, int n, bool lower_only) {
  const size_t nn = static_cast<size_t>(n) * n;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < nn;
       i += size_t{gridDim.x} * blockDim.x) {
    const size_t row = i % n, col = i / n;
    if (!lower_only || row >= col) acc[i] += static_cast<double>(c[i]);
  }
}

__global__ void k_symmetrize_lower(double* a, int n) {
  const size_t nn = static_cast<size_t>(n) * n;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < nn;
       i += size_t{gridDim.x} * blockDim.x) {
    const size_t row = i % n, col = i / n;
    if (row < col) a[i] = a[col + row * n];
  }
}

__global__ void k_add_diagonal(double* a, int n, double v) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    a[static_cast<size_t>(i) * n + i] += v;
}

__global__ void k_scale_columns(double* a, int rows, int cols, const double* scale) {
  const size_t n = static_cast<size_t>(rows) * cols;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    a[i] *= scale[i / rows];
}

__global__ void k_reverse_columns(const double* src, double* z, int n, int k) {
  const size_t len = static_cast<size_t>(n) * k;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < len;
       i += size_t{gridDim.x} * blockDim.x) {
    const size_t row = i % n, col = i / n;
    z[i] = src[row + (k - 1 - col) * static_cast<size_t>(n)];
  }
}

__global__ void k_permute_symmetric(const double* a, double* b, int n, const int* perm) {
  const size_t nn = static_cast<size_t>(n) * n;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < nn;
       i += size_t{gridDim.x} * blockDim.x) {
    const size_t row = i % n, col = i / n;
    b[i] = a[perm[row] + static_cast<size_t>(perm[col]) * n];
  }
}

__global__ void k_permute_columns(const double* w, double* out, int rows, int n,
                                  const int* perm) {
  const size_t len = static_cast<size_t>(rows) * n;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < len;
       i += size_t{gridDim.x} * blockDim.x) {
    const size_t r = i % rows, j = i / rows;
    out[i] = w[r + static_cast<size_t>(perm[j]) * rows];
  }
}

// out (d_out x n, column-major) = scale · (code − zero) in float, PackedWeight::dequantize's
// arithmetic (bit for bit under --fmad=false), from codes [d_out x n] row-major.
__global__ void k_dequantize_codes(const uint8_t* codes, const float* scales, const float* zeros,
                                   int d_out, int n, int ng, double* out) {
  const int gs = n / ng;
  const size_t len = static_cast<size_t>(d_out) * n;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < len;
       i += size_t{gridDim.x} * blockDim.x) {
    const size_t r = i % d_out, j = i / d_out;
    const size_t gi = r * ng + j / gs;
    out[i] = static_cast<double>(scales[gi] * (static_cast<float>(codes[r * n + j]) - zeros[gi]));
  }
}

__global__ void k_dead_columns(double* h, double* w, int d_out, int n) {
  const int j = blockIdx.x;
  if (h[static_cast<size_t>(j) * n + j] != 0.0) return;
  __syncthreads();
  for (int r = threadIdx.x; r < d_out; r += blockDim.x) w[r + static_cast<size_t>(j) * d_out] = 0.0;
  if (threadIdx.x == 0) h[static_cast<size_t>(j) * n + j] = 1.0;
}

// ---- weight grids: weight_quant.cpp's arithmetic (quantize_weight_code, grid_for_clip,
// choose_params), for values w[0], w[stride], ...

__device__ int quant_code(double w, float scale, float zero, int maxq) {
  const double q = rint(w / static_cast<double>(scale)) + static_cast<double>(zero);
  return static_cast<int>(fmin(fmax(q, 0.0), static_cast<double>(maxq)));
}
__device__ double dequant_code(int code, float scale, float zero) {
  return static_cast<double>(scale) * (code - static_cast<double>(zero));
}

__device__ void grid_for_clip(double lo, double hi, double p, const GridSpec& spec, float* scale,
                              float* zero) {
  const int maxq = (1 << spec.bits) - 1;
  float s, z;
  if (spec.symmetric) {
    const double amax = p * fmax(-lo, hi);
    const double half = static_cast<double>((1 << (spec.bits - 1)) - 1);
    z = static_cast<float>(1 << (spec.bits - 1));
    s = static_cast<float>(amax / half);
  } else {
    s = static_cast<float>(p * (hi - lo) / maxq);
    z = 0.f;
    if (s > 0.f && isfinite(s))
      z = static_cast<float>(
          fmin(fmax(rint(-p * lo / static_cast<double>(s)), 0.0), static_cast<double>(maxq)));
  }
  if (!(s > 0.f) || !isfinite(s)) s = 1.f;
  *scale = s;
  *zero = z;
}

__device__ void choose_params(const double* w, size_t stride, int n, const GridSpec& spec,
                              float* scale, float* zero) {
  double lo = 0.0, hi = 0.0;
  for (int i = 0; i < n; ++i) {
    lo = fmin(lo, w[i * stride]);
    hi = fmax(hi, w[i * stride]);
  }
  grid_for_clip(lo, hi, 1.0, spec, scale, zero);
  if (!spec.mse_clip) return;
  const int maxq = (1 << spec.bits) - 1;
  double best_err = INFINITY;
  for (int s = 0; s < 31; ++s) {
    float gs, gz;
    grid_for_clip(lo, hi, 1.0 - 0.01 * s, spec, &gs, &gz);
    double err = 0.0;
    for (int i = 0; i < n && err < best_err; ++i) {
      const double x = w[i * stride];
      const double e = x - dequant_code(quant_code(x, gs, gz, maxq), gs, gz);
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      *scale = gs;
      *zero = gz;
    }
  }
}

// Static grids (choose_params for every row and group), 32 rows a block: the lanes read 32
// consecutive rows of the column-major W (coalesced), the kGridStripes warps split the group's
// columns, and every clip candidate's squared error is summed in the same pass (one read of W,
// not one per candidate). The CPU's early exit only stops sums that have already lost, so the
// choice is the CPU's up to the order of the additions (per stripe, then the stripes in order).
constexpr int kGridRows = 32, kGridStripes = 8, kClipCandidates = 31;

__global__ void k_static_grids(const double* W, int d_out, int n, GridSpec spec, float* scales,
                               float* zeros) {
  __shared__ double s_a[kGridStripes][kGridRows], s_b[kGridStripes][kGridRows];
  __shared__ float s_scale[kClipCandidates][kGridRows], s_zero[kClipCandidates][kGridRows];
  const int ng = spec.groupsize > 0 ? n / spec.groupsize : 1;
  const int gs = n / ng;
  const int lane = threadIdx.x, stripe = threadIdx.y, g = blockIdx.y;
  const int r = blockIdx.x * kGridRows + lane;
  const bool live = r < d_out;
  const double* w = W + (live ? r : 0) + static_cast<size_t>(g) * gs * d_out;
  const size_t ld = d_out;
  double lo = 0.0, hi = 0.0;  // the range always includes 0
  if (live)
    for (int i = stripe; i < gs; i += kGridStripes) {
      lo = fmin(lo, w[i * ld]);
      hi = fmax(hi, w[i * ld]);
    }
  s_a[stripe][lane] = lo;
  s_b[stripe][lane] = hi;
  __syncthreads();
  for (int k = 0; k < kGridStripes; ++k) {
    lo = fmin(lo, s_a[k][lane]);
    hi = fmax(hi, s_b[k][lane]);
  }
  const size_t out = static_cast<size_t>(live ? r : 0) * ng + g;
  if (!spec.mse_clip) {
    if (live && stripe == 0) grid_for_clip(lo, hi, 1.0, spec, scales + out, zeros + out);
    return;
  }
  for (int s = stripe; s < kClipCandidates; s += kGridStripes)
    grid_for_clip(lo, hi, 1.0 - 0.01 * s, spec, &s_scale[s][lane], &s_zero[s][lane]);
  __syncthreads();
  const int maxq = (1 << spec.bits) - 1;
  double err[kClipCandidates];
#pragma unroll
  for (int s = 0; s < kClipCandidates; ++s) err[s] = 0.0;
  if (live)
    for (int i = stripe; i < gs; i += kGridStripes) {
      const double x = w[i * ld];
#pragma unroll
      for (int s = 0; s < kClipCandidates; ++s) {
        const float sc = s_scale[s][lane], zr = s_zero[s][lane];
        const double e = x - dequant_code(quant_code(x, sc, zr, maxq), sc, zr);
        err[s] += e * e;
      }
    }
  // The first candidate with the smallest error (the CPU's strict <), stripe sums in order.
  int best = 0;
  double best_err = INFINITY;
#pragma unroll
  for (int s = 0; s < kClipCandidates; ++s) {
    __syncthreads();  // the previous candidate's sums are read
    s_a[stripe][lane] = err[s];
    __syncthreads();
    double total = 0.0;
    for (int k = 0; k < kGridStripes; ++k) total += s_a[k][lane];
    if (total < best_err) {
      best_err = total;
      best = s;
    }
  }
  if (live && stripe == 0) {
    scales[out] = s_scale[best][lane];
    zeros[out] = s_zero[best][lane];
  }
}

// gptq.cpp's per-row sweep of one block, one thread a row.
__global__ void k_gptq_block(double* W, int d_out, int n, const double* R, int i1, int i2,
                             const int* perm, GridSpec spec, bool static_grids, float* scales,
                             float* zeros, uint8_t* codes, double* err) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= d_out) return;
  const int ng = spec.groupsize > 0 ? n / spec.groupsize : 1;
  const int gs = n / ng;
  const int maxq = (1 << spec.bits) - 1;
  const size_t ld = d_out;
  for (int i = 0; i < i2 - i1; ++i) {
    const int j = i1 + i;
    const int col = perm ? perm[j] : j;
    const int g = col / gs;
    float* sc = scales + static_cast<size_t>(r) * ng + g;
    float* zr = zeros + static_cast<size_t>(r) * ng + g;
    if (!static_grids && col % gs == 0) choose_params(W + r + j * ld, ld, gs, spec, sc, zr);
    const double wj = W[r + j * ld];
    const int code = quant_code(wj, *sc, *zr, maxq);
    codes[static_cast<size_t>(r) * n + col] = static_cast<uint8_t>(code);
    const double* Rj = R + j;  // R(j, jj) = Rj[jj * n]
    const double e = (wj - dequant_code(code, *sc, *zr)) / Rj[static_cast<size_t>(j) * n];
    err[r + static_cast<size_t>(i) * ld] = e;
    for (int jj = j + 1; jj < i2; ++jj) W[r + jj * ld] -= e * Rj[static_cast<size_t>(jj) * n];
  }
}

}  // namespace

void widen(const float* src, double* dst, size_t n, cudaStream_t s) {
  if (n) k_widen<<<blocks_for(n), kThreads, 0, s>>>(src, dst, n);
  LRC_CU(cudaGetLastError());
}
void narrow(const double* src, float* dst, size_t n, cudaStream_t s) {
  if (n) k_narrow<<<blocks_for(n), kThreads, 0, s>>>(src, dst, n);
  LRC_CU(cudaGetLastError());
}
void round_to_float(double* a, size_t n, cudaStream_t s) {
  if (n) k_round_to_float<<<blocks_for(n), kThreads, 0, s>>>(a, n);
  LRC_CU(cudaGetLastError());
}
int64_t first_non_finite(const float* x, size_t n, cudaStream_t s) {
  if (!n) return -1;
  DeviceArray<unsigned long long> first(1, s);
  const unsigned long long none = ~0ull;
  LRC_CU(cudaMemcpyAsync(first.data(), &none, sizeof none, cudaMemcpyHostToDevice, s));
  k_first_non_finite<<<blocks_for(n), kThreads, 0, s>>>(x, n, first.data());
  LRC_CU(cudaGetLastError());
  unsigned long long h = 0;
  LRC_CU(cudaMemcpyAsync(&h, first.data(), sizeof h, cudaMemcpyDeviceToHost, s));
  LRC_CU(cudaStreamSynchronize(s));
  return h == none ? -1 : static_cast<int64_t>(h);
}
void quantize_activations(const float* x, int64_t n, int d, int bits, float clip, int groupsize,
                          float* y, cudaStream_t s) {
  const int g = groupsize > 0 ? groupsize : d;
  if (n <= 0) return;
  dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(d / g));
  k_quantize_activations<<<grid, kThreads, 0, s>>>(x, d, g, bits, clip, y);
  LRC_CU(cudaGetLastError());
}
void accumulate(const float* c, double* acc, int n, bool lower_only, cudaStream_t s) {
  k_accumulate<<<blocks_for(size_t(n) * n), kThreads, 0, s>>>(c, acc, n, lower_only);
  LRC_CU(cudaGetLastError());
}
void scale_columns(double* A, int rows, int cols, const double* scale, cudaStream_t s) {
  if (rows > 0 && cols > 0)
    k_scale_columns<<<blocks_for(size_t(rows) * cols), kThreads, 0, s>>>(A, rows, cols, scale);
  LRC_CU(cudaGetLastError());
}
void reverse_columns(const double* src, double* z, int n, int k, cudaStream_t s) {
  if (n > 0 && k > 0)
    k_reverse_columns<<<blocks_for(size_t(n) * k), kThreads, 0, s>>>(src, z, n, k);
  LRC_CU(cudaGetLastError());
}
void permute_symmetric(const double* A, double* B, int n, const int* perm, cudaStream_t s) {
  k_permute_symmetric<<<blocks_for(size_t(n) * n), kThreads, 0, s>>>(A, B, n, perm);
  LRC_CU(cudaGetLastError());
}
void permute_columns(const double* W, double* out, int rows, int n, const int* perm,
                     cudaStream_t s) {
  k_permute_columns<<<blocks_for(size_t(rows) * n), kThreads, 0, s>>>(W, out, rows, n, perm);
  LRC_CU(cudaGetLastError());
}
void dequantize_codes(const uint8_t* codes, const float* scales, const float* zeros, int d_out,
                      int n, int ng, double* out, cudaStream_t s) {
  if (d_out > 0 && n > 0)
    k_dequantize_codes<<<blocks_for(size_t(d_out) * n), kThreads, 0, s>>>(codes, scales, zeros,
                                                                          d_out, n, ng, out);
  LRC_CU(cudaGetLastError());
}
void gptq_dead_columns(double* H, double* W, int d_out, int n, cudaStream_t s) {
  k_dead_columns<<<n, kThreads, 0, s>>>(H, W, d_out, n);
  LRC_CU(cudaGetLastError());
}
void gptq_static_grids(const double* W, int d_out, int n, const GridSpec& g, float* scales,
                       float* zeros, cudaStream_t s) {
  const int ng = g.groupsize > 0 ? n / g.groupsize : 1;
  if (d_out <= 0) return;
  const dim3 grid(static_cast<unsigned>((d_out + kGridRows - 1) / kGridRows),
                  static_cast<unsigned>(ng));
  k_static_grids<<<grid, dim3(kGridRows, kGridStripes), 0, s>>>(W, d_out, n, g, scales, zeros);
  LRC_CU(cudaGetLastError());
}
void gptq_block(double* W, int d_out, int n, const double* R, int i1, int i2, const int* perm,
                const GridSpec& g, bool static_grids, float* scales, float* zeros,
                uint8_t* codes, double* err, cudaStream_t s) {
  // One warp a block: a row a thread, and d_out / 32 blocks spread over every SM (64-thread
  // blocks left half of an H100's 132 idle at d_out = 4096).
  k_gptq_block<<<(d_out + 31) / 32, 32, 0, s>>>(W, d_out, n, R, i1, i2, perm, g, static_grids,
                                                scales, zeros, codes, err);
  LRC_CU(cudaGetLastError());
}

// ---------------------------------------------------------------- Prof

Prof::Prof(const Gpu& g, const char* name)
    : scope_(
          name,
          [](const void* gpu) { cudaStreamSynchronize(static_cast<const Gpu*>(gpu)->stream()); },
          &g) {}

// ---------------------------------------------------------------- Gpu

Gpu::Gpu(int device) : device_(device) {
  LRC_CU(cudaSetDevice(device));
  cudaDeviceProp prop{};
  LRC_CU(cudaGetDeviceProperties(&prop, device));
  name_ = "cuda:" + std::to_string(device) + " (" + prop.name + ")";
  LRC_CU(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  // Keep freed blocks in the stream-ordered pool (no return to the driver at each sync).
  cudaMemPool_t pool;
  LRC_CU(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t threshold = UINT64_MAX;
  LRC_CU(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  LRC_CU(cublasCreate(&blas_));
  LRC_CU(cublasSetStream(blas_, stream_));
  // FP64 products are IEEE (DMMA); fp32 ones (--stats-precision mixed) stay fp32: no TF32.
  LRC_CU(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
  LRC_CU(cusolverDnCreate(&solver_));
  LRC_CU(cusolverDnSetStream(solver_, stream_));
  info_ = DeviceArray<int>(1, stream_);
}

Gpu::~Gpu() {
  work_ = DeviceArray<double>();
  info_ = DeviceArray<int>();
  if (stream_) cudaStreamSynchronize(stream_);
  if (solver_) cusolverDnDestroy(solver_);
  if (blas_) cublasDestroy(blas_);
  if (stream_) cudaStreamDestroy(stream_);
}

void Gpu::sync() const { LRC_CU(cudaStreamSynchronize(stream_)); }

double* Gpu::scratch(size_t n) const {
  if (work_.size() < n) {
    work_ = DeviceArray<double>();
    work_ = DeviceArray<double>(n, stream_);
  }
  return work_.data();
}

int Gpu::read_info() const {
  int h = 0;
  LRC_CU(cudaMemcpyAsync(&h, info_.data(), sizeof h, cudaMemcpyDeviceToHost, stream_));
  sync();
  return h;
}

DeviceMatrix Gpu::copy(const DeviceMatrix& m) const {
  DeviceMatrix c = matrix(m.rows, m.cols);
  LRC_CU(cudaMemcpyAsync(c.data(), m.data(), m.size() * sizeof(double), cudaMemcpyDeviceToDevice,
                         stream_));
  return c;
}

DeviceMatrix Gpu::transpose(const DeviceMatrix& A) const {
  DeviceMatrix B = matrix(A.cols, A.rows);
  const double one = 1.0, zero = 0.0;
  if (A.size())
    LRC_CU(cublasDgeam(blas_, CUBLAS_OP_T, CUBLAS_OP_N, A.cols, A.rows, &one, A.data(), A.rows,
                       &zero, B.data(), A.cols, B.data(), A.cols));
  return B;
}

DeviceMatrix Gpu::upload(const float* A, int r, int c) const {
  const Prof prof(*this, "upload");
  const size_t n = static_cast<size_t>(r) * c;
  DeviceArray<float> f(n, stream_);
  LRC_CU(cudaMemcpyAsync(f.data(), A, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  DeviceMatrix t = matrix(c, r);  // row-major A = column-major Aᵀ
  widen(f.data(), t.data(), n, stream_);
  return transpose(t);
}

DeviceMatrix Gpu::upload(const double* A, int r, int c) const {
  const Prof prof(*this, "upload");
  const size_t n = static_cast<size_t>(r) * c;
  DeviceMatrix t = matrix(c, r);
  LRC_CU(cudaMemcpyAsync(t.data(), A, n * sizeof(double), cudaMemcpyHostToDevice, stream_));
  return transpose(t);
}

std::vector<double> Gpu::download(const DeviceMatrix& A) const {
  const Prof prof(*this, "download");
  const DeviceMatrix t = transpose(A);  // column-major Aᵀ = row-major A
  std::vector<double> h(t.size());
  LRC_CU(cudaMemcpyAsync(h.data(), t.data(), h.size() * sizeof(double), cudaMemcpyDeviceToHost,
                         stream_));
  sync();
  return h;
}

std::vector<float> Gpu::download_float(const DeviceMatrix& A) const {
  const Prof prof(*this, "download");
  const DeviceMatrix t = transpose(A);
  DeviceArray<float> f(t.size(), stream_);
  narrow(t.data(), f.data(), t.size(), stream_);
  std::vector<float> h(t.size());
  LRC_CU(cudaMemcpyAsync(h.data(), f.data(), h.size() * sizeof(float), cudaMemcpyDeviceToHost,
                         stream_));
  sync();
  return h;
}

std::vector<double> Gpu::diagonal(const DeviceMatrix& A) const {
  const int n = std::min(A.rows, A.cols);
  std::vector<double> h(n);
  if (n == 0) return h;
  LRC_CU(cudaMemcpy2DAsync(h.data(), sizeof(double), A.data(),
                           (static_cast<size_t>(A.rows) + 1) * sizeof(double), sizeof(double), n,
                           cudaMemcpyDeviceToHost, stream_));
  sync();
  return h;
}

void Gpu::add_diagonal(DeviceMatrix& A, double v) const {
  k_add_diagonal<<<blocks_for(A.rows), kThreads, 0, stream_>>>(A.data(), A.rows, v);
  LRC_CU(cudaGetLastError());
}

DeviceMatrix Gpu::reversed(const DeviceMatrix& A) const {
  const int n = A.rows;
  DeviceMatrix B = matrix(n, n);
  if (n == 0) return B;
  std::vector<int> rev(n);
  for (int i = 0; i < n; ++i) rev[i] = n - 1 - i;
  DeviceArray<int> perm(n, stream_);
  LRC_CU(cudaMemcpyAsync(perm.data(), rev.data(), n * sizeof(int), cudaMemcpyHostToDevice,
                         stream_));
  permute_symmetric(A.data(), B.data(), n, perm.data(), stream_);
  return B;
}

void Gpu::trtri_lower(DeviceMatrix& L, const char* where) const {
  const Prof prof(*this, "trtri");
  const int n = L.rows;
  size_t dev_bytes = 0, host_bytes = 0;
  LRC_CU(cusolverDnXtrtri_bufferSize(solver_, CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, n,
                                     CUDA_R_64F, L.data(), n, &dev_bytes, &host_bytes));
  std::vector<char> host(std::max<size_t>(host_bytes, 1));
  LRC_CU(cusolverDnXtrtri(solver_, CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, n, CUDA_R_64F,
                          L.data(), n, scratch(std::max<size_t>(dev_bytes / sizeof(double) + 1, 1)),
                          dev_bytes, host.data(), host_bytes, info_.data()));
  const int info = read_info();
  if (info != 0) fail(where, "trtri failed (info " + std::to_string(info) + ")");
}

void Gpu::symmetrize_lower(DeviceMatrix& A) const {
  k_symmetrize_lower<<<blocks_for(A.size()), kThreads, 0, stream_>>>(A.data(), A.rows);
  LRC_CU(cudaGetLastError());
}

double Gpu::dot(const DeviceMatrix& A, const DeviceMatrix& B) const {
  double r = 0;
  if (!A.size()) return 0;
  LRC_CU(cublasSetPointerMode(blas_, CUBLAS_POINTER_MODE_HOST));
  LRC_CU(cublasDdot(blas_, static_cast<int>(A.size()), A.data(), 1, B.data(), 1, &r));
  return r;
}

void Gpu::potrf(DeviceMatrix& A, cublasFillMode_t uplo, const char* where, const char* what,
                int* info_out) const {
  const Prof prof(*this, "potrf");
  const int n = A.rows;
  int lwork = 0;
  LRC_CU(cusolverDnDpotrf_bufferSize(solver_, uplo, n, A.data(), n, &lwork));
  LRC_CU(cusolverDnDpotrf(solver_, uplo, n, A.data(), n, scratch(std::max(lwork, 1)), lwork,
                          info_.data()));
  const int info = read_info();
  if (info_out) {
    *info_out = info;
    return;
  }
  if (info > 0)  // retried with more damping by the solvers (damping.h)
    throw FactorizationFailed(std::string(where) + ": " + what +
                              " is not positive definite (Cholesky failed at leading minor " +
                              std::to_string(info) + " of " + std::to_string(n) +
                              "); increase the regularisation");
  if (info < 0) fail(where, std::string(what) + ": potrf argument " + std::to_string(-info));
}

void Gpu::potrs(const DeviceMatrix& L, DeviceMatrix& B) const {
  const Prof prof(*this, "potrs");
  LRC_CU(cusolverDnDpotrs(solver_, CUBLAS_FILL_MODE_LOWER, L.rows, B.cols, L.data(), L.rows,
                          B.data(), B.rows, info_.data()));
  const int info = read_info();
  if (info != 0) fail("cholesky_solve", "potrs argument " + std::to_string(-info));
}

void Gpu::top_eigenpairs(DeviceMatrix& G, int k, DeviceMatrix& z,
                         std::vector<double>& lambda) const {
  const Prof prof(*this, "syevdx (top k)");
  const int n = G.rows;
  z = matrix(n, k);
  lambda.assign(k, 0.0);
  if (k == 0) return;
  DeviceArray<double> w(n, stream_);
  int meig = 0, lwork = 0;
  LRC_CU(cusolverDnDsyevdx_bufferSize(solver_, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                      CUBLAS_FILL_MODE_LOWER, n, G.data(), n, 0.0, 0.0, n - k + 1,
                                      n, &meig, w.data(), &lwork));
  LRC_CU(cusolverDnDsyevdx(solver_, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                           CUBLAS_FILL_MODE_LOWER, n, G.data(), n, 0.0, 0.0, n - k + 1, n, &meig,
                           w.data(), scratch(std::max(lwork, 1)), lwork, info_.data()));
  const int info = read_info();
  if (info != 0 || meig != k)  // retried with more damping by the LRC solver (damping.h)
    throw FactorizationFailed("top eigenvectors: syevdx failed (info " + std::to_string(info) +
                              ", found " + std::to_string(meig) + " of " + std::to_string(k) +
                              ")");
  std::vector<double> asc(k);
  LRC_CU(cudaMemcpyAsync(asc.data(), w.data(), k * sizeof(double), cudaMemcpyDeviceToHost,
                         stream_));
  reverse_columns(G.data(), z.data(), n, k, stream_);  // ascending -> descending
  sync();
  for (int j = 0; j < k; ++j) lambda[j] = asc[k - 1 - j];
}

std::vector<double> Gpu::eigen_all(DeviceMatrix& G) const {
  const Prof prof(*this, "syevd (all)");
  const int n = G.rows;
  DeviceArray<double> w(n, stream_);
  int lwork = 0;
  LRC_CU(cusolverDnDsyevd_bufferSize(solver_, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n,
                                     G.data(), n, w.data(), &lwork));
  LRC_CU(cusolverDnDsyevd(solver_, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, G.data(),
                          n, w.data(), scratch(std::max(lwork, 1)), lwork, info_.data()));
  const int info = read_info();
  if (info != 0)
    throw FactorizationFailed("eigendecomposition: syevd failed (info " + std::to_string(info) +
                              ")");
  std::vector<double> h(n);
  LRC_CU(cudaMemcpyAsync(h.data(), w.data(), n * sizeof(double), cudaMemcpyDeviceToHost,
                         stream_));
  sync();
  return h;
}

std::vector<double> Gpu::qr_q(DeviceMatrix& A) const {
  const Prof prof(*this, "qr");
  const int m = A.rows, n = A.cols;
  DeviceArray<double> tau(n, stream_);
  int lw1 = 0, lw2 = 0;
  LRC_CU(cusolverDnDgeqrf_bufferSize(solver_, m, n, A.data(), m, &lw1));
  LRC_CU(cusolverDnDgeqrf(solver_, m, n, A.data(), m, tau.data(), scratch(std::max(lw1, 1)), lw1,
                          info_.data()));
  int info = read_info();
  if (info != 0) fail("top eigenvectors", "geqrf failed (info " + std::to_string(info) + ")");
  std::vector<double> rdiag = diagonal(A);
  LRC_CU(cusolverDnDorgqr_bufferSize(solver_, m, n, n, A.data(), m, tau.data(), &lw2));
  LRC_CU(cusolverDnDorgqr(solver_, m, n, n, A.data(), m, tau.data(), scratch(std::max(lw2, 1)),
                          lw2, info_.data()));
  info = read_info();
  if (info != 0) fail("top eigenvectors", "orgqr failed (info " + std::to_string(info) + ")");
  return rdiag;
}

}  // namespace qcuda
}  // namespace lrc
