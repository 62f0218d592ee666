// Bit packing of integer weight codes (PackedWeight::codes).
//
// The d_out x d_in codes, row-major, form ONE little-endian bit stream: code i occupies bits
// [i*b, (i+1)*b) of the stream, bit 0 being the least significant bit of byte 0. For b = 4
// that is exactly "two codes a byte, low nibble first"; for b = 8 one code a byte; for b = 2
// four codes a byte, lowest bits first. Odd widths (3, 5, 6, 7) straddle byte boundaries.
#pragma once

#include <cstdint>
#include <vector>

namespace lrc {

// ceil(count * bits / 8).
int64_t packed_code_bytes(int64_t count, int bits);

// codes[i] must be < 2^bits; bits in 1..8.
std::vector<uint8_t> pack_codes(const uint8_t* codes, int64_t count, int bits);

// Inverse of pack_codes: codes[count] from `packed` (at least packed_code_bytes bytes).
void unpack_codes(const uint8_t* packed, int64_t count, int bits, uint8_t* codes);

// One code without unpacking the rest.
inline int unpack_code(const uint8_t* packed, int64_t i, int bits) {
  const int64_t bit = i * bits;
  const int64_t byte = bit >> 3;
  const int shift = static_cast<int>(bit & 7);
  // A code spans at most two bytes (bits <= 8).
  unsigned v = packed[byte] >> shift;
  if (shift + bits > 8) v |= static_cast<unsigned>(packed[byte + 1]) << (8 - shift);
  return static_cast<int>(v & ((1u << bits) - 1u));
}

}  // namespace lrc
