#include "lrc/format/linear.h"

namespace lrc {

std::vector<float> Linear::dense_weight() const {
  if (!packed) return w;
  std::vector<float> W(static_cast<size_t>(d_out) * d_in);
  packed->dequantize(W.data());
  return W;
}

int64_t Linear::resident_bytes() const {
  int64_t b = static_cast<int64_t>(w.size() + bias.size() + lr.u.size() + lr.v.size()) * 4;
  if (packed)
    b += static_cast<int64_t>(packed->codes.size()) +
         static_cast<int64_t>(packed->scales.size() + packed->zeros.size()) * 4;
  return b;
}

}  // namespace lrc
