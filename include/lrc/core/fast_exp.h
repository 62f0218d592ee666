// exp(x) for float32 in straight-line code that compilers vectorize (glibc's expf is a scalar
// call unless -ffast-math). Cephes' expf: x = n·ln2 + r with |r| <= ln2/2 (ln2 split in two
// parts so r is exact), e^r by a degree-6 polynomial, 2^n put into the exponent bits.
// Relative error about 2 ulp on [-87.3, 88.3]; below that the result is 0, above it is
// clamped to exp(88.3) (about 2.2e38): never inf or NaN for finite x.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace lrc {

inline float fast_expf(float x) {
  const bool underflow = x < -87.3f;
  x = std::min(std::max(x, -87.3f), 88.3f);
  // n = round(x / ln2): adding and subtracting 1.5·2^23 rounds to an integer in plain float
  // arithmetic (exact for |v| < 2^22), which vectorizes where std::nearbyint would not.
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = x - n * 0.693359375f;  // ln2 = 0.693359375
  r = r - n * -2.12194440e-4f;     //      - 2.12194440e-4
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n for n in [-126, 127]: the biased exponent n + 127 with a zero mantissa.
  const float two_n =
      std::bit_cast<float>(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  return underflow ? 0.f : p * two_n;
}

}  // namespace lrc
