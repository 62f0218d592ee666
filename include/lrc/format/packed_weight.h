// Ŵ: an integer weight matrix that owns its shape (the ggml-style block of lrc).
//
// Layout (the checkpoint's `<name>.qweight`, and what every backend reads):
//   codes   the d_out x d_in unsigned codes, row-major, as ONE little-endian bit stream of
//           `bits`-wide fields (format/code_packing.h); for 4 bits: two codes a byte, low
//           nibble first, so a row of d_in codes is d_in/2 bytes when d_in is even.
//   scales  float [d_out x n_groups], zeros float [d_out x n_groups]; one pair per row and
//           group of `groupsize` input features (groupsize 0 = one group per row).
//   w[r][j] = scales[r][j/gs] · (code[r][j] − zeros[r][j/gs]).
// Symmetric (QuaRot) grids have zero = 2^(bits−1) everywhere, so code − zero is a signed
// value in [−2^(bits−1), 2^(bits−1) − 1]; asymmetric (GPTQ) grids store their own zeros. The
// checkpoint keeps scales and zeros as fp16; in memory they are floats holding fp16 values.
#pragma once

#include <cstdint>
#include <vector>

#include "lrc/format/code_packing.h"

namespace lrc {

// The 4-bit block as an integer kernel reads it: 32 consecutive codes of one row in 16 bytes,
// code 2i in the low nibble of byte i and code 2i+1 in its high nibble. This is the bit
// stream above cut into blocks whenever a row starts on a byte boundary (d_in·bits % 8 == 0).
struct BlockW4x32 {
  static constexpr int kCodes = 32;
  uint8_t qs[kCodes / 2];
};
static_assert(sizeof(BlockW4x32) == 16, "a 4-bit block of 32 codes is 16 bytes");

struct PackedWeight {
  int d_out = 0, d_in = 0;
  int bits = 4;
  int groupsize = 0;  // 0 = per row
  bool symmetric = true;
  std::vector<uint8_t> codes;  // packed_code_bytes(d_out*d_in, bits) bytes
  std::vector<float> scales;   // [d_out x n_groups()]
  std::vector<float> zeros;    // [d_out x n_groups()] (symmetric: all 2^(bits-1))

  int n_groups() const { return groupsize > 0 ? d_in / groupsize : 1; }
  int group_size() const { return groupsize > 0 ? groupsize : d_in; }
  int64_t count() const { return static_cast<int64_t>(d_out) * d_in; }
  int code(int r, int j) const { return unpack_code(codes.data(), int64_t{r} * d_in + j, bits); }

  // Throws lrc::Error naming `where` unless bits, group size and every array's size agree
  // with the shape.
  void validate(const char* where) const;
  // W[d_out x d_in] = scale · (code − zero), in float (exactly the product of the two floats).
  void dequantize(float* W) const;
  // Rows r0 .. r0+n-1 only: W[n x d_in].
  void dequantize_rows(int r0, int n, float* W) const;
};

// The same, checking that (d_out, d_in) is p's shape: callers that hold the shape elsewhere.
void dequantize(const PackedWeight& p, int d_out, int d_in, float* W);

}  // namespace lrc
