// The finite field GF(q), q = p^k, just enough of it for Paley's constructions: subtraction
// and the quadratic character χ(x) = 0 if x = 0, +1 if x is a nonzero square, -1 otherwise.
//
// An element is the polynomial c_0 + c_1·x + ... + c_{k-1}·x^{k-1} over Z_p, indexed by the
// integer c_0 + c_1·p + ... + c_{k-1}·p^{k-1}; products are reduced modulo a monic irreducible
// polynomial of degree k (the first one found in index order, so the field is deterministic).
#pragma once

#include <cstdint>
#include <vector>

namespace lrc::detail {

// True if q = p^k for a prime p and k >= 1; sets *p and *k.
bool is_prime_power(int q, int* p, int* k);

class GaloisField {
 public:
  explicit GaloisField(int q);  // q must be a prime power
  int order() const { return q_; }
  int sub(int a, int b) const;
  int mul(int a, int b) const;
  int chi(int a) const { return chi_[a]; }  // quadratic character

 private:
  int p_ = 0, k_ = 0, q_ = 0;
  std::vector<int> modulus_;  // monic irreducible polynomial: k+1 coefficients, low first
  std::vector<int8_t> chi_;
};

}  // namespace lrc::detail
