// CUDA W4A4 + low-rank linear (see include/lrc/kernels/cuda/w4a4.h for the layout and math).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <type_traits>
#include <tuple>
#include <vector>
#include <string>

#include "lrc/core/error.h"
#include "lrc/kernels/cuda/w4a4.h"
#include "block_reduce.cuh"
#include "ops.h"

namespace lrc::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("cuda", std::string(what) + ": " + cudaGetErrorString(e));
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail("cublas", std::string(what) + ": status " + std::to_string(static_cast<int>(s)));
}
#define LRC_CK(call) check((call), #call)

constexpr int kThreads = 256;

__device__ __forceinline__ int quant_code(float x, float scale) {
  // IEEE division and round-half-even, as lrc::quantize_activation_row (nearbyint).
  return static_cast<int>(fminf(fmaxf(rintf(__fdiv_rn(x, scale)), -8.f), 7.f));
}

__device__ __forceinline__ uint8_t code_byte(int q, bool e4m3) {
  if (!e4m3) return static_cast<uint8_t>(static_cast<int8_t>(q));
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(static_cast<float>(q), __NV_SATFINITE, __NV_E4M3));
}

// Input element loads for the activation kernel: fp16 or fp32 x.
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(float v) { return v; }
// Elements 8g .. 8g+7 of a 16-byte aligned row, as floats.
__device__ __forceinline__ void load8(const __half* row, int g, float (&f)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(row) + g);
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}
__device__ __forceinline__ void load8(const float* row, int g, float (&f)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(row) + 2 * g);
  const float4 b = __ldg(reinterpret_cast<const float4*>(row) + 2 * g + 1);
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

// x [m x k] (fp16 or fp32) -> codes [m x k_pad], s_x [m], code_sum [m]. One block a token; the
// row is read twice (absmax, then codes), the second time from L1/L2. vec8: k % 8 == 0 and the
// rows 16-byte aligned (16- or 32-byte loads).
// s_x_rep (optional) [rep_blocks x m]: s_x repeated per 128-column block (cuBLASLt VEC128 scales,
// token index contiguous).
template <typename T, bool kVec8>
__global__ void __launch_bounds__(1024) act_quant_kernel(const T* __restrict__ x, int k,
                                                         int k_pad, float clip, bool e4m3,
                                                         uint8_t* __restrict__ codes,
                                                         float* __restrict__ s_x,
                                                         int* __restrict__ code_sum,
                                                         float* __restrict__ s_x_rep,
                                                         int rep_blocks, int m) {
  __shared__ float fsm[32];
  __shared__ int ism[32];
  // Programmatic dependent launch: the decode GEMV may start now and stream its weights while
  // this kernel runs; it waits (griddepcontrol.wait) before reading what this kernel writes.
  asm volatile("griddepcontrol.launch_dependents;");
  const size_t row = blockIdx.x;
  const T* xr = x + row * k;
  uint8_t* cr = codes + row * k_pad;
  float amax = 0.f;
  if constexpr (kVec8) {
    for (int g = threadIdx.x; g < k / 8; g += blockDim.x) {
      float f[8];
      load8(xr, g, f);
#pragma unroll
      for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(f[i]));
    }
  } else {
    for (int j = threadIdx.x; j < k; j += blockDim.x) amax = fmaxf(amax, fabsf(to_f32(xr[j])));
  }
  amax = block_reduce(amax, [](float a, float b) { return fmaxf(a, b); }, fsm);
  float scale = __fdiv_rn(__fmul_rn(clip, amax), 7.f);
  if (!(scale > 0.f)) scale = 1.f;
  int sum = 0;
  if constexpr (kVec8) {
    for (int g = threadIdx.x; g < k_pad / 8; g += blockDim.x) {
      uint2 out = make_uint2(0, 0);
      if (g < k / 8) {
        float f[8];
        load8(xr, g, f);
        uint8_t* ob = reinterpret_cast<uint8_t*>(&out);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int q = quant_code(f[i], scale);
          sum += q;
          ob[i] = code_byte(q, e4m3);
        }
      }
      reinterpret_cast<uint2*>(cr)[g] = out;
    }
  } else {
    for (int j = threadIdx.x; j < k_pad; j += blockDim.x) {
      int q = 0;
      if (j < k) q = quant_code(to_f32(xr[j]), scale);
      sum += q;
      cr[j] = code_byte(q, e4m3);
    }
  }
  sum = block_reduce(sum, [](int a, int b) { return a + b; }, ism);
  if (threadIdx.x == 0) {
    s_x[row] = scale;
    code_sum[row] = sum;
  }
  if (s_x_rep != nullptr)
    for (int b = threadIdx.x; b < rep_blocks; b += blockDim.x) s_x_rep[static_cast<size_t>(b) * m + row] = scale;
}

// Output stores: fp16 (forward) or fp32 (forward_f32).
__device__ __forceinline__ void store_out(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_out(float* p, float v) { *p = v; }
__device__ __forceinline__ float load_out(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float load_out(const float* p) { return *p; }

// Decode GEMV on tensor cores (mma.sync m16n8k32, u8 weights x s8 activations -> s32: exact).
// Block = 8 warps on one tile of 16 output rows; warps split the k_pad/128 column groups; per
// group a warp loads 2 x 512 contiguous bytes (w_int4 layout, w4a4.h). Tokens form
// kNT n-tiles of 8 (m <= 8·kNT). acc = Σ code_w·a (offset codes); signed = acc - 8·Σa.
// The low-rank term U·t (t fp16 [m x r_pad]) runs on the same warps with mma m16n8k16 f16.
constexpr int kGemvWarps = 8;

__device__ __forceinline__ void mma_u8s8(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma_f16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                        uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int kNT, typename OutT>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_w4a4_kernel(
    const uint4* __restrict__ w, int kg, const int8_t* __restrict__ a, int k_pad,
    const float* __restrict__ s_x, const int* __restrict__ code_sum,
    const float* __restrict__ s_w, const __half* __restrict__ u, const __half* __restrict__ t,
    int r_pad, OutT* __restrict__ y, int ldy, float* __restrict__ raw, int mt, int n) {
  __shared__ int ism[kGemvWarps][16][8 * kNT];
  __shared__ float fsm[kGemvWarps][16][8 * kNT];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, tq = lane & 3;
  const int row0 = blockIdx.x * 16;
  int acc[kNT][4];
  float lr[kNT][4];
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      acc[nt][i] = 0;
      lr[nt][i] = 0.f;
    }
  // Tile-major layout: (tile, G) is 16 rows x 4 vectors = 64 uint4, lane (g, tq) reads row g.
  const uint4* w0 = w + static_cast<size_t>(blockIdx.x) * kg * 64 + g * 4 + tq;
  const uint4* w1 = w0 + 32;
  // Activation rows of this thread's tokens (B fragment column g of each n-tile).
  const int8_t* arow[kNT];
  bool tok_ok[kNT];
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
    tok_ok[nt] = nt * 8 + g < mt;
    arow[nt] = a + static_cast<size_t>(tok_ok[nt] ? nt * 8 + g : 0) * k_pad + 4 * tq;
  }
  constexpr int kU = 4;  // column groups in flight per warp
  bool waited = false;
  for (int G0 = warp; G0 < kg; G0 += kU * kGemvWarps) {
    uint4 v0[kU], v1[kU];
#pragma unroll
    for (int uu = 0; uu < kU; ++uu) {
      const int G = G0 + uu * kGemvWarps;
      v0[uu] = G < kg ? __ldcs(w0 + G * 64) : make_uint4(0, 0, 0, 0);
      v1[uu] = G < kg ? __ldcs(w1 + G * 64) : make_uint4(0, 0, 0, 0);
    }
    if (!waited) {  // weights are in flight; now wait for the activation kernel's results
      asm volatile("griddepcontrol.wait;" ::: "memory");
      waited = true;
    }
#pragma unroll
    for (int uu = 0; uu < kU; ++uu) {
      const int G = G0 + uu * kGemvWarps;
      if (G >= kg) break;
      const uint32_t wa[4] = {v0[uu].x, v0[uu].y, v0[uu].z, v0[uu].w};
      const uint32_t wb[4] = {v1[uu].x, v1[uu].y, v1[uu].z, v1[uu].w};
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int col = (G * 4 + c) * 32;
        const uint32_t a0 = wa[c] & 0x0F0F0F0Fu, a2 = (wa[c] >> 4) & 0x0F0F0F0Fu;
        const uint32_t a1 = wb[c] & 0x0F0F0F0Fu, a3 = (wb[c] >> 4) & 0x0F0F0F0Fu;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          uint32_t b0 = 0, b1 = 0;
          if (tok_ok[nt]) {
            b0 = __ldg(reinterpret_cast<const uint32_t*>(arow[nt] + col));
            b1 = __ldg(reinterpret_cast<const uint32_t*>(arow[nt] + col + 16));
          }
          mma_u8s8(acc[nt], a0, a1, a2, a3, b0, b1);
        }
      }
    }
  }
  if (!waited) asm volatile("griddepcontrol.wait;" ::: "memory");
  if (u != nullptr) {
    // lr[row, tok] += Σ_j U[row, j]·t[tok, j], 16 columns of j a step, steps split over warps.
    const bool r0ok = row0 + g < n, r1ok = row0 + g + 8 < n;
    const __half* u0 = u + static_cast<size_t>(r0ok ? row0 + g : 0) * r_pad + 2 * tq;
    const __half* u1 = u + static_cast<size_t>(r1ok ? row0 + g + 8 : 0) * r_pad + 2 * tq;
    for (int j0 = warp * 16; j0 < r_pad; j0 += 16 * kGemvWarps) {
      const uint32_t a0 = r0ok ? __ldg(reinterpret_cast<const uint32_t*>(u0 + j0)) : 0u;
      const uint32_t a2 = r0ok ? __ldg(reinterpret_cast<const uint32_t*>(u0 + j0 + 8)) : 0u;
      const uint32_t a1 = r1ok ? __ldg(reinterpret_cast<const uint32_t*>(u1 + j0)) : 0u;
      const uint32_t a3 = r1ok ? __ldg(reinterpret_cast<const uint32_t*>(u1 + j0 + 8)) : 0u;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
        uint32_t b0 = 0, b1 = 0;
        if (tok_ok[nt]) {
          const __half* tr = t + static_cast<size_t>(nt * 8 + g) * r_pad + 2 * tq + j0;
          b0 = __ldg(reinterpret_cast<const uint32_t*>(tr));
          b1 = __ldg(reinterpret_cast<const uint32_t*>(tr + 8));
        }
        mma_f16(lr[nt], a0, a1, a2, a3, b0, b1);
      }
    }
  }
  // C fragment: c0 (row g, tok 2tq), c1 (row g, tok 2tq+1), c2/c3 the same for row g + 8.
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
    const int tk = nt * 8 + 2 * tq;
    ism[warp][g][tk] = acc[nt][0];
    ism[warp][g][tk + 1] = acc[nt][1];
    ism[warp][g + 8][tk] = acc[nt][2];
    ism[warp][g + 8][tk + 1] = acc[nt][3];
    fsm[warp][g][tk] = lr[nt][0];
    fsm[warp][g][tk + 1] = lr[nt][1];
    fsm[warp][g + 8][tk] = lr[nt][2];
    fsm[warp][g + 8][tk + 1] = lr[nt][3];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < 16 * 8 * kNT; idx += blockDim.x) {
    const int rl = idx / (8 * kNT), tok = idx % (8 * kNT), row = row0 + rl;
    if (row >= n || tok >= mt) continue;
    int sum = 0;
    float l = 0.f;
#pragma unroll
    for (int wi = 0; wi < kGemvWarps; ++wi) {
      sum += ism[wi][rl][tok];
      l += fsm[wi][rl][tok];
    }
    const int signed_acc = sum - 8 * code_sum[tok];
    if (raw != nullptr) {
      raw[static_cast<size_t>(tok) * n + row] = static_cast<float>(signed_acc);
    } else {
      const float out = fmaf(s_w[row] * s_x[tok], static_cast<float>(signed_acc), l);
      store_out(y + static_cast<size_t>(tok) * ldy + row, out);
    }
  }
}

// y[m x ldy] += add[m x ldy] (fp16, fp32 add), the unfused low-rank baseline's last step.
__global__ void add_kernel(__half2* __restrict__ y, const __half2* __restrict__ add, size_t n2) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n2;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float2 a = __half22float2(y[i]), b = __half22float2(add[i]);
    y[i] = __floats2half2_rn(a.x + b.x, a.y + b.y);
  }
}

// Fallback epilogue: y[i, r] = s_w[r]·s_x[i]·acc[i, r] + beta·y[i, r]; acc [m x ld] fp32.
template <typename OutT>
__global__ void epilogue_kernel(const float* __restrict__ acc, int ld, const float* __restrict__ s_w,
                                const float* __restrict__ s_x, float beta, OutT* __restrict__ y,
                                int ldy, int m, int n) {
  const size_t total = static_cast<size_t>(m) * n;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int tok = static_cast<int>(i / n), r = static_cast<int>(i % n);
    OutT* o = y + static_cast<size_t>(tok) * ldy + r;
    float v = s_w[r] * s_x[tok] * acc[static_cast<size_t>(tok) * ld + r];
    if (beta != 0.f) v += beta * load_out(o);
    store_out(o, v);
  }
}

// ForwardOptions::split_low_rank. x [n] fp32 -> hi, lo fp16 with hi + lo = x to ~2^-22
// (saturated at ±65504 as the fp16 path).
__global__ void split_f16_kernel(const float* x, int64_t n, __half* hi, __half* lo) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float v = fminf(fmaxf(x[i], -65504.f), 65504.f);
    const __half h = __float2half_rn(v);
    hi[i] = h;
    lo[i] = __float2half_rn(v - __half2float(h));
  }
}
// t32 [2m x rp] fp32 (rows m.. are the lo part's products) -> t2 [m x 2rp] fp16: each row's
// t = hi-row + lo-row, split again into [hi(t) | lo(t)].
__global__ void split_t_kernel(const float* t32, int m, int rp, __half* t2) {
  const int64_t n = static_cast<int64_t>(m) * rp, off = n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / rp, c = i % rp;
    const float v = fminf(fmaxf(t32[i] + t32[off + i], -65504.f), 65504.f);
    const __half h = __float2half_rn(v);
    t2[r * 2 * rp + c] = h;
    t2[r * 2 * rp + rp + c] = __float2half_rn(v - __half2float(h));
  }
}
// u [n x rp] -> u2 [n x 2rp] = [u | u] (t2's hi and lo parts meet the same U).
__global__ void dup_cols_kernel(const __half* u, int64_t n, int rp, __half* u2) {
  const int64_t total = n * rp;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / rp, c = i % rp;
    u2[r * 2 * rp + c] = u[i];
    u2[r * 2 * rp + rp + c] = u[i];
  }
}

// Device buffer that grows on demand.
struct Buf {
  void* p = nullptr;
  size_t bytes = 0;
  void reserve(size_t b) {
    if (b <= bytes) return;
    if (p) cudaFree(p);
    p = nullptr;
    LRC_CK(cudaMalloc(&p, b));
    bytes = b;
  }
  ~Buf() {
    if (p) cudaFree(p);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

}  // namespace

bool device_available(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why) *why = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(e);
    return false;
  }
  if (count == 0) {
    if (why) *why = "no CUDA device";
    return false;
  }
  return true;
}

namespace {
template <typename T>
void launch_act_quant(const T* x, int m, int k, int k_pad, float clip, bool e4m3,
                      uint8_t* codes, float* s_x, int* code_sum, float* s_x_rep, int rep_blocks,
                      cudaStream_t stream) {
  if (m <= 0) return;
  const bool vec8 = k % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                    (static_cast<size_t>(k) * sizeof(T)) % 16 == 0;
  // Few tokens (decode): one wide block a token, so the row's latency is spread over more
  // threads; many tokens: 256 threads, many blocks an SM.
  const int threads = m < 128 ? 1024 : kThreads;
  if (vec8)
    act_quant_kernel<T, true><<<m, threads, 0, stream>>>(x, k, k_pad, clip, e4m3, codes, s_x,
                                                         code_sum, s_x_rep, rep_blocks, m);
  else
    act_quant_kernel<T, false><<<m, threads, 0, stream>>>(x, k, k_pad, clip, e4m3, codes, s_x,
                                                          code_sum, s_x_rep, rep_blocks, m);
  LRC_CK(cudaGetLastError());
}
}  // namespace

void quantize_activations_device(const uint16_t* x, int m, int k, int k_pad, float clip,
                                 bool e4m3, uint8_t* codes, float* s_x, int* code_sum,
                                 CUstream_st* stream) {
  launch_act_quant(reinterpret_cast<const __half*>(x), m, k, k_pad, clip, e4m3, codes, s_x,
                   code_sum, nullptr, 0, stream);
}

// Which path a forward of m tokens takes, and whether its low-rank branch is split (the GEMM
// path of forward_f32 only): forward_f32 prepares x's copies for it, Impl::forward runs it.
namespace {
bool takes_gemv(const ForwardOptions& opt, int m) {
  return opt.path == ForwardOptions::Path::kGemv ||
         (opt.path == ForwardOptions::Path::kAuto && m <= 16);
}
bool splits_low_rank(const ForwardOptions& opt, int m) {
  return opt.split_low_rank && !opt.unfused_low_rank && !takes_gemv(opt, m);
}
}  // namespace

struct W4A4Linear::Impl {
  int n = 0, n_pad = 0, k = 0, k_pad = 0, rank = 0, rank_pad = 0;
  // How s_w, s_x reach the FP8 GEMM, tried in this order (cuBLASLt versions differ):
  // outer-vector scales; VEC128 block scales (s_w, s_x repeated over each 128-column block:
  // exact integer block sums, scaled and summed in fp32); else fp32 accumulators + epilogue.
  enum class Scales { kOuter, kVec128, kEpilogue } scales = Scales::kOuter;
  Buf s_w_rep, s_x_rep;
  float clip = 1.f;
  Buf w_e4m3, w_int4, s_w, u, v;
  // scratch
  Buf codes, s_x, code_sum, t, lr, raw32, lt_ws, xh;
  Buf u2, t2;            // split_low_rank: [U | U], [hi(t) | lo(t)]
  bool have_u2 = false;  // u2 built from the current u
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  static constexpr size_t kLtWorkspace = 32u << 20;

  // cuBLASLt descriptors + the heuristic's algorithm for one (m, ldd, out32): built once, so a
  // forward costs no host-side planning after the first call of a shape.
  struct Fp8Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // Key: (m, ldd, out32, scale mode).
  std::map<std::tuple<int, int, bool, int>, Fp8Plan> plans;

  ~Impl() {
    for (auto& [key, p] : plans) {
      cublasLtMatrixLayoutDestroy(p.la);
      cublasLtMatrixLayoutDestroy(p.lb);
      cublasLtMatrixLayoutDestroy(p.lc);
      cublasLtMatmulDescDestroy(p.desc);
    }
  }

  // nullptr when the heuristic finds no algorithm. mode: Scales::kEpilogue = unit scalar scales.
  Fp8Plan* plan(int m, int ldd, bool out32, Scales mode_sel) {
    const bool outer = mode_sel != Scales::kEpilogue;
    auto it = plans.find({m, ldd, out32, static_cast<int>(mode_sel)});
    if (it != plans.end()) return &it->second;
    Fp8Plan p;
    LRC_CK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LRC_CK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LRC_CK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (outer) {
      const int32_t mode = mode_sel == Scales::kOuter ? CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
                                                      : CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
      LRC_CK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode));
      LRC_CK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode));
      // The heuristic offers no algorithm for vector scale modes until the pointers are set.
      const bool vec = mode_sel == Scales::kVec128;
      const float* sa = vec ? s_w_rep.as<const float>() : s_w.as<const float>();
      const float* sb = vec ? s_x_rep.as<const float>() : s_x.as<const float>();
      LRC_CK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa));
      LRC_CK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb));
    }
    const cudaDataType_t dt = out32 ? CUDA_R_32F : CUDA_R_16F;
    LRC_CK(cublasLtMatrixLayoutCreate(&p.la, CUDA_R_8F_E4M3, k_pad, n_pad, k_pad));
    LRC_CK(cublasLtMatrixLayoutCreate(&p.lb, CUDA_R_8F_E4M3, k_pad, m, k_pad));
    LRC_CK(cublasLtMatrixLayoutCreate(&p.lc, dt, n_pad, m, ldd));
    cublasLtMatmulPreference_t pref;
    LRC_CK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = kLtWorkspace;
    LRC_CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t heur{};
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(lt, p.desc, p.la, p.lb, p.lc, p.lc, pref, 1, &heur, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
      cublasLtMatrixLayoutDestroy(p.la);
      cublasLtMatrixLayoutDestroy(p.lb);
      cublasLtMatrixLayoutDestroy(p.lc);
      cublasLtMatmulDescDestroy(p.desc);
      if (!outer)
        fail("cublasLt", "no FP8 algorithm for n=" + std::to_string(n) + " k=" +
                             std::to_string(k_pad) + " m=" + std::to_string(m) + " (status " +
                             std::to_string(static_cast<int>(st)) + ")");
      return nullptr;
    }
    p.algo = heur.algo;
    return &plans.emplace(std::make_tuple(m, ldd, out32, static_cast<int>(mode_sel)), p).first->second;
  }

  // Raw FP8 GEMM, unit scalar scales: acc[m x n] fp32 (exact integers) = Wᵀ·codes.
  // ld: acc's row stride, a multiple of 4 (cuBLASLt wants 16-byte aligned columns).
  void fp8_raw(int m, float* acc, int ld, cudaStream_t s) {
    Fp8Plan& p = *plan(m, ld, true, Scales::kEpilogue);
    const float alpha = 1.f, beta = 0.f;
    LRC_CK(cublasLtMatmul(lt, p.desc, &alpha, w_e4m3.p, p.la, codes.p, p.lb, &beta, acc, p.lc,
                          acc, p.lc, &p.algo, lt_ws.p, kLtWorkspace, s));
  }

  // y[m x ldy] (fp16 or fp32) = s_w[n]·s_x[m]·(Wᵀ·codes) + beta·y: outer-vector scales in
  // cuBLASLt's epilogue, or (fallback) the raw GEMM and epilogue_kernel.
  template <typename OutT>
  void fp8_gemm(int m, float beta, OutT* y, int ldy, cudaStream_t s) {
    constexpr bool out32 = std::is_same_v<OutT, float>;
    Fp8Plan* p = nullptr;
    while (n_pad == n && scales != Scales::kEpilogue) {
      p = plan(m, ldy, out32, scales);
      if (p != nullptr) break;
      scales = scales == Scales::kOuter ? Scales::kVec128 : Scales::kEpilogue;
      std::fprintf(stderr, "lrc cuda: cuBLASLt offers no FP8 algorithm with %s scales\n",
                   scales == Scales::kVec128 ? "outer-vector" : "VEC128 block");
    }
    if (p == nullptr) {
      const int ld = n_pad;
      raw32.reserve(static_cast<size_t>(m) * ld * 4);
      fp8_raw(m, raw32.as<float>(), ld, s);
      epilogue_kernel<<<2048, 256, 0, s>>>(raw32.as<const float>(), ld, s_w.as<const float>(),
                                           s_x.as<const float>(), beta, y, ldy, m, n);
      LRC_CK(cudaGetLastError());
      return;
    }
    const bool vec = scales == Scales::kVec128;
    const float* sa = vec ? s_w_rep.as<const float>() : s_w.as<const float>();
    const float* sb = vec ? s_x_rep.as<const float>() : s_x.as<const float>();
    LRC_CK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa));
    LRC_CK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb));
    const float alpha = 1.f;
    LRC_CK(cublasLtMatmul(lt, p->desc, &alpha, w_e4m3.p, p->la, codes.p, p->lb, &beta, y, p->lc,
                          y, p->lc, &p->algo, lt_ws.p, kLtWorkspace, s));
  }

  // t[m x rank_pad] = x[m x k] · V[k x rank_pad]; fp16 (prefill) or fp32 (decode) output.
  void xv_gemm(const __half* x, int m, bool out32, cudaStream_t s) {
    const float one = 1.f, zero = 0.f;
    LRC_CK(cublasSetStream(blas, s));
    LRC_CK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, rank_pad, m, k, &one, v.p, CUDA_R_16F,
                        rank_pad, x, CUDA_R_16F, k, &zero, t.p, out32 ? CUDA_R_32F : CUDA_R_16F,
                        rank_pad, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  // out[m x ldo] (fp16, or fp32 with out32) = beta·out + t[m x rank_pad]·Uᵀ.
  void ut_gemm(int m, void* out, int ldo, float beta, cudaStream_t s, bool out32 = false) {
    const float one = 1.f;
    LRC_CK(cublasSetStream(blas, s));
    LRC_CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, rank_pad, &one, u.p, CUDA_R_16F,
                        rank_pad, t.p, CUDA_R_16F, rank_pad, &beta, out,
                        out32 ? CUDA_R_32F : CUDA_R_16F, ldo, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT));
  }

  // split_low_rank: x2 [2m x k] = [hi(x); lo(x)] -> y[m x ldy] fp32 = t2·U2ᵀ (beta 0), where
  // t2 = [hi(t) | lo(t)], t = x2·V summed over the two halves in fp32.
  void split_low_rank_gemms(const __half* x2, int m, float* y, int ldy, cudaStream_t s) {
    const float one = 1.f, zero = 0.f;
    if (!have_u2) {
      u2.reserve(static_cast<size_t>(n) * 2 * rank_pad * 2);
      dup_cols_kernel<<<1024, 256, 0, s>>>(u.as<const __half>(), n, rank_pad, u2.as<__half>());
      LRC_CK(cudaGetLastError());
      have_u2 = true;
    }
    LRC_CK(cublasSetStream(blas, s));
    LRC_CK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, rank_pad, 2 * m, k, &one, v.p, CUDA_R_16F,
                        rank_pad, x2, CUDA_R_16F, k, &zero, t.p, CUDA_R_32F, rank_pad,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    t2.reserve(static_cast<size_t>(m) * 2 * rank_pad * 2);
    split_t_kernel<<<1024, 256, 0, s>>>(t.as<const float>(), m, rank_pad, t2.as<__half>());
    LRC_CK(cudaGetLastError());
    LRC_CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, 2 * rank_pad, &one, u2.p, CUDA_R_16F,
                        2 * rank_pad, t2.p, CUDA_R_16F, 2 * rank_pad, &zero, y, CUDA_R_32F, ldy,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  template <typename T, typename OutT>
  void forward(const T* x, const __half* x16, int m, OutT* y, int ldy, cudaStream_t s,
               const ForwardOptions& opt);
};

W4A4Linear::W4A4Linear(const W4A4Layout& L) : impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  I.n = L.n;
  I.k = L.k;
  I.n_pad = (L.n + 15) / 16 * 16;
  // LRC_CUDA_SCALES=vec128|epilogue starts the scale-mode search further down (debugging, and a
  // way around a cuBLASLt whose outer-vector path misbehaves).
  if (const char* e = std::getenv("LRC_CUDA_SCALES")) {
    const std::string v = e;
    if (v == "vec128") I.scales = Impl::Scales::kVec128;
    else if (v == "epilogue") I.scales = Impl::Scales::kEpilogue;
    else if (v != "outer") fail("LRC_CUDA_SCALES", "'" + v + "' is not outer, vec128 or epilogue");
  }
  I.k_pad = L.k_pad;
  I.clip = L.act_clip;
  if (L.k_pad % 128 != 0 || L.w_e4m3.size() != static_cast<size_t>(L.n) * L.k_pad ||
      L.w_int4.size() != static_cast<size_t>(I.n_pad) * L.k_pad / 2)
    fail("W4A4Linear", "layout k_pad/w_e4m3 inconsistent (build it with make_w4a4_layout)");
  const size_t e4_bytes = static_cast<size_t>(I.n_pad) * I.k_pad;
  I.w_e4m3.reserve(e4_bytes);
  I.w_int4.reserve(L.w_int4.size());
  I.s_w.reserve(static_cast<size_t>(I.n_pad) * 4);
  LRC_CK(cudaMemset(I.w_e4m3.p, 0, e4_bytes));
  LRC_CK(cudaMemset(I.s_w.p, 0, static_cast<size_t>(I.n_pad) * 4));
  LRC_CK(cudaMemcpy(I.w_e4m3.p, L.w_e4m3.data(), L.w_e4m3.size(), cudaMemcpyHostToDevice));
  LRC_CK(cudaMemcpy(I.w_int4.p, L.w_int4.data(), L.w_int4.size(), cudaMemcpyHostToDevice));
  LRC_CK(cudaMemcpy(I.s_w.p, L.s_w.data(), L.s_w.size() * 4, cudaMemcpyHostToDevice));
  // s_w repeated per 128-column block, [k_pad/128 x n_pad], row index contiguous (VEC128).
  const int kb = I.k_pad / 128;
  std::vector<float> rep_h(static_cast<size_t>(kb) * I.n_pad, 0.f);
  for (int b = 0; b < kb; ++b)
    for (int r = 0; r < I.n; ++r) rep_h[static_cast<size_t>(b) * I.n_pad + r] = L.s_w[r];
  I.s_w_rep.reserve(rep_h.size() * 4);
  LRC_CK(cudaMemcpy(I.s_w_rep.p, rep_h.data(), rep_h.size() * 4, cudaMemcpyHostToDevice));
  LRC_CK(cublasCreate(&I.blas));
  LRC_CK(cublasLtCreate(&I.lt));
  I.lt_ws.reserve(Impl::kLtWorkspace);
  set_low_rank(L);
}

W4A4Linear::~W4A4Linear() {
  if (impl_->blas) cublasDestroy(impl_->blas);
  if (impl_->lt) cublasLtDestroy(impl_->lt);
}

void W4A4Linear::set_low_rank(const W4A4Layout& L) {
  Impl& I = *impl_;
  if (L.n != I.n || L.k != I.k) fail("W4A4Linear::set_low_rank", "layout shape differs");
  I.rank = L.rank;
  I.rank_pad = L.rank_pad;
  I.have_u2 = false;
  if (I.rank_pad > 0) {
    I.u.reserve(L.u.size() * 2);
    I.v.reserve(L.v.size() * 2);
    LRC_CK(cudaMemcpy(I.u.p, L.u.data(), L.u.size() * 2, cudaMemcpyHostToDevice));
    LRC_CK(cudaMemcpy(I.v.p, L.v.data(), L.v.size() * 2, cudaMemcpyHostToDevice));
  }
}

const char* W4A4Linear::scale_mode() const {
  switch (impl_->scales) {
    case Impl::Scales::kOuter: return "cuBLASLt outer-vector scales";
    case Impl::Scales::kVec128: return "cuBLASLt VEC128 block scales (s_w, s_x repeated)";
    default: return "fp32 accumulators + epilogue kernel";
  }
}
int W4A4Linear::n() const { return impl_->n; }
int W4A4Linear::k() const { return impl_->k; }
int W4A4Linear::rank() const { return impl_->rank; }
size_t W4A4Linear::weight_bytes_int4() const {
  return static_cast<size_t>(impl_->n) * impl_->k_pad / 2;
}

// x [m x k] (fp16 or fp32) -> y [m x ldy] (fp16 or fp32); x16: x in fp16 for the low-rank
// branch's x·V (x itself when T is fp16).
template <typename T, typename OutT>
void W4A4Linear::Impl::forward(const T* x, const __half* x16, int m, OutT* y, int ldy,
                               cudaStream_t s, const ForwardOptions& opt) {
  constexpr bool out32 = std::is_same_v<OutT, float>;
  const bool gemv = takes_gemv(opt, m);
  const bool raw = opt.raw_accumulators != nullptr;
  const bool lowrank = rank_pad > 0 && !raw;
  codes.reserve(static_cast<size_t>(m) * k_pad);
  s_x.reserve(static_cast<size_t>(m) * 4);
  code_sum.reserve(static_cast<size_t>(m) * 4);
  // (split: t holds the 2m fp32 rows of x2·V.)
  const bool split = lowrank && out32 && splits_low_rank(opt, m);
  if (lowrank) t.reserve(static_cast<size_t>(m) * rank_pad * 4 * (split ? 2 : 1));
  if (gemv && lowrank) xv_gemm(x16, m, /*out32=*/false, s);  // before the act kernel: see PDL
  const int kb = k_pad / 128;
  const bool want_rep = !gemv && !raw && scales != Scales::kEpilogue;
  if (want_rep) s_x_rep.reserve(static_cast<size_t>(m) * kb * 4);
  launch_act_quant(x, m, k, k_pad, clip, !gemv, codes.as<uint8_t>(), s_x.as<float>(),
                   code_sum.as<int>(), want_rep ? s_x_rep.as<float>() : nullptr, kb, s);
  if (gemv) {
    if (m > 16) fail("W4A4Linear::forward", "the GEMV path takes m <= 16");
    const dim3 grid(n_pad / 16);
    const uint4* w = w_int4.as<const uint4>();
    const int8_t* a = codes.as<const int8_t>();
    const __half* u_ = lowrank ? u.as<const __half>() : nullptr;
    const __half* t_ = t.as<const __half>();
    const int kg = k_pad / 128;
    // Launched as a programmatic dependent of the activation kernel (overlaps its weight loads
    // with it; see griddepcontrol in both kernels).
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(kGemvWarps * 32);
    cfg.stream = s;
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = &attr;
    // LRC_CUDA_NO_PDL=1: plain stream order (griddepcontrol.wait is then a no-op).
    static const bool pdl = std::getenv("LRC_CUDA_NO_PDL") == nullptr;
    cfg.numAttrs = pdl ? 1 : 0;
    const float* sx = s_x.as<const float>();
    const int* cs = code_sum.as<const int>();
    const float* sw = s_w.as<const float>();
    if (m <= 8)
      LRC_CK(cudaLaunchKernelEx(&cfg, gemv_w4a4_kernel<1, OutT>, w, kg, a, k_pad, sx, cs, sw,
                                u_, t_, rank_pad, y, ldy, opt.raw_accumulators, m, n));
    else
      LRC_CK(cudaLaunchKernelEx(&cfg, gemv_w4a4_kernel<2, OutT>, w, kg, a, k_pad, sx, cs, sw,
                                u_, t_, rank_pad, y, ldy, opt.raw_accumulators, m, n));
    LRC_CK(cudaGetLastError());
    return;
  }
  if (raw) {
    // Unit scales, fp32 output: D holds Σ (code_w - 8)·code_x exactly.
    const int ld = n_pad;
    raw32.reserve(static_cast<size_t>(m) * ld * 4);
    fp8_raw(m, raw32.as<float>(), ld, s);
    LRC_CK(cudaMemcpy2DAsync(opt.raw_accumulators, static_cast<size_t>(n) * 4, raw32.p,
                             static_cast<size_t>(ld) * 4, static_cast<size_t>(n) * 4, m,
                             cudaMemcpyDeviceToDevice, s));
    return;
  }
  if (!lowrank) {
    fp8_gemm(m, 0.f, y, ldy, s);
    return;
  }
  if constexpr (out32) {
    if (split) {  // x16 is x2 = [hi(x); lo(x)] (forward_f32)
      split_low_rank_gemms(x16, m, y, ldy, s);
      fp8_gemm(m, 1.f, y, ldy, s);
      return;
    }
  }
  if (!opt.unfused_low_rank) {
    // t = x·V; y = t·Uᵀ; y = s_w s_x (W·Q(x)) + 1·y in the FP8 GEMM's epilogue.
    xv_gemm(x16, m, false, s);
    ut_gemm(m, y, ldy, 0.f, s, out32);
    fp8_gemm(m, 1.f, y, ldy, s);
    return;
  }
  if constexpr (out32) {
    fail("W4A4Linear::forward_f32", "the unfused low-rank baseline is fp16 only");
  } else {
    // Unfused: main GEMM into y, low-rank into a scratch, one more pass to add them.
    fp8_gemm(m, 0.f, y, ldy, s);
    lr.reserve(static_cast<size_t>(m) * ldy * 2);
    xv_gemm(x16, m, false, s);
    ut_gemm(m, lr.p, ldy, 0.f, s);
    const size_t n2 = static_cast<size_t>(m) * ldy / 2;
    add_kernel<<<1024, 256, 0, s>>>(reinterpret_cast<__half2*>(y), lr.as<const __half2>(), n2);
    LRC_CK(cudaGetLastError());
  }
}

void W4A4Linear::forward(const uint16_t* x16, int m, uint16_t* y16, int ldy, CUstream_st* s,
                         const ForwardOptions& opt) {
  Impl& I = *impl_;
  if (m <= 0) return;
  if (ldy < I.n || ldy % 8 != 0)
    fail("W4A4Linear::forward", "ldy " + std::to_string(ldy) + " must be >= n (" +
                                    std::to_string(I.n) + ") and a multiple of 8");
  const __half* x = reinterpret_cast<const __half*>(x16);
  I.forward(x, x, m, reinterpret_cast<__half*>(y16), ldy, s, opt);
}

void W4A4Linear::forward_f32(const float* x, int m, float* y, int ldy, CUstream_st* s,
                             const ForwardOptions& opt) {
  Impl& I = *impl_;
  if (m <= 0) return;
  if (ldy < I.n || ldy % 4 != 0 || reinterpret_cast<uintptr_t>(y) % 16 != 0)
    fail("W4A4Linear::forward_f32", "ldy " + std::to_string(ldy) + " must be >= n (" +
                                        std::to_string(I.n) +
                                        ") and a multiple of 4, y 16-byte aligned");
  const __half* x16 = nullptr;
  if (I.rank_pad > 0 && opt.raw_accumulators == nullptr) {
    const size_t len = static_cast<size_t>(m) * I.k;
    if (splits_low_rank(opt, m)) {
      I.xh.reserve(len * 4);  // [hi(x); lo(x)], 2m rows
      __half* hi = I.xh.as<__half>();
      split_f16_kernel<<<1024, 256, 0, s>>>(x, static_cast<int64_t>(len), hi, hi + len);
      LRC_CK(cudaGetLastError());
    } else {
      I.xh.reserve(len * 2);
      // (Saturated at ±65504, as the backend's fp16 linears: an outlier stays finite.)
      ops::f32_to_f16(x, m, I.k, I.k, I.xh.as<uint16_t>(), I.k, s);
    }
    x16 = I.xh.as<const __half>();
  }
  I.forward(x, x16, m, y, ldy, s, opt);
}

}  // namespace lrc::cuda
