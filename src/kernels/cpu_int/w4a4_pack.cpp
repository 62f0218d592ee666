// Repacking into the kernel layout (w4a4.h), and the one adapter from lrc's PackedWeight.
#include <cmath>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/kernels/cpu_int/w4a4.h"
#include "lrc/format/packed_weight.h"
#include "lrc/format/code_packing.h"

namespace lrc::kernels::cpu_int {

namespace {
constexpr const char* kWhere = "w4a4 cpu kernel";
}

std::string unsupported_reason(const PackedWeight& p, const ActQuantSpec& act, int d_out,
                               int d_in) {
  if (p.bits != 4) return "weight bits " + std::to_string(p.bits) + " (needs 4)";
  if (d_in > kMaxDin)
    return "d_in " + std::to_string(d_in) + " (at most " + std::to_string(kMaxDin) +
           ": int32 accumulator headroom)";
  if (p.groupsize < 0 || (p.groupsize > 0 && (p.groupsize % kStepK != 0 || d_in % p.groupsize)))
    return "weight groupsize " + std::to_string(p.groupsize) +
           " (needs 0 or a multiple of 4 dividing d_in " + std::to_string(d_in) + ")";
  if (!act.enabled()) return "activations are not quantized (bits " + std::to_string(act.bits) + ")";
  if (act.bits < 2 || act.bits > 8)
    return "activation bits " + std::to_string(act.bits) + " (needs 2..8)";
  if (act.groupsize != 0 && act.groupsize != d_in)
    return "activation groupsize " + std::to_string(act.groupsize) + " (needs one scale per token)";
  for (float z : p.zeros)
    if (z != std::nearbyint(z) || z < 0.f || z > 255.f)
      return "weight zero point " + std::to_string(z) + " is not an integer in 0..255";
  return "";
}

W4A4Cpu pack_w4a4_cpu(const uint8_t* codes, const float* scales, const int32_t* zeros,
                      int d_out, int d_in, int groupsize, bool symmetric) {
  if (d_out <= 0 || d_in <= 0)
    fail(kWhere, "shape " + std::to_string(d_out) + "x" + std::to_string(d_in) + " is empty");
  if (d_in > kMaxDin)
    fail(kWhere, "d_in " + std::to_string(d_in) + " exceeds " + std::to_string(kMaxDin) +
                     " (int32 accumulator headroom)");
  if (groupsize < 0 || (groupsize > 0 && (groupsize % kStepK != 0 || d_in % groupsize != 0)))
    fail(kWhere, "groupsize " + std::to_string(groupsize) +
                     " must be 0 or a multiple of 4 dividing d_in " + std::to_string(d_in));
  W4A4Cpu w;
  w.d_out = d_out;
  w.d_in = d_in;
  w.groupsize = groupsize;
  w.n_groups = groupsize > 0 ? d_in / groupsize : 1;
  w.ksteps = (d_in + kStepK - 1) / kStepK;
  w.panels = (d_out + kPanelRows - 1) / kPanelRows;
  w.symmetric = symmetric;
  w.codes.assign(size_t(w.panels) * w.ksteps * 64, 0);
  for (int r = 0; r < d_out; ++r) {
    const int p = r / kPanelRows, rr = r % kPanelRows, lane = rr % 16, shift = rr < 16 ? 0 : 4;
    const uint8_t* row = codes + int64_t(r) * d_in;
    for (int k = 0; k < d_in; ++k) {
      if (row[k] > 15) fail(kWhere, "code " + std::to_string(row[k]) + " at row " +
                                        std::to_string(r) + " exceeds 4 bits");
      const int s = k / kStepK, kk = k % kStepK;
      w.codes[(size_t(p) * w.ksteps + s) * 64 + 4 * lane + kk] |= uint8_t(row[k] << shift);
    }
  }
  const int rp = w.rows_padded();
  w.scales.assign(size_t(w.n_groups) * rp, 0.f);
  w.zeros.assign(size_t(w.n_groups) * rp, 0);
  for (int r = 0; r < d_out; ++r)
    for (int g = 0; g < w.n_groups; ++g) {
      w.scales[size_t(g) * rp + r] = scales[int64_t(r) * w.n_groups + g];
      w.zeros[size_t(g) * rp + r] = zeros[int64_t(r) * w.n_groups + g];
    }
  return w;
}

W4A4Cpu pack_w4a4_cpu(const PackedWeight& p, int d_out, int d_in) {
  ActQuantSpec a4;
  a4.bits = 4;
  if (const std::string why = unsupported_reason(p, a4, d_out, d_in); !why.empty())
    fail(kWhere, "unsupported packed weight: " + why);
  const int ng = p.groupsize > 0 ? d_in / p.groupsize : 1;
  const int64_t count = int64_t(d_out) * d_in;
  if (int64_t(p.codes.size()) < packed_code_bytes(count, p.bits))
    fail(kWhere, "packed codes hold " + std::to_string(p.codes.size()) + " bytes, " +
                     std::to_string(d_out) + "x" + std::to_string(d_in) + " needs " +
                     std::to_string(packed_code_bytes(count, p.bits)));
  if (int64_t(p.scales.size()) != int64_t(d_out) * ng || p.zeros.size() != p.scales.size())
    fail(kWhere, "scales/zeros hold " + std::to_string(p.scales.size()) + "/" +
                     std::to_string(p.zeros.size()) + " values, expected " +
                     std::to_string(int64_t(d_out) * ng));
  std::vector<uint8_t> codes(static_cast<size_t>(count));
  unpack_codes(p.codes.data(), count, p.bits, codes.data());
  std::vector<int32_t> zeros(p.zeros.size());
  for (size_t i = 0; i < zeros.size(); ++i) zeros[i] = int32_t(p.zeros[i]);
  return pack_w4a4_cpu(codes.data(), p.scales.data(), zeros.data(), d_out, d_in, p.groupsize,
                       p.symmetric);
}

}  // namespace lrc::kernels::cpu_int
