// The low-rank branch of a linear, y += (x·V)·Uᵀ on the UNquantized x, shared by every CPU
// backend: the simulation (cpu_ref) and the integer kernels (cpu_int) call these functions,
// so the branch adds the same floats to the same main product on both (issue 26: real and
// simulated perplexities agree exactly).
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "lrc/format/low_rank.h"

namespace lrc {

// U, V laid out for one token (decoding), made once per linear by a backend that may keep
// copies (its models neither change nor move): V as stored [d_in x rank], U transposed to
// [rank x d_out], both in fp16 when every value is one (an lrc checkpoint stores U, V as
// fp16: half the bytes a decode step reads, no value changed), else in fp32. The arithmetic
// is the same for either storage (fp16 → fp32 is exact).
struct LowRankDecode {
  int d_in = 0, d_out = 0, rank = 0;
  bool half = false;
  std::vector<uint16_t> v16, ut16;  // when half
  std::vector<float> v32, ut32;     // otherwise
  int64_t bytes() const {
    return static_cast<int64_t>(v16.size() + ut16.size()) * 2 +
           static_cast<int64_t>(v32.size() + ut32.size()) * 4;
  }
};

// From u [d_out x rank] and v [d_in x rank] (row-major, as in LowRankPair).
LowRankDecode make_low_rank_decode(const float* u, const float* v, int rank, int d_in,
                                   int d_out);

// The decode layouts a backend keeps, one per LowRankPair (by address: for models that neither
// change nor move while the backend runs them), made on first use; thread-safe.
class LowRankDecodeCache {
 public:
  const LowRankDecode& get(const LowRankPair& lr, int d_in, int d_out) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = kept_.find(&lr);
    if (it == kept_.end())
      it = kept_.emplace(&lr, make_low_rank_decode(lr.u.data(), lr.v.data(), lr.rank, d_in, d_out))
               .first;
    return it->second;
  }

 private:
  mutable std::mutex mu_;
  mutable std::unordered_map<const LowRankPair*, LowRankDecode> kept_;
};

// y[d_out] += U (Vᵀ x) for one token x[d_in]: t[k] = Σ_j x_j·V[j][k] (j ascending, one fma
// each), then y[r] += Σ_k t_k·U[r][k] (k ascending from 0, then added to y). AVX-512 when
// the integer kernels run AVX-512, portable loops otherwise.
void add_low_rank_decode(const LowRankDecode& lr, const float* x, float* y);

// y[n x d_out] += (x[n x d_in] · v[d_in x rank]) · u[d_out x rank]ᵀ; t is scratch. One token:
// add_low_rank_decode (dec when the caller keeps one for this pair, else made for this call);
// more: two sgemm. rank 0 adds nothing.
void add_low_rank(const float* x, int64_t n, int d_in, const float* u, const float* v, int rank,
                  int d_out, float* y, std::vector<float>& t,
                  const LowRankDecode* dec = nullptr);

}  // namespace lrc
