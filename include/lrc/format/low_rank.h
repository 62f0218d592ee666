// U Vᵀ: the full-precision low-rank correction of a linear (paper eq. 2), one type for the
// solvers (T = double, while they iterate) and for the model and checkpoint (T = float,
// holding fp16 values once stored):
//   u [d_out x rank], v [d_in x rank], row-major;  correction(x) = U · (Vᵀ · x).
#pragma once

#include <vector>

namespace lrc {

template <class T>
struct LowRank {
  int rank = 0;
  std::vector<T> u;  // [d_out x rank]
  std::vector<T> v;  // [d_in x rank]
  bool empty() const { return rank == 0; }
};

using LowRankPair = LowRank<float>;

}  // namespace lrc
