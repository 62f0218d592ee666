// Streaming second-order statistics of one linear layer's input (paper Alg. 1, lines 3-5):
//
//   XXᵀ = sum_t x_t x_tᵀ,   YYᵀ = sum_t y_t y_tᵀ,   XYᵀ = sum_t x_t y_tᵀ,   y_t = Q_a(x_t)
//
// with X = [x_1 .. x_n] (d x n, one token a column, as in the paper). Everything here is
// UNregularised; ε_x I and ε_y I are added by the solvers (lrc_solver.h). The paper notes that
// these sums need 64-bit precision, so each batch is converted to float64 and accumulated with
// cblas_dsyrk (XXᵀ, YYᵀ) and cblas_dgemm (XYᵀ).
#pragma once

#include <cstdint>
#include <vector>

#include "lrc/quant/act_quant.h"

namespace lrc {

struct LayerStats {
  int d = 0;                       // input features d_in
  int64_t n = 0;                   // tokens seen
  std::vector<double> xx, yy, xy;  // d x d row-major; xx, yy symmetric and stored full;
                                   // xy[i*d + j] = sum_t x_t[i] * y_t[j]
  // false: only xx was accumulated (yy, xy empty): enough for GPTQ on H = XXᵀ, a quarter of
  // the work; the LRC solver and the eq. 2 objective need all three.
  bool has_cross() const { return !yy.empty(); }
};

class StatsAccumulator {
 public:
  // act: the Q_a the layer will run with (bits >= 16 = none, then yy and xy equal xx).
  // cross = false accumulates XXᵀ alone (LayerStats::has_cross() is then false).
  StatsAccumulator(int d, const ActQuantSpec& act, bool cross = true);

  // x: [n_tokens x d] row-major, finite (NaN/Inf throw lrc::Error). Y = Q_a(X) is computed here.
  void add(const float* x, int64_t n_tokens);

  // The statistics so far (copies; the accumulator can keep going).
  LayerStats finish() const;

  int64_t tokens() const { return n_; }

 private:
  int d_;
  ActQuantSpec act_;
  bool cross_;
  int64_t n_ = 0;
  std::vector<double> xx_, yy_, xy_;  // upper triangles of xx_, yy_ valid until finish()
};

// Throws lrc::Error unless s.d == d, the matrices have d*d entries and are finite; yy and xy
// must be present unless xx_only.
void check_layer_stats(const LayerStats& s, int d, const char* where, bool xx_only = false);

}  // namespace lrc
