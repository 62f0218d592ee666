// The LRC reconstruction error (paper eq. 2) from second-order statistics alone:
//
//   ‖WX - ŴY - UVᵀX‖² = tr(A XXᵀ Aᵀ) - 2 tr(A XYᵀ Ŵᵀ) + tr(Ŵ YYᵀ Ŵᵀ),   A = W - UVᵀ,
//
// with the UNregularised LayerStats (no ε terms). Evaluated in float64. Every method (RTN,
// GPTQ, SVD, LRC) can be scored this way with the same Y = Q_a(X).
#pragma once

#include "lrc/quant/stats.h"

namespace lrc {

// W, w_hat: [d_out x d_in]; u: [d_out x rank]; v: [d_in x rank] (may be null when rank == 0).
double lrc_objective(const float* W, const float* w_hat, const float* u, const float* v, int rank,
                     int d_out, int d_in, const LayerStats& stats);

// ‖WX‖² = tr(W XXᵀ Wᵀ): the scale to report the objective relative to.
double output_energy(const float* W, int d_out, int d_in, const LayerStats& stats);

// One candidate Ŵ + UVᵀ for W (u, v null when rank == 0).
struct Eq2Candidate {
  const float* w_hat = nullptr;
  const float* u = nullptr;
  const float* v = nullptr;
  int rank = 0;
};
// One candidate's inputs as every eq. 2 evaluation checks them: its rank in range, Ŵ and (rank
// > 0) U, V finite; lrc::Error naming `where` and the array otherwise.
void check_eq2_candidate(const Eq2Candidate& c, int d_out, int d_in, const char* where);

// Eq. 2 of each candidate and ‖WX‖², the products of W with the statistics (W XXᵀ, W XYᵀ:
// 2 d_out d_in² flops each) shared between them, the rank-k terms expanded:
//   tr(A XXᵀ Aᵀ) = tr(W XXᵀ Wᵀ) - 2 <W XXᵀ V, U> + <UᵀU, Vᵀ XXᵀ V>,
//   tr(A XYᵀ Ŵᵀ) = <W XYᵀ, Ŵ> - <Ŵ YXᵀ V, U>.
// The pipeline's report (LRC, its GPTQ guard and the output energy) costs 8 d_out d_in² flops
// instead of 14. The values are lrc_objective's and output_energy's up to rounding (the same
// cancellation of three traces of size ‖WX‖²); with Y = X it calls them instead.
std::vector<double> eq2_objectives(const float* W, int d_out, int d_in,
                                   const std::vector<Eq2Candidate>& candidates,
                                   const LayerStats& stats, double* energy);

}  // namespace lrc
