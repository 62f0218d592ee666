#include "lrc/format/packed_weight.h"

#include <string>

#include "core/parallel_threshold.h"
#include "lrc/core/error.h"

namespace lrc {

void PackedWeight::validate(const char* where) const {
  if (d_out <= 0 || d_in <= 0)
    fail(where, "bad shape " + std::to_string(d_out) + " x " + std::to_string(d_in));
  if (bits < 1 || bits > 8) fail(where, "bits must be in 1..8, got " + std::to_string(bits));
  if (groupsize < 0 || (groupsize > 0 && d_in % groupsize != 0))
    fail(where, "group size " + std::to_string(groupsize) + " does not divide d_in = " +
                    std::to_string(d_in));
  if (static_cast<int64_t>(codes.size()) != packed_code_bytes(count(), bits))
    fail(where, "codes have " + std::to_string(codes.size()) + " bytes, expected " +
                    std::to_string(packed_code_bytes(count(), bits)));
  const size_t ng = static_cast<size_t>(d_out) * n_groups();
  if (scales.size() != ng || zeros.size() != ng)
    fail(where, "scales/zeros have " + std::to_string(scales.size()) + "/" +
                    std::to_string(zeros.size()) + " entries, expected " + std::to_string(ng));
}

void PackedWeight::dequantize_rows(int r0, int n, float* W) const {
  const int ng = n_groups(), gs = group_size();
#pragma omp parallel for schedule(static) if (int64_t{n} * d_in >= quant_detail::kMinParallelWork)
  for (int i = 0; i < n; ++i) {
    const int r = r0 + i;
    float* out = W + static_cast<size_t>(i) * d_in;
    if (bits == 4 && gs % 2 == 0) {  // whole bytes, two codes each (low nibble first)
      const uint8_t* row = codes.data() + static_cast<size_t>(r) * (d_in / 2);
      for (int j = 0; j < d_in; j += 2) {
        const size_t gi = static_cast<size_t>(r) * ng + j / gs;  // j, j+1: one group
        out[j] = scales[gi] * (static_cast<float>(row[j / 2] & 15) - zeros[gi]);
        out[j + 1] = scales[gi] * (static_cast<float>(row[j / 2] >> 4) - zeros[gi]);
      }
      continue;
    }
    for (int j = 0; j < d_in; ++j) {
      const size_t gi = static_cast<size_t>(r) * ng + j / gs;
      out[j] = scales[gi] * (static_cast<float>(code(r, j)) - zeros[gi]);
    }
  }
}

void PackedWeight::dequantize(float* W) const {
  validate("dequantize");
  dequantize_rows(0, d_out, W);
}

void dequantize(const PackedWeight& p, int d_out, int d_in, float* W) {
  if (p.d_out != d_out || p.d_in != d_in)
    fail("dequantize", "PackedWeight is " + std::to_string(p.d_out) + " x " +
                           std::to_string(p.d_in) + ", asked for " + std::to_string(d_out) +
                           " x " + std::to_string(d_in));
  p.dequantize(W);
}

}  // namespace lrc
