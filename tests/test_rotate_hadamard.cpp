// Hadamard constructions: every order the toolkit needs is built and is exactly Hadamard.
#include <gtest/gtest.h>

#include <chrono>

#include "lrc/core/error.h"
#include "lrc/rotate/hadamard.h"

namespace {

// Exact integer check of H·Hᵀ = n·I; returns the first bad (i, j) as a message, "" if fine.
std::string hadamard_defect(const std::vector<int8_t>& h, int n) {
  if (h.size() != static_cast<size_t>(n) * n) return "wrong size";
  for (int8_t v : h)
    if (v != 1 && v != -1) return "entry not ±1";
  for (int i = 0; i < n; ++i)
    for (int j = i; j < n; ++j) {
      int dot = 0;
      for (int k = 0; k < n; ++k)
        dot += h[static_cast<size_t>(i) * n + k] * h[static_cast<size_t>(j) * n + k];
      if (dot != (i == j ? n : 0))
        return "rows " + std::to_string(i) + ", " + std::to_string(j) + ": dot " +
               std::to_string(dot);
    }
  return "";
}

TEST(RotateHadamard, EveryListedBaseOrderIsHadamard) {
  for (int n : {1, 2, 4, 12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172}) {
    ASSERT_TRUE(lrc::has_hadamard(n)) << n;
    EXPECT_EQ(hadamard_defect(lrc::hadamard_matrix(n), n), "")
        << "order " << n << " via " << lrc::hadamard_construction(n);
  }
}

TEST(RotateHadamard, PowerOfTwoMultiplesAreHadamard) {
  for (int n : {8, 64, 256, 24, 96, 80, 112, 208, 216, 280, 312, 344, 624})
    EXPECT_EQ(hadamard_defect(lrc::hadamard_matrix(n), n), "") << n;
}

TEST(RotateHadamard, ConstructionsAreTheExpectedOnes) {
  EXPECT_EQ(lrc::hadamard_construction(12), "paley1(q=11)");
  EXPECT_EQ(lrc::hadamard_construction(28), "paley1(q=27)");  // needs GF(27)
  EXPECT_EQ(lrc::hadamard_construction(36), "paley2(q=17)");
  EXPECT_EQ(lrc::hadamard_construction(52), "paley2(q=25)");  // needs GF(25)
  EXPECT_EQ(lrc::hadamard_construction(156), "goethals-seidel(t=39)");
  EXPECT_EQ(lrc::hadamard_construction(172), "goethals-seidel(t=43)");
  EXPECT_EQ(lrc::hadamard_construction(40), "sylvester(20)");
  EXPECT_EQ(lrc::hadamard_construction(1024), "sylvester(512)");
}

TEST(RotateHadamard, DoublingGivesBaseTimesSylvester) {
  // H_{m·2^k} = H_m ⊗ H_{2^k}: entry (a·K + b, c·K + d) = H_m[a][c] · H_K[b][d].
  const int m = 12, K = 8, n = m * K;
  const auto hn = lrc::hadamard_matrix(n), hm = lrc::hadamard_matrix(m),
             hk = lrc::hadamard_matrix(K);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      ASSERT_EQ(hn[i * n + j], hm[(i / K) * m + j / K] * hk[(i % K) * K + j % K]) << i << "," << j;
}

TEST(RotateHadamard, BaseOrders) {
  EXPECT_EQ(lrc::hadamard_base_order(1024), 1);
  EXPECT_EQ(lrc::hadamard_base_order(1536), 12);
  EXPECT_EQ(lrc::hadamard_base_order(384), 12);
  EXPECT_EQ(lrc::hadamard_base_order(11008), 172);
  EXPECT_EQ(lrc::hadamard_base_order(4992), 156);  // 156·32
  EXPECT_EQ(lrc::hadamard_base_order(5120), 20);
  EXPECT_EQ(lrc::hadamard_base_order(56), 28);  // 56 = 28·2 does have one
  EXPECT_EQ(lrc::hadamard_base_order(14), 0);
}

TEST(RotateHadamard, OrdersWithoutAMatrix) {
  for (int n : {0, 3, 6, 10, 14, 50, 70, 90, 1022}) EXPECT_FALSE(lrc::has_hadamard(n)) << n;
  EXPECT_THROW(lrc::hadamard_matrix(6), lrc::Error);
  EXPECT_EQ(lrc::hadamard_construction(6), "");
}

TEST(RotateHadamard, QueriesAreCheap) {
  // has_hadamard on realistic sizes must not build matrices (Paley for big q is O(q²)).
  const auto t0 = std::chrono::steady_clock::now();
  for (int n : {4096, 5120, 8192, 11008, 13824, 14336, 28672, 4100, 8196})
    (void)lrc::has_hadamard(n);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 2.0);
}

}  // namespace
