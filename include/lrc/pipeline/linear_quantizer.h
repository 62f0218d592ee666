// Quantizes one Linear in place with the chosen method, from its input statistics:
//   rtn  : Ŵ = RTN(W)                                   (no statistics needed)
//   gptq : Ŵ = GPTQ(W, H = XXᵀ)                          (QuaRot's baseline)
//   svd  : Ŵ = GPTQ(W, XXᵀ), U Vᵀ = best rank-k of W − Ŵ (LQER-style)
//   lrc  : Algorithm 1 of the paper (Init-LR, then T x [Update-Quant, Update-LR])
// and sets the activation quantizer Q_a. FP16 storage is applied here: scales, zeros, U and
// V are rounded to half precision and Ŵ is recomputed from the rounded scales, so the
// in-memory model equals the saved checkpoint bit for bit.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lrc/format/linear.h"
#include "lrc/pipeline/quantize_options.h"
#include "lrc/quant/damping.h"
#include "lrc/quant/solver_backend.h"
#include "lrc/quant/stats.h"

namespace lrc {

struct LinearReport {
  std::string name;
  int d_out = 0, d_in = 0, rank = 0;
  float a_clip = 1.f;
  double objective = -1;     // eq. 2 from statistics (-1 without Σy, Σxy: see baseline_objective)
  double objective_fp = -1;  // ‖WX‖², for a relative error
  double objective_gptq = -1;  // eq. 2 of plain GPTQ on the same statistics (compare_gptq)
  double seconds = 0;
  std::vector<double> spectrum;  // LRC: Update-LR's eigenvalues (see LrcOptions::spectrum_rank)
  // Numerical guards (issue 27): solves that needed more damping than configured (damping.h),
  // and whether LRC's eq. 2 objective lost to plain GPTQ's on the same statistics, so that
  // GPTQ's Ŵ was kept with U = V = 0 (the declared rank stays: the checkpoint's layout is
  // fixed before the solve).
  DampingLog damping;
  bool gptq_fallback = false;
  // A MoE expert's linear: the calibration tokens routed to its expert (-1: not an expert) and
  // the statistics rule applied (quantize_moe.h): "routed" or "all-tokens".
  int64_t expert_tokens = -1;
  std::string rule;
};

// The rank of linear `name`: opt.ranks[name] if given, else from opt.rank (0 for rtn/gptq).
int rank_for(const QuantizeOptions& opt, const std::string& name, int d_out, int d_in);

// stats may be null for RTN. act is the activation quantizer this linear will use.
// spectrum_rank: see LrcOptions (0 = none). solver: where the solves run (solver_backend.h;
// null = the CPU).
LinearReport quantize_linear(Linear& lin, const std::string& name, const LayerStats* stats,
                             const ActQuantSpec& act, int rank, const QuantizeOptions& opt,
                             int spectrum_rank = 0, const SolverBackend* solver = nullptr);

// {"damping": [{step, configured, used, retries}...], "gptq_fallback": true}, each only when
// it happened ({} for a linear the guards left alone): the report's and lrc_config.json's record.
nlohmann::json numerical_guards_json(const LinearReport& r);

// Throw lrc::Error naming the linears (names[0] first, the others sharing its input) when their
// calibration inputs x (and the FP model's x_fp, optional; [n x d]) hold NaN or Inf, or when
// the statistics summed from them are not finite (issue 27: the pipeline stops at the first
// layer whose activations blew up, naming it).
void require_finite_activations(const float* x, const float* x_fp, int64_t n, int d,
                                const std::vector<std::string>& names);
void require_finite_activations(const LayerStats& stats, const std::vector<std::string>& names);
// The same error for a non-finite value a device statistics sink found (detail: its message).
[[noreturn]] void fail_non_finite_activations(const std::vector<std::string>& names,
                                              const std::string& detail);

// Bits per weight of the linear layers, the paper's accounting (C.2: 4 + overhead): integer
// codes + fp16 scales (and zeros when asymmetric) + fp16 U and V.
double linear_bits(const Linear& lin);

}  // namespace lrc
