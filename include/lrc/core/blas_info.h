// Which BLAS kernels this process runs. OpenBLAS picks a kernel set per CPU at load time
// (OPENBLAS_CORETYPE overrides it); the float64 statistics and every sgemm round differently
// per kernel set and thread count, so W4A4 perplexities are reproducible only for the same
// (kernel set, threads) pair. Recorded in the JSON of `lrc demo` and `lrc quantize`.
#pragma once

#include <string>

namespace lrc {

// OpenBLAS's kernel set, e.g. "Haswell" or "Cooperlake".
std::string blas_core_name();

}  // namespace lrc
