// Host-side conversion of lrc's packed 4-bit weights to the GPU layout (see w4a4.h).
#include <cmath>
#include <cstring>
#include <string>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/kernels/cuda/w4a4.h"

namespace lrc::cuda {

namespace {
// e4m3 (bias 7, 3 mantissa bits) of 0..8: all exact.
constexpr uint8_t kE4m3Pos[9] = {0x00, 0x38, 0x40, 0x44, 0x48, 0x4A, 0x4C, 0x4E, 0x50};
}  // namespace

uint8_t int_to_e4m3(int v) {
  if (v < -8 || v > 8) fail("int_to_e4m3", "value " + std::to_string(v) + " outside [-8, 8]");
  return v < 0 ? static_cast<uint8_t>(0x80 | kE4m3Pos[-v]) : kE4m3Pos[v];
}

// Decodes any finite e4m3 byte (subnormals included); used by tests to check the table.
float e4m3_to_float(uint8_t b) {
  const int sign = b >> 7, e = (b >> 3) & 0xF, m = b & 7;
  const float mag = e == 0 ? std::ldexp(static_cast<float>(m) / 8.f, -6)
                           : std::ldexp(1.f + static_cast<float>(m) / 8.f, e - 7);
  return sign ? -mag : mag;
}

W4A4Layout make_w4a4_layout(int n, int k, const uint8_t* packed_codes, const float* scales,
                            const float* zeros, int bits, int groupsize, bool symmetric,
                            int act_bits, int act_groupsize, float act_clip,
                            const std::string& where) {
  if (bits != 4)
    fail(where, "packed.bits is " + std::to_string(bits) + "; the CUDA W4A4 kernel needs 4");
  if (groupsize != 0 && groupsize < k)
    fail(where, "packed.groupsize is " + std::to_string(groupsize) +
                    "; the CUDA W4A4 kernel needs one scale per row (groupsize 0)");
  if (!symmetric)
    fail(where, "packed.symmetric is false; the CUDA W4A4 kernel needs symmetric weights");
  if (act_bits != 4)
    fail(where, "act.bits is " + std::to_string(act_bits) +
                    "; the CUDA W4A4 kernel needs 4-bit activations");
  if (act_groupsize != 0 && act_groupsize != k)
    fail(where, "act.groupsize is " + std::to_string(act_groupsize) +
                    "; the CUDA W4A4 kernel needs one activation scale per token");
  if (n <= 0 || k <= 0) fail(where, "shape " + std::to_string(n) + "x" + std::to_string(k));
  W4A4Layout L;
  L.n = n;
  L.k = k;
  L.k_pad = (k + 127) / 128 * 128;  // 128: cuBLASLt's VEC128 scale blocks
  L.act_clip = act_clip;
  L.s_w.assign(scales, scales + n);
  L.w_e4m3.assign(static_cast<size_t>(n) * L.k_pad, 0);
  const int n_pad16 = (n + 15) / 16 * 16;
  L.w_int4.assign(static_cast<size_t>(n_pad16) * L.k_pad / 2, 0x88);  // code 8 = value 0
  for (int r = 0; r < n; ++r) {
    if (zeros[r] != 8.f)
      fail(where, "packed.zeros[" + std::to_string(r) + "] is " + std::to_string(zeros[r]) +
                      "; a symmetric 4-bit weight has zero point 8");
    const size_t base = static_cast<size_t>(r) * k;  // bit stream: element index r*k + j
    uint8_t* e4 = &L.w_e4m3[static_cast<size_t>(r) * L.k_pad];
    for (int j = 0; j < k; ++j) {
      const size_t idx = base + j;
      const int code = (packed_codes[idx >> 1] >> ((idx & 1) * 4)) & 0xF;
      e4[j] = int_to_e4m3(code - 8);
      int shift = 0;
      uint8_t& b = L.w_int4[w4a4_int4_byte(r, j, L.k_pad, &shift)];
      b = static_cast<uint8_t>((b & ~(0xF << shift)) | (code << shift));
    }
  }
  return L;
}

void set_low_rank(W4A4Layout& L, int rank, const float* u, const float* v) {
  if (rank < 0) fail("set_low_rank", "rank " + std::to_string(rank));
  L.rank = rank;
  L.rank_pad = (rank + 15) / 16 * 16;
  L.u.assign(static_cast<size_t>(L.n) * L.rank_pad, 0);
  L.v.assign(static_cast<size_t>(L.k) * L.rank_pad, 0);
  for (int r = 0; r < L.n; ++r)
    for (int j = 0; j < rank; ++j)
      L.u[static_cast<size_t>(r) * L.rank_pad + j] = f32_to_f16(u[static_cast<size_t>(r) * rank + j]);
  for (int r = 0; r < L.k; ++r)
    for (int j = 0; j < rank; ++j)
      L.v[static_cast<size_t>(r) * L.rank_pad + j] = f32_to_f16(v[static_cast<size_t>(r) * rank + j]);
}

}  // namespace lrc::cuda
