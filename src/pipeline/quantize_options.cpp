#include "lrc/pipeline/quantize_options.h"

#include <cmath>

#include "lrc/core/error.h"
#include "lrc/quant/solver_backend.h"

namespace lrc {

const char* method_name(QuantMethod m) {
  switch (m) {
    case QuantMethod::RTN:
      return "rtn";
    case QuantMethod::GPTQ:
      return "gptq";
    case QuantMethod::SVD:
      return "svd";
    case QuantMethod::LRC:
      return "lrc";
  }
  return "?";
}

QuantMethod parse_method(const std::string& s) {
  if (s == "rtn") return QuantMethod::RTN;
  if (s == "gptq") return QuantMethod::GPTQ;
  if (s == "svd") return QuantMethod::SVD;
  if (s == "lrc") return QuantMethod::LRC;
  fail("--method", "unknown method '" + s + "' (expected rtn, gptq, svd or lrc)");
}

const char* rank_allocation_name(RankAllocation a) {
  return a == RankAllocation::Uniform ? "uniform" : "error";
}

RankAllocation parse_rank_allocation(const std::string& s) {
  if (s == "uniform") return RankAllocation::Uniform;
  if (s == "error") return RankAllocation::Error;
  fail("--rank-alloc", "expected uniform or error, got '" + s + "'");
}

static const char* reg_name(LrcRegularization r) {
  return r == LrcRegularization::Paper ? "paper" : "consistent";
}

nlohmann::json QuantizeOptions::to_json() const {
  nlohmann::json j = {{"method", method_name(method)},
                      {"rank", rank},
                      {"rank_alloc", rank_allocation_name(rank_alloc)},
                      {"alloc_nsamples", alloc_nsamples},
                      {"iters", iters},
                      {"wbits", wbits},
                      {"abits", abits},
                      {"a_clip", a_clip},
                      {"a_clip_search", a_clip_search},
                      {"clip_search_tokens", clip_search_tokens},
                      {"w_groupsize", w_groupsize},
                      {"a_groupsize", a_groupsize},
                      {"w_symmetric", w_symmetric},
                      {"w_mse_clip", w_mse_clip},
                      {"kv_bits", kv_bits},
                      {"update_quant", lrc_use_gptq ? "gptq" : "rtn"},
                      {"reg", reg_name(reg)},
                      {"eps_rel", eps_rel},
                      {"damp", damp},
                      {"act_order", act_order},
                      {"rotate", rotate},
                      {"calib_act", calib_act_quant ? "quantized" : "fp"},
                      {"target", fp_targets ? "fp" : "quantized"},
                      {"target_mix", target_mix},
                      {"seed", seed},
                      {"nsamples", nsamples},
                      {"seq", seq},
                      {"stats_precision", stats_precision_name(stats_precision)}};
  if (!ranks.empty()) j["ranks"] = ranks;
  if (device != "cpu") j["device"] = device;
  if (gpu_math != "fp32") j["gpu_math"] = gpu_math;
  // Written only when used, so that the checkpoints of the default keep their bytes.
  if (rotation_calibrated) {
    j["rotation"] = "calibrated";
    j["rotation_steps"] = rotation_steps;
    j["rotation_objective"] = rotation_objective;
    j["rotation_rows"] = rotation_rows;
    j["rotation_nsamples"] = rotation_nsamples;
  }
  if (smooth_alpha > 0) {
    j["smooth"] = smooth_alpha;
    j["rotation_rows"] = rotation_rows;
    j["rotation_nsamples"] = rotation_nsamples;
  }
  return j;
}

// Fields a checkpoint may lack (written before they existed) take the struct's defaults, the
// one place defaults are written.
QuantizeOptions QuantizeOptions::from_json(const nlohmann::json& j) {
  const QuantizeOptions d;
  QuantizeOptions o;
  o.method = parse_method(j.at("method").get<std::string>());
  o.rank = j.at("rank").get<double>();
  o.rank_alloc =
      parse_rank_allocation(j.value("rank_alloc", std::string(rank_allocation_name(d.rank_alloc))));
  o.alloc_nsamples = j.value("alloc_nsamples", d.alloc_nsamples);
  if (j.contains("ranks")) o.ranks = j["ranks"].get<std::map<std::string, int>>();
  o.iters = j.at("iters").get<int>();
  o.wbits = j.at("wbits").get<int>();
  o.abits = j.at("abits").get<int>();
  o.a_clip = j.at("a_clip").get<float>();
  o.a_clip_search = j.value("a_clip_search", d.a_clip_search);
  o.clip_search_tokens = j.value("clip_search_tokens", d.clip_search_tokens);
  o.w_groupsize = j.at("w_groupsize").get<int>();
  o.a_groupsize = j.at("a_groupsize").get<int>();
  o.w_symmetric = j.value("w_symmetric", d.w_symmetric);
  o.w_mse_clip = j.value("w_mse_clip", d.w_mse_clip);
  o.kv_bits = j.at("kv_bits").get<int>();
  o.lrc_use_gptq = j.value("update_quant", std::string(d.lrc_use_gptq ? "gptq" : "rtn")) == "gptq";
  o.reg = j.value("reg", std::string(reg_name(d.reg))) == "consistent"
              ? LrcRegularization::Consistent
              : LrcRegularization::Paper;
  o.eps_rel = j.value("eps_rel", d.eps_rel);
  o.damp = j.value("damp", d.damp);
  o.act_order = j.value("act_order", d.act_order);
  o.rotate = j.value("rotate", d.rotate);
  o.calib_act_quant =
      j.value("calib_act", std::string(d.calib_act_quant ? "quantized" : "fp")) != "fp";
  o.fp_targets = j.value("target", std::string(d.fp_targets ? "fp" : "quantized")) == "fp";
  o.target_mix = j.value("target_mix", d.target_mix);
  o.seed = j.value("seed", d.seed);
  o.nsamples = j.value("nsamples", d.nsamples);
  o.seq = j.value("seq", d.seq);
  o.stats_precision = parse_stats_precision(
      j.value("stats_precision", std::string(stats_precision_name(d.stats_precision))));
  o.device = j.value("device", d.device);
  o.gpu_math = j.value("gpu_math", d.gpu_math);
  o.rotation_calibrated = j.value("rotation", std::string("hadamard")) == "calibrated";
  o.rotation_steps = j.value("rotation_steps", d.rotation_steps);
  o.rotation_objective = j.value("rotation_objective", d.rotation_objective);
  o.rotation_rows = j.value("rotation_rows", d.rotation_rows);
  o.rotation_nsamples = j.value("rotation_nsamples", d.rotation_nsamples);
  o.smooth_alpha = j.value("smooth", d.smooth_alpha);
  return o;
}

void QuantizeOptions::validate() const {
  if (moe_min_tokens < 0)
    fail("--moe-min-tokens", "must be >= 0, got " + std::to_string(moe_min_tokens));
  auto bits_ok = [](int b) { return (b >= 2 && b <= 8) || b == 16; };
  if (!bits_ok(wbits) || wbits == 16)
    fail("--wbits", "weight bits must be in 2..8, got " + std::to_string(wbits));
  if (!bits_ok(abits))
    fail("--abits",
         "activation bits must be in 2..8 (or 16 for none), got " + std::to_string(abits));
  if (!bits_ok(kv_bits))
    fail("--kv-bits",
         "KV-cache bits must be in 2..8 (or 16 for none), got " + std::to_string(kv_bits));
  if (!(a_clip > 0.f && a_clip <= 1.f))
    fail("--a-clip", "clip ratio must be in (0, 1], got " + std::to_string(a_clip));
  if (rank < 0) fail("--rank", "rank must be >= 0");
  if (rank >= 1 && rank != static_cast<double>(static_cast<int64_t>(rank)))
    fail("--rank", "a rank >= 1 must be an integer (or give a fraction < 1)");
  if (iters < 1) fail("--iters", "must be >= 1");
  if (!(eps_rel >= 0) || !std::isfinite(eps_rel))
    fail("--lrc-eps", "must be finite and >= 0, got " + std::to_string(eps_rel));
  if (nsamples < 1) fail("--nsamples", "must be >= 1");
  if (alloc_nsamples < 0) fail("--alloc-nsamples", "must be >= 0");
  if (rank_alloc == RankAllocation::Error && method != QuantMethod::LRC)
    fail("--rank-alloc", "error-driven allocation is for --method lrc");
  if (!(target_mix >= 0 && target_mix <= 1))
    fail("--target-mix", "must be in [0, 1], got " + std::to_string(target_mix));
  if (fp_targets && method == QuantMethod::RTN)
    fail("--target", "FP-model targets need calibration statistics (not --method rtn)");
  if (w_groupsize < 0 || a_groupsize < 0) fail("--w-groupsize/--a-groupsize", "must be >= 0");
  if (rotation_objective != "quant" && rotation_objective != "kurtosis")
    fail("--rotation-objective", "expected quant or kurtosis, got '" + rotation_objective + "'");
  if (rotation_steps < 0 || rotation_steps > 100000)
    fail("--rotation-steps", "must be in 0..100000, got " + std::to_string(rotation_steps));
  if (rotation_rows < 2) fail("--rotation-rows", "must be >= 2, got " + std::to_string(rotation_rows));
  if (rotation_nsamples < 1)
    fail("--rotation-nsamples", "must be >= 1, got " + std::to_string(rotation_nsamples));
  if (!(smooth_alpha >= 0 && smooth_alpha <= 1))
    fail("--smooth", "alpha must be in [0, 1] (0 = off), got " + std::to_string(smooth_alpha));
  if (!rotate && (rotation_calibrated || smooth_alpha > 0))
    fail(rotation_calibrated ? "--rotation" : "--smooth",
         "calibrates the QuaRot rotation; it cannot be combined with --no-rotate");
  if (device != "cpu") {
    const bool cuda = device == "cuda" ||
                      (device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() <= 8 &&
                       device.find_first_not_of("0123456789", 5) == std::string::npos);
    if (!cuda) fail("--device", "expected cpu or cuda[:N], got '" + device + "'");
    if (!cuda_solver_built())
      fail("--device", "'" + device +
                           "': this lrc was built without CUDA (-DLRC_CUDA=OFF or no nvcc "
                           "found); rebuild with -DLRC_CUDA=ON or use --device cpu");
  }
  if (gpu_math != "fp32" && gpu_math != "tf32")
    fail("--gpu-math", "expected fp32 or tf32, got '" + gpu_math + "'");
  if (gpu_math == "tf32" && device == "cpu")
    fail("--gpu-math", "tf32 is a GPU mode: it needs --device cuda[:N]");
}

void QuantizeOptions::validate_for(const LlamaConfig& c) const {
  // MoE (mixtral): the features whose capture follows one input per group, not yet the
  // experts' routed rows, are refused by name rather than run wrongly.
  if (c.moe()) {
    if (fp_targets) fail("--target", "fp is not supported for MoE (mixtral) models yet");
    if (a_clip_search) fail("--a-clip", "search is not supported for MoE (mixtral) models yet");
    if (rank_alloc != RankAllocation::Uniform)
      fail("--rank-alloc", "only uniform is supported for MoE (mixtral) models yet");
    if (device != "cpu")
      fail("--device", "MoE (mixtral) models are quantized on the CPU only (got '" + device + "')");
  }
  // Every linear's input is the hidden size (q, k, v, o, gate, up) or the FFN size (down).
  for (const auto& [flag, g] : {std::pair{"--w-groupsize", w_groupsize},
                                std::pair{"--a-groupsize", a_groupsize}})
    for (const int d_in : {c.dim, c.hidden_dim})
      if (g > 0 && d_in % g != 0)
        fail(flag, "group size " + std::to_string(g) +
                       " does not divide the model's linear input size " + std::to_string(d_in));
}

}  // namespace lrc
