#include "lrc/format/online_transform.h"

namespace lrc {

OnlineTransformFactors OnlineTransform::factors() const {
  // Row i of the identity becomes R·e_i, column i of R: the rows of apply(I) are Rᵀ's.
  const int n = size();
  std::vector<float> cols(static_cast<size_t>(n) * n, 0.f);
  for (int i = 0; i < n; ++i) cols[static_cast<size_t>(i) * n + i] = 1.f;
  apply(cols.data(), n);
  OnlineTransformFactors f;
  f.m = n;
  f.a.resize(cols.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      f.a[static_cast<size_t>(i) * n + j] = cols[static_cast<size_t>(j) * n + i];
  return f;
}

}  // namespace lrc
