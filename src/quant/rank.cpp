#include "lrc/quant/rank.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "lrc/core/error.h"

namespace lrc {

void check_rank(int rank, int d_out, int d_in, const char* where) {
  const int kmax = std::min(d_out, d_in);
  if (rank < 0 || rank > kmax)
    fail(where, "rank " + std::to_string(rank) + " must be in 0..min(d_in, d_out) = 0.." +
                    std::to_string(kmax) + " for a " + std::to_string(d_out) + " x " +
                    std::to_string(d_in) + " matrix");
}

int rank_from_fraction(double f, int d_out, int d_in) {
  if (!std::isfinite(f) || f < 0)
    fail("rank_from_fraction", "fraction must be finite and >= 0, got " + std::to_string(f));
  if (d_out <= 0 || d_in <= 0)
    fail("rank_from_fraction", "bad shape " + std::to_string(d_out) + " x " + std::to_string(d_in));
  // k (d_out + d_in) <= f d_out d_in. The 1e-9 absorbs binary roundoff of f (0.3 * 100 * 100 /
  // 200 must give 15, not 14).
  const double k = std::floor(f * d_out * d_in / (static_cast<double>(d_out) + d_in) + 1e-9);
  const int rank = static_cast<int>(std::min<double>(k, std::numeric_limits<int>::max()));
  check_rank(rank, d_out, d_in, ("rank_from_fraction(" + std::to_string(f) + ")").c_str());
  return rank;
}

}  // namespace lrc
