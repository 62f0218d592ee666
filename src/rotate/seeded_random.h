// The random numbers behind every rotation: SplitMix64 and a Box–Muller normal, written out
// here (rather than <random>'s distributions, whose output is implementation-defined) so that
// a seed names the same rotation on every platform and standard library.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace lrc::detail {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1): 53 random bits, never exactly 0.
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  int8_t sign() { return (next() >> 63) ? int8_t{-1} : int8_t{1}; }
  // Standard normal (Box–Muller, both outputs used).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform())), a = 2.0 * std::numbers::pi * uniform();
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// A well-mixed seed for one named use of a master seed (e.g. "residual", "down_proj").
inline uint64_t derive_seed(uint64_t seed, uint64_t tag) {
  SplitMix64 r(seed ^ (tag * 0xd1b54a32d192ed03ull));
  return r.next();
}

}  // namespace lrc::detail
