#include "lrc/pipeline/quantize_model.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/model/forward.h"
#include "lrc/quant/act_clip_search.h"
#include "lrc/quant/stats.h"
#include "lrc/rotate/quarot.h"

namespace lrc {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Thrown by a capture hook once it has seen the input it wants: the rest of the layer is
// not needed for this pass (the hook is called from the forward's main thread).
struct StopForward {};

class GroupCapture : public LinearInputHook {
 public:
  using Sink = std::function<void(const float*, int64_t, int)>;
  GroupCapture(int layer, LinearGroup group, Sink sink)
      : layer_(layer), group_(group), sink_(std::move(sink)) {}
  void on_input(int layer, LinearGroup group, const float* x, int64_t n, int d) override {
    if (layer != layer_ || group != group_) return;
    sink_(x, n, d);
    throw StopForward{};
  }

 private:
  int layer_;
  LinearGroup group_;
  Sink sink_;
};

struct NamedLinear {
  Linear* lin;
  std::string name;
};

std::vector<NamedLinear> group_linears(LlamaLayer& L, int i, LinearGroup g) {
  const std::string p = "layers." + std::to_string(i) + ".";
  switch (g) {
    case LinearGroup::QKV:
      return {{&L.wq, p + "self_attn.q_proj"},
              {&L.wk, p + "self_attn.k_proj"},
              {&L.wv, p + "self_attn.v_proj"}};
    case LinearGroup::O:
      return {{&L.wo, p + "self_attn.o_proj"}};
    case LinearGroup::GateUp:
      return {{&L.w_gate, p + "mlp.gate_proj"}, {&L.w_up, p + "mlp.up_proj"}};
    case LinearGroup::Down:
      return {{&L.w_down, p + "mlp.down_proj"}};
  }
  return {};
}

// Which half of the layer a group's input comes from: q/k/v and o read the attention block,
// gate/up and down the feed-forward block. The pipeline keeps h between the halves, so
// capturing a feed-forward input never recomputes attention.
bool in_attention(LinearGroup g) { return g == LinearGroup::QKV || g == LinearGroup::O; }

// Runs the half of layer `layer` that holds group g's input over the calibration hidden
// states h (not modified), batch by batch, with `hook` capturing that input.
void capture_pass(const LlamaModel& m, int layer, LinearGroup g, const std::vector<float>& h,
                  const CalibrationSet& c, int batch, LinearInputHook& hook) {
  const size_t seq_elems = static_cast<size_t>(c.seq_len) * m.cfg.dim;
  std::vector<float> buf;
  for (int s0 = 0; s0 < c.n_seq; s0 += batch) {
    const int nb = std::min(batch, c.n_seq - s0);
    buf.assign(h.begin() + s0 * seq_elems, h.begin() + (s0 + nb) * seq_elems);
    try {
      if (in_attention(g))
        attention_block(m, layer, buf.data(), nb, c.seq_len, &hook);
      else
        ffn_block(m, layer, buf.data(), static_cast<int64_t>(nb) * c.seq_len, &hook);
    } catch (const StopForward&) {
    }
  }
}

// h <- the attention (ffn = false) or feed-forward (ffn = true) half of the finished layer.
void advance_pass(const LlamaModel& m, int layer, bool ffn, std::vector<float>& h,
                  const CalibrationSet& c, int batch) {
  const size_t seq_elems = static_cast<size_t>(c.seq_len) * m.cfg.dim;
  for (int s0 = 0; s0 < c.n_seq; s0 += batch) {
    const int nb = std::min(batch, c.n_seq - s0);
    float* hb = h.data() + s0 * seq_elems;
    if (ffn)
      ffn_block(m, layer, hb, static_cast<int64_t>(nb) * c.seq_len);
    else
      attention_block(m, layer, hb, nb, c.seq_len);
  }
}

}  // namespace

void round_fp_parts_to_half(LlamaModel& m) {
  auto half = [](std::vector<float>& v) {
    for (auto& x : v) x = f16_to_f32(f32_to_f16(x));
  };
  half(m.tok_embeddings);
  half(m.final_norm);
  half(m.lm_head.w);
  for (auto& L : m.layers) {
    half(L.attn_norm);
    half(L.ffn_norm);
  }
}

double model_bits_per_weight(const LlamaModel& m) {
  double bits = 0, n = 0;
  for (const auto& L : m.layers)
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      bits += linear_bits(*l);
      n += static_cast<double>(l->d_out) * l->d_in;
    }
  return n > 0 ? bits / n : 0;
}

nlohmann::json QuantizeReport::to_json() const {
  nlohmann::json lin = nlohmann::json::array();
  for (const auto& r : linears)
    lin.push_back({{"name", r.name},
                   {"shape", {r.d_out, r.d_in}},
                   {"rank", r.rank},
                   {"a_clip", r.a_clip},
                   {"objective", r.objective},
                   {"objective_rel", r.objective_fp > 0 ? r.objective / r.objective_fp : -1.0},
                   {"seconds", r.seconds}});
  return {{"linears", lin},
          {"rotation", rotation},
          {"seconds", seconds},
          {"seconds_forward", seconds_forward},
          {"seconds_stats", seconds_stats},
          {"seconds_solve", seconds_solve},
          {"bits_per_weight", bits_per_weight}};
}

QuantizeReport quantize_model(LlamaModel& m, const CalibrationSet& calib,
                              const QuantizeOptions& opt) {
  opt.validate();
  const auto t_start = Clock::now();
  QuantizeReport report;
  const auto& cfg = m.cfg;

  // 1. QuaRot rotation (exact in floating point), 2. fp16 for the parts that stay 16-bit.
  if (opt.rotate) {
    RotationOptions ro;
    ro.seed = opt.seed;
    ro.online_qk = opt.kv_bits < 16;
    report.rotation = rotate_model(m, ro);
  }
  round_fp_parts_to_half(m);
  m.kv.bits = opt.kv_bits;

  // Check every rank before spending any time.
  for (auto& L : m.layers)
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      (void)rank_for(opt, l->d_out, l->d_in);

  // Calibration hidden states: embeddings of every calibration token.
  const bool need_stats = opt.method != QuantMethod::RTN;
  const bool cross_stats = opt.method == QuantMethod::LRC || opt.baseline_objective;
  const bool need_pass = need_stats || opt.a_clip_search;
  std::vector<float> h;
  if (need_pass) {
    if (calib.n_seq <= 0) fail("calibration", "no calibration sequences");
    h.resize(static_cast<size_t>(calib.n_seq) * calib.seq_len * cfg.dim);
    embed_tokens(m, calib.tokens.data(), static_cast<int64_t>(calib.tokens.size()), h.data());
  }
  const int batch = std::max(1, opt.batch_sequences);
  const LinearGroup groups[] = {LinearGroup::QKV, LinearGroup::O, LinearGroup::GateUp,
                                LinearGroup::Down};

  for (int i = 0; i < cfg.n_layers; ++i) {
    LlamaLayer& L = m.layers[i];
    for (LinearGroup g : groups) {
      auto lins = group_linears(L, i, g);
      const int d_in = lins[0].lin->d_in;
      ActQuantSpec act;
      act.bits = opt.abits;
      act.clip = opt.a_clip;
      act.groupsize = opt.a_groupsize;

      // Activation clip ratio: searched on this group's calibration inputs (one pass).
      if (opt.a_clip_search && act.enabled()) {
        std::vector<const float*> ws;
        std::vector<int> outs;
        for (auto& nl : lins) {
          ws.push_back(nl.lin->w.data());
          outs.push_back(nl.lin->d_out);
        }
        ActClipSearch search(ws, outs, d_in, act);
        GroupCapture cap(i, g, [&](const float* x, int64_t n, int) { search.add(x, n); });
        const auto t = Clock::now();
        capture_pass(m, i, g, h, calib, batch, cap);
        report.seconds_forward += since(t);
        act.clip = search.best();
      }

      // Statistics Σx, Σy, Σxy of this group's input (Alg. 1 lines 3-5), in float64.
      std::optional<LayerStats> stats;
      if (need_stats) {
        StatsAccumulator acc(d_in, act, cross_stats);
        GroupCapture cap(i, g, [&](const float* x, int64_t n, int) {
          const auto ts = Clock::now();
          acc.add(x, n);
          report.seconds_stats += since(ts);
        });
        const auto t = Clock::now();
        capture_pass(m, i, g, h, calib, batch, cap);
        stats = acc.finish();
        report.seconds_forward += since(t);
      }
      for (auto& nl : lins) {
        const int k = rank_for(opt, nl.lin->d_out, nl.lin->d_in);
        report.linears.push_back(
            quantize_linear(*nl.lin, nl.name, stats ? &*stats : nullptr, act, k, opt));
        report.seconds_solve += report.linears.back().seconds;
      }
      // Once o_proj is quantized the attention half is final: push h through it.
      if (g == LinearGroup::O && need_pass) {
        const auto t = Clock::now();
        advance_pass(m, i, /*ffn=*/false, h, calib, batch);
        report.seconds_forward += since(t);
      }
    }
    // Push the calibration states through the finished feed-forward half.
    if (need_pass) {
      const auto t = Clock::now();
      advance_pass(m, i, /*ffn=*/true, h, calib, batch);
      report.seconds_forward += since(t);
    }
    const double el = since(t_start);
    std::fprintf(stderr, "\r[quantize %s] layer %d/%d  %.1fs elapsed, ETA %.1fs   ",
                 method_name(opt.method), i + 1, cfg.n_layers, el,
                 el / (i + 1) * (cfg.n_layers - i - 1));
    std::fflush(stderr);
  }
  std::fprintf(stderr, "\n");
  report.seconds = since(t_start);
  report.bits_per_weight = model_bits_per_weight(m);
  return report;
}

}  // namespace lrc
