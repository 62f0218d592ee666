#include "lrc/quant/rank_allocation.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <string>

#include "lrc/core/error.h"
#include "lrc/quant/rank.h"

namespace lrc {

namespace {

void check_spectrum(const MatrixSpectrum& s, size_t i) {
  if (s.d_out <= 0 || s.d_in <= 0)
    fail("allocate_ranks", "matrix " + std::to_string(i) + ": bad shape " +
                               std::to_string(s.d_out) + " x " + std::to_string(s.d_in));
  for (size_t j = 0; j < s.gains.size(); ++j) {
    if (!std::isfinite(s.gains[j]) || s.gains[j] < 0)
      fail("allocate_ranks", "matrix " + std::to_string(i) + ": gain " + std::to_string(j) +
                                 " is negative or not finite");
    if (j > 0 && s.gains[j] > s.gains[j - 1])
      fail("allocate_ranks", "matrix " + std::to_string(i) + ": gains must be in descending order");
  }
}

}  // namespace

int64_t uniform_rank_budget(const std::vector<MatrixSpectrum>& m, double fraction) {
  int64_t b = 0;
  for (const auto& s : m)
    b += static_cast<int64_t>(rank_from_fraction(fraction, s.d_out, s.d_in)) * (s.d_out + s.d_in);
  return b;
}

std::vector<int> allocate_ranks(const std::vector<MatrixSpectrum>& m, int64_t budget) {
  if (budget < 0) fail("allocate_ranks", "negative budget");
  for (size_t i = 0; i < m.size(); ++i) check_spectrum(m[i], i);
  std::vector<int> ranks(m.size(), 0);
  auto cap = [&](size_t i) {
    return std::min<int64_t>({m[i].d_out, m[i].d_in, static_cast<int64_t>(m[i].gains.size())});
  };
  // The next rank of matrix i: its gain per parameter, the rank it would be, the matrix.
  struct Next {
    double ratio;
    int rank;
    size_t i;
  };
  auto worse = [](const Next& a, const Next& b) {  // priority: ratio desc, rank asc, i asc
    if (a.ratio != b.ratio) return a.ratio < b.ratio;
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.i > b.i;
  };
  std::priority_queue<Next, std::vector<Next>, decltype(worse)> q(worse);
  auto push = [&](size_t i) {  // a rank that lowers nothing is never worth its parameters
    if (ranks[i] < cap(i) && m[i].gains[ranks[i]] > 0)
      q.push({m[i].gains[ranks[i]] / static_cast<double>(m[i].d_out + m[i].d_in), ranks[i], i});
  };
  for (size_t i = 0; i < m.size(); ++i) push(i);
  int64_t left = budget;
  while (!q.empty()) {
    const Next n = q.top();
    q.pop();
    const int64_t cost = m[n.i].d_out + m[n.i].d_in;
    if (cost > left) continue;  // this matrix's further ranks cost the same: it is done
    left -= cost;
    ++ranks[n.i];
    push(n.i);
  }
  return ranks;
}

}  // namespace lrc
