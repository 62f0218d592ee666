#include "lrc/pipeline/quantize_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <optional>

#include "lrc/core/communicator.h"
#include "lrc/core/error.h"
#include "lrc/core/sha256.h"
#include "lrc/core/half.h"
#include "lrc/kernels/registry.h"
#include "lrc/model/forward.h"
#include "lrc/model/layer_linears.h"
#include "lrc/pipeline/linear_record.h"
#include "lrc/pipeline/quantize_moe.h"
#include "lrc/pipeline/resume.h"
#include "lrc/quant/act_clip_search.h"
#include "lrc/quant/lrc_clip_search.h"
#include "lrc/quant/rank_allocation.h"
#include "lrc/quant/solver_backend.h"
#include "lrc/quant/stats.h"
#include "lrc/rotate/quarot.h"
#include "lrc/rotate/residual_calibration.h"

namespace lrc {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Thrown by a capture hook once it has seen the input it wants: the rest of the layer is
// not needed for this pass (the hook is called from the forward's main thread).
struct StopForward {};

// Hands group `group`'s input of layer `layer` to sink, in the backend's memory when
// backend_memory (the GPU pipeline), else in host memory.
class GroupCapture : public LinearInputHook {
 public:
  using Sink = std::function<void(const float*, int64_t, int)>;
  GroupCapture(int layer, LinearGroup group, Sink sink, bool backend_memory = false)
      : layer_(layer), group_(group), sink_(std::move(sink)), backend_memory_(backend_memory) {}
  void on_input(int layer, LinearGroup group, const float* x, int64_t n, int d) override {
    if (layer != layer_ || group != group_) return;
    sink_(x, n, d);
    throw StopForward{};
  }
  bool takes_backend_memory() const override { return backend_memory_; }

 private:
  int layer_;
  LinearGroup group_;
  Sink sink_;
  bool backend_memory_;
};

// Calibration hidden states [n_seq*seq_len x dim] (or any activations) in the memory of the
// backend that runs the calibration forward: host memory on the CPU, device memory on a GPU,
// where they stay for the whole pipeline.
using States = Buffer<float>;

// A copy of n floats of src (backend memory).
States copy_of(const Backend& be, const float* src, size_t n) {
  States out(be, n);
  be.copy(out.data(), src, n * sizeof(float));
  return out;
}

// A host copy of states in backend memory (downloaded from a device), for the journal, which
// writes it after the pipeline has gone on.
std::vector<float> host_copy(const Backend& be, const States& s) {
  if (be.host_memory()) return std::vector<float>(s.data(), s.data() + s.size());
  std::vector<float> out(s.size());
  if (!out.empty()) be.download(out.data(), s.data(), out.size() * sizeof(float));
  return out;
}

struct NamedLinear {
  Linear* lin;
  std::string name;
};

static_assert(static_cast<int>(LinearGroup::QKV) == 0 && static_cast<int>(LinearGroup::O) == 1 &&
                  static_cast<int>(LinearGroup::GateUp) == 2 &&
                  static_cast<int>(LinearGroup::Down) == 3,
              "kLayerLinears' group numbers are LinearGroup's");

// The linears of group g in layer i, in table order, with their names.
std::vector<NamedLinear> group_linears(const LlamaConfig& c, LlamaLayer& L, int i, LinearGroup g) {
  std::vector<NamedLinear> out;
  for (const auto& t : layer_linears(c))
    if (t.group == static_cast<int>(g)) out.push_back({&t.of(L), layer_linear_name(i, t)});
  return out;
}

// Quantization order within a layer.
constexpr LinearGroup kGroups[] = {LinearGroup::QKV, LinearGroup::O, LinearGroup::GateUp,
                                   LinearGroup::Down};

// Which half of the layer a group's input comes from: q/k/v and o read the attention block,
// gate/up and down the feed-forward block. The pipeline keeps h between the halves, so
// capturing a feed-forward input never recomputes attention.
bool in_attention(LinearGroup g) { return g == LinearGroup::QKV || g == LinearGroup::O; }

// One batch of capture_pass: nb sequences of h (backend memory) from sequence s0 on.
void capture_batch(const LlamaModel& m, int layer, LinearGroup g, const States& h,
                   const CalibrationSet& c, int s0, int nb, LinearInputHook& hook) {
  const size_t seq_elems = static_cast<size_t>(c.seq_len) * m.cfg.dim;
  States buf = copy_of(m.run_backend(), h.data() + s0 * seq_elems, nb * seq_elems);
  try {
    if (in_attention(g))
      attention_block_resident(m, layer, buf.data(), nb, c.seq_len, &hook);
    else
      ffn_block_resident(m, layer, buf.data(), static_cast<int64_t>(nb) * c.seq_len, &hook);
  } catch (const StopForward&) {
  }
}

// Runs the half of layer `layer` that holds group g's input over the calibration hidden
// states h (not modified), batch by batch, with `hook` capturing that input.
void capture_pass(const LlamaModel& m, int layer, LinearGroup g, const States& h,
                  const CalibrationSet& c, int batch, LinearInputHook& hook) {
  for (int s0 = 0; s0 < c.n_seq; s0 += batch)
    capture_batch(m, layer, g, h, c, s0, std::min(batch, c.n_seq - s0), hook);
}

// capture_pass over the quantized model m (hidden states h) and the FP model fp (hf) side by
// side (--target fp): sink(x, x̄, n, d) gets each batch's input of group g in both, token for
// token, in backend memory.
void capture_pass_paired(
    const LlamaModel& m, const LlamaModel& fp, int layer, LinearGroup g, const States& h,
    const States& hf, const CalibrationSet& c, int batch,
    const std::function<void(const float*, const float*, int64_t, int)>& sink) {
  States xf;
  GroupCapture cap_fp(
      layer, g,
      [&](const float* x, int64_t n, int d) {
        xf = copy_of(fp.run_backend(), x, static_cast<size_t>(n) * d);
      },
      true);
  GroupCapture cap(
      layer, g,
      [&](const float* x, int64_t n, int d) {
        if (xf.size() != static_cast<size_t>(n) * d)
          fail("--target fp", "FP and quantized passes differ");
        sink(x, xf.data(), n, d);
      },
      true);
  for (int s0 = 0; s0 < c.n_seq; s0 += batch) {
    const int nb = std::min(batch, c.n_seq - s0);
    capture_batch(fp, layer, g, hf, c, s0, nb, cap_fp);
    capture_batch(m, layer, g, h, c, s0, nb, cap);
  }
}

// Group g's inputs over about `tokens` tokens: whole sequences spread evenly over the set.
std::vector<float> capture_subset(const LlamaModel& m, int layer, LinearGroup g, const States& h,
                                  const CalibrationSet& c, int64_t tokens, int batch) {
  const int n_sub =
      tokens <= 0
          ? c.n_seq
          : static_cast<int>(std::clamp<int64_t>((tokens + c.seq_len - 1) / c.seq_len, 1, c.n_seq));
  CalibrationSet sub;
  sub.n_seq = n_sub;
  sub.seq_len = c.seq_len;
  const size_t seq_elems = static_cast<size_t>(c.seq_len) * m.cfg.dim;
  const Backend& be = m.run_backend();
  States hs(be, n_sub * seq_elems);
  for (int j = 0; j < n_sub; ++j) {
    const size_t s = static_cast<size_t>(j) * c.n_seq / n_sub;  // evenly spread sequences
    be.copy(hs.data() + j * seq_elems, h.data() + s * seq_elems, seq_elems * sizeof(float));
  }
  std::vector<float> xs;
  GroupCapture cap(layer, g,
                   [&](const float* x, int64_t n, int d) { xs.insert(xs.end(), x, x + n * d); });
  capture_pass(m, layer, g, hs, sub, batch, cap);
  return xs;
}

// h <- the attention (ffn = false) or feed-forward (ffn = true) half of the finished layer.
void advance_pass(const LlamaModel& m, int layer, bool ffn, States& h, const CalibrationSet& c,
                  int batch) {
  const size_t seq_elems = static_cast<size_t>(c.seq_len) * m.cfg.dim;
  for (int s0 = 0; s0 < c.n_seq; s0 += batch) {
    const int nb = std::min(batch, c.n_seq - s0);
    float* hb = h.data() + s0 * seq_elems;
    if (ffn)
      ffn_block_resident(m, layer, hb, static_cast<int64_t>(nb) * c.seq_len);
    else
      attention_block_resident(m, layer, hb, nb, c.seq_len);
  }
}

// h += lin(x) for the kept inputs x of every calibration token, in the batches the forward
// pass uses (so the sgemm shapes, and hence the sums, are those of advance_pass).
void add_linear_output(const Backend& be, const Linear& lin, const States& x, States& h,
                       const CalibrationSet& c, int batch) {
  const int64_t per_seq = c.seq_len;
  States y(be, static_cast<size_t>(std::min(batch, c.n_seq)) * per_seq * lin.d_out);
  for (int s0 = 0; s0 < c.n_seq; s0 += batch) {
    const int64_t n = static_cast<int64_t>(std::min(batch, c.n_seq - s0)) * per_seq;
    const int64_t row0 = static_cast<int64_t>(s0) * per_seq;
    be.linear(lin, x.data() + row0 * lin.d_in, n, y.data());
    be.add(h.data() + row0 * lin.d_out, y.data(), n * lin.d_out);
  }
}

}  // namespace

void round_fp_parts_to_half(LlamaModel& m) {
  auto half = [](std::vector<float>& v) {
    const int64_t n = static_cast<int64_t>(v.size());
#pragma omp parallel for schedule(static) if (n >= (int64_t{1} << 18))
    for (int64_t i = 0; i < n; ++i) {
      float& x = v[static_cast<size_t>(i)];
      x = f16_to_f32(f32_to_f16(x));
    }
  };
  half(m.tok_embeddings);
  half(m.final_norm);
  half(m.lm_head.w);
  for (auto& L : m.layers) {
    half(L.attn_norm);
    half(L.ffn_norm);
    half(L.router.w);  // MoE: the router stays 16-bit
  }
}

namespace {
// Adds one layer's quantized-linear bits and weight count (the paper's accounting, C.2).
void add_layer_bits(const LlamaConfig& c, const LlamaLayer& L, double& bits, double& weights) {
  for (const auto& t : layer_linears(c)) {
    const Linear& l = t.of(L);
    bits += linear_bits(l);
    weights += static_cast<double>(l.d_out) * l.d_in;
  }
}
}  // namespace

double model_bits_per_weight(const LlamaModel& m) {
  double bits = 0, n = 0;
  for (const auto& L : m.layers) add_layer_bits(m.cfg, L, bits, n);
  return n > 0 ? bits / n : 0;
}

nlohmann::json QuantizeReport::to_json() const {
  nlohmann::json lin = nlohmann::json::array();
  for (const auto& r : linears) {
    lin.push_back({{"name", r.name},
                   {"shape", {r.d_out, r.d_in}},
                   {"rank", r.rank},
                   {"a_clip", r.a_clip},
                   {"objective", r.objective},
                   {"objective_rel", r.objective_fp > 0 ? r.objective / r.objective_fp : -1.0},
                   {"seconds", r.seconds}});
    if (r.objective_gptq >= 0 && r.objective_fp > 0)  // compare_gptq, or LRC's guard
      lin.back()["objective_gptq_rel"] = r.objective_gptq / r.objective_fp;
    const nlohmann::json guards = numerical_guards_json(r);
    if (!guards.empty()) lin.back().update(guards);
  }
  nlohmann::json layer_json = nlohmann::json::array();
  for (const auto& l : layers) {
    layer_json.push_back({{"seconds", l.seconds},
                          {"forward", l.forward - l.stats},
                          {"stats", l.stats},
                          {"solve", l.solve - l.gptq},
                          {"gptq", l.gptq},
                          {"load", l.load},
                          {"journal", l.journal},
                          {"write", l.write}});
    if (ranks > 1)
      layer_json.back().update({{"allreduce", l.allreduce},
                                {"allreduce_bytes", l.allreduce_bytes},
                                {"allreduce_gb_per_s", l.allreduce > 0 ? l.allreduce_bytes / l.allreduce / 1e9 : 0.0},
                                {"broadcast", l.broadcast}});
  }
  return {{"linears", lin},
          {"rotation", rotation},
          {"seconds", seconds},
          {"seconds_forward", seconds_forward},
          {"seconds_stats", seconds_stats},
          {"seconds_clip_search", seconds_clip_search},
          {"allocation", allocation},
          {"seconds_solve", seconds_solve},
          {"seconds_gptq", seconds_gptq},
          {"solver_seconds",
           {{"stats", solver_times.stats},
            {"gptq", solver_times.gptq},
            {"lrc", solver_times.lrc},
            {"svd", solver_times.svd},
            {"objective", solver_times.objective},
            {"fp_target", solver_times.fp_target}}},
          {"layer_seconds", layer_json},
          {"solver", solver},
          {"peak_device_bytes", peak_device_bytes},
          {"bits_per_weight", bits_per_weight},
          {"ranks", ranks},
          {"communicator", communicator}};
}

namespace {

// Every linear's rank, decided (and checked against its shape) once before any work: opt.ranks
// where named, else from opt.rank (0 for rtn/gptq). Keyed by the linear's name.
// (Shapes from the config: a streamed model's layers are not in memory yet.)
std::map<std::string, int> decide_ranks(const LlamaModel& m, const QuantizeOptions& opt) {
  std::map<std::string, int> ranks;
  for (int i = 0; i < m.cfg.n_layers; ++i)
    for (const auto& t : layer_linears(m.cfg))
      ranks[layer_linear_name(i, t)] =
          rank_for(opt, layer_linear_name(i, t), static_cast<int>(linear_dim(m.cfg, t.out)),
                   static_cast<int>(linear_dim(m.cfg, t.in)));
  return ranks;
}

// One run of the layer-by-layer pipeline: what its stages share.
struct LayerPipeline {
  LayerPipeline(LlamaModel& model, const CalibrationSet& c, const CalibrationSet& all,
                const QuantizeOptions& o, const std::map<std::string, int>* spectrum,
                LayerSink* s, QuantizeJournal* j, const Communicator* cm)
      : m(model), calib(c), full(all), opt(o), spectrum_ranks(spectrum), sink(s), journal(j),
        comm(cm) {}
  LlamaModel& m;
  const CalibrationSet& calib;  // this rank's share of the calibration sequences
  const CalibrationSet& full;   // all of them (the same on every rank)
  const QuantizeOptions& opt;
  const std::map<std::string, int>* spectrum_ranks;  // LRC eigenvalues to record, or null
  LayerSink* sink;                                   // finished layers go here, or null
  QuantizeJournal* journal;                          // resume records (resume.h), or null
  const Communicator* comm;  // several ranks (communicator.h), or null
  bool distributed() const { return comm && comm->size() > 1; }
  int next_owner = 0;         // the rank that solves the next linear (round-robin)
  double broadcast_s = 0;     // seconds in broadcasts of solved linears and clips
  SolverBackendPtr solver = make_solver_backend(opt.device);  // statistics and solves
  // --device cuda: the calibration forward runs on the GPU too (the fp32 simulation backend,
  // TF32 off), with every activation resident there; the model's own backend is put back at
  // the end (CalibrationDevice). Declared before the buffers, which it must outlive.
  BackendPtr forward_backend;
  bool on_device = false;  // calibration activations live in device memory
  // A streamed model (m.layer_source): the rotation, applied to each layer as it is loaded.
  std::optional<QuarotPlan> plan;
  double bits = 0, weights = 0;  // bits-per-weight sums over the finished layers
  std::map<std::string, int> ranks;                  // decide_ranks
  QuantizeReport report;
  bool need_stats = false, cross_stats = false, need_pass = false;
  int batch = 1;
  States h;  // calibration hidden states entering the current half-layer
  // --target fp: the FP twin (rotated, 16-bit parts as deployed) and its hidden states hf run
  // beside the quantized ones, so that each group's statistics carry X̄Xᵀ (fp_target.h).
  std::optional<LlamaModel> fp;
  States hf;
  std::vector<std::pair<Linear*, ActQuantSpec>> deferred_act;  // --calib-act fp
  Clock::time_point t_start = Clock::now();
  // The next layer of a streamed model, read on a second thread (start_prefetch). Last
  // member: destroyed first, its thread finished before the plan and models it reads go.
  struct Prefetched {
    LlamaLayer m;
    std::optional<LlamaLayer> fp;
  };
  struct Prefetch {
    int layer = -1;
    std::future<Prefetched> next;
  } prefetch;
};

// --rotation calibrated / --smooth (lrc/rotate/residual_calibration.h) from the options.
ResidualCalibrationOptions residual_calibration_options(const QuantizeOptions& opt) {
  ResidualCalibrationOptions o;
  o.rotate = opt.rotation_calibrated;
  o.search.objective = parse_rotation_objective(opt.rotation_objective);
  o.search.steps = opt.rotation_steps;
  o.search.bits = opt.abits < 16 ? opt.abits : 4;  // the Q_a the rotation is chosen for
  o.search.clip = opt.a_clip;
  o.smooth_alpha = opt.smooth_alpha;
  o.n_seq = opt.rotation_nsamples;
  o.rows = opt.rotation_rows;
  o.seed = opt.seed;
  return o;
}

// The QuaRot plan of --seed, calibrated on the FP model m and the calibration set when
// --rotation calibrated or --smooth asks (residual_calibration.h).
QuarotPlan make_plan(const LlamaModel& m, const CalibrationSet& full, const QuantizeOptions& opt) {
  RotationOptions ro;
  ro.seed = opt.seed;
  ro.online_qk = opt.kv_bits < 16;
  QuarotPlan plan = plan_rotation(m.cfg, ro);
  if (opt.rotation_calibrated || opt.smooth_alpha > 0)
    calibrate_plan(plan, m, full.tokens.data(), full.n_seq, full.seq_len,
                   residual_calibration_options(opt));
  return plan;
}

// Stage 0: QuaRot rotation (exact in floating point), fp16 for the parts that stay 16-bit.
// A streamed model rotates its ends here and each layer when it is loaded (materialize_layer).
// preset: a plan made beforehand for this model and these options (make_plan), or null.
void prepare_model(LayerPipeline& p, const QuarotPlan* preset) {
  if (p.opt.rotate) {
    QuarotPlan plan = preset ? *preset : make_plan(p.m, p.full, p.opt);
    if (p.m.layer_source) {
      if (p.m.online_o || p.m.online_down || p.m.online_qk)
        fail("rotate_model", "the model already has online rotations");
      p.plan = std::move(plan);
      rotate_ends(p.m, *p.plan);
      p.report.rotation = p.plan->info;
    } else {
      p.report.rotation = rotate_model_with_plan(p.m, plan);
    }
  }
  round_fp_parts_to_half(p.m);
  p.m.kv.bits = p.opt.kv_bits;
  if (p.sink) p.sink->begin(p.m, p.ranks);
}

// Layer i of a streamed model (or of its FP twin) read from its source and brought to where
// prepare_model brings the layers of a model in memory: rotated, norms in fp16. Reads only
// m's source and config and p's plan, so it may run on the prefetch thread.
LlamaLayer read_layer(const LayerPipeline& p, LlamaModel& m, int i) {
  LlamaLayer L;
  m.layer_source->load(i, L);
  for (const auto& t : layer_linears(m.cfg))
    if (t.of(L).packed || t.of(L).lr.rank > 0)
      fail("quantize", "layer " + std::to_string(i) + " is already quantized");
  if (p.plan) rotate_layer(L, *p.plan, i);
  for (std::vector<float>* v : {&L.attn_norm, &L.ffn_norm, &L.router.w})
    for (float& x : *v) x = f16_to_f32(f32_to_f16(x));
  return L;
}

// Layer i resident in m (and the FP twin): the prefetched copy if there is one, else read now.
void materialize_layer(LayerPipeline& p, int i) {
  LayerPipeline::Prefetch& pf = p.prefetch;
  if (pf.layer == i) {
    pf.layer = -1;
    LayerPipeline::Prefetched got = pf.next.get();  // rethrows the reader's error, if any
    p.m.layers[static_cast<size_t>(i)] = std::move(got.m);
    if (p.fp && got.fp) p.fp->layers[static_cast<size_t>(i)] = std::move(*got.fp);
  }
  for (LlamaModel* m : {&p.m, p.fp ? &*p.fp : nullptr})
    if (m && m->layer_source && !m->layer_resident(i))
      m->layers[static_cast<size_t>(i)] = read_layer(p, *m, i);
}

// Layer i of a streamed model read and rotated on a second thread while the layer before it
// is quantized: on a GPU the host mostly waits meanwhile, and the read and rotation of a 7B
// layer took 1.6-1.9 s of its 16 (session 29). One layer ahead at most (one more layer of
// host memory); the CPU path gets the same overlap of the file reads.
void start_prefetch(LayerPipeline& p, int i) {
  if (!p.m.layer_source || i >= p.m.cfg.n_layers || p.prefetch.layer >= 0) return;
  p.prefetch.layer = i;
  p.prefetch.next = std::async(std::launch::async, [&p, i] {
    LayerPipeline::Prefetched out;
    out.m = read_layer(p, p.m, i);
    if (p.fp && p.fp->layer_source) out.fp = read_layer(p, *p.fp, i);
    return out;
  });
}

// Layer i is final: Q_a deferred by --calib-act fp set, recorded in the journal (unless it came
// from there), its bits counted, handed to the sink, and with a layer source released (the FP
// twin's too).
void finish_layer(LayerPipeline& p, int i, bool restored = false) {
  for (auto& [lin, act] : p.deferred_act) lin->act = act;
  p.deferred_act.clear();
  const LlamaLayer& L = p.m.layers[static_cast<size_t>(i)];
  if (p.journal && !restored) {
    const auto t = Clock::now();
    const size_t n = layer_linears(p.m.cfg).size();
    const std::vector<LinearReport> reps(p.report.linears.end() - n, p.report.linears.end());
    bool due = p.journal->hidden_due(i, p.m.cfg.n_layers, (p.h.size() + p.hf.size()) * sizeof(float));
    if (p.distributed())  // every rank records its hidden states after the same layers: rank 0's
      due = p.comm->broadcast_string(due ? "1" : "0", 0) == "1";
    if (due) {
      // The journal writes its own host copy (device states downloaded) on its thread.
      p.journal->record_layer(i, p.m.cfg, L, reps, p.report.layers.back(), true,
                              host_copy(p.m.run_backend(), p.h),
                              host_copy(p.m.run_backend(), p.hf));
    } else {
      p.journal->record_layer(i, p.m.cfg, L, reps, p.report.layers.back(), false);
    }
    p.report.layers.back().journal = since(t);
  }
  add_layer_bits(p.m.cfg, L, p.bits, p.weights);
  if (p.sink) {
    const auto t = Clock::now();
    p.sink->layer(i, L);
    if (!restored) p.report.layers.back().write = since(t);
  }
  if (p.m.layer_source) p.m.release_layer(i);
  if (p.fp && p.fp->layer_source) p.fp->release_layer(i);
  // The device copies of this layer's weights (FP and quantized) are not needed again.
  if (p.on_device) p.m.run_backend().forget_parameters();
}

// Stage 1: the calibration hidden states (embeddings of every calibration token) and, with
// --target fp, the FP twin and its own copy of them.
void start_calibration(LayerPipeline& p) {
  const auto& opt = p.opt;
  p.need_stats = opt.method != QuantMethod::RTN;
  p.cross_stats = opt.method == QuantMethod::LRC || opt.baseline_objective;
  p.need_pass = p.need_stats || opt.a_clip_search;
  if (p.need_pass) {
    if (p.calib.n_seq <= 0) fail("calibration", "no calibration sequences");
    p.h = States(p.m.run_backend(),
                 static_cast<size_t>(p.calib.n_seq) * p.calib.seq_len * p.m.cfg.dim);
    embed_tokens_resident(p.m, p.calib.tokens.data(),
                          static_cast<int64_t>(p.calib.tokens.size()), p.h.data());
  }
  p.batch = std::max(1, opt.batch_sequences);
  if (opt.fp_targets && p.need_stats) {
    p.fp = p.m;
    p.fp->kv.bits = 16;
    p.hf = copy_of(p.m.run_backend(), p.h.data(), p.h.size());
  }
}

// Stage 2 (--a-clip search): the activation clip ratio of group g, searched on its inputs over
// a few calibration sequences spread through the set (at least clip_search_tokens tokens).
float search_act_clip(LayerPipeline& p, int i, LinearGroup g, const std::vector<NamedLinear>& lins,
                      const ActQuantSpec& act) {
  const int d_in = lins[0].lin->d_in;
  std::vector<const float*> ws;
  std::vector<int> outs, ranks;
  for (const auto& nl : lins) {
    ws.push_back(nl.lin->w.data());
    outs.push_back(nl.lin->d_out);
    ranks.push_back(p.ranks.at(nl.name));
  }
  const auto t = Clock::now();
  const std::vector<float> xs =
      capture_subset(p.m, i, g, p.h, p.calib, p.opt.clip_search_tokens, p.batch);
  const int64_t n_sub = static_cast<int64_t>(xs.size()) / d_in;
  float clip;
  if (p.opt.method == QuantMethod::LRC) {
    // LRC: what it can reach at each c (Prop. 3.4's optimal value, lrc_clip_search.h).
    LrcClipSearch search(ws, outs, ranks, d_in, act, p.opt.reg, p.opt.eps_rel, 1, 0,
                         default_act_clip_candidates());
    search.add(xs.data(), n_sub);
    clip = search.best();
  } else {
    // Baselines quantize W itself: the error of W acting on Q_a^c(X).
    ActClipSearch search(ws, outs, d_in, act);
    search.add(xs.data(), n_sub);
    clip = search.best();
  }
  p.report.seconds_clip_search += since(t);
  return clip;
}

// The inputs of o_proj and down_proj do not depend on those linears, so the statistics pass
// keeps them (when they fit in 3x the hidden states; on a GPU in 1x, which keeps o_proj's
// and recomputes the feed-forward half: a Llama-2-7B down_proj input over 128 x 2048 tokens
// is 11.5 GB): the residual update after quantization is then h += Ŵ x (+ U Vᵀ x) alone, not
// the whole half-layer again.
struct KeptInputs {
  bool keep = false;
  States x, x_fp;  // [tokens x d_in] (backend memory), of the quantized model and the FP twin
  size_t filled = 0;
};

// Stage 3: statistics Σx, Σy, Σxy of group g's input (Alg. 1 lines 3-5), from one capture pass
// (paired with the FP twin's under --target fp); kept fills with the inputs when kept.keep.
LayerStats collect_statistics(LayerPipeline& p, int i, LinearGroup g, int d_in,
                              const ActQuantSpec& act, KeptInputs& kept) {
  const CalibrationSet& calib = p.calib;
  const std::unique_ptr<StatsSink> acc =
      p.solver->stats(d_in, act, p.cross_stats, p.opt.stats_precision);
  if (p.on_device && !acc->takes_device_memory())
    fail("quantize", "the statistics backend cannot read the GPU forward's activations");
  acc->skip_host_copy();  // every use below goes through p.solver
  const Backend& be = p.m.run_backend();
  const size_t all = static_cast<size_t>(calib.n_seq) * calib.seq_len * d_in;
  if (kept.keep) kept.x = States(be, all);
  if (kept.keep && p.fp) kept.x_fp = States(be, all);
  std::vector<std::string> names;  // for the error of NaN/Inf activations
  for (const auto& nl : group_linears(p.m.cfg, p.m.layers[i], i, g)) names.push_back(nl.name);
  // One batch of this group's inputs x (and with --target fp the FP model's, xf), in backend
  // memory. (On a GPU the statistics sink checks them for NaN/Inf itself; the finished
  // statistics are checked below either way.)
  auto take = [&](const float* x, const float* xf, int64_t n, int d) {
    if (!p.on_device) require_finite_activations(x, xf, n, d, names);
    const auto ts = Clock::now();
    if (p.on_device) {
      try {
        acc->add_device(x, n, xf);
      } catch (const Error& e) {
        if (std::string(e.what()).find("non-finite") == std::string::npos) throw;
        fail_non_finite_activations(names, e.what());
      }
    } else {
      acc->add(x, n, xf);
    }
    p.report.seconds_stats += since(ts);
    const size_t len = static_cast<size_t>(n) * d;
    if (kept.keep) be.copy(kept.x.data() + kept.filled, x, len * sizeof(float));
    if (kept.keep && xf) be.copy(kept.x_fp.data() + kept.filled, xf, len * sizeof(float));
    kept.filled += len;
  };
  const auto t = Clock::now();
  if (p.fp) {
    capture_pass_paired(p.m, *p.fp, i, g, p.h, p.hf, calib, p.batch, take);
  } else {
    GroupCapture cap(
        i, g, [&](const float* x, int64_t n, int d) { take(x, nullptr, n, d); }, true);
    capture_pass(p.m, i, g, p.h, calib, p.batch, cap);
  }
  const auto ts = Clock::now();
  LayerStats stats = acc->finish();
  // Several ranks: each summed its own sequences; every rank now gets the sums over all.
  if (p.distributed()) p.solver->all_reduce(stats, *p.comm);
  p.report.seconds_stats += since(ts);
  require_finite_activations(stats, names);
  p.report.seconds_forward += since(t);
  return stats;
}

// Stage 4: each linear of the group through its method's solver (linear_quantizer.h).
// A solved linear's report goes into the run's; with --calib-act fp the calibration passes run
// the quantized weights on unquantized activations (QuaRot's code quantizes activations only
// after GPTQ): its Q_a is set once every layer is done.
void take_solved(LayerPipeline& p, Linear& lin, LinearReport rep, bool add_seconds = true) {
  if (add_seconds) p.report.seconds_solve += rep.seconds;
  p.report.linears.push_back(std::move(rep));
  if (!p.opt.calib_act_quant) {
    p.deferred_act.push_back({&lin, lin.act});
    lin.act = ActQuantSpec{};
  }
}

// Each linear of the group through quantize_linear; with several ranks round-robin over them
// (solve_round_robin), the solve time then the wall time of the group (a rank waits for the
// slowest).
void dispatch_linears(LayerPipeline& p, const std::vector<NamedLinear>& lins,
                      const LayerStats* stats, const ActQuantSpec& act) {
  const auto t = Clock::now();
  std::vector<std::pair<Linear*, std::string>> named;
  for (const auto& nl : lins) named.emplace_back(nl.lin, nl.name);
  std::vector<LinearReport> reps = solve_round_robin(
      named,
      [&](size_t j) {
        const NamedLinear& nl = lins[j];
        const int spectrum_rank = p.spectrum_ranks ? p.spectrum_ranks->at(nl.name) : 0;
        return quantize_linear(*nl.lin, nl.name, stats, act, p.ranks.at(nl.name), p.opt,
                               spectrum_rank, p.solver.get());
      },
      p.comm, &p.next_owner, &p.broadcast_s);
  for (size_t j = 0; j < lins.size(); ++j)
    take_solved(p, *lins[j].lin, std::move(reps[j]), /*add_seconds=*/!p.distributed());
  if (p.distributed()) p.report.seconds_solve += since(t);
  // A device backend caches parameters by address and a sample of values; the group's weights
  // changed (FP targets rewrite W in place): drop the cache rather than trust the sample.
  if (p.on_device) p.m.run_backend().forget_parameters();
}

// Stage 5: once o_proj (down_proj) is quantized the attention (feed-forward) half of layer i
// is final: push h through it, and (stage 6) the FP twin's hf through its own.
void update_residual(LayerPipeline& p, int i, LinearGroup g, const std::vector<NamedLinear>& lins,
                     const KeptInputs& kept) {
  const auto t = Clock::now();
  const bool ffn = g == LinearGroup::Down;
  if (kept.keep)
    add_linear_output(p.m.run_backend(), *lins[0].lin, kept.x, p.h, p.calib, p.batch);
  else
    advance_pass(p.m, i, ffn, p.h, p.calib, p.batch);
  if (p.fp) {  // stage 6, the FP twin
    if (kept.keep)
      add_linear_output(p.fp->run_backend(), *group_linears(p.fp->cfg, p.fp->layers[i], i, g)[0].lin,
                        kept.x_fp, p.hf, p.calib, p.batch);
    else
      advance_pass(*p.fp, i, ffn, p.hf, p.calib, p.batch);
  }
  p.report.seconds_forward += since(t);
}

// Stage 7: one progress line on stderr per finished layer, overwritten by the next; a layer of
// 2 s or more keeps its line and says where its time went (a run killed by a time limit still
// tells which stage to speed up).
void report_progress(const LayerPipeline& p, int i) {
  const double el = since(p.t_start);
  const int n = p.m.cfg.n_layers;
  std::fprintf(stderr, "\r[quantize %s] layer %d/%d  %.1fs elapsed, ETA %.1fs",
               method_name(p.opt.method), i + 1, n, el, el / (i + 1) * (n - i - 1));
  const QuantizeReport::LayerTimes& l = p.report.layers.back();
  const double total = l.seconds + l.journal + l.write;
  if (total >= 2.0)
    std::fprintf(stderr,
                 "  (layer %.1fs: load %.1f forward %.1f stats %.1f solve %.1f gptq %.1f "
                 "journal %.1f write %.1f)\n",
                 total, l.load, l.forward - l.stats, l.stats, l.solve - l.gptq, l.gptq, l.journal,
                 l.write);
  else
    std::fprintf(stderr, "   ");
  std::fflush(stderr);
}

// One linear group of layer i through stages 2-6.
void quantize_group(LayerPipeline& p, int i, LinearGroup g) {
  const auto lins = group_linears(p.m.cfg, p.m.layers[i], i, g);
  const int d_in = lins[0].lin->d_in;
  ActQuantSpec act;
  act.bits = p.opt.abits;
  act.clip = p.opt.a_clip;
  act.groupsize = p.opt.a_groupsize;
  if (p.opt.a_clip_search && act.enabled()) {
    if (!p.distributed()) {
      act.clip = search_act_clip(p, i, g, lins, act);
    } else {  // several ranks: rank 0 searches on its share, the others take its clip
      const auto t = Clock::now();
      std::vector<uint8_t> b(sizeof(float));
      if (p.comm->rank() == 0) {
        const float c = search_act_clip(p, i, g, lins, act);
        std::memcpy(b.data(), &c, sizeof c);
      }
      p.comm->broadcast(b, 0);
      std::memcpy(&act.clip, b.data(), sizeof act.clip);
      if (p.comm->rank() != 0) p.report.seconds_clip_search += since(t);
    }
  }

  const bool residual = g == LinearGroup::O || g == LinearGroup::Down;
  KeptInputs kept;
  const size_t room = (p.on_device ? 1 : 3) * p.h.size();
  kept.keep = p.need_stats && residual &&
              static_cast<size_t>(p.calib.n_seq) * p.calib.seq_len * d_in <= room;
  std::optional<LayerStats> stats;
  if (p.need_stats) stats = collect_statistics(p, i, g, d_in, act, kept);
  dispatch_linears(p, lins, stats ? &*stats : nullptr, act);
  if (residual && p.need_pass) update_residual(p, i, g, lins, kept);
}

// The MoE (mixtral) feed-forward half of layer i in place of the GateUp and Down groups: every
// token's feed-forward input captured once, each expert through quantize_moe_experts (its own
// routed tokens' statistics and solves), then h through the finished half.
void quantize_moe_ffn(LayerPipeline& p, int i) {
  std::vector<float> x;  // [tokens x dim], host memory (MoE runs on the CPU backends)
  const auto t = Clock::now();
  if (p.need_stats) {
    GroupCapture cap(i, LinearGroup::GateUp,
                     [&](const float* xs, int64_t n, int d) { x.insert(x.end(), xs, xs + n * d); });
    capture_pass(p.m, i, LinearGroup::GateUp, p.h, p.calib, p.batch, cap);
  }
  p.report.seconds_forward += since(t);
  const MoeStage st{p.m,
                    i,
                    x.empty() ? nullptr : x.data(),
                    static_cast<int64_t>(x.size()) / p.m.cfg.dim,
                    p.opt,
                    p.ranks,
                    p.spectrum_ranks,
                    p.solver.get(),
                    p.cross_stats,
                    p.distributed() ? p.comm : nullptr,
                    &p.next_owner};
  quantize_moe_experts(st,
                       [&](Linear& lin, LinearReport rep) { take_solved(p, lin, std::move(rep)); });
  if (p.need_pass) {
    const auto ta = Clock::now();
    advance_pass(p.m, i, /*ffn=*/true, p.h, p.calib, p.batch);
    p.report.seconds_forward += since(ta);
  }
}

// Layers an earlier run finished (p.journal, resume.h): each restored as it was handed to the
// sink, then the hidden states after the last of them. Returns the first layer left to do.
int resume_layers(LayerPipeline& p) {
  if (p.journal && p.distributed()) {  // several ranks resume after the layers all finished
    std::vector<double> done(static_cast<size_t>(p.comm->size()), 0.0);
    done[static_cast<size_t>(p.comm->rank())] = p.journal->layers_done();
    p.comm->all_reduce_sum(done.data(), done.size());
    p.journal->restore_to(static_cast<int>(*std::min_element(done.begin(), done.end())));
  }
  const int done = p.journal ? std::min(p.journal->layers_done(), p.m.cfg.n_layers) : 0;
  for (int i = 0; i < done; ++i) {
    p.report.layers.emplace_back();
    p.journal->restore_layer(i, p.m.cfg, p.m.layers[static_cast<size_t>(i)], p.report.linears,
                             p.report.layers.back());
    finish_layer(p, i, /*restored=*/true);
  }
  if (done > 0) {
    const Backend& be = p.m.run_backend();
    if (be.host_memory()) {
      p.journal->restore_hidden(p.h.data(), p.h.size(), p.hf.data(), p.hf.size());
    } else {  // read on the host, then uploaded
      std::vector<float> h(p.h.size()), hf(p.hf.size());
      p.journal->restore_hidden(h.data(), h.size(), hf.data(), hf.size());
      be.upload(p.h.data(), h.data(), h.size() * sizeof(float));
      be.upload(p.hf.data(), hf.data(), hf.size() * sizeof(float));
    }
  }
  return done;
}

// Several ranks: rank r's calibration sequences, the r-th of `size` contiguous blocks (so that
// the ranks' sums, added in rank order, run over the sequences in their order).
CalibrationSet rank_share(const CalibrationSet& c, int r, int size) {
  CalibrationSet s;
  s.seq_len = c.seq_len;
  const int64_t b = static_cast<int64_t>(c.n_seq) * r / size,
                e = static_cast<int64_t>(c.n_seq) * (r + 1) / size;
  s.n_seq = static_cast<int>(e - b);
  s.tokens.assign(c.tokens.begin() + b * c.seq_len, c.tokens.begin() + e * c.seq_len);
  return s;
}

// Several ranks must run the same quantization: rank 0's options (but the device, each rank's
// own GPU), model shape and calibration tokens are compared with every rank's own.
void check_ranks_agree(const Communicator& comm, const LlamaModel& m, const CalibrationSet& c,
                       const QuantizeOptions& opt) {
  nlohmann::json o = opt.to_json();
  o.erase("device");
  const auto& k = m.cfg;
  const nlohmann::json mine = {
      {"options", o.dump()},
      {"model", std::to_string(k.n_layers) + " layers, dim " + std::to_string(k.dim) +
                    ", hidden " + std::to_string(k.hidden_dim) + ", vocab " +
                    std::to_string(k.vocab_size)},
      {"calibration",
       sha256_hex(std::string_view(reinterpret_cast<const char*>(c.tokens.data()),
                                   c.tokens.size() * sizeof(int32_t)))}};
  const nlohmann::json root = nlohmann::json::parse(comm.broadcast_string(mine.dump(), 0));
  for (const char* key : {"options", "model", "calibration"})
    if (root.at(key) != mine.at(key))
      fail("rank " + std::to_string(comm.rank()),
           std::string("the ") + key + " of this rank and of rank 0 differ (every rank of a run "
                                       "must get the same model, calibration file and options)");
}

// The layer-by-layer pipeline with the ranks of opt (uniform or opt.ranks). With
// spectrum_ranks, every LRC linear named there also records that many of Update-LR's
// eigenvalues (LinearReport::spectrum).
QuantizeReport quantize_layers(LlamaModel& m, const CalibrationSet& calib,
                               const QuantizeOptions& opt,
                               const std::map<std::string, int>* spectrum_ranks = nullptr,
                               LayerSink* sink = nullptr, QuantizeJournal* journal = nullptr,
                               const Communicator* comm = nullptr,
                               const QuarotPlan* plan = nullptr) {
  const bool ranked = comm && comm->size() > 1;
  CalibrationSet share;
  if (ranked) {
    if (journal) journal->keep_hidden_records(2);  // see QuantizeJournal::restore_to
    if (calib.n_seq < comm->size() && (opt.method != QuantMethod::RTN || opt.a_clip_search))
      fail("--nproc", std::to_string(comm->size()) + " ranks need at least as many calibration "
                      "sequences (there are " + std::to_string(calib.n_seq) + ": raise --nsamples)");
    check_ranks_agree(*comm, m, calib, opt);
    share = rank_share(calib, comm->rank(), comm->size());
  }
  LayerPipeline p(m, ranked ? share : calib, calib, opt, spectrum_ranks, sink, journal, comm);
  if (ranked) {
    p.report.ranks = comm->size();
    p.report.communicator = comm->name();
  }
  p.ranks = decide_ranks(m, opt);  // every rank checked before the model is touched
  // --device cuda: the calibration forward on the same GPU, the model's backend put back after.
  struct RestoreBackend {
    LlamaModel& m;
    BackendPtr old;
    ~RestoreBackend() { m.backend = std::move(old); }
  } restore{m, m.backend};
  if (opt.device != "cpu") {
    p.forward_backend = make_backend(opt.device, "sim", /*decoding=*/false, opt.gpu_math);
    m.backend = p.forward_backend;
    p.on_device = !p.forward_backend->host_memory();
  }
  prepare_model(p, plan);
  start_calibration(p);
  p.report.solver = p.solver->name();
  if (opt.device != "cpu") std::fprintf(stderr, "[quantize] solver: %s\n", p.report.solver.c_str());
  const int first = resume_layers(p);
  for (int i = first; i < m.cfg.n_layers; ++i) {
    const auto tl = Clock::now();
    const QuantizeReport::LayerTimes before{0, p.report.seconds_forward, p.report.seconds_stats,
                                            p.report.seconds_solve, p.solver->times().gptq};
    const Communicator::Traffic traffic0 = comm ? comm->traffic() : Communicator::Traffic{};
    const double broadcast0 = p.broadcast_s;
    materialize_layer(p, i);
    start_prefetch(p, i + 1);
    const double load = since(tl);  // with a prefetch: the wait for it
    for (LinearGroup g : kGroups) {
      if (!m.cfg.moe() || g == LinearGroup::QKV || g == LinearGroup::O)
        quantize_group(p, i, g);
      else if (g == LinearGroup::GateUp)
        quantize_moe_ffn(p, i);  // every expert's w1/w3, then w2 (Down has nothing left)
    }
    p.report.layers.push_back({since(tl), p.report.seconds_forward - before.forward,
                               p.report.seconds_stats - before.stats,
                               p.report.seconds_solve - before.solve,
                               p.solver->times().gptq - before.gptq, load});
    if (comm) {
      auto& lt = p.report.layers.back();
      lt.allreduce = comm->traffic().seconds - traffic0.seconds;
      lt.allreduce_bytes = comm->traffic().bytes - traffic0.bytes;
      lt.broadcast = p.broadcast_s - broadcast0;
    }
    finish_layer(p, i);
    report_progress(p, i);
  }
  std::fprintf(stderr, "\n");
  // Every record durable before the checkpoint is finished (which removes the work area); with
  // several ranks, every rank's before rank 0 goes on.
  if (p.journal) p.journal->flush();
  if (ranked) comm->barrier();
  p.report.seconds_gptq = p.solver->times().gptq;
  p.report.solver_times = p.solver->times();
  p.report.peak_device_bytes = p.solver->peak_device_bytes();
  p.report.seconds = since(p.t_start);
  p.report.bits_per_weight = p.weights > 0 ? p.bits / p.weights : 0;
  return std::move(p.report);
}

}  // namespace

namespace {

// Error-driven rank allocation. A probe pass (LRC at rank 0, a quarter of the calibration
// set, the given clip: a clip search runs in the real pass) records every matrix's
// Update-LR spectrum: eigenvalue j is what the j-th rank lowers eq. 2 by, given the
// quantized Ŵ (Prop. 3.3). (A probe at the uniform ranks would not do: its Ŵ already
// complements its own k directions, so its spectrum drops sharply after k.) Each spectrum is
// divided by its matrix's ‖WX‖², so the greedy compares relative error reductions: eq. 2 is
// in the units of each matrix's output, which differ by orders of magnitude (folded norm
// weights scale q/k/gate/up outputs up; o_proj and down_proj outputs are small), and raw
// gains gave late q/k/gate/up nearly the whole budget and o/down none (docs/results.md,
// SmolLM2, "Beyond the paper"). The ranks follow under the uniform budget, then the real pass
// runs.
nlohmann::json probe_allocation(const LlamaModel& m, const CalibrationSet& calib,
                                const QuantizeOptions& opt, const Communicator* comm,
                                const QuarotPlan* plan) {
  const auto t0 = Clock::now();
  std::map<std::string, int> spectrum_ranks;
  std::vector<MatrixSpectrum> spectra;
  int64_t budget = 0;
  const std::map<std::string, int> uniform = decide_ranks(m, opt);
  for (int i = 0; i < m.cfg.n_layers; ++i)
    for (LinearGroup g : kGroups)
      for (const auto& t : layer_linears(m.cfg)) {
        if (t.group != static_cast<int>(g)) continue;
        const std::string name = layer_linear_name(i, t);
        const int d_out = static_cast<int>(linear_dim(m.cfg, t.out)),
                  d_in = static_cast<int>(linear_dim(m.cfg, t.in));
        const int k = uniform.at(name);
        budget += static_cast<int64_t>(k) * (d_out + d_in);
        spectrum_ranks[name] = std::min(std::min(d_out, d_in), std::max(16, 4 * k));
      }
  QuantizeOptions probe = opt;
  probe.rank_alloc = RankAllocation::Uniform;
  probe.rank = 0;
  probe.a_clip_search = false;
  CalibrationSet sub = calib;
  sub.n_seq =
      std::clamp(opt.alloc_nsamples > 0 ? opt.alloc_nsamples : calib.n_seq / 4, 1, calib.n_seq);
  if (comm) sub.n_seq = std::min(std::max(sub.n_seq, comm->size()), calib.n_seq);  // a share each
  sub.tokens.resize(static_cast<size_t>(sub.n_seq) * sub.seq_len);
  std::fprintf(stderr, "[quantize lrc] rank allocation: probe pass on %d of %d sequences\n",
               sub.n_seq, calib.n_seq);
  LlamaModel copy = m;
  const QuantizeReport pr =
      quantize_layers(copy, sub, probe, &spectrum_ranks, nullptr, nullptr, comm, plan);
  for (const auto& l : pr.linears) {
    std::vector<double> gains = l.spectrum;
    if (l.objective_fp > 0)
      for (double& g : gains) g /= l.objective_fp;
    spectra.push_back({l.d_out, l.d_in, std::move(gains)});
  }
  const std::vector<int> ranks = allocate_ranks(spectra, budget);
  std::map<std::string, int> chosen;
  int64_t used = 0;
  for (size_t i = 0; i < ranks.size(); ++i) {
    chosen[pr.linears[i].name] = ranks[i];
    used += static_cast<int64_t>(ranks[i]) * (spectra[i].d_out + spectra[i].d_in);
  }
  return {{"method", "error"},   {"probe_nsamples", sub.n_seq},  {"budget_params", budget},
          {"used_params", used}, {"probe_seconds", since(t0)}, {"ranks", chosen}};
}

}  // namespace

QuantizeReport quantize_model(LlamaModel& m, const CalibrationSet& calib,
                              const QuantizeOptions& opt, LayerSink* sink,
                              QuantizeJournal* journal, const Communicator* comm) {
  opt.validate();
  opt.validate_for(m.cfg);
  if (opt.rank_alloc == RankAllocation::Uniform || !opt.ranks.empty())
    return quantize_layers(m, calib, opt, nullptr, sink, journal, comm);
  // The probe's ranks are recorded in the journal, so a resumed run uses those it decided.
  std::optional<nlohmann::json> alloc = journal ? journal->allocation() : std::nullopt;
  if (comm && comm->size() > 1) {  // rank 0's record decides for every rank
    const std::string a = comm->broadcast_string(alloc ? alloc->dump() : "", 0);
    alloc = a.empty() ? std::nullopt : std::optional<nlohmann::json>(nlohmann::json::parse(a));
    if (alloc && journal && !journal->allocation()) journal->record_allocation(*alloc);
  }
  // A calibrated rotation is searched once, on the whole calibration set, for the probe and the
  // real pass (the probe used to search again on its quarter: twice the time, and another R
  // whenever that quarter had fewer sequences than --rotation-nsamples).
  std::optional<QuarotPlan> plan;
  double plan_seconds = 0;
  if (opt.rotate && (opt.rotation_calibrated || opt.smooth_alpha > 0)) {
    const auto t0 = Clock::now();
    plan = make_plan(m, calib, opt);
    plan_seconds = since(t0);
  }
  if (!alloc) {
    alloc = probe_allocation(m, calib, opt, comm, plan ? &*plan : nullptr);
    if (journal) journal->record_allocation(*alloc);
  }
  QuantizeOptions final_opt = opt;
  final_opt.ranks = alloc->at("ranks").get<std::map<std::string, int>>();
  QuantizeReport rep =
      quantize_layers(m, calib, final_opt, nullptr, sink, journal, comm, plan ? &*plan : nullptr);
  rep.allocation = *alloc;
  rep.seconds += alloc->at("probe_seconds").get<double>() + plan_seconds;
  return rep;
}

}  // namespace lrc
