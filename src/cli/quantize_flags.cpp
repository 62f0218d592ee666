// The quantization flags shared by `lrc quantize` and `lrc demo`.
#include "cli/quantize_flags.h"

#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "lrc/core/error.h"

namespace lrc::cli {

void add_quantize_options(CLI::App& sub, QuantizeOptions& opt, QuantizeFlagStrings& s,
                          bool calibration_flags) {
  // The defaults shown by --help: opt's values, in the words a checkpoint records them.
  const nlohmann::json d = opt.to_json();
  auto dflt = [&](const char* key) { return d.at(key).get<std::string>(); };
  std::ostringstream clip;
  if (opt.a_clip_search)
    clip << "search";
  else
    clip << opt.a_clip;
  sub.add_option("--rank", opt.rank,
                 "low-rank size: a fraction f < 1 of each matrix (k = f*m*n/(m+n)) or an integer")
      ->capture_default_str();
  sub.add_option("--rank-alloc", s.rank_alloc,
                 "rank budget over the matrices: uniform (paper) | error (greedy by objective)")
      ->default_str(dflt("rank_alloc"));
  sub.add_option("--alloc-nsamples", opt.alloc_nsamples,
                 "calibration sequences of the rank-allocation probe (0 = nsamples/4)")
      ->capture_default_str();
  sub.add_option("--iters", opt.iters, "iterations T of Algorithm 1")->capture_default_str();
  sub.add_option("--wbits", opt.wbits, "weight bits (2-8)")->capture_default_str();
  sub.add_option("--abits", opt.abits, "activation bits (2-8, 16 = none)")->capture_default_str();
  sub.add_option("--a-clip", s.a_clip, "activation clip ratio c, or 'search'")
      ->default_str(clip.str());
  sub.add_option("--clip-search-tokens", opt.clip_search_tokens,
                 "calibration tokens --a-clip search looks at (whole sequences; 0 = all)")
      ->capture_default_str();
  sub.add_option("--moe-min-tokens", opt.moe_min_tokens,
                 "MoE: an expert routed fewer calibration tokens is calibrated on all tokens")
      ->capture_default_str();
  sub.add_option("--w-groupsize", opt.w_groupsize, "weight group size (0 = per channel)")
      ->capture_default_str();
  sub.add_option("--a-groupsize", opt.a_groupsize, "activation group size (0 = per token)")
      ->capture_default_str();
  sub.add_flag("!--w-asym", opt.w_symmetric, "asymmetric weight quantization");
  sub.add_option("--kv-bits", opt.kv_bits, "KV-cache bits (16 = none)")->capture_default_str();
  sub.add_option("--reg", s.reg, "LRC ridge: paper | consistent")->default_str(dflt("reg"));
  sub.add_option("--update-quant", s.update_quant, "quantizer inside LRC: gptq | rtn")
      ->default_str(dflt("update_quant"));
  sub.add_option("--calib-act", s.calib_act,
                 "activations in the calibration passes: quantized (W4A4 model) | fp (QuaRot's "
                 "GPTQ order)")
      ->default_str(dflt("calib_act"));
  sub.add_option("--target", s.target,
                 "what eq. 2 approximates: quantized (W X, X from the quantized layers before; "
                 "the paper) | fp (W X̄, X̄ the FP model's input)")
      ->default_str(dflt("target"));
  sub.add_option("--target-mix", opt.target_mix,
                 "with --target fp: approximate W ((1 − α) X + α X̄), α in [0, 1]")
      ->capture_default_str();
  sub.add_option("--lrc-eps", opt.eps_rel, "LRC ridge ε of Σx, Σy, relative to tr(·)/d_in")
      ->capture_default_str();
  sub.add_option("--stats-precision", s.stats_precision,
                 "sums of Σx, Σy, Σxy: f64 | mixed (float32 within 2048-token blocks, float64 "
                 "across them; about half the statistics time)")
      ->default_str(dflt("stats_precision"));
  sub.add_option("--device", opt.device,
                 "where the calibration forward, statistics and solves run: cpu | cuda[:N] "
                 "(fp32 cuBLAS with TF32 off, cuSOLVER; activations stay on the GPU)")
      ->capture_default_str();
  sub.add_option("--gpu-math", opt.gpu_math,
                 "the calibration forward's products on the GPU: fp32 (TF32 off) | tf32 "
                 "(tensor cores: faster, other rounding of the activations; statistics and "
                 "solves stay float64)")
      ->capture_default_str();
  sub.add_flag("--report-objective", opt.baseline_objective,
               "gptq/svd: also accumulate YYᵀ, XYᵀ so the report carries each matrix's eq. 2 "
               "objective (4x the statistics work; same checkpoint)");
  sub.add_option("--damp", opt.damp, "GPTQ damping (fraction of the mean diagonal)")
      ->capture_default_str();
  sub.add_flag("--act-order", opt.act_order, "GPTQ act-order");
  sub.add_flag("!--no-rotate", opt.rotate, "skip the QuaRot rotation");
  sub.add_option("--rotation", s.rotation,
                 "residual rotation: hadamard (QuaRot's random one, from --seed) | calibrated "
                 "(searched from it on the FP model's normalized residual, then fused the same "
                 "way)")
      ->default_str(opt.rotation_calibrated ? "calibrated" : "hadamard");
  sub.add_option("--rotation-steps", opt.rotation_steps,
                 "--rotation calibrated: Cayley steps on the orthogonal group")
      ->capture_default_str();
  sub.add_option("--rotation-objective", opt.rotation_objective,
                 "--rotation calibrated: what the steps lower: quant (per-token Q_a error at "
                 "--abits/--a-clip) | kurtosis")
      ->capture_default_str();
  sub.add_option("--rotation-rows", opt.rotation_rows,
                 "--rotation calibrated / --smooth: residual samples searched on (as many "
                 "again are held out)")
      ->capture_default_str();
  sub.add_option("--rotation-nsamples", opt.rotation_nsamples,
                 "--rotation calibrated / --smooth: calibration sequences the samples come from")
      ->capture_default_str();
  sub.add_option("--smooth", opt.smooth_alpha,
                 "SmoothQuant scales with exponent alpha on every norm after the rotation "
                 "(0 = off)")
      ->capture_default_str();
  sub.add_option("--seed", opt.seed, "rotation seed")->capture_default_str();
  if (!calibration_flags) return;
  sub.add_option("--nsamples", opt.nsamples, "calibration sequences")->capture_default_str();
  sub.add_option("--seq", opt.seq, "calibration sequence length (0 = model context, max 2048)")
      ->capture_default_str();
}

void finish_quantize_options(QuantizeOptions& opt, const QuantizeFlagStrings& s) {
  const std::string& a_clip = s.a_clip;
  const std::string& reg = s.reg;
  const std::string& update_quant = s.update_quant;
  if (!s.rank_alloc.empty()) opt.rank_alloc = parse_rank_allocation(s.rank_alloc);
  if (!s.rotation.empty()) {
    if (s.rotation != "hadamard" && s.rotation != "calibrated")
      fail("--rotation", "expected hadamard or calibrated, got '" + s.rotation + "'");
    opt.rotation_calibrated = s.rotation == "calibrated";
  }
  if (!s.stats_precision.empty()) opt.stats_precision = parse_stats_precision(s.stats_precision);
  if (!s.calib_act.empty()) {
    if (s.calib_act != "quantized" && s.calib_act != "fp")
      fail("--calib-act", "expected quantized or fp, got '" + s.calib_act + "'");
    opt.calib_act_quant = s.calib_act == "quantized";
  }
  if (!s.target.empty()) {
    if (s.target != "quantized" && s.target != "fp")
      fail("--target", "expected quantized or fp, got '" + s.target + "'");
    opt.fp_targets = s.target == "fp";
  }
  if (a_clip == "search") {
    opt.a_clip_search = true;
  } else if (!a_clip.empty()) {
    try {
      size_t pos = 0;
      opt.a_clip = std::stof(a_clip, &pos);
      if (pos != a_clip.size()) throw std::invalid_argument(a_clip);
    } catch (const std::exception&) {
      fail("--a-clip", "expected a number in (0, 1] or 'search', got '" + a_clip + "'");
    }
  }
  if (reg == "paper")
    opt.reg = LrcRegularization::Paper;
  else if (reg == "consistent")
    opt.reg = LrcRegularization::Consistent;
  else if (!reg.empty())
    fail("--reg", "expected paper or consistent, got '" + reg + "'");
  if (update_quant == "gptq")
    opt.lrc_use_gptq = true;
  else if (update_quant == "rtn")
    opt.lrc_use_gptq = false;
  else if (!update_quant.empty())
    fail("--update-quant", "expected gptq or rtn, got '" + update_quant + "'");
  opt.validate();
}

}  // namespace lrc::cli
