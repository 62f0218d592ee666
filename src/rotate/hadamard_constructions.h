// The individual Hadamard constructions behind lrc/rotate/hadamard.h. Each returns a ±1
// matrix, row-major; the dispatcher (hadamard.cpp) checks H·Hᵀ = n·I before handing it out.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace lrc::detail {

// Paley I: order q+1 for a prime power q ≡ 3 (mod 4).
std::vector<int8_t> paley1(int q);

// Paley II: order 2(q+1) for a prime power q ≡ 1 (mod 4).
std::vector<int8_t> paley2(int q);

// Four ±1 sequences of odd length t whose periodic autocorrelations sum to zero at every
// nonzero shift (equivalently: circulants A, B, C, D with A·Aᵀ + B·Bᵀ + C·Cᵀ + D·Dᵀ = 4t·I).
struct GoethalsSeidelSequences {
  int t = 0;
  std::vector<int8_t> a, b, c, d;
};

// Exact, deterministic search restricted to sequences invariant under a multiplier group;
// nullopt if none of the (bounded) searches succeeds.
std::optional<GoethalsSeidelSequences> find_goethals_seidel_sequences(int t);

// The Goethals–Seidel array: a Hadamard matrix of order 4t from the four sequences.
std::vector<int8_t> goethals_seidel_array(const GoethalsSeidelSequences& s);

}  // namespace lrc::detail
