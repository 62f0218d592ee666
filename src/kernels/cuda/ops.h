// The small element-wise and row-wise kernels of the CUDA backend (ops.cu); the matrix work is
// cuBLAS / cuBLASLt and the W4A4 linear (w4a4.h). Host-side declarations only: every pointer
// is device memory, activations fp32 row-major (rows are tokens), fp16 as uint16_t bit
// patterns; `s` is the stream (cudaStream_t). Each launcher checks its launch (lrc::Error).
#pragma once

#include <cstdint>

struct CUstream_st;

namespace lrc::cuda::ops {

using Stream = CUstream_st*;

// y [rows x cols] (row stride ldy) = fp16(x) (row stride ldx), saturated to ±65504 so an
// outlier becomes the largest finite half rather than inf (which would poison Q_a's max).
void f32_to_f16(const float* x, int64_t rows, int cols, int64_t ldx, uint16_t* y, int64_t ldy,
                Stream s);
// y [rows x cols] (ldy) = float(x) (ldx).
void f16_to_f32(const uint16_t* x, int64_t rows, int cols, int64_t ldx, float* y, int64_t ldy,
                Stream s);

// y [n x d] = x / sqrt(mean(x²) + eps) ⊙ w, the sum of squares in float64 (as the CPU).
void rmsnorm(const float* x, const float* w, int64_t n, int d, float eps, float* y, Stream s);

// cos/sin [n_pos x half] of positions 0 .. n_pos-1, angles in float64 (as RopeTable).
void rope_table(float theta, int head_dim, int n_pos, float* cos, float* sin, Stream s);
// x [n_rows x n_heads*hd] in place; row r at position pos_base + first + r % period (a
// table row). interleaved: pairs (2i, 2i+1), else (i, i + hd/2).
void rope(float* x, int64_t n_rows, int n_heads, int head_dim, bool interleaved, const float* cos,
          const float* sin, int pos_base, int period, int first, Stream s);

// Causal softmax in place on n_rows rows of `len` scores: row r (of group g = r / rows_per_head,
// local row i = r % rows_per_head) keeps its first first_valid + i + 1 entries (softmax over
// them) and zeroes the rest; with window > 0 only its last `window` of those (sliding window).
void causal_softmax(float* scores, int64_t n_rows, int rows_per_head, int len, int first_valid,
                    int window, Stream s);

// Simulated asymmetric KV quantization in place on x [n_rows x hd] (kernels/kv_quant.h).
void kv_quantize(float* x, int64_t n_rows, int head_dim, int bits, float clip, Stream s);

// Simulated Q_a: y [n x d] = scale · clamp(rint(x / scale)) per row (per group when
// groupsize > 0), the arithmetic of lrc::quantize_activation_row.
void act_quant_dequant(const float* x, int64_t n, int d, int bits, float clip, int groupsize,
                       float* y, Stream s);

// y [n x d] += b [d] on every row.
void add_bias(float* y, const float* b, int64_t n, int d, Stream s);

// h[n] += d[n];  g[n] = silu(g) ⊙ u.
void add(float* h, const float* d, int64_t n, Stream s);
void swiglu(float* g, const float* u, int64_t n, Stream s);

// h [n x dim] = table rows of tokens [n].
void embed(const float* table, int dim, const int32_t* tokens, int64_t n, float* h, Stream s);

// out[i] = log Σ_j exp(l_j − max) + max − l[targets[i]], the sum in float64.
void nll_rows(const float* logits, int64_t n, int vocab, const int32_t* targets, double* out,
              Stream s);

// x [n_rows x m*K] in place: each row times signs (if not null), then the unnormalised
// Walsh–Hadamard transform along each of its m segments of K (K a power of two, <= 8192).
void signs_walsh(float* x, int64_t n_rows, int m, int K, const float* signs, Stream s);

// w [n] fp32 -> fp16 (weights; no saturation needed, checked by the caller).
void weights_to_f16(const float* w, int64_t n, uint16_t* y, Stream s);

}  // namespace lrc::cuda::ops
