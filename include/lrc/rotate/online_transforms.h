// The run-time (online) rotations QuaRot inserts into the forward pass, as lrc::OnlineTransform
// implementations (each row x ↦ R·x in float32, OpenMP over rows):
//   HadamardTransform     R = (H_m ⊗ H_{2^k})·diag(s)/√n: sign flip, fast Walsh–Hadamard along
//                         the 2^k axis, dense ±1 H_m along the m axis — O(n·(log n + m)) per row.
//   DenseTransform        any R as a dense matrix (the orthogonal fallback) — O(n²) per row.
//   AcrossHeadsTransform  a row of n_heads·head_dim seen as [n_heads x head_dim], an order-n_heads
//                         rotation applied along the head axis: x ↦ (R ⊗ I_head_dim)·x.
// An OnlineSpec (kind, order, block, seed) names one completely, so a checkpoint can recreate it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lrc/format/online_transform.h"
#include "lrc/rotate/rotation.h"

namespace lrc {

class HadamardTransform final : public OnlineTransform {
 public:
  explicit HadamardTransform(const Rotation& r);  // r.kind must be Hadamard
  int size() const override { return n_; }
  void apply(float* x, int64_t n_rows) const override;
  std::string describe() const override;
  OnlineTransformFactors factors() const override;

 private:
  int n_, m_;
  std::vector<float> scaled_signs_;  // s_i / √n
  std::vector<float> h_m_;           // [m x m] ±1
};

class DenseTransform final : public OnlineTransform {
 public:
  explicit DenseTransform(const Rotation& r);  // any kind (uses r.dense())
  int size() const override { return n_; }
  void apply(float* x, int64_t n_rows) const override;
  std::string describe() const override;
  OnlineTransformFactors factors() const override;

 private:
  int n_;
  std::string what_;
  std::vector<float> r_;  // [n x n] row-major
};

class AcrossHeadsTransform final : public OnlineTransform {
 public:
  AcrossHeadsTransform(const Rotation& r, int head_dim);  // r.n = number of heads
  int size() const override { return n_heads_ * head_dim_; }
  void apply(float* x, int64_t n_rows) const override;
  std::string describe() const override;
  OnlineTransformFactors factors() const override;

 private:
  int n_heads_, head_dim_;
  std::string what_;
  std::vector<float> r_;  // [n_heads x n_heads]
};

// A complete description of an online transform: the rotation (kind, n, seed) and the block
// length it acts across (block = 1: the plain rotation of rows of n; block = head_dim: across
// heads, rows of n·block).
struct OnlineSpec {
  RotationKind kind = RotationKind::Hadamard;
  int n = 0;
  int block = 1;
  uint64_t seed = 0;
  int size() const { return n * block; }
  bool operator==(const OnlineSpec&) const = default;
};

// Hadamard kind -> HadamardTransform; orthogonal -> DenseTransform; block > 1 -> AcrossHeads.
OnlineTransformPtr make_online_transform(const OnlineSpec& spec);

}  // namespace lrc
