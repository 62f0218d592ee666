// Internals shared by the W4A4 CPU kernel files: the tile job the driver hands to one ISA's
// code, and the portable epilogue. Everything here has internal linkage or is a plain
// declaration: the ISA files compile under `#pragma GCC target`, and an inline function with
// external linkage instantiated there could be picked by the linker for the whole program.
#pragma once

#include <cmath>
#include <cstdint>

#include "lrc/kernels/cpu_int/w4a4.h"

namespace lrc::kernels::cpu_int::detail {

// Largest token block one tile call takes (the AVX-512 kernel's register block: 12 tokens x
// 32 rows = 24 zmm accumulators).
inline constexpr int kMaxTileTokens = 12;

// One output tile: tokens [0, mr) of `x` against weight panel p, all groups, whole d_in.
struct TileJob {
  const W4A4Cpu* w = nullptr;
  int p = 0;               // panel: rows 32p .. 32p+31
  // Activation codes interleaved for the tile: step s (inputs 4s..4s+3) of token m at
  // x + s*xs + 4m, xs = 4*mr; inputs past d_in are 0.
  const int8_t* x = nullptr;
  int64_t xs = 0;
  int mr = 0;              // tokens in the tile, 1..kMaxTileTokens
  const int32_t* csum = nullptr;  // [mr x n_groups] Σ codes per weight group
  const float* sx = nullptr;      // [mr] token scales
  float* y = nullptr;             // output row of the first token
  int64_t ys = 0;                 // row stride of y (d_out)
  int32_t* iout = nullptr;        // integer mode (tests): [n_groups x mr x 32] Σ (cw-zw)·cx
};

// Per ISA: one tile (any mr <= kMaxTileTokens), and one activation row
// (codes[kp] with zero padding after d, scale, csum[n_groups] for weight group `gsize`).
void tile_scalar(const TileJob& j);
void tile_avx2(const TileJob& j);
void tile_avx512(const TileJob& j);
void quantize_row_scalar(const float* x, int d, int kp, const ActQuantSpec& act, int gsize,
                         int8_t* codes, float* scale, int32_t* csum);
void quantize_row_avx512(const float* x, int d, int kp, const ActQuantSpec& act, int gsize,
                         int8_t* codes, float* scale, int32_t* csum);

namespace {

// raw[mr x 32] = Σ_{j in group g} cw·cx of the tile; applies the zero-point correction and
// either stores integers (iout) or the scaled result: straight into y when there is one group,
// else accumulated into ftile[mr x 32] (the caller scales by s_x at the end).
[[maybe_unused]] inline void epilogue_portable(const TileJob& j, int g, const int32_t* raw,
                                               float* ftile) {
  const W4A4Cpu& w = *j.w;
  const int64_t off = int64_t(g) * w.rows_padded() + int64_t(j.p) * kPanelRows;
  const int32_t* z = w.zeros.data() + off;
  const float* sw = w.scales.data() + off;
  const int rows = w.d_out - j.p * kPanelRows < kPanelRows ? w.d_out - j.p * kPanelRows
                                                            : kPanelRows;
  for (int m = 0; m < j.mr; ++m) {
    const int32_t cs = j.csum[m * w.n_groups + g];
    const int32_t* r = raw + m * kPanelRows;
    if (j.iout) {
      int32_t* o = j.iout + (int64_t(g) * j.mr + m) * kPanelRows;
      for (int i = 0; i < kPanelRows; ++i) o[i] = r[i] - z[i] * cs;
    } else if (w.n_groups == 1) {
      float* yo = j.y + m * j.ys + j.p * kPanelRows;
      for (int i = 0; i < rows; ++i) yo[i] = float(r[i] - z[i] * cs) * sw[i] * j.sx[m];
    } else {
      float* f = ftile + m * kPanelRows;
      // fma, as the AVX-512 kernel and the simulation (cpu_ref) round it: once
      for (int i = 0; i < kPanelRows; ++i) f[i] = std::fma(float(r[i] - z[i] * cs), sw[i], f[i]);
    }
  }
}

// Grouped weights: y = s_x · ftile for the valid rows.
[[maybe_unused]] inline void store_ftile(const TileJob& j, const float* ftile) {
  const W4A4Cpu& w = *j.w;
  const int rows = w.d_out - j.p * kPanelRows < kPanelRows ? w.d_out - j.p * kPanelRows
                                                            : kPanelRows;
  for (int m = 0; m < j.mr; ++m) {
    float* yo = j.y + m * j.ys + j.p * kPanelRows;
    for (int i = 0; i < rows; ++i) yo[i] = ftile[m * kPanelRows + i] * j.sx[m];
  }
}

}  // namespace
}  // namespace lrc::kernels::cpu_int::detail
