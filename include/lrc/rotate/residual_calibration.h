// Calibrated residual rotation and smoothing (issue 31). QuaRot's residual rotation R is a
// random Hadamard; every layer's q/k/v and gate/up read R·x̂, x̂ = RMSNorm(h) with unit weight
// (the norm weights are folded into the linears), and Q_a quantizes R·x̂ per token. One R is
// shared by all layers, so it can be chosen on calibration data without any layer-wise work:
//
//   samples   x̂ of the FP model at every layer's two norms (attention and feed-forward input),
//             a seeded random subset of the tokens of a few calibration sequences;
//   objective F(R) = mean over samples of φ(R·x̂) in float64, φ one of
//               quant     ‖y − Q_a(y)‖² / ‖y‖², the per-token b-bit RTN error of lrc's own Q_a
//                         (clip c); gradient by the straight-through estimator (round' = 1,
//                         so it flows through the scale c·max|y|/qmax and the clamped codes)
//               kurtosis  n·Σy⁴ / (Σy²)² (KurTail's flatness measure);
//   search    R = Cayley steps from R₀ (the seed's Hadamard) on the orthogonal group:
//               A = G·Rᵀ − R·Gᵀ (G = ∂F/∂R, A skew), R ← (I + τ/2·A)⁻¹(I − τ/2·A)·R,
//             exactly orthogonal in real arithmetic; τ adapts (grown on success, halved and
//             retried on failure), a step is kept only when F decreases, so the recorded F
//             never rises. One Newton–Schulz step at the end brings ‖RᵀR − I‖ to rounding.
//
// The calibrated R is an Orthogonal lrc::Rotation (dense) fused exactly like the Hadamard
// (embeddings, every reader and writer of the residual, the LM head): nothing online depends on
// it, so a checkpoint needs only the record (RotationInfo::calibrated), not the matrix.
//
// Smoothing (--smooth α): after the rotation the norm weight is free again (RMSNorm(R·h) = R·x̂
// before the weight), so each layer's attention and feed-forward norm gets ν = 1/s with
// s_j = max|(R·x̂)_j|^α / max_i |W'_ij|^(1−α) (SmoothQuant; W' every linear reading that norm,
// rotated), ν rounded to fp16 (the checkpoint's norm precision) and W' ← W'·diag(1/ν) with that
// rounded ν, so the FP model is unchanged up to float32 rounding of W.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lrc/model/llama.h"
#include "lrc/rotate/quarot.h"

namespace lrc {

enum class RotationObjective { Quant, Kurtosis };
const char* rotation_objective_name(RotationObjective o);  // "quant" | "kurtosis"
RotationObjective parse_rotation_objective(const std::string& s);

// x̂ at each layer's two norms: point 2l = layer l's attention input, 2l + 1 its feed-forward
// input; rows_per_point rows each.
struct ResidualSamples {
  int dim = 0;
  int points = 0;
  int rows_per_point = 0;
  std::vector<double> x;  // [points · rows_per_point x dim] row-major
  int64_t rows() const { return static_cast<int64_t>(points) * rows_per_point; }
};

// tokens [n_seq x seq_len] through the FP model m (float, not rotated; a streamed model's
// layers are loaded and released one at a time), rows_per_point tokens drawn per point
// (the same seeded positions at every point; all of them when there are fewer).
ResidualSamples collect_residual_samples(const LlamaModel& m, const int32_t* tokens, int n_seq,
                                         int seq_len, int rows_per_point, uint64_t seed);

struct RotationSearchOptions {
  RotationObjective objective = RotationObjective::Kurtosis;
  int steps = 50;    // gradient evaluations
  int bits = 4;      // Q_a of the quant objective
  double clip = 0.9;
};

// F(R) over rows x [rows x n] (r [n x n] row-major, y = R·x per row); with grad, also
// ∂F/∂R [n x n].
double rotation_objective(const double* x, int64_t rows, int n, const std::vector<double>& r,
                          const RotationSearchOptions& o, std::vector<double>* grad = nullptr);

struct RotationSearchResult {
  std::vector<double> r;        // [n x n], orthogonal
  std::vector<double> history;  // F after 0, 1, ... accepted or failed steps (non-increasing)
  int steps_taken = 0;          // gradient evaluations (< steps when no step length helps)
};

// The Cayley search above from r0 (orthogonal [n x n]).
RotationSearchResult search_rotation(const double* x, int64_t rows, int n, std::vector<double> r0,
                                     const RotationSearchOptions& o);

struct ResidualCalibrationOptions {
  bool rotate = true;          // calibrate R (false: keep the plan's; smoothing only)
  RotationSearchOptions search;
  double smooth_alpha = 0;     // 0 = no smoothing; else in (0, 1]
  int n_seq = 8;               // calibration sequences forwarded for the samples
  int rows = 8192;             // samples in all (spread over the 2·n_layers points)
  uint64_t seed = 0;           // which tokens are sampled
};

// Replaces p.r_res (which must be set: the search starts from it) by the calibrated rotation
// and/or fills p's smoothing maxima, from m (the FP model, before rotation) and its calibration
// tokens; records what was done in p.info.calibrated. Progress on stderr.
void calibrate_plan(QuarotPlan& p, const LlamaModel& m, const int32_t* tokens, int n_seq,
                    int seq_len, const ResidualCalibrationOptions& o);

}  // namespace lrc
