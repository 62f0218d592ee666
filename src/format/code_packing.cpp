#include "lrc/format/code_packing.h"

#include <algorithm>
#include <string>

#include "core/parallel_threshold.h"
#include "lrc/core/error.h"

namespace lrc {

int64_t packed_code_bytes(int64_t count, int bits) { return (count * bits + 7) / 8; }

std::vector<uint8_t> pack_codes(const uint8_t* codes, int64_t count, int bits) {
  if (bits < 1 || bits > 8) fail("pack_codes", "bits must be in 1..8, got " + std::to_string(bits));
  std::vector<uint8_t> out(packed_code_bytes(count, bits), 0);
  const unsigned limit = 1u << bits;
  if (bits == 4) {  // two codes a byte, low nibble first: whole bytes, on every core (a 7B layer
                    // is 200M codes); a code that does not fit is named by the loop below
    int ok = 1;
#pragma omp parallel for reduction(& : ok) if (count >= quant_detail::kMinParallelWork)
    for (int64_t i = 0; i < count; ++i) ok &= codes[i] < 16;
    if (ok) {
      const int64_t pairs = count / 2;
#pragma omp parallel for if (count >= quant_detail::kMinParallelWork)
      for (int64_t b = 0; b < pairs; ++b)
        out[b] = static_cast<uint8_t>(codes[2 * b] | (codes[2 * b + 1] << 4));
      if (count % 2) out[pairs] = codes[count - 1];
      return out;
    }
    std::fill(out.begin(), out.end(), uint8_t{0});
  }
  for (int64_t i = 0; i < count; ++i) {
    const unsigned c = codes[i];
    if (c >= limit)
      fail("pack_codes", "code " + std::to_string(c) + " at index " + std::to_string(i) +
                             " does not fit in " + std::to_string(bits) + " bits");
    // Little-endian bit stream: code i starts at bit i*bits; it may spill into the next byte.
    const int64_t bit = i * bits;
    const int64_t byte = bit >> 3;
    const int shift = static_cast<int>(bit & 7);
    out[byte] = static_cast<uint8_t>(out[byte] | (c << shift));
    if (shift + bits > 8) out[byte + 1] = static_cast<uint8_t>(out[byte + 1] | (c >> (8 - shift)));
  }
  return out;
}

void unpack_codes(const uint8_t* packed, int64_t count, int bits, uint8_t* codes) {
  if (bits < 1 || bits > 8)
    fail("unpack_codes", "bits must be in 1..8, got " + std::to_string(bits));
  for (int64_t i = 0; i < count; ++i) codes[i] = static_cast<uint8_t>(unpack_code(packed, i, bits));
}

}  // namespace lrc
