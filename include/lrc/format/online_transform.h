// An orthogonal transform applied to activations at run time (QuaRot's online Hadamards):
// each row r of x becomes H·r. The matching weight was fused as W·Hᵀ, so (W·Hᵀ)(H·r) = W·r.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lrc {

// Every online transform lrc makes has the form R = (A ⊗ H_K)·diag(s): the row, scaled by s and
// viewed as X [m x K] (K = size()/m), becomes A · X · H_K, where H_K is the unnormalised
// Walsh–Hadamard matrix of order K (a power of two; the identity when !walsh). This is what a
// backend that cannot call apply() (device memory) needs to run it; kernels cannot see rotate.
struct OnlineTransformFactors {
  int m = 1;
  bool walsh = false;
  std::vector<float> a;      // A [m x m] row-major
  std::vector<float> signs;  // s [size()], or empty for all ones
};

class OnlineTransform {
 public:
  virtual ~OnlineTransform() = default;
  virtual int size() const = 0;                            // row length it acts on
  virtual void apply(float* x, int64_t n_rows) const = 0;  // in place, rows of length size()
  virtual std::string describe() const = 0;                // e.g. "hadamard(12x128)"
  // R = (A ⊗ H_K)·diag(s), above. The default is R itself as a dense A (m = size(), read off
  // apply() on the identity): right for any transform, O(size()²); lrc's own override it.
  virtual OnlineTransformFactors factors() const;
};

using OnlineTransformPtr = std::shared_ptr<const OnlineTransform>;

}  // namespace lrc
