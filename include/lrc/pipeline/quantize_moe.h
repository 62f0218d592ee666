// The MoE (mixtral) feed-forward stage of the quantization pipeline: each expert's linears get
// their own statistics and their own GPTQ/LRC solve, from the calibration tokens the router
// sends to that expert.
//
//   x  = ffn_norm(h) of every calibration token of the layer   (the pipeline's capture)
//   routing of x (HF semantics, lrc/model/forward.h: softmax over all experts, top-k,
//   renormalised); expert e gets the rows X_e of its n_e tokens.
//   Rule: n_e >= max(1, --moe-min-tokens) -> "routed": w1/w3 (gate/up) share the statistics
//         of X_e, w2 (down) those of its own input H_down·silu(X_e Ŵ1ᵀ) ⊙ (X_e Ŵ3ᵀ) (the
//         quantized w1/w3). The statistics are unweighted: HF multiplies the expert's output
//         by the routing weight after w2, so each linear's input is the plain X_e.
//         n_e below it -> "all-tokens": the same with X_e = every token's x (the expert
//         calibrated as if every token were routed to it), so an expert the calibration set
//         hardly reaches is still quantized from real activations: never dropped, never a
//         zero (or NaN) statistic. Reported on stderr and in each linear's report.
// The router itself is never quantized (16-bit, lrc/model/layer_linears.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "lrc/model/llama.h"
#include "lrc/pipeline/linear_quantizer.h"
#include "lrc/pipeline/quantize_options.h"
#include "lrc/quant/solver_backend.h"

namespace lrc {

struct MoeStage {
  LlamaModel& m;
  int layer = 0;
  // Every calibration token's feed-forward input [n_tokens x dim] (host memory), or null with
  // n_tokens 0 for a method without statistics (rtn).
  const float* x = nullptr;
  int64_t n_tokens = 0;
  const QuantizeOptions& opt;
  const std::map<std::string, int>& ranks;           // every linear's rank, by name
  const std::map<std::string, int>* spectrum_ranks;  // LRC eigenvalues to record, or null
  const SolverBackend* solver = nullptr;
  bool cross_stats = false;  // Σy, Σxy too (LRC, baseline objective)
  // Several ranks (communicator.h): x holds this rank's share of the tokens; the routed counts
  // (hence each expert's rule) and every statistic are summed over the ranks, each expert's
  // linears are solved round-robin (next_owner counts on) and broadcast. Null: one rank.
  const Communicator* comm = nullptr;
  int* next_owner = nullptr;
};

// Quantizes every expert of layer st.layer: the w1, w3 of every expert, then every w2 (whose
// input depends on its expert's quantized w1, w3; this order keeps the fp32 w1/w3 out of memory
// while the large w2 solves run). done(lin, report) is called right after each linear is
// quantized (before any input that depends on it is computed), in that order.
void quantize_moe_experts(const MoeStage& st,
                          const std::function<void(Linear&, LinearReport)>& done);

}  // namespace lrc
