#include "lrc/format/linear.h"

namespace lrc {

std::vector<float> Linear::dense_weight() const {
  if (!packed) return w;
  std::vector<float> W(static_cast<size_t>(d_out) * d_in);
  packed->dequantize(W.data());
  return W;
}

}  // namespace lrc
