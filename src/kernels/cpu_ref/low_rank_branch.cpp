#include "lrc/kernels/low_rank_branch.h"

#include <cblas.h>

#include <climits>
#include <string>

#include "lrc/core/error.h"

namespace lrc {

void add_low_rank(const float* x, int64_t n, int d_in, const float* u, const float* v, int rank,
                  int d_out, float* y, std::vector<float>& t, const LowRankDecode* dec) {
  if (rank <= 0 || n <= 0) return;
  if (n > INT_MAX) fail("low-rank branch", "too many rows for one sgemm: " + std::to_string(n));
  if (n == 1) {
    if (dec) {
      if (dec->rank != rank || dec->d_in != d_in || dec->d_out != d_out)
        fail("low-rank branch", "decode layout does not match the pair");
      return add_low_rank_decode(*dec, x, y);
    }
    return add_low_rank_decode(make_low_rank_decode(u, v, rank, d_in, d_out), x, y);
  }
  t.resize(static_cast<size_t>(n) * rank);
  const int rows = static_cast<int>(n);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, rank, d_in, 1.f, x, d_in, v, rank,
              0.f, t.data(), rank);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d_out, rank, 1.f, t.data(), rank, u,
              rank, 1.f, y, d_out);
}

}  // namespace lrc
