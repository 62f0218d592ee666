#include "rotate/galois_field.h"

#include "lrc/core/error.h"

namespace lrc::detail {

bool is_prime_power(int q, int* p, int* k) {
  if (q < 2) return false;
  int f = 2;
  while (f * f <= q && q % f != 0) ++f;
  if (q % f != 0) f = q;  // q itself is prime
  int e = 0;
  while (q % f == 0) {
    q /= f;
    ++e;
  }
  if (q != 1) return false;
  *p = f;
  *k = e;
  return true;
}

namespace {

// Polynomials over Z_p as coefficient vectors, low degree first.
std::vector<int> digits(int a, int p, int k) {
  std::vector<int> d(k);
  for (int i = 0; i < k; ++i, a /= p) d[i] = a % p;
  return d;
}

// Remainder of `num` divided by the monic polynomial `den` over Z_p (in place, returns it).
std::vector<int> poly_mod(std::vector<int> num, const std::vector<int>& den, int p) {
  const int dd = static_cast<int>(den.size()) - 1;
  for (int i = static_cast<int>(num.size()) - 1; i >= dd; --i) {
    const int c = num[i] % p;
    if (c == 0) continue;
    for (int j = 0; j <= dd; ++j) num[i - dd + j] = ((num[i - dd + j] - c * den[j]) % p + p) % p;
  }
  num.resize(dd);
  return num;
}

// A monic degree-k polynomial is irreducible iff no monic polynomial of degree 1..k/2 divides it.
bool irreducible(const std::vector<int>& f, int p) {
  const int k = static_cast<int>(f.size()) - 1;
  for (int d = 1; d <= k / 2; ++d) {
    int count = 1;
    for (int i = 0; i < d; ++i) count *= p;
    for (int low = 0; low < count; ++low) {
      std::vector<int> g = digits(low, p, d);
      g.push_back(1);
      const std::vector<int> r = poly_mod(f, g, p);
      bool zero = true;
      for (int c : r) zero = zero && c == 0;
      if (zero) return false;
    }
  }
  return true;
}

}  // namespace

GaloisField::GaloisField(int q) : q_(q) {
  if (!is_prime_power(q, &p_, &k_))
    fail("GaloisField", std::to_string(q) + " is not a prime power");
  // Search monic x^k + (lower terms) in index order for the first irreducible one.
  for (int low = 0; low < q_; ++low) {
    std::vector<int> f = digits(low, p_, k_);
    f.push_back(1);
    if (irreducible(f, p_)) {
      modulus_ = f;
      break;
    }
  }
  if (modulus_.empty())
    fail("GaloisField", "no irreducible polynomial for q = " + std::to_string(q));
  chi_.assign(q_, -1);
  chi_[0] = 0;
  for (int x = 1; x < q_; ++x) chi_[mul(x, x)] = 1;
}

int GaloisField::sub(int a, int b) const {
  if (k_ == 1) return ((a - b) % p_ + p_) % p_;
  int r = 0, scale = 1;
  for (int i = 0; i < k_; ++i, a /= p_, b /= p_, scale *= p_)
    r += ((a % p_ - b % p_ + p_) % p_) * scale;
  return r;
}

int GaloisField::mul(int a, int b) const {
  if (k_ == 1) return static_cast<int>(static_cast<int64_t>(a) * b % p_);
  const std::vector<int> da = digits(a, p_, k_), db = digits(b, p_, k_);
  std::vector<int> prod(2 * k_ - 1, 0);
  for (int i = 0; i < k_; ++i)
    for (int j = 0; j < k_; ++j) prod[i + j] = (prod[i + j] + da[i] * db[j]) % p_;
  const std::vector<int> r = poly_mod(prod, modulus_, p_);
  int idx = 0;
  for (int i = k_ - 1; i >= 0; --i) idx = idx * p_ + r[i];
  return idx;
}

}  // namespace lrc::detail
