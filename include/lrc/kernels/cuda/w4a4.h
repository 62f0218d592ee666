// W4A4 + low-rank linear on NVIDIA Hopper (sm_90a):
//   y[m x n] = s_w[n] * s_x[m] * (Ŵ_int4 · Q_a(x)_int4)[m, n] + (U · (Vᵀ x))[m, n]
// Prefill (m > 16): int4 codes are exact in FP8 e4m3 and their products/sums are exact in the
// fp32 accumulator (|Σ| <= 64·k < 2^24), so the integer product runs on FP8 tensor cores via
// cuBLASLt with per-row/per-column ("outer vector") fp32 scales s_w, s_x in its epilogue; the
// low-rank term U·t (t = x·V, fp16) is computed by a cuBLAS fp16 GEMM into y and enters the FP8
// GEMM as its C input (beta = 1, in place).
// Decode (m <= 16): a hand-written GEMV reads the packed int4 weights (16-byte loads), dp4a's
// them against int8 activation codes (exact integers), and adds U·t in its epilogue.
//
// Host-side types only (no CUDA headers): x and y are fp16 bit patterns (uint16_t) in device
// memory (forward) or fp32 (forward_f32); `stream` is a cudaStream_t (CUstream_st*), nullptr = the default stream.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct CUstream_st;

namespace lrc::cuda {

// True when a CUDA device is usable; otherwise false and *why says why (for GTEST_SKIP).
bool device_available(std::string* why);

// GPU weight layout, built on the host from lrc's PackedWeight (symmetric, per-row, 4 bit).
//  k_pad = k rounded up to 128; padding columns hold the value 0 (code 8), so they add nothing.
//  w_e4m3 [n x k_pad]: e4m3 byte of the signed value (code - 8) in [-8, 7], row-major
//                      (cuBLASLt "TN": A = W transposed, k contiguous). 1 byte a weight.
//  w_int4 [n_pad16 x k_pad/2 bytes] (n_pad16 = n rounded up to 16; extra rows code 8): offset
//                      codes (0..15, value = code - 8) for the decode GEMV, ordered for the
//                      tensor-core instruction mma.m16n8k32 (u8 x s8). Element (r, j), with
//                      chunk q = j/32, i = j%32, group G = q/4, c = q%4, t = (i%16)/4, lives in
//                      32-bit word ((((r/16)·(k_pad/128) + G)·16 + r%16)·4 + t)·4 + c, byte i%4,
//                      low nibble if i < 16 else high. So for a 16-row tile and 128 columns the
//                      codes are 1 KB contiguous; lane (g, t) of a warp loads the 16-byte vector
//                      of row g (and of row g+8), and (w & 0x0F0F0F0F), ((w >> 4) & 0x0F0F0F0F)
//                      are its A-fragment registers for columns 32q+4t..+3 and 32q+16+4t..+3
//                      (w4a4_int4_byte computes the position).
//  s_w [n]: per-row weight scale (PackedWeight::scales).
//  On the device, w_e4m3 gets zero rows up to n_pad = n rounded up to 16 (cuBLASLt FP8 needs
//  it); when n != n_pad the GEMM writes fp32 accumulators and a small epilogue kernel scales.
//  Both weight copies are kept (1.5 bytes a weight); a future hand-written wgmma kernel could
//  expand w_int4 to e4m3 in shared memory and drop w_e4m3.
//  u [n x rank_pad], v [k x rank_pad]: fp16 bit patterns, rank_pad = rank rounded up to 16,
//  zero padded (exact).
struct W4A4Layout {
  int n = 0, k = 0, k_pad = 0;
  std::vector<uint8_t> w_e4m3;
  std::vector<uint8_t> w_int4;
  std::vector<float> s_w;
  int rank = 0, rank_pad = 0;
  std::vector<uint16_t> u, v;
  float act_clip = 1.0f;  // Q_a: 4-bit per-token symmetric RTN, scale = clip·max|x|/7
};

// Byte offset of element (r, j) in W4A4Layout::w_int4 and its nibble shift (0 or 4).
inline size_t w4a4_int4_byte(int r, int j, int k_pad, int* shift) {
  const int q = j / 32, i = j % 32;
  const size_t vec = ((static_cast<size_t>(r / 16) * (k_pad / 128) + q / 4) * 16 + r % 16) * 4 + (i % 16) / 4;
  const size_t word = vec * 4 + q % 4;
  *shift = i < 16 ? 0 : 4;
  return word * 4 + i % 4;
}

// Layout from a PackedWeight's fields: codes packed low nibble first, [n x k] row-major;
// scales/zeros [n x n_groups]. Only bits 4, groupsize 0 (per row), symmetric (zero 8) is
// supported; anything else fails with lrc::Error naming `where` and the field.
W4A4Layout make_w4a4_layout(int n, int k, const uint8_t* packed_codes, const float* scales,
                            const float* zeros, int bits, int groupsize, bool symmetric,
                            int act_bits, int act_groupsize, float act_clip,
                            const std::string& where);

// Sets the low-rank branch: u [n x rank], v [k x rank] row-major fp32 (rounded to fp16).
void set_low_rank(W4A4Layout& layout, int rank, const float* u, const float* v);

// e4m3 byte of an integer in [-8, 8] (exact), and back.
uint8_t int_to_e4m3(int v);
float e4m3_to_float(uint8_t b);

struct ForwardOptions {
  enum class Path { kAuto, kGemm, kGemv } path = Path::kAuto;  // auto: GEMV for m <= 16
  // Low-rank branch as separate steps (x·V GEMM, U·t GEMM into a scratch, FP8 GEMM, add
  // kernel) instead of U·t entering the FP8 GEMM as C: the "unfused" baseline.
  bool unfused_low_rank = false;
  // Test hook: when set, writes the integer accumulators Σ_k (code_w - 8)·code_x as fp32
  // [m x n] (exact: |Σ| < 2^24) instead of y, through the same tensor-core/GEMV path.
  float* raw_accumulators = nullptr;
  // forward_f32's GEMM path (m > 16 under kAuto): the low-rank branch in near-fp32, x and
  // t = x·V each split into fp16 hi + lo parts, so x·V and t·Uᵀ are two fp16 tensor-core
  // products each (U, V are fp16 already): twice the branch's cost, its rounding ~2^-22 instead
  // of fp16's 2^-11. The GEMV path and forward() keep the fp16 branch.
  bool split_low_rank = false;
};

// Activation quantizer on the device: x [m x k] fp16 -> codes [m x k_pad] (int8, or e4m3 bytes
// when `e4m3`), zero in the padding; s_x [m]; code_sum [m] = Σ codes (for the GEMV's -8·Σa).
// Same arithmetic as lrc::quantize_activation_row with bits 4, groupsize 0.
void quantize_activations_device(const uint16_t* x, int m, int k, int k_pad, float clip,
                                 bool e4m3, uint8_t* codes, float* s_x, int* code_sum,
                                 CUstream_st* stream);

// One linear's device-resident weights plus its scratch buffers and cuBLAS handles.
class W4A4Linear {
 public:
  explicit W4A4Linear(const W4A4Layout& layout);
  ~W4A4Linear();
  W4A4Linear(const W4A4Linear&) = delete;
  W4A4Linear& operator=(const W4A4Linear&) = delete;

  // Re-uploads U and V (same n, k) from `layout`.
  void set_low_rank(const W4A4Layout& layout);

  // y [m x ldy] fp16 (ldy >= n, ldy % 8 == 0) from x [m x k] fp16, both device pointers.
  void forward(const uint16_t* x, int m, uint16_t* y, int ldy, CUstream_st* stream,
               const ForwardOptions& opt = {});
  // The same with fp32 x and y (ldy >= n, ldy % 4 == 0, y 16-byte aligned): Q_a reads the
  // fp32 x (the simulation's input, not an fp16 rounding of it) and y leaves the FP8 GEMM's
  // fp32 epilogue unrounded; only the low-rank branch's x·V reads an fp16 copy of x (its
  // tensor-core GEMM; ForwardOptions::split_low_rank: hi + lo copies). What the model's
  // forward uses (kernels/cuda/backend.h).
  void forward_f32(const float* x, int m, float* y, int ldy, CUstream_st* stream,
                   const ForwardOptions& opt = {});

  // How the last GEMM applied s_w, s_x (cuBLASLt outer-vector or VEC128 block scales, or a
  // separate epilogue kernel over fp32 accumulators when neither is offered).
  const char* scale_mode() const;
  int n() const;
  int k() const;
  int rank() const;
  size_t weight_bytes_int4() const;  // bytes the decode GEMV streams per call (weights only)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lrc::cuda
