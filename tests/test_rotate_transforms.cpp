// Seeded rotations and the online transforms: orthogonality, determinism, and every fast path
// equal to the explicit matrix product.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/rotate/hadamard.h"
#include "lrc/rotate/online_transforms.h"
#include "lrc/rotate/rotation.h"

namespace {

using lrc::Rotation;
using lrc::RotationKind;

std::vector<float> random_rows(int64_t rows, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(rows * n);
  for (auto& v : x) v = nd(rng);
  return x;
}

// max |R·Rᵀ - I|
double orthogonality_defect(const std::vector<double>& r, int n) {
  double worst = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double dot = 0;
      for (int k = 0; k < n; ++k) dot += r[i * n + k] * r[j * n + k];
      worst = std::max(worst, std::abs(dot - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

// max |t(x) - M·x| over rows, M dense [size x size] double, relative to max |M·x|.
double transform_error(const lrc::OnlineTransform& t, const std::vector<double>& M, int64_t rows) {
  const int n = t.size();
  std::vector<float> x = random_rows(rows, n, 7), y = x;
  t.apply(y.data(), rows);
  double worst = 0, scale = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) {
      double ref = 0;
      for (int k = 0; k < n; ++k) ref += M[static_cast<size_t>(i) * n + k] * x[r * n + k];
      worst = std::max(worst, std::abs(ref - y[r * n + i]));
      scale = std::max(scale, std::abs(ref));
    }
  return worst / scale;
}

TEST(RotateTransforms, RotationsAreOrthogonal) {
  for (int n : {1, 2, 12, 40, 48, 156, 172, 256, 6, 14, 50}) {
    const Rotation r = lrc::make_rotation(n, 42);
    EXPECT_EQ(r.kind, lrc::has_hadamard(n) ? RotationKind::Hadamard : RotationKind::Orthogonal)
        << n;
    EXPECT_LT(orthogonality_defect(r.dense(), n), 1e-12) << r.describe();
  }
}

TEST(RotateTransforms, HadamardRotationIsScaledSignedHadamardMatrix) {
  // R = H_n·diag(s)/√n exactly, with H_n the constructed matrix: the fast path (FWHT ⊗ H_m)
  // reproduces the construction.
  for (int n : {8, 12, 40, 96, 344}) {
    const Rotation r = lrc::make_rotation(RotationKind::Hadamard, n, 3);
    const auto h = lrc::hadamard_matrix(n);
    const auto d = r.dense();
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        ASSERT_NEAR(d[i * n + j], h[i * n + j] * r.signs[j] / std::sqrt(double(n)), 1e-14) << n;
  }
}

TEST(RotateTransforms, SameSeedSameRotationOtherSeedOther) {
  for (auto kind : {RotationKind::Hadamard, RotationKind::Orthogonal}) {
    const auto a = lrc::make_rotation(kind, 48, 5).dense(),
               b = lrc::make_rotation(kind, 48, 5).dense(),
               c = lrc::make_rotation(kind, 48, 6).dense();
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
  }
}

TEST(RotateTransforms, HadamardKindNeedsAnOrder) {
  EXPECT_THROW(lrc::make_rotation(RotationKind::Hadamard, 14, 1), lrc::Error);
  EXPECT_THROW(lrc::make_rotation(RotationKind::Orthogonal, 0, 1), lrc::Error);
}

TEST(RotateTransforms, FastHadamardEqualsDenseProduct) {
  // Powers of two (odd and even log2, radix-4 + radix-2 paths) and 2^k·m bases.
  for (int n : {1, 2, 4, 8, 32, 64, 12, 20, 48, 156, 344, 1536}) {
    const Rotation r = lrc::make_rotation(RotationKind::Hadamard, n, 11);
    const lrc::HadamardTransform t(r);
    EXPECT_LT(transform_error(t, r.dense(), 5), 2e-6) << t.describe();
  }
}

TEST(RotateTransforms, FastHadamardManyRowsInParallel) {
  const int n = 1024;
  const Rotation r = lrc::make_rotation(n, 2);
  const lrc::HadamardTransform t(r);
  std::vector<float> x = random_rows(300, n, 1), y = x;
  t.apply(y.data(), 300);  // parallel path
  for (int64_t row : {0, 151, 299}) {
    std::vector<float> one(x.begin() + row * n, x.begin() + (row + 1) * n);
    t.apply(one.data(), 1);  // serial path
    for (int i = 0; i < n; ++i) ASSERT_EQ(one[i], y[row * n + i]);
  }
}

TEST(RotateTransforms, DenseTransformEqualsDenseProduct) {
  for (int n : {6, 14, 50}) {
    const Rotation r = lrc::make_rotation(n, 9);
    ASSERT_EQ(r.kind, RotationKind::Orthogonal);
    const lrc::DenseTransform t(r);
    EXPECT_LT(transform_error(t, r.dense(), 2), 1e-6) << t.describe();   // per-row loops
    EXPECT_LT(transform_error(t, r.dense(), 40), 1e-6) << t.describe();  // sgemm
  }
}

TEST(RotateTransforms, AcrossHeadsEqualsKroneckerWithIdentity) {
  // (R ⊗ I_hd) for R Hadamard (4 heads) and orthogonal (6 heads).
  for (auto [heads, hd] : {std::pair{4, 8}, {6, 10}}) {
    const Rotation r = lrc::make_rotation(heads, 4);
    const lrc::AcrossHeadsTransform t(r, hd);
    const auto rd = r.dense();
    const int n = heads * hd;
    std::vector<double> M(static_cast<size_t>(n) * n, 0.0);
    for (int a = 0; a < heads; ++a)
      for (int b = 0; b < heads; ++b)
        for (int k = 0; k < hd; ++k)
          M[static_cast<size_t>(a * hd + k) * n + b * hd + k] = rd[a * heads + b];
    EXPECT_LT(transform_error(t, M, 3), 1e-6) << t.describe();
  }
}

TEST(RotateTransforms, SpecRecreatesTheSameTransform) {
  for (lrc::OnlineSpec spec : {lrc::OnlineSpec{RotationKind::Hadamard, 384, 1, 77},
                               lrc::OnlineSpec{RotationKind::Orthogonal, 50, 1, 77},
                               lrc::OnlineSpec{RotationKind::Orthogonal, 6, 64, 77},
                               lrc::OnlineSpec{RotationKind::Hadamard, 4, 16, 77}}) {
    const auto a = lrc::make_online_transform(spec), b = lrc::make_online_transform(spec);
    ASSERT_EQ(a->size(), spec.size());
    std::vector<float> x = random_rows(3, spec.size(), 5), y = x;
    a->apply(x.data(), 3);
    b->apply(y.data(), 3);
    EXPECT_EQ(x, y) << a->describe();
  }
  EXPECT_THROW(lrc::make_online_transform({RotationKind::Hadamard, 14, 1, 0}), lrc::Error);
}

}  // namespace

// factors() (what a device backend runs) describes the same transform as apply(): scale by s,
// Walsh–Hadamard along each of the m segments of K, then A along the m axis.
TEST(RotateTransforms, FactorsReproduceApply) {
  const std::vector<lrc::OnlineSpec> specs = {{RotationKind::Hadamard, 384, 1, 3},
                                              {RotationKind::Hadamard, 128, 1, 4},
                                              {RotationKind::Hadamard, 12, 1, 5},
                                              {RotationKind::Orthogonal, 20, 1, 6},
                                              {RotationKind::Hadamard, 4, 16, 7}};
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const lrc::OnlineSpec& spec : specs)
    for (const bool dense : {false, true}) {  // the override, and the generic default
      const lrc::OnlineTransformPtr t = lrc::make_online_transform(spec);
      const lrc::OnlineTransformFactors f =
          dense ? t->lrc::OnlineTransform::factors() : t->factors();
      const int n = t->size(), m = f.m, K = n / m;
      ASSERT_EQ(n % m, 0);
      ASSERT_EQ(f.a.size(), static_cast<size_t>(m) * m);
      std::vector<float> x(n);
      for (auto& v : x) v = nd(rng);
      std::vector<double> y(x.begin(), x.end());
      if (!f.signs.empty())
        for (int i = 0; i < n; ++i) y[i] *= f.signs[i];
      if (f.walsh)
        for (int a = 0; a < m; ++a)
          for (int h = 1; h < K; h *= 2)
            for (int i = 0; i < K; i += 2 * h)
              for (int j = i; j < i + h; ++j) {
                const double p = y[a * K + j], q = y[a * K + j + h];
                y[a * K + j] = p + q;
                y[a * K + j + h] = p - q;
              }
      std::vector<double> z(n, 0.0);
      for (int a = 0; a < m; ++a)
        for (int b = 0; b < m; ++b)
          for (int k = 0; k < K; ++k) z[a * K + k] += f.a[a * m + b] * y[b * K + k];
      t->apply(x.data(), 1);
      for (int i = 0; i < n; ++i) EXPECT_NEAR(x[i], z[i], 1e-4) << t->describe() << " at " << i;
    }
}
