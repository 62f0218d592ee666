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

}  // namespace lrc
