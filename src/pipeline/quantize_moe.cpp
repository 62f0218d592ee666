// The MoE feed-forward stage of the quantization pipeline (lrc/pipeline/quantize_moe.h).
#include "lrc/pipeline/quantize_moe.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "lrc/core/communicator.h"
#include "lrc/core/error.h"
#include "lrc/model/forward.h"
#include "lrc/model/layer_linears.h"
#include "lrc/pipeline/linear_record.h"

namespace lrc {

namespace {

bool ranked(const MoeStage& st) { return st.comm && st.comm->size() > 1; }

// The statistics of x [n x d] (host memory) for the linears `names` (errors name them); with
// several ranks, summed over every rank's rows.
LayerStats statistics_of(const MoeStage& st, const float* x, int64_t n, int d,
                         const ActQuantSpec& act, const std::vector<std::string>& names) {
  require_finite_activations(x, nullptr, n, d, names);
  const std::unique_ptr<StatsSink> acc =
      st.solver->stats(d, act, st.cross_stats, st.opt.stats_precision);
  if (n > 0) acc->add(x, n, nullptr);
  LayerStats s = acc->finish();
  if (ranked(st)) st.solver->all_reduce(s, *st.comm);
  require_finite_activations(s, names);
  return s;
}

}  // namespace

void quantize_moe_experts(const MoeStage& st,
                          const std::function<void(Linear&, LinearReport)>& done) {
  LlamaModel& m = st.m;
  const LlamaConfig& c = m.cfg;
  const int i = st.layer;
  LlamaLayer& L = m.layers[static_cast<size_t>(i)];
  if (!c.moe()) fail("quantize", "layer " + std::to_string(i) + " has no experts");
  ActQuantSpec act;
  act.bits = st.opt.abits;
  act.clip = st.opt.a_clip;
  act.groupsize = st.opt.a_groupsize;
  const bool with_stats = st.x != nullptr;
  MoeRouting route;
  if (with_stats) route = moe_route(m, i, st.x, st.n_tokens);
  const int64_t min_tokens = std::max<int64_t>(1, st.opt.moe_min_tokens);
  // Each expert's routed tokens and the layer's tokens over every rank: the rule is the run's.
  std::vector<double> routed_all(static_cast<size_t>(c.n_experts) + 1, 0.0);
  if (with_stats) {
    for (int e = 0; e < c.n_experts; ++e)
      routed_all[static_cast<size_t>(e)] = static_cast<double>(route.rows[static_cast<size_t>(e)].size());
    routed_all.back() = static_cast<double>(st.n_tokens);
    if (ranked(st)) st.comm->all_reduce_sum(routed_all.data(), routed_all.size());
  }

  // Two passes over the experts: every w1/w3 first, then every w2. A w2's input needs only its
  // own expert's quantized w1/w3, so the order changes no result; it bounds memory: when the
  // w2 solves (d_in = hidden: an 8x7B w2's statistics and LRC's factors are ~17 GB) run, the
  // w1/w3 of every expert are already 4-bit codes instead of fp32 (3.8 of 5.6 GB at 8x7B).
  const auto table = layer_linears(c);
  std::vector<float> xe, g;
  const auto t0 = std::chrono::steady_clock::now();
  // A progress line per solve group (an 8x7B expert's solves take minutes on a CPU).
  const auto progress = [&](const char* what, int e, int64_t tokens) {
    std::fprintf(stderr,
                 "\r[quantize] layer %d: expert %d/%d %s done (%lld routed tokens), %.1fs   ",
                 i + 1, e + 1, c.n_experts, what, static_cast<long long>(tokens),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::fflush(stderr);
  };
  // One expert's linears sharing `stats`, solved (with several ranks round-robin over them,
  // solve_round_robin), then handed to done() in table order.
  const auto quantize = [&](const std::vector<const LayerLinearInfo*>& parts,
                            const LayerStats* stats, int64_t tokens, const char* rule) {
    std::vector<std::pair<Linear*, std::string>> named;
    for (const auto* t : parts) named.emplace_back(&t->of(L), layer_linear_name(i, *t));
    std::vector<LinearReport> reps = solve_round_robin(
        named,
        [&](size_t j) {
          const std::string& name = named[j].second;
          const int spectrum = st.spectrum_ranks ? st.spectrum_ranks->at(name) : 0;
          LinearReport rep = quantize_linear(*named[j].first, name, stats, act,
                                             st.ranks.at(name), st.opt, spectrum, st.solver);
          if (with_stats) {
            rep.expert_tokens = tokens;
            rep.rule = rule;
          }
          return rep;
        },
        st.comm, st.next_owner);
    for (size_t j = 0; j < parts.size(); ++j) done(*named[j].first, std::move(reps[j]));
  };
  // Expert e's rows: X_e (its routed tokens) or every token (rule all-tokens), in xe or st.x.
  struct Input {
    const float* x;
    int64_t n, routed;
    const char* rule;
    bool all_tokens;
  };
  // (n: this rank's rows; routed: the expert's tokens over every rank.)
  const auto input_of = [&](int e) {
    const auto& rows = route.rows[static_cast<size_t>(e)];
    const int64_t here = static_cast<int64_t>(rows.size());
    const auto routed = static_cast<int64_t>(routed_all[static_cast<size_t>(e)]);
    if (routed < min_tokens) return Input{st.x, st.n_tokens, routed, "all-tokens", true};
    xe.resize(static_cast<size_t>(here) * c.dim);
    if (here > 0) m.run_backend().gather_rows(xe.data(), st.x, rows.data(), here, c.dim);
    return Input{xe.data(), here, routed, "routed", false};
  };
  for (const int group : {2, 3}) {
    for (int e = 0; e < c.n_experts; ++e) {
      std::vector<const LayerLinearInfo*> parts;  // w1, w3 (group 2) or w2 (group 3)
      std::vector<std::string> names;
      for (const auto& t : table)
        if (t.expert == e && t.group == group) {
          parts.push_back(&t);
          names.push_back(layer_linear_name(i, t));
        }
      if (!with_stats) {  // rtn: no statistics, no routing
        quantize(parts, nullptr, -1, "");
        continue;
      }
      const Input in = input_of(e);
      if (group == 2 && in.all_tokens)
        std::fprintf(stderr,
                     "\n[quantize] layers.%d expert %d: %lld routed calibration tokens < %lld "
                     "(--moe-min-tokens): its w1/w3/w2 are calibrated on all %lld tokens of the "
                     "layer (rule all-tokens)\n",
                     i, e, static_cast<long long>(in.routed), static_cast<long long>(min_tokens),
                     static_cast<long long>(routed_all.back()));
      if (group == 2) {  // w1, w3 (gate, up): one input, X_e
        const LayerStats s = statistics_of(st, in.x, in.n, c.dim, act, names);
        quantize(parts, &s, in.routed, in.rule);
      } else {  // w2 (down): its input from the quantized w1, w3
        g.resize(static_cast<size_t>(in.n) * c.hidden_dim);
        if (in.n > 0) expert_down_input(m, i, e, in.x, in.n, g.data());
        const LayerStats s = statistics_of(st, g.data(), in.n, c.hidden_dim, act, names);
        quantize(parts, &s, in.routed, in.rule);
      }
      progress(group == 2 ? "w1/w3" : "w2", e, in.routed);
    }
  }
}

}  // namespace lrc
