// Rank allocation across matrices under one parameter budget (beyond the paper, which gives
// every matrix the same fraction f). The budget is that of the uniform allocation,
//   B = sum_m k_m (d_out_m + d_in_m),   k_m = rank_from_fraction(f, d_out_m, d_in_m),
// and ranks go greedily to the largest objective reduction per parameter: adding rank j to
// matrix m lowers its eq. 2 objective by gains_m[j-1] (the j-th eigenvalue of Update-LR's Σ,
// Prop. 3.3: the objective at rank k is const − sum_{j<=k} λ_j) and costs d_out_m + d_in_m
// parameters. (The pipeline passes the eigenvalues divided by the matrix's ‖WX‖², so that
// matrices whose outputs live at different scales compare by relative error.) With eigenvalues in
// descending order the greedy choice is exact for this separable budget problem up to the last,
// partly fitting step.
#pragma once

#include <cstdint>
#include <vector>

namespace lrc {

struct MatrixSpectrum {
  int d_out = 0, d_in = 0;
  std::vector<double> gains;  // descending, >= 0; rank is capped at gains.size()
};

// Parameters of the uniform allocation of fraction f over these shapes.
int64_t uniform_rank_budget(const std::vector<MatrixSpectrum>& m, double fraction);

// Greedy allocation: ranks[m] <= min(d_out, d_in, gains.size()), no rank of zero gain, and
// sum ranks[m] (d_out + d_in) <= budget. Ties (equal gain per parameter) go to the matrix
// with the lower rank so far, then the earlier matrix: equal spectra of equal shapes give
// the uniform allocation.
std::vector<int> allocate_ranks(const std::vector<MatrixSpectrum>& m, int64_t budget);

}  // namespace lrc
