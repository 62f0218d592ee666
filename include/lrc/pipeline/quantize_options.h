// Everything `lrc quantize` can be told, in one struct. Recorded verbatim in the
// checkpoint's lrc_config.json so a run can be reproduced from its output.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "lrc/model/llama.h"
#include "lrc/quant/lrc_solver.h"
#include "lrc/quant/stats.h"

namespace lrc {

enum class QuantMethod { RTN, GPTQ, SVD, LRC };
const char* method_name(QuantMethod m);
QuantMethod parse_method(const std::string& s);  // "rtn" | "gptq" | "svd" | "lrc"

// How the low-rank budget is spread over the matrices (include/lrc/quant/rank_allocation.h):
// uniform = the same fraction of every matrix (the paper); error = the same total parameters,
// greedily where the eq. 2 objective falls most per parameter (from a probe pass).
enum class RankAllocation { Uniform, Error };
const char* rank_allocation_name(RankAllocation a);
RankAllocation parse_rank_allocation(const std::string& s);  // "uniform" | "error"

struct QuantizeOptions {
  QuantMethod method = QuantMethod::LRC;
  double rank = 0.1;  // < 1: fraction of each matrix (rank_from_fraction); >= 1: integer rank
  RankAllocation rank_alloc = RankAllocation::Uniform;
  int alloc_nsamples = 0;            // calibration sequences of the probe pass (0 = nsamples/4)
  std::map<std::string, int> ranks;  // per-linear ranks ("layers.3.mlp.down_proj"), override rank
  int iters = 1;                     // T of Algorithm 1
  int wbits = 4, abits = 4;
  float a_clip = 0.9f;  // activation clip ratio c (when not searched)
  bool a_clip_search = false;
  int64_t clip_search_tokens = 4096;  // calibration tokens the search sees (0 = all)
  int w_groupsize = 0, a_groupsize = 0;
  bool w_symmetric = true;
  bool w_mse_clip = true;
  int kv_bits = 16;
  bool lrc_use_gptq = true;  // Update-Quant subroutine: GPTQ (true) or RTN
  // Consistent by default: on SmolLM2 W4A4 it takes LRC 10% from 19.5% to 57.5% of the
  // QuaRot-GPTQ gap (docs/results.md); --reg paper reproduces the publication.
  LrcRegularization reg = LrcRegularization::Consistent;
  double eps_rel = 1e-2;  // ε of Σx, Σy: eps_rel · tr(·)/d_in (paper §3.2)
  double damp = 0.01;
  bool act_order = false;
  bool rotate = true;  // QuaRot rotation first
  // The residual rotation (lrc/rotate/residual_calibration.h): the seed's random Hadamard
  // (false, QuaRot) or one searched on calibration activations from it (true, --rotation
  // calibrated) with rotation_steps Cayley steps on the rotation_objective, over rotation_rows
  // samples x̂ of the first rotation_nsamples calibration sequences. Opt-in: docs/results-rotation.md.
  bool rotation_calibrated = false;
  int rotation_steps = 50;
  std::string rotation_objective = "kurtosis";  // kurtosis | quant
  int rotation_rows = 8192;
  int rotation_nsamples = 8;
  // --smooth α: SmoothQuant scales on every norm after the rotation (0 = none).
  double smooth_alpha = 0;
  // Calibration passes with Q_a on (true: the inputs of layer l come from the W4A4 model
  // before it) or off (the quantized weights on FP activations, as QuaRot's code runs GPTQ).
  bool calib_act_quant = true;
  // Targets of eq. 2 from the FP model (--target fp; lrc/quant/fp_target.h): every
  // stats-based method approximates W X̄ (X̄ the FP model's input), mixed with W X by
  // target_mix, instead of W X. Needs a second, FP forward pass beside the calibration one.
  // false = the paper (--target quantized).
  bool fp_targets = false;
  // With fp_targets: the target W ((1 − α) X + α X̄), α = target_mix in [0, 1] (--target-mix;
  // 0.25 was the best of 0, 0.25, 0.5, 1 for LRC 10% on SmolLM2, docs/results.md).
  double target_mix = 0.25;
  uint64_t seed = 0;
  // Calibration set: nsamples sequences of seq tokens (0 = model context, capped at 2048).
  int nsamples = 128;
  int seq = 0;
  // Rows of the calibration hidden states processed at once (bounds the activation memory).
  int batch_sequences = 8;
  // MoE (mixtral): an expert routed fewer calibration tokens than this is calibrated on the
  // feed-forward inputs of every calibration token of its layer (rule "all-tokens",
  // lrc/pipeline/quantize_moe.h). Not part of to_json: each expert's linears record the rule
  // they got (lrc_config.json "linears", the report).
  int64_t moe_min_tokens = 32;
  // GPTQ / SVD need only XXᵀ; true also accumulates YYᵀ and XYᵀ for them (4x the statistics
  // work) so that their reports carry the eq. 2 objective. LRC always has all three.
  bool baseline_objective = false;
  // Also quantize every stats-based linear with plain GPTQ (H = XXᵀ) on the same statistics and
  // report that eq. 2 objective beside the method's (LinearReport::objective_gptq; `lrc
  // quantize --report`). Costs one GPTQ per linear; changes nothing in the model. Not part of
  // to_json (a reporting choice, like baseline_objective).
  bool compare_gptq = false;
  // How Σx, Σy, Σxy are summed (lrc/quant/stats.h): float64 throughout, or float32 within each
  // 2048-token block and float64 across blocks (about half the statistics time).
  StatsPrecision stats_precision = StatsPrecision::Float64;
  // Where the statistics and solves run (--device; lrc/quant/solver_backend.h): "cpu" or
  // "cuda[:N]". Recorded in the checkpoint only when not "cpu" (CPU checkpoints keep their bytes).
  std::string device = "cpu";
  // The calibration forward's fp32 products on a GPU (--gpu-math): "fp32" (TF32 off, the
  // CPU's arithmetic up to summation order) or "tf32" (tensor cores, ~5x the rate, 10-bit
  // mantissa inputs: other activations, so other statistics). The statistics and solves stay
  // float64 either way. Recorded only when "tf32".
  std::string gpu_math = "fp32";

  nlohmann::json to_json() const;
  static QuantizeOptions from_json(const nlohmann::json& j);
  void validate() const;  // throws lrc::Error for out-of-range values
  // What depends on the model's shapes (group sizes dividing every linear's input), checked
  // before any calibration work so that the error names the option.
  void validate_for(const LlamaConfig& c) const;
};

}  // namespace lrc
