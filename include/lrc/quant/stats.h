// Streaming second-order statistics of one linear layer's input (paper Alg. 1, lines 3-5):
//
//   XXᵀ = sum_t x_t x_tᵀ,   YYᵀ = sum_t y_t y_tᵀ,   XYᵀ = sum_t x_t y_tᵀ,   y_t = Q_a(x_t)
//
// with X = [x_1 .. x_n] (d x n, one token a column, as in the paper). Everything here is
// UNregularised; ε_x I and ε_y I are added by the solvers (lrc_solver.h). The paper notes that
// these sums need 64-bit precision. Two ways to get them (StatsPrecision):
//   Float64 (default): each block of 2048 tokens is converted to float64 and accumulated with
//       cblas_dsyrk (XXᵀ, YYᵀ) and cblas_dgemm (XYᵀ): products exact (float32 inputs), sums
//       rounded in float64 only;
//   Mixed: each block's sums are formed in float32 (cblas_ssyrk / cblas_sgemm, twice the speed
//       of float64 here) and added to float64 totals: the sum over the whole calibration set
//       stays in float64; a block's own sum of <= 2048 products carries float32 rounding
//       (relative ~sqrt(2048)·2⁻²⁴ ≈ 3e-6 of its terms' size; measured effect in
//       docs/results.md, "Statistics precision").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lrc/format/act_quant.h"

namespace lrc {

struct DeviceStats;  // a device copy of LayerStats' matrices (solver_backend.h)

struct LayerStats {
  int d = 0;                       // input features d_in
  int64_t n = 0;                   // tokens seen
  std::vector<double> xx, yy, xy;  // d x d row-major; xx, yy symmetric and stored full;
                                   // xy[i*d + j] = sum_t x_t[i] * y_t[j]
  // Only with targets from the FP model (QuantizeOptions::fp_targets; fp_target.h): X̄Xᵀ,
  // fx[i*d + j] = sum_t x̄_t[i] * x_t[j], x̄_t the FP model's input for the same token.
  std::vector<double> fx;
  // false: only xx was accumulated (yy, xy empty): enough for GPTQ on H = XXᵀ, a quarter of
  // the work; the LRC solver and the eq. 2 objective need all three.
  bool has_cross() const { return !yy.empty() || (device_only && device_cross); }
  // Set by a device SolverBackend's StatsSink (solver_backend.h): its copy of the matrices
  // above in device memory, which its solvers use instead of uploading them again. Valid while
  // xx, yy, xy, fx are unchanged; copies of the LayerStats share it. Null on the CPU.
  std::shared_ptr<const DeviceStats> device;
  // A sink told StatsSink::skip_host_copy leaves xx, yy, xy, fx empty (at Llama-2-7B's
  // down_proj they are 2.9 GB to download): the matrices exist in `device` only, with their
  // diagonals here (the ridge ε of eq. 9 needs the traces), and device_cross for has_cross().
  bool device_only = false, device_cross = false;
  std::vector<double> xx_diag, yy_diag;  // [d]
};

enum class StatsPrecision { Float64, Mixed };
const char* stats_precision_name(StatsPrecision p);          // "f64" | "mixed"
StatsPrecision parse_stats_precision(const std::string& s);  // throws naming --stats-precision

class StatsAccumulator {
 public:
  // act: the Q_a the layer will run with (bits >= 16 = none, then yy and xy equal xx).
  // cross = false accumulates XXᵀ alone (LayerStats::has_cross() is then false).
  StatsAccumulator(int d, const ActQuantSpec& act, bool cross = true,
                   StatsPrecision precision = StatsPrecision::Float64);

  // x: [n_tokens x d] row-major, finite (NaN/Inf throw lrc::Error). Y = Q_a(X) is computed here.
  // x_fp (optional, same shape): the FP model's inputs for the same tokens; then X̄Xᵀ is
  // accumulated too (LayerStats::fx). Either every call passes it or none does.
  void add(const float* x, int64_t n_tokens, const float* x_fp = nullptr);

  // Accumulate YYᵀ and XYᵀ only (cross statistics with Q_a on): XXᵀ does not depend on Q_a, so
  // a caller that varies Q_a over the same X (the clip search) computes it once and fills
  // LayerStats::xx itself; finish() leaves xx empty. Call before add().
  void skip_xx();

  // The statistics so far (copies; the accumulator can keep going).
  LayerStats finish() const;
  // The same, moved out: the accumulator is spent (no add() or finish() after it). Three d²
  // arrays fewer at the peak (4.9 GB at d = 14336).
  LayerStats take();

  int64_t tokens() const { return n_; }

 private:
  void add_mixed(const float* x, int64_t n_tokens, const float* x_fp);

  int d_;
  ActQuantSpec act_;
  bool cross_;
  StatsPrecision precision_;
  bool skip_xx_ = false;
  int64_t n_ = 0;
  std::vector<double> xx_, yy_, xy_;  // upper triangles of xx_, yy_ valid until finish()
  std::vector<double> fx_;            // X̄Xᵀ (full), only when add() gets x_fp
};

// Throws lrc::Error unless s.d == d, the matrices have d*d entries and are finite; yy and xy
// must be present unless xx_only.
void check_layer_stats(const LayerStats& s, int d, const char* where, bool xx_only = false);

}  // namespace lrc
