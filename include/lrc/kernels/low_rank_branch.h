// The low-rank branch of a linear, y += (x·V)·Uᵀ on the UNquantized x, shared by every CPU
// backend: the simulation (cpu_ref) and the integer kernels (cpu_int) call this one function,
// so the branch adds the same floats to the same main product on both (issue 26: real and
// simulated perplexities agree exactly).
#pragma once

#include <cstdint>
#include <vector>

namespace lrc {

// y[n x d_out] += (x[n x d_in] · v[d_in x rank]) · u[d_out x rank]ᵀ; t is scratch (resized to
// n x rank). One token: two sgemv (OpenBLAS's sgemm packs its operands even for one row);
// more: two sgemm. rank 0 adds nothing.
void add_low_rank(const float* x, int64_t n, int d_in, const float* u, const float* v, int rank,
                  int d_out, float* y, std::vector<float>& t);

}  // namespace lrc
