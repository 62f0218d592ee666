// bench_w4a4: the CUDA W4A4 + low-rank linear against cuBLAS FP16 / BF16 GEMM and cuBLASLt FP8
// (per-tensor scales), same run, same shapes (issue 25). Plain CUDA events.
//   bench_w4a4 [--json] [--quick] [--shapes NxK,...] [--ms M,...]
// Per (N x K, M): each baseline once; ours per rank (0, 128, 256, 512, 10%), fused and unfused.
// TFLOP/s counts the main product only (2·M·N·K), for ours too, so the speedup is a time ratio.
// Weight copies rotate so the weights streamed per call exceed the 50 MB L2 (no cache replay).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "lrc/kernels/cuda/w4a4.h"

namespace {

#define CK(x)                                                                        \
  do {                                                                               \
    auto e_ = (x);                                                                   \
    if (static_cast<int>(e_) != 0) {                                                 \
      std::fprintf(stderr, "%s:%d %s failed (%d)\n", __FILE__, __LINE__, #x, (int)e_); \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

constexpr size_t kRotateBytes = 256u << 20;  // > 5x the H100's 50 MB L2

__device__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull + seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}
// Uniform in [-amp, amp).
__global__ void fill_f16(__half* p, size_t n, uint32_t seed, float amp) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = __float2half(amp * ((hash32(i, seed) >> 8) * (2.f / 16777216.f) - 1.f));
}
__global__ void fill_bf16(__nv_bfloat16* p, size_t n, uint32_t seed, float amp) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = __float2bfloat16(amp * ((hash32(i, seed) >> 8) * (2.f / 16777216.f) - 1.f));
}
// Random e4m3 integers in [-8, 7] (what our codes look like).
__global__ void fill_e4m3_int(uint8_t* p, size_t n, uint32_t seed) {
  const uint8_t pos[9] = {0x00, 0x38, 0x40, 0x44, 0x48, 0x4A, 0x4C, 0x4E, 0x50};
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const int v = static_cast<int>(hash32(i, seed) % 16) - 8;
    p[i] = v < 0 ? (0x80 | pos[-v]) : pos[v];
  }
}

uint64_t g_rng = 0x12345678abcdefull;
inline uint64_t next_rng() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

template <typename F>
double time_ms(F&& f, cudaStream_t s, double budget_ms = 60.0) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  f();  // warm-up (plans, handles, clocks)
  f();
  CK(cudaEventRecord(a, s));
  f();
  CK(cudaEventRecord(b, s));
  CK(cudaEventSynchronize(b));
  float one = 0;
  CK(cudaEventElapsedTime(&one, a, b));
  const int reps = std::clamp(static_cast<int>(budget_ms / std::max(one, 1e-3f)), 3, 500);
  std::vector<float> batches;
  for (int rep = 0; rep < 3; ++rep) {
    CK(cudaEventRecord(a, s));
    for (int i = 0; i < reps; ++i) f();
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    batches.push_back(ms / reps);
  }
  CK(cudaGetLastError());
  std::sort(batches.begin(), batches.end());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return batches[1];  // median of three batch means
}

// Same, but `reps` calls captured into one CUDA graph and the graph's replays timed: for the
// microsecond-scale decode calls, what a serving loop (graphs) sees, launch gaps excluded.
template <typename F>
double time_ms_graph(F&& f, cudaStream_t s, int reps = 50) {
  for (int i = 0; i < reps; ++i) f();  // every rotated copy allocates its scratch before capture
  CK(cudaStreamSynchronize(s));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < reps; ++i) f();
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  CK(cudaGraphLaunch(ge, s));
  CK(cudaStreamSynchronize(s));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int rep = 0; rep < 5; ++rep) {
    CK(cudaEventRecord(a, s));
    CK(cudaGraphLaunch(ge, s));
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms / reps);
  }
  std::sort(t.begin(), t.end());
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return t[2];
}

// Which FP8 scale modes / output types cuBLASLt offers on this GPU, and how fast (11008x4096,
// m = 16384), with C of D's type (beta = 1 later).
void probe(cublasLtHandle_t lt, void* ws, size_t ws_bytes, cudaStream_t s) {
  const int n = 11008, k = 4096, m = 16384;
  uint8_t *a, *b;
  void* d;
  float* sc;
  CK(cudaMalloc(&a, (size_t)n * k));
  CK(cudaMalloc(&b, (size_t)m * k));
  CK(cudaMalloc(&d, (size_t)m * n * 4));
  CK(cudaMalloc(&sc, (size_t)(n + m) * 64 * 4));
  fill_e4m3_int<<<1024, 256, 0, s>>>(a, (size_t)n * k, 1);
  fill_e4m3_int<<<1024, 256, 0, s>>>(b, (size_t)m * k, 2);
  {
    std::vector<float> ones((size_t)(n + m) * 64, 1.f);
    CK(cudaMemcpy(sc, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  }
  const struct { const char* name; int ma, mb; } modes[] = {
      {"scalar", CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F},
      {"outer/outer", CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F},
      {"vec128/vec128", CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F, CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F},
      {"vec128/blk128", CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F, CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F},
      {"blk128/vec128", CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F}};
  const struct { const char* name; cudaDataType_t t; } outs[] = {
      {"f16", CUDA_R_16F}, {"bf16", CUDA_R_16BF}, {"f32", CUDA_R_32F}};
  for (const auto& md : modes)
    for (const auto& o : outs)
      for (int cbf = 0; cbf < 2; ++cbf) {
        // cbf: C type bf16 (with D as listed), else C = D's type.
        const cudaDataType_t ct = cbf ? CUDA_R_16BF : o.t;
        if (cbf && o.t == CUDA_R_16BF) continue;
        cublasLtMatmulDesc_t desc;
        CK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
        CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
        CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &md.ma, sizeof md.ma));
        CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &md.mb, sizeof md.mb));
        const float* sa = sc;
        const float* sb = sc + (size_t)n * 64;
        CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa));
        CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb));
        cublasLtMatrixLayout_t la, lb, lc, ld;
        CK(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, k, n, k));
        CK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, k, m, k));
        CK(cublasLtMatrixLayoutCreate(&lc, ct, n, m, n));
        CK(cublasLtMatrixLayoutCreate(&ld, o.t, n, m, n));
        cublasLtMatmulPreference_t pref;
        CK(cublasLtMatmulPreferenceCreate(&pref));
        CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes));
        cublasLtMatmulHeuristicResult_t heur{};
        int found = 0;
        const int st = (int)cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 1, &heur, &found);
        double ms = -1;
        if (st == 0 && found > 0) {
          const float one = 1.f, zero = 0.f;
          // C and D share the buffer only when their types match; else C reads D's bytes (timing only).
          ms = time_ms([&] {
            CK(cublasLtMatmul(lt, desc, &one, a, la, b, lb, &zero, d, lc, d, ld, &heur.algo, ws, ws_bytes, s));
          }, s, 20.0);
        }
        std::printf("probe %-14s D %-4s C %-4s status %2d found %d  %8.4f ms  %7.1f TF\n", md.name,
                    o.name, cbf ? "bf16" : o.name, st, found, ms,
                    ms > 0 ? 2.0 * m * n * (double)k / (ms * 1e-3) / 1e12 : 0.0);
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(la);
        cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(lc);
        cublasLtMatrixLayoutDestroy(ld);
        cublasLtMatmulDescDestroy(desc);
      }
  cudaFree(a);
  cudaFree(b);
  cudaFree(d);
  cudaFree(sc);
}

struct Row {
  int n, k, m;
  std::string rank_label;
  int rank;
  double fp16, bf16, fp8, ours, ours_unfused;
};

}  // namespace

int run(int argc, char** argv);

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_w4a4: %s\n", e.what());
    return 1;
  }
}

std::string g_scales;

int run(int argc, char** argv) {
  bool json = false, quick = false, do_probe = false;
  std::vector<std::pair<int, int>> shapes = {
      {4096, 4096}, {11008, 4096}, {4096, 11008}, {14336, 4096}, {28672, 8192}};
  std::vector<int> ms = {1, 16, 256, 4096, 65536};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--quick") quick = true;
    else if (a == "--probe") do_probe = true;
    else if (a == "--shapes" && i + 1 < argc) {
      shapes.clear();
      for (char* tok = std::strtok(argv[++i], ","); tok; tok = std::strtok(nullptr, ",")) {
        int n = 0, k = 0;
        if (std::sscanf(tok, "%dx%d", &n, &k) != 2) { std::fprintf(stderr, "bad shape %s\n", tok); return 2; }
        shapes.push_back({n, k});
      }
    } else if (a == "--ms" && i + 1 < argc) {
      ms.clear();
      for (char* tok = std::strtok(argv[++i], ","); tok; tok = std::strtok(nullptr, ",")) ms.push_back(std::atoi(tok));
    } else {
      std::fprintf(stderr, "usage: bench_w4a4 [--json] [--quick] [--shapes NxK,...] [--ms M,...]\n");
      return 2;
    }
  }
  std::string why;
  if (!lrc::cuda::device_available(&why)) {
    std::fprintf(stderr, "bench_w4a4: %s\n", why.c_str());
    return 1;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::fprintf(stderr, "device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount,
               prop.l2CacheSize >> 20);
  const double budget = quick ? 15.0 : 60.0;

  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  cublasHandle_t blas;
  CK(cublasCreate(&blas));
  CK(cublasSetStream(blas, s));
  cublasLtHandle_t lt;
  CK(cublasLtCreate(&lt));
  void* lt_ws = nullptr;
  const size_t lt_ws_bytes = 32u << 20;
  CK(cudaMalloc(&lt_ws, lt_ws_bytes));
  // Decode sizes (m <= 16) are timed as CUDA-graph replays (all variants alike).
  auto timer = [&](int m, auto&& f) { return m <= 16 ? time_ms_graph(f, s) : time_ms(f, s, budget); };
  if (do_probe) {
    probe(lt, lt_ws, lt_ws_bytes, s);
    return 0;
  }
  std::vector<Row> rows;
  const double peak_bw_note = 3.35e12;  // H100 SXM datasheet HBM3, for the fraction column

  for (const auto& shape : shapes) {
    const int n = shape.first, k = shape.second;
    std::fprintf(stderr, "shape %dx%d: building layout\n", n, k);
    // Host: random packed codes (two a byte) + per-row scales -> GPU layout.
    std::vector<uint8_t> packed((static_cast<size_t>(n) * k + 1) / 2);
    for (size_t i = 0; i < packed.size(); i += 8) {
      const uint64_t r = next_rng();
      std::memcpy(&packed[i], &r, std::min<size_t>(8, packed.size() - i));
    }
    std::vector<float> scales(n), zeros(n, 8.f);
    for (int i = 0; i < n; ++i) scales[i] = 0.01f + 0.001f * static_cast<float>(next_rng() % 100);
    lrc::cuda::W4A4Layout L = lrc::cuda::make_w4a4_layout(n, k, packed.data(), scales.data(),
                                                          zeros.data(), 4, 0, true, 4, 0, 0.9f, "bench");
    const int rank10 = static_cast<int>(0.1 * n * static_cast<double>(k) / (n + k));
    const std::vector<std::pair<std::string, int>> ranks = {
        {"0", 0}, {"128", 128}, {"256", 256}, {"512", 512}, {"10%", rank10}};
    // Copies so that one pass over all of them streams > kRotateBytes.
    const size_t w16_bytes = static_cast<size_t>(n) * k * 2;
    const int c16 = static_cast<int>(std::clamp<size_t>(kRotateBytes / w16_bytes + 1, 1, 16));
    const int c8 = static_cast<int>(std::clamp<size_t>(kRotateBytes / (w16_bytes / 2) + 1, 1, 16));
    const int c4 = static_cast<int>(std::clamp<size_t>(kRotateBytes / (w16_bytes / 4) + 1, 1, 40));
    std::vector<__half*> w16(c16);
    std::vector<__nv_bfloat16*> wb16(c16);
    std::vector<uint8_t*> w8(c8);
    for (int c = 0; c < c16; ++c) {
      CK(cudaMalloc(&w16[c], w16_bytes));
      CK(cudaMalloc(&wb16[c], w16_bytes));
      fill_f16<<<1024, 256, 0, s>>>(w16[c], (size_t)n * k, 11 + c, 0.05f);
      fill_bf16<<<1024, 256, 0, s>>>(wb16[c], (size_t)n * k, 11 + c, 0.05f);
    }
    for (int c = 0; c < c8; ++c) {
      CK(cudaMalloc(&w8[c], w16_bytes / 2));
      fill_e4m3_int<<<1024, 256, 0, s>>>(w8[c], (size_t)n * k, 21 + c);
    }
    std::vector<std::unique_ptr<lrc::cuda::W4A4Linear>> ours;
    for (int c = 0; c < c4; ++c) ours.push_back(std::make_unique<lrc::cuda::W4A4Linear>(L));
    std::vector<float> fu, fv;

    for (int m : ms) {
      std::fprintf(stderr, "  %dx%d m=%d\n", n, k, m);
      __half *x16, *y16;
      __nv_bfloat16 *xb, *yb;
      uint8_t* x8;
      CK(cudaMalloc(&x16, (size_t)m * k * 2));
      CK(cudaMalloc(&xb, (size_t)m * k * 2));
      CK(cudaMalloc(&x8, (size_t)m * k));
      CK(cudaMalloc(&y16, (size_t)m * n * 2));
      CK(cudaMalloc(&yb, (size_t)m * n * 2));
      fill_f16<<<1024, 256, 0, s>>>(x16, (size_t)m * k, 7, 2.f);
      fill_bf16<<<1024, 256, 0, s>>>(xb, (size_t)m * k, 7, 2.f);
      fill_e4m3_int<<<1024, 256, 0, s>>>(x8, (size_t)m * k, 9);
      CK(cudaStreamSynchronize(s));
      const float one = 1.f, zero = 0.f;
      int i16 = 0, i8 = 0, i4 = 0;
      // Rotation only matters while weights dominate the bytes (small m); large m uses one copy,
      // so the scratch buffers each copy grows stay single.
      const int r16 = m <= 256 ? c16 : 1, r8 = m <= 256 ? c8 : 1, r4 = m <= 256 ? c4 : 1;
      const double t16 = timer(m, [&] {
        CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w16[i16++ % r16], CUDA_R_16F, k,
                        x16, CUDA_R_16F, k, &zero, y16, CUDA_R_16F, n, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT));
      });
      const double tb16 = timer(m, [&] {
        CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, wb16[i16++ % r16], CUDA_R_16BF, k,
                        xb, CUDA_R_16BF, k, &zero, yb, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT));
      });
      // cuBLASLt FP8 e4m3 x e4m3 -> fp16, per-tensor scales (k is a multiple of 16 here).
      double t8 = -1;
      {
        cublasLtMatmulDesc_t desc;
        CK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
        CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
        cublasLtMatrixLayout_t la, lb, lc;
        CK(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, k, n, k));
        CK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, k, m, k));
        CK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16F, n, m, n));
        cublasLtMatmulPreference_t pref;
        CK(cublasLtMatmulPreferenceCreate(&pref));
        CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &lt_ws_bytes, sizeof lt_ws_bytes));
        cublasLtMatmulHeuristicResult_t heur{};
        int found = 0;
        if (cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 1, &heur, &found) ==
                CUBLAS_STATUS_SUCCESS && found > 0) {
          t8 = timer(m, [&] {
            CK(cublasLtMatmul(lt, desc, &one, w8[i8++ % r8], la, x8, lb, &zero, y16, lc, y16, lc,
                              &heur.algo, lt_ws, lt_ws_bytes, s));
          });
        }
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(la);
        cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(lc);
        cublasLtMatmulDescDestroy(desc);
      }
      for (const auto& rk : ranks) {
        const std::string& label = rk.first;
        const int rank = rk.second;
        fu.resize(static_cast<size_t>(n) * rank);
        fv.resize(static_cast<size_t>(k) * rank);
        for (auto& v : fu) v = 0.02f * (static_cast<float>(next_rng() % 2001) / 1000.f - 1.f);
        for (auto& v : fv) v = 0.02f * (static_cast<float>(next_rng() % 2001) / 1000.f - 1.f);
        lrc::cuda::set_low_rank(L, rank, fu.data(), fv.data());
        for (int c = 0; c < r4; ++c) ours[c]->set_low_rank(L);
        lrc::cuda::ForwardOptions fused, unfused;
        unfused.unfused_low_rank = true;
        const double to = timer(m, [&] {
          ours[i4++ % r4]->forward(reinterpret_cast<uint16_t*>(x16), m, reinterpret_cast<uint16_t*>(y16), n, s, fused);
        });
        double tu = to;
        if (rank > 0 && m > 16)
          tu = time_ms([&] {
            ours[i4++ % r4]->forward(reinterpret_cast<uint16_t*>(x16), m, reinterpret_cast<uint16_t*>(y16), n, s, unfused);
          }, s, budget);
        rows.push_back({n, k, m, label, rank, t16, tb16, t8, to, tu});
      }
      cudaFree(x16);
      cudaFree(xb);
      cudaFree(x8);
      cudaFree(y16);
      cudaFree(yb);
    }
    g_scales += std::to_string(n) + "x" + std::to_string(k) + ": " + ours[0]->scale_mode() + "; ";
    ours.clear();
    for (auto p : w16) cudaFree(p);
    for (auto p : wb16) cudaFree(p);
    for (auto p : w8) cudaFree(p);
    (void)peak_bw_note;
  }

  auto tflops = [](const Row& r, double ms) { return 2.0 * r.m * r.n * (double)r.k / (ms * 1e-3) / 1e12; };
  if (json) {
    std::printf("[\n");
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf("  {\"n\": %d, \"k\": %d, \"m\": %d, \"rank\": %d, \"rank_label\": \"%s\", "
                  "\"ms_fp16\": %.5f, \"ms_bf16\": %.5f, \"ms_fp8\": %.5f, \"ms_ours\": %.5f, "
                  "\"ms_ours_unfused\": %.5f}%s\n",
                  r.n, r.k, r.m, r.rank, r.rank_label.c_str(), r.fp16, r.bf16, r.fp8, r.ours,
                  r.ours_unfused, i + 1 < rows.size() ? "," : "");
    }
    std::printf("]\n");
    return 0;
  }
  std::printf("# device: %s\n", prop.name);
  std::printf("# FP8 scales: %s\n", g_scales.c_str());
  std::printf("# times: ms (M <= 16: median of 5 replays of a 50-call CUDA graph; else median of 3 batch means); TF = 2·M·N·K / time; x = fp16 time / ours time\n");
  std::printf("# GB/s (M<=16): int4 weight bytes / ours time (weights only, every rank); lr%%: ours(rank) / ours(rank 0) - 1\n");
  std::printf("%6s %6s %6s %5s %4s | %8s %6s | %8s %6s | %8s %6s | %8s %6s %6s | %8s %6s | %6s %6s\n",
              "N", "K", "M", "rank", "r", "fp16_ms", "TF", "bf16_ms", "TF", "fp8_ms", "TF",
              "ours_ms", "TF", "x16", "unf_ms", "x16", "lr%", "GB/s");
  double base0 = 0;
  for (const Row& r : rows) {
    if (r.rank == 0) base0 = r.ours;
    const double lr_frac = r.rank > 0 ? (r.ours - base0) / base0 * 100.0 : 0.0;
    const double gbs = r.m <= 16 ? (double)r.n * ((r.k + 31) / 32 * 32) / 2 / (r.ours * 1e-3) / 1e9 : 0.0;
    std::printf("%6d %6d %6d %5s %4d | %8.4f %6.1f | %8.4f %6.1f | %8.4f %6.1f | %8.4f %6.1f %6.2f | %8.4f %6.2f | %6.1f %6.0f\n",
                r.n, r.k, r.m, r.rank_label.c_str(), r.rank, r.fp16, tflops(r, r.fp16), r.bf16,
                tflops(r, r.bf16), r.fp8, r.fp8 > 0 ? tflops(r, r.fp8) : 0.0, r.ours,
                tflops(r, r.ours), r.fp16 / r.ours, r.ours_unfused, r.fp16 / r.ours_unfused,
                lr_frac, gbs);
  }
  return 0;
}
