#include "lrc/pipeline/linear_quantizer.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/quant/fp_target.h"
#include "lrc/quant/gptq.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/rank.h"
#include "lrc/quant/solver_backend.h"
#include "lrc/quant/weight_quant.h"

namespace lrc {

namespace {

inline float to_half(float x) { return f16_to_f32(f32_to_f16(x)); }

void round_to_half(std::vector<float>& v) {
  for (auto& x : v) x = to_half(x);
}

}  // namespace

int rank_for(const QuantizeOptions& opt, const std::string& name, int d_out, int d_in) {
  if (opt.method == QuantMethod::RTN || opt.method == QuantMethod::GPTQ) return 0;
  if (auto it = opt.ranks.find(name); it != opt.ranks.end()) {
    check_rank(it->second, d_out, d_in, ("ranks['" + name + "']").c_str());
    return it->second;
  }
  const int k = opt.rank >= 1 ? static_cast<int>(std::min<double>(
                                    opt.rank, std::numeric_limits<int>::max()))
                              : rank_from_fraction(opt.rank, d_out, d_in);
  check_rank(k, d_out, d_in, ("--rank (" + name + ")").c_str());
  return k;
}

LinearReport quantize_linear(Linear& lin, const std::string& name, const LayerStats* stats,
                             const ActQuantSpec& act, int rank, const QuantizeOptions& opt,
                             int spectrum_rank, const SolverBackend* solver) {
  SolverBackendPtr own;  // the CPU unless the caller names a backend
  if (!solver) {
    own = cpu_solver_backend();
    solver = own.get();
  }
  const auto t0 = std::chrono::steady_clock::now();
  const int d_out = lin.d_out, d_in = lin.d_in;
  if (lin.packed) fail(name, "is quantized already");
  const std::vector<float> W_fp = std::move(lin.w);  // the FP weights (after rotation)
  if (opt.method != QuantMethod::RTN && !stats)
    fail(name, std::string(method_name(opt.method)) + " needs calibration statistics");
  // What the method approximates: W itself, or with --target fp the projection W_t of the FP
  // model's W X̄ on this layer's inputs (fp_target.h).
  const bool fp_target = opt.fp_targets && stats;
  const std::vector<float> W_t = fp_target
                                     ? solver->fp_target(W_fp.data(), d_out, d_in, *stats,
                                                         opt.eps_rel, name.c_str(), opt.target_mix)
                                     : std::vector<float>();
  const std::vector<float>& W = fp_target ? W_t : W_fp;
  WeightQuantSpec ws;
  ws.bits = opt.wbits;
  ws.groupsize = opt.w_groupsize;
  ws.symmetric = opt.w_symmetric;
  ws.mse_clip = opt.w_mse_clip;
  GptqOptions go;
  go.damp = opt.damp;
  go.act_order = opt.act_order;

  PackedWeight packed;
  std::vector<float> u, v;
  std::vector<double> spectrum;
  switch (opt.method) {
    case QuantMethod::RTN:
      packed = quantize_rtn(W.data(), d_out, d_in, ws);
      rank = 0;
      break;
    case QuantMethod::GPTQ:
      packed = solver->gptq(W.data(), d_out, d_in, *stats, ws, go);
      rank = 0;
      break;
    case QuantMethod::SVD: {
      auto r = solver->svd(W.data(), d_out, d_in, *stats, rank, ws, go);
      packed = std::move(r.packed);
      u = std::move(r.u);
      v = std::move(r.v);
      break;
    }
    case QuantMethod::LRC: {
      LrcOptions lo;
      lo.rank = rank;
      lo.iters = opt.iters;
      lo.w = ws;
      lo.use_gptq = opt.lrc_use_gptq;
      lo.gptq = go;
      lo.reg = opt.reg;
      lo.eps_rel = opt.eps_rel;
      lo.spectrum_rank = spectrum_rank;
      lo.compute_objective = false;  // evaluated below, after U and V are rounded to fp16
      auto r = solver->lrc(W.data(), d_out, d_in, *stats, lo);
      if (spectrum_rank > 0) spectrum = std::move(r.eigenvalues);
      packed = std::move(r.packed);
      u = std::move(r.u);
      v = std::move(r.v);
      break;
    }
  }
  // FP16 storage of everything that is not an integer code.
  round_to_half(packed.scales);
  round_to_half(packed.zeros);
  round_to_half(u);
  round_to_half(v);
  // Ŵ as the run stage will see it (dequantized from the fp16-rounded grid), for eq. 2 below.
  std::vector<float> w_hat(static_cast<size_t>(d_out) * d_in);
  packed.dequantize(w_hat.data());
  lin.w.clear();
  lin.w.shrink_to_fit();
  lin.packed = std::move(packed);
  lin.lr.rank = rank;
  lin.lr.u = std::move(u);
  lin.lr.v = std::move(v);
  lin.act = act;

  LinearReport rep;
  rep.name = name;
  rep.d_out = d_out;
  rep.d_in = d_in;
  rep.rank = rank;
  rep.a_clip = act.clip;
  rep.spectrum = std::move(spectrum);
  if (stats && stats->has_cross()) {
    rep.objective = solver->objective(W.data(), w_hat.data(), rank ? lin.lr.u.data() : nullptr,
                                      rank ? lin.lr.v.data() : nullptr, rank, d_out, d_in,
                                      *stats);
    // eq. 2 at Ŵ = 0, U = V = 0: tr(W Σx Wᵀ) = ‖WX‖² (the same sum lrc_objective forms first),
    // of the FP weights.
    rep.objective_fp = solver->output_energy(W_fp.data(), d_out, d_in, *stats);
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The QuaRot-GPTQ baseline on the very same statistics (after the timing: it is a report,
  // not part of this method's cost), with its scales in fp16 as a GPTQ checkpoint stores them.
  if (opt.compare_gptq && stats && stats->has_cross()) {
    if (opt.method == QuantMethod::GPTQ) {
      rep.objective_gptq = rep.objective;
    } else {
      PackedWeight g = gptq(W.data(), d_out, d_in, stats->xx.data(), ws, go);
      round_to_half(g.scales);
      round_to_half(g.zeros);
      g.dequantize(w_hat.data());
      rep.objective_gptq =
          lrc_objective(W.data(), w_hat.data(), nullptr, nullptr, 0, d_out, d_in, *stats);
    }
  }
  return rep;
}

double linear_bits(const Linear& lin) {
  if (!lin.packed) return 16.0 * lin.d_out * lin.d_in;
  const auto& p = *lin.packed;
  const double codes = static_cast<double>(p.bits) * lin.d_out * lin.d_in;
  const double groups = static_cast<double>(p.scales.size());
  const double scale_bits = groups * 16.0 * (p.symmetric ? 1.0 : 2.0);
  const double lowrank = 16.0 * lin.lr.rank * (static_cast<double>(lin.d_out) + lin.d_in);
  return codes + scale_bits + lowrank;
}

}  // namespace lrc
