// Portable W4A4 tile and activation quantizer: the reference the SIMD kernels must match
// integer for integer (same kernel layout, plain loops).
#include <algorithm>
#include <cstring>

#include "kernels/cpu_int/w4a4_impl.h"

namespace lrc::kernels::cpu_int::detail {

void tile_scalar(const TileJob& j) {
  const W4A4Cpu& w = *j.w;
  const int steps_per_group = w.n_groups == 1 ? w.ksteps : w.groupsize / kStepK;
  int32_t raw[kMaxTileTokens * kPanelRows];
  float ftile[kMaxTileTokens * kPanelRows] = {};
  for (int g = 0; g < w.n_groups; ++g) {
    std::memset(raw, 0, sizeof raw);
    const int s0 = g * steps_per_group, s1 = std::min(w.ksteps, s0 + steps_per_group);
    for (int s = s0; s < s1; ++s) {
      const uint8_t* blk = w.codes.data() + (int64_t(j.p) * w.ksteps + s) * 64;
      for (int r = 0; r < 16; ++r)
        for (int kk = 0; kk < kStepK; ++kk) {
          const int lo = blk[4 * r + kk] & 0x0F, hi = blk[4 * r + kk] >> 4;
          for (int m = 0; m < j.mr; ++m) {
            const int xv = j.x[s * j.xs + kStepK * m + kk];
            raw[m * kPanelRows + r] += lo * xv;
            raw[m * kPanelRows + 16 + r] += hi * xv;
          }
        }
    }
    epilogue_portable(j, g, raw, ftile);
  }
  if (!j.iout && w.n_groups > 1) store_ftile(j, ftile);
}

void quantize_row_scalar(const float* x, int d, int kp, const ActQuantSpec& act, int gsize,
                         int8_t* codes, float* scale, int32_t* csum) {
  ActQuantSpec row = act;
  row.groupsize = 0;  // the kernel takes one scale per token (checked by the caller)
  quantize_activation_row(x, d, row, codes, scale);
  std::memset(codes + d, 0, size_t(kp - d));
  const int ng = gsize > 0 ? d / gsize : 1, gs = gsize > 0 ? gsize : d;
  for (int g = 0; g < ng; ++g) {
    int32_t s = 0;
    for (int i = g * gs; i < (g + 1) * gs; ++i) s += codes[i];
    csum[g] = s;
  }
}

}  // namespace lrc::kernels::cpu_int::detail
