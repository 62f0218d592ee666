// An orthogonal transform applied to activations at run time (QuaRot's online Hadamards):
// each row r of x becomes H·r. The matching weight was fused as W·Hᵀ, so (W·Hᵀ)(H·r) = W·r.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace lrc {

class OnlineTransform {
 public:
  virtual ~OnlineTransform() = default;
  virtual int size() const = 0;                            // row length it acts on
  virtual void apply(float* x, int64_t n_rows) const = 0;  // in place, rows of length size()
  virtual std::string describe() const = 0;                // e.g. "hadamard(12x128)"
};

using OnlineTransformPtr = std::shared_ptr<const OnlineTransform>;

}  // namespace lrc
