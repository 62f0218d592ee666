// Real W4A4 + low-rank linear on the CPU (issue 26):
//
//   y[n x d_out] = s_x · s_w · Σ_j (cw_j - zw) · cx_j  +  (x · V) · Uᵀ
//
// with 4-bit weight codes cw (unsigned 0..15, zero point zw per row or row-group), per-token
// activation codes cx = quantize_activation_row(x) (signed, up to 8 bits) and int32
// accumulation. The integer dot product runs on AVX-512 VNNI (vpdpbusd: unsigned weight code
// times signed activation code, four products summed into an int32 lane), AVX2
// (vpmaddubsw + vpmaddwd) or portable scalar code; all three give the same int32
// accumulators. vpdpbusd multiplies the UNSIGNED code, so the kernel accumulates Σ cw·cx and
// subtracts zw·Σ cx (the activation row-sum, computed while quantizing) in the epilogue:
// Σ (cw - zw)·cx = Σ cw·cx - zw·Σ cx, exact in int32 (the AVX-512 kernel accumulates the
// high-nibble rows as 16·cw, so |partial sums| <= 240·128·d_in: d_in is limited to 65536).
//
// The low-rank branch t = x·V, y += t·Uᵀ runs in fp32 through OpenBLAS sgemm on the
// UNquantized x, into the same output.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "lrc/format/act_quant.h"

namespace lrc {

struct PackedWeight;

namespace kernels::cpu_int {

// Which integer dot-product code to run. kAuto: the best the CPU has (checked at run time
// with __builtin_cpu_supports), unless the environment variable LRC_CPU_ISA names one
// (scalar | avx2 | avx512) — the tests use that and the explicit argument to force fallbacks.
enum class Isa { kAuto, kScalar, kAvx2, kAvx512Vnni };

// The ISA kAuto resolves to on this machine (after LRC_CPU_ISA), and its name.
Isa detect_isa();
const char* isa_name(Isa isa);

// 64-byte aligned storage, so a 64-byte weight block never straddles two cache lines.
template <class T>
struct AlignedAlloc {
  using value_type = T;
  AlignedAlloc() = default;
  template <class U>
  AlignedAlloc(const AlignedAlloc<U>&) {}
  T* allocate(size_t n) {
    void* p = ::operator new(n * sizeof(T), std::align_val_t(64));
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const AlignedAlloc<U>&) const { return true; }
};
template <class T>
using AlignedVec = std::vector<T, AlignedAlloc<T>>;

// Output rows are handled in panels of kPanelRows; the input dimension in steps of 4 (one
// vpdpbusd lane sums four products).
inline constexpr int kPanelRows = 32;
inline constexpr int kStepK = 4;
// Largest d_in: the AVX-512 kernel's high-nibble sums reach 240·128·d_in < 2^31.
inline constexpr int kMaxDin = 65536;

// Kernel layout of a 4-bit weight, repacked once from PackedWeight.
//   codes: [panels x ksteps x 64] bytes. Block (p, s) covers rows 32p..32p+31 and inputs
//          4s..4s+3; byte b = 4r + kk (r in 0..15, kk in 0..3) holds the code of row 32p+r,
//          input 4s+kk in its LOW nibble and that of row 32p+16+r in its HIGH nibble. One
//          64-byte load and two ANDs give two vpdpbusd weight operands (16 rows x 4 inputs
//          each). Padding rows/inputs hold code 0 (the padded activations are 0 too).
//   scales, zeros: [n_groups x panels*32] (group-major, so one panel's 32 rows are contiguous);
//          zeros are the integer zero points (8 for symmetric 4-bit).
struct W4A4Cpu {
  int d_out = 0, d_in = 0;
  int groupsize = 0;  // 0 = one (scale, zero) per row, else a multiple of 4 dividing d_in
  int n_groups = 1;
  int ksteps = 0;  // ceil(d_in / 4)
  int panels = 0;  // ceil(d_out / 32)
  bool symmetric = true;
  AlignedVec<uint8_t> codes;
  std::vector<float> scales;
  std::vector<int32_t> zeros;
  int rows_padded() const { return panels * kPanelRows; }
};

// Why lrc's packed weight + activation spec cannot run on these kernels ("" when they can):
// weights must be 4-bit with integer zero points, groupsize 0 or a multiple of 4, d_in <= 65536;
// the activation quantizer must be on, 2..8 bits, one scale per token (groupsize 0 or d_in).
// The caller falls back to the simulated forward on a non-empty answer.
std::string unsupported_reason(const PackedWeight& p, const ActQuantSpec& act, int d_out,
                               int d_in);

// The ONE adapter from lrc's PackedWeight (include/lrc/format/packed_weight.h). Throws lrc::Error
// naming the field when unsupported_reason(p, {bits 4}, ...) is non-empty or sizes disagree.
W4A4Cpu pack_w4a4_cpu(const PackedWeight& p, int d_out, int d_in);

// Core packer: codes[d_out x d_in] (one byte per code, 0..15), scales/zeros[d_out x n_groups].
W4A4Cpu pack_w4a4_cpu(const uint8_t* codes, const float* scales, const int32_t* zeros,
                      int d_out, int d_in, int groupsize, bool symmetric);

// Activation quantizer of the kernel: codes[n x d_in] and scales[n] equal to
// quantize_activation_row's (act.groupsize must be 0 or d_in), row sums csum[n] = Σ_j codes.
void quantize_activations_int(const ActQuantSpec& act, const float* x, int64_t n, int d_in,
                              int8_t* codes, float* scales, int32_t* csum, Isa isa = Isa::kAuto);

// Integer part only, for tests: acc[n x d_out x n_groups] = Σ_{j in group} (cw_j - zw)·cx_j
// for codes cx[n x d_in] (signed, any int8).
void int_accumulators(const W4A4Cpu& w, const int8_t* cx, int64_t n, int32_t* acc,
                      Isa isa = Isa::kAuto);

// y[n x d_out] = Ŵ · Q_a(x) + U · (Vᵀ x) with x[n x d_in], u[d_out x rank], v[d_in x rank]
// (u, v unused when rank == 0). Decode (n < 16) streams each weight panel once for all
// tokens; prefill tiles tokens in L2-sized chunks. OpenMP over output panels.
void w4a4_linear(const W4A4Cpu& w, const ActQuantSpec& act, const float* u, const float* v,
                 int rank, const float* x, int64_t n, float* y, Isa isa = Isa::kAuto);

}  // namespace kernels::cpu_int
}  // namespace lrc
