// QuaRot (Ashkboos et al., 2024): rotate a Llama model so that its activations have no outliers,
// without changing what it computes. Every step is an exact identity in real arithmetic; lrc
// does the fusion in float64 and rounds each weight to float32 once.
//
//   (a) fold_norms: RMSNorm(x)·g feeding W equals RMSNorm(x) feeding W·diag(g), so each norm
//       weight moves into the columns of the linears that read it (attn_norm -> wq, wk, wv;
//       ffn_norm -> w_gate, w_up; final_norm -> lm_head) and the norm weights become 1.
//   (b) residual rotation R (order dim): with unit norm weights, RMSNorm(R·x) = R·RMSNorm(x), so
//       the whole residual stream can live rotated: embeddings E·Rᵀ (rows e ↦ R·e), every linear
//       reading it W·Rᵀ, every linear writing it (wo, w_down) R·W, lm_head W·Rᵀ.
//   (c) down_proj input: w_down ← w_down·R_dᵀ and m.online_down = R_d (order hidden_dim).
//   (d) o_proj input: a head-wise rotation R_hd (order head_dim) fused into v_proj's rows of each
//       kv head (attention mixes v's rows, so its output per head is R_hd·out) plus an online
//       rotation R_h across heads (order n_heads), m.online_o; o_proj ← o_proj·(R_h ⊗ R_hd)ᵀ.
//   (e) optional m.online_qk = R_qk (order head_dim) on each query and key head after RoPE: qᵀk
//       is unchanged, so no weight changes; it is there for KV-cache quantization.
// Each R is a seeded randomised Hadamard when its order has a Hadamard matrix and a seeded
// random orthogonal matrix otherwise (lrc/rotate/rotation.h).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lrc/model/llama.h"
#include "lrc/rotate/online_transforms.h"
#include "lrc/rotate/rotation.h"

namespace lrc {

struct RotationOptions {
  uint64_t seed = 0;
  bool rotate_residual = true;  // (b)
  bool online_down = true;      // (c)
  bool rotate_attn_out = true;  // (d)
  bool online_qk = false;       // (e)
  bool hadamard = true;         // false: random orthogonal rotations everywhere
};

// A calibrated residual rotation and/or smoothing (lrc/rotate/residual_calibration.h): what was
// searched, for the record (the result is fused into the weights, nothing online depends on it).
struct ResidualCalibrationInfo {
  std::string objective;  // "quant" | "kurtosis"; empty when R stayed the random one
  int steps = 0;          // gradient evaluations done
  int64_t rows = 0;       // samples x̂ searched on
  double before = 0, after = 0;                    // F(R₀), F(R) on those samples
  double held_out_before = 0, held_out_after = 0;  // on as many other samples
  double smooth_alpha = 0;                         // 0 = no smoothing
  double seconds = 0;                              // sampling + search
  bool operator==(const ResidualCalibrationInfo&) const = default;
};

// What rotate_model did, enough to recreate its online transforms after a checkpoint is loaded
// (the fused ones are recorded too, for the record). Unset = step not done.
struct RotationInfo {
  uint64_t seed = 0;
  bool norms_folded = false;
  std::optional<OnlineSpec> residual;     // fused: block 1, n = dim
  std::optional<OnlineSpec> value_heads;  // fused into v_proj/o_proj: n = head_dim
  std::optional<OnlineSpec> online_o;     // n = n_heads, block = head_dim
  std::optional<OnlineSpec> online_down;  // n = hidden_dim
  std::optional<OnlineSpec> online_qk;    // n = head_dim
  // Set when R is calibrated (residual then names R₀, where the search started) or the norms
  // smoothed.
  std::optional<ResidualCalibrationInfo> calibrated;
  bool operator==(const RotationInfo&) const = default;
};

// Step (a) alone. The model must be a float model (no low-rank branch, no packed weights).
void fold_norms(LlamaModel& m);

// Steps (a)-(e) as selected. Fails on a model that already has online transforms, low-rank
// branches or packed weights. Leaves cfg.tied_embeddings = false (lm_head no longer equals the
// embedding matrix once the final norm is folded into it).
RotationInfo rotate_model(LlamaModel& m, const RotationOptions& opt);

// The same a layer at a time, for a model whose layers are loaded one by one
// (LlamaModel::layer_source): plan the rotations once from the config, rotate the ends
// (embeddings, LM head with the final norm folded, online transforms attached) and each layer
// when it is loaded. rotate_model is plan + every resident layer + ends; the weights are the
// same whichever order the pieces run in.
struct QuarotPlan {
  RotationInfo info;
  std::optional<Rotation> r_res, r_down, r_vh, r_heads;
  int head_dim = 0;
  int q_dim = 0, kv_dim = 0;  // where v's rows start in a fused qkv_proj (phi3): q_dim + kv_dim
  // --smooth (residual_calibration.h): α and, per layer, max |(R·x̂)_j| over the samples at its
  // attention and feed-forward norm; empty = no smoothing.
  double smooth_alpha = 0;
  std::vector<std::vector<double>> smooth_attn_max, smooth_ffn_max;  // [n_layers][dim]
};
QuarotPlan plan_rotation(const LlamaConfig& c, const RotationOptions& opt);
void rotate_ends(LlamaModel& m, const QuarotPlan& p);
// A float layer: norms folded, rotated, and (with the plan's smoothing maxima and layer >= 0)
// its two norms smoothed.
void rotate_layer(LlamaLayer& L, const QuarotPlan& p, int layer = -1);
// rotate_model with a plan made (and perhaps calibrated) beforehand.
RotationInfo rotate_model_with_plan(LlamaModel& m, const QuarotPlan& p);

// Sets m.online_o / online_down / online_qk from `info` (checks their sizes against m.cfg).
void attach_online_transforms(LlamaModel& m, const RotationInfo& info);

// {"seed": ..., "norms_folded": true, "residual": {"kind": "hadamard", "n": 384, "block": 1,
//  "seed": ...}, "online_o": {...}, ...}; absent keys = steps not done.
void to_json(nlohmann::json& j, const RotationInfo& info);
void from_json(const nlohmann::json& j, RotationInfo& info);
void to_json(nlohmann::json& j, const OnlineSpec& spec);
void from_json(const nlohmann::json& j, OnlineSpec& spec);

}  // namespace lrc
