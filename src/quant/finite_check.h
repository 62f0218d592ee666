// Input validation shared by the quantization core: every public entry point rejects NaN/Inf
// with an lrc::Error that names the object and the first bad entry.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "lrc/core/error.h"
#include "core/parallel_threshold.h"

namespace lrc::quant_detail {

// Throws "<where>: <what> has a non-finite value at [row, col]" for the first bad entry of the
// rows x cols row-major matrix p.
template <class T>
void require_finite(const T* p, int64_t rows, int64_t cols, const std::string& where,
                    const std::string& what) {
  const int64_t n = rows * cols;
  int64_t first = n;
#pragma omp parallel for reduction(min : first) schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i]) && i < first) first = i;
  if (first < n)
    fail(where, what + " has a non-finite value (" + std::to_string(static_cast<double>(p[first])) +
                    ") at [" + std::to_string(first / cols) + ", " + std::to_string(first % cols) +
                    "]");
}

}  // namespace lrc::quant_detail
