// Driver of the W4A4 CPU kernels: ISA dispatch, fused per-token quantization into the
// GEMM's padded input, tiling + OpenMP over output panels, and the fp32 low-rank branch.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cpu_int/w4a4_impl.h"
#include "lrc/core/error.h"
#include "lrc/kernels/low_rank_branch.h"

namespace lrc::kernels::cpu_int {

using detail::kMaxTileTokens;
using detail::TileJob;

namespace {

constexpr const char* kWhere = "w4a4 cpu kernel";

Isa hardware_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    return Isa::kAvx512Vnni;
  if (__builtin_cpu_supports("avx2")) return Isa::kAvx2;
  return Isa::kScalar;
}

// An explicit request the CPU cannot run is an error, not a silent downgrade.
Isa resolve(Isa isa) {
  const Isa hw = hardware_isa();
  if (isa == Isa::kAuto) {
    // LRC_CPU_ISA is read once per process by the kernels (detect_isa() itself reads it anew).
    static const Isa auto_isa = detect_isa();
    return auto_isa;
  }
  if (int(isa) > int(hw))
    fail(kWhere, std::string("ISA ") + isa_name(isa) + " requested but the CPU has only " +
                     isa_name(hw));
  return isa;
}

void run_tile(Isa isa, const TileJob& j) {
  switch (isa) {
    case Isa::kAvx512Vnni: return detail::tile_avx512(j);
    case Isa::kAvx2: return detail::tile_avx2(j);
    default: return detail::tile_scalar(j);
  }
}

// Tokens per L2 chunk in prefill: the chunk's codes (tokens x kp bytes) stay in L2 while
// every weight panel of this thread streams past them; a multiple of the 12-token block.
int64_t chunk_tokens(int kp) {
  const int64_t t = (int64_t(384) << 10) / std::max(kp, 1);
  return std::clamp<int64_t>(t / kMaxTileTokens * kMaxTileTokens, kMaxTileTokens, 240);
}

// Codes [n x kp] + per-group row sums, scratch reused across calls (one per thread).
struct Scratch {
  AlignedVec<int8_t> codes;
  std::vector<float> sx;
  std::vector<int32_t> csum;
  std::vector<float> t;
  AlignedVec<int8_t> row;  // one token's codes (serial path)
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Token i's codes (row[kp]) into the interleaved GEMM input: blocks of kMaxTileTokens
// tokens, block b at b*kMaxTileTokens*kp, inside it step s of token m at s*4*mr + 4m
// (mr = the block's token count), so a tile's broadcasts walk one pointer.
void scatter_row(const int8_t* row, int64_t i, int64_t n, int ksteps, int8_t* out) {
  const int64_t b = i / kMaxTileTokens, m = i % kMaxTileTokens;
  const int64_t mr = std::min<int64_t>(kMaxTileTokens, n - b * kMaxTileTokens);
  int8_t* dst = out + b * kMaxTileTokens * int64_t(ksteps) * kStepK + kStepK * m;
  for (int s = 0; s < ksteps; ++s) std::memcpy(dst + s * kStepK * mr, row + s * kStepK, kStepK);
}

void quantize_into(const W4A4Cpu& w, const ActQuantSpec& act, const float* x, int64_t n,
                   Isa isa, Scratch& s) {
  const int kp = w.ksteps * kStepK;
  if (int64_t(s.codes.size()) < n * kp) s.codes.resize(size_t(n * kp));
  s.sx.resize(size_t(n));
  s.csum.resize(size_t(n * w.n_groups));
  const int gs = w.groupsize;
  auto one = [&](int64_t i, int8_t* row) {
    if (isa == Isa::kAvx512Vnni)
      detail::quantize_row_avx512(x + i * w.d_in, w.d_in, kp, act, gs, row, &s.sx[size_t(i)],
                                  &s.csum[size_t(i * w.n_groups)]);
    else
      detail::quantize_row_scalar(x + i * w.d_in, w.d_in, kp, act, gs, row, &s.sx[size_t(i)],
                                  &s.csum[size_t(i * w.n_groups)]);
    scatter_row(row, i, n, w.ksteps, s.codes.data());
  };
  // Decode-sized input: no OpenMP region at all (an inactive one still costs futex calls).
  if (n * w.d_in < (1 << 16)) {
    if (s.row.size() < size_t(kp)) s.row.resize(size_t(kp));
    for (int64_t i = 0; i < n; ++i) one(i, s.row.data());
    return;
  }
#pragma omp parallel
  {
    AlignedVec<int8_t> row(static_cast<size_t>(kp));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) one(i, row.data());
  }
}

void check_act(const ActQuantSpec& act, int d_in) {
  if (!act.enabled() || act.bits < 2 || act.bits > 8)
    fail(kWhere, "activation bits " + std::to_string(act.bits) + " (needs 2..8)");
  if (act.groupsize != 0 && act.groupsize != d_in)
    fail(kWhere, "activation groupsize " + std::to_string(act.groupsize) +
                     " (needs one scale per token)");
}

// y (float) or iout (integers, [n x d_out x n_groups]) for interleaved codes (scatter_row).
void integer_gemm(const W4A4Cpu& w, const int8_t* codes, const float* sx, const int32_t* csum,
                  int64_t n, Isa isa, float* y, int32_t* iout) {
  const int64_t kp = int64_t(w.ksteps) * kStepK;
  const int64_t chunk = n < 16 ? n : chunk_tokens(int(kp));
  const int ng = w.n_groups;
  // All tiles of panel p for tokens [c0, c1); ibuf: integer-mode scratch of the calling thread.
  auto panel = [&](int p, int64_t c0, int64_t c1, int32_t* ibuf) {
    for (int64_t m0 = c0; m0 < c1; m0 += kMaxTileTokens) {
      TileJob j;
      j.w = &w;
      j.p = p;
      j.mr = int(std::min<int64_t>(kMaxTileTokens, c1 - m0));
      j.x = codes + m0 * kp;  // m0 is a multiple of kMaxTileTokens: a block start
      j.xs = int64_t(kStepK) * j.mr;
      j.csum = csum + m0 * ng;
      j.sx = sx + m0;
      j.y = y ? y + m0 * w.d_out : nullptr;
      j.ys = w.d_out;
      j.iout = ibuf;
      run_tile(isa, j);
      if (iout) {
        const int rows = std::min(kPanelRows, w.d_out - p * kPanelRows);
        for (int g = 0; g < ng; ++g)
          for (int m = 0; m < j.mr; ++m)
            for (int r = 0; r < rows; ++r)
              iout[((m0 + m) * w.d_out + p * kPanelRows + r) * ng + g] =
                  ibuf[(size_t(g) * j.mr + m) * kPanelRows + r];
      }
    }
  };
  const size_t ibuf_size = iout ? size_t(ng) * kMaxTileTokens * kPanelRows : 0;
  // Below ~2M multiply-adds (a few microseconds) waking a second thread costs more than it
  // saves (SmolLM2's 576x576 projections at decode): plain loops, no OpenMP region. (Not an
  // orphaned `omp for` either: called from inside a caller's parallel region, that would
  // split this one call's panels across the caller's threads.)
  if (n * int64_t(w.d_out) * w.d_in < (int64_t(1) << 21)) {
    std::vector<int32_t> ibuf(ibuf_size);
    for (int64_t c0 = 0; c0 < n; c0 += chunk)
      for (int p = 0; p < w.panels; ++p)
        panel(p, c0, std::min(n, c0 + chunk), iout ? ibuf.data() : nullptr);
    return;
  }
#pragma omp parallel
  {
    std::vector<int32_t> ibuf(ibuf_size);
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
      const int64_t c1 = std::min(n, c0 + chunk);
#pragma omp for schedule(static) nowait
      for (int p = 0; p < w.panels; ++p) panel(p, c0, c1, iout ? ibuf.data() : nullptr);
    }
  }
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Vnni: return "avx512-vnni";
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: return "scalar";
    default: return "auto";
  }
}

Isa detect_isa() {
  const Isa hw = hardware_isa();
  const char* env = std::getenv("LRC_CPU_ISA");
  if (!env || !*env) return hw;
  const std::string e = env;
  Isa want = e == "scalar" ? Isa::kScalar
             : e == "avx2" ? Isa::kAvx2
             : (e == "avx512" || e == "avx512-vnni") ? Isa::kAvx512Vnni
                                                      : Isa::kAuto;
  if (want == Isa::kAuto)
    fail("LRC_CPU_ISA", "'" + e + "' is not one of scalar, avx2, avx512");
  if (int(want) > int(hw))
    fail("LRC_CPU_ISA", e + " requested but the CPU has only " + isa_name(hw));
  return want;
}

void quantize_activations_int(const ActQuantSpec& act, const float* x, int64_t n, int d_in,
                              int8_t* codes, float* scales, int32_t* csum, Isa isa) {
  check_act(act, d_in);
  isa = resolve(isa);
  const int kp = (d_in + kStepK - 1) / kStepK * kStepK;
  std::vector<int8_t> row(static_cast<size_t>(kp));
  for (int64_t i = 0; i < n; ++i) {
    if (isa == Isa::kAvx512Vnni)
      detail::quantize_row_avx512(x + i * d_in, d_in, kp, act, 0, row.data(), scales + i,
                                  csum + i);
    else
      detail::quantize_row_scalar(x + i * d_in, d_in, kp, act, 0, row.data(), scales + i,
                                  csum + i);
    std::memcpy(codes + i * d_in, row.data(), size_t(d_in));
  }
}

void int_accumulators(const W4A4Cpu& w, const int8_t* cx, int64_t n, int32_t* acc, Isa isa) {
  isa = resolve(isa);
  const int64_t kp = int64_t(w.ksteps) * kStepK;
  AlignedVec<int8_t> codes(size_t(n * kp), 0);
  std::vector<int32_t> csum(size_t(n * w.n_groups), 0);
  std::vector<float> sx(size_t(n), 1.f);
  std::vector<int8_t> row(static_cast<size_t>(kp), 0);
  const int gs = w.groupsize > 0 ? w.groupsize : w.d_in;
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < w.d_in; ++k) {
      row[size_t(k)] = cx[i * w.d_in + k];
      csum[size_t(i * w.n_groups + k / gs)] += cx[i * w.d_in + k];
    }
    scatter_row(row.data(), i, n, w.ksteps, codes.data());
  }
  integer_gemm(w, codes.data(), sx.data(), csum.data(), n, isa, nullptr, acc);
}

void w4a4_linear(const W4A4Cpu& w, const ActQuantSpec& act, const float* u, const float* v,
                 int rank, const float* x, int64_t n, float* y, Isa isa) {
  if (n <= 0) return;
  check_act(act, w.d_in);
  if (rank < 0 || (rank > 0 && (!u || !v)))
    fail(kWhere, "rank " + std::to_string(rank) + " needs u and v");
  isa = resolve(isa);
  Scratch& s = scratch();
  quantize_into(w, act, x, n, isa, s);
  integer_gemm(w, s.codes.data(), s.sx.data(), s.csum.data(), n, isa, y, nullptr);
  // The low-rank branch on the unquantized x, into the same output: the one function the
  // simulation calls too (kernels/low_rank_branch.h), so both add the same floats.
  add_low_rank(x, n, w.d_in, u, v, rank, w.d_out, y, s.t);
}

}  // namespace lrc::kernels::cpu_int
