// Hadamard matrices: n x n matrices of ±1 with H·Hᵀ = n·I.
//
// They exist only for n = 1, 2 and multiples of 4. lrc builds every order it can reach from
// these constructions, tried in this order (src/rotate/hadamard.cpp):
//   1. Sylvester doubling   H_2n = H_n ⊗ [[1, 1], [1, -1]]           (n = 2^k·m from H_m)
//   2. Paley I              order q+1,    q ≡ 3 (mod 4) a prime power (src/rotate/paley.cpp)
//   3. Paley II             order 2(q+1), q ≡ 1 (mod 4) a prime power
//   4. Goethals–Seidel      order 4t, t odd, from four circulant ±1 sequences of length t found
//                           by a small exact search (src/rotate/goethals_seidel.cpp): 156, 172
//   5. Kronecker product    H_a ⊗ H_b
// Because doubling is tried first, hadamard_matrix(2^k·m) is always H_m ⊗ H_{2^k} (Sylvester)
// with m = hadamard_base_order(n), the form the fast transform (lrc/rotate/rotation.h) uses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lrc {

// Whether lrc can construct a Hadamard matrix of order n (n >= 1).
bool has_hadamard(int n);

// The ±1 matrix of order n, row-major [n x n]. Fails (lrc::Error) if !has_hadamard(n).
std::vector<int8_t> hadamard_matrix(int n);

// The smallest m with n = m·2^k and has_hadamard(m) (1 for powers of two); 0 if none.
int hadamard_base_order(int n);

// How order n is built, e.g. "sylvester(20)", "paley1(q=11)", "goethals-seidel(t=39)"; "" if none.
std::string hadamard_construction(int n);

}  // namespace lrc
