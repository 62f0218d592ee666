// y = Ŵ · Q_a(x) + U · (Vᵀ · x)   (paper eq. 2 / Fig. 1), one token a row.
//
// Row-major with x [n x d_in] and w [d_out x d_in], so for the whole batch
//   Y = Q_a(X) · Wᵀ            (one sgemm, X times W transposed)
//   T = X · V       [n x rank] (the low-rank branch sees the UNquantized x)
//   Y += T · Uᵀ
#include "lrc/model/linear.h"

#include <cblas.h>

#include <climits>
#include <string>
#include <vector>

#include "lrc/core/error.h"

namespace lrc {

void Linear::forward(const float* x, int64_t n, float* y) const {
  if (n <= 0) return;
  if (w.size() != static_cast<size_t>(d_out) * d_in)
    fail("Linear::forward", "weight has " + std::to_string(w.size()) + " elements, shape is [" +
                                std::to_string(d_out) + ", " + std::to_string(d_in) + "]");
  if (n > INT_MAX) fail("Linear::forward", "too many rows for one sgemm: " + std::to_string(n));
  const int rows = static_cast<int>(n);

  // Q_a(x), row by row on this thread (an OpenMP region right before the sgemm would leave
  // libgomp's idle worker spinning on a core OpenBLAS needs; see src/model/attention.cpp).
  const float* xa = x;
  std::vector<float> xq;
  if (act.enabled()) {
    if (act.bits < 2 || act.bits > 8)
      fail("Linear::forward",
           "activation bits must be in 2..8 (or 16 for none), got " + std::to_string(act.bits));
    xq.resize(static_cast<size_t>(n) * d_in);
    const int g = act.groupsize > 0 ? act.groupsize : d_in;
    std::vector<int8_t> codes(d_in);
    std::vector<float> scales(d_in / g + 1);
    for (int64_t i = 0; i < n; ++i) {
      quantize_activation_row(x + i * d_in, d_in, act, codes.data(), scales.data());
      float* row = xq.data() + i * d_in;
      for (int j = 0; j < d_in; ++j) row[j] = scales[j / g] * static_cast<float>(codes[j]);
    }
    xa = xq.data();
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d_out, d_in, 1.f, xa, d_in, w.data(),
              d_in, 0.f, y, d_out);

  if (rank > 0) {
    if (u.size() != static_cast<size_t>(d_out) * rank ||
        v.size() != static_cast<size_t>(d_in) * rank)
      fail("Linear::forward", "low-rank factors do not match rank " + std::to_string(rank));
    std::vector<float> t(static_cast<size_t>(n) * rank);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, rank, d_in, 1.f, x, d_in, v.data(),
                rank, 0.f, t.data(), rank);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d_out, rank, 1.f, t.data(), rank,
                u.data(), rank, 1.f, y, d_out);
  }
}

}  // namespace lrc
