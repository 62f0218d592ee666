// lrc._lrc: the Python extension over lrc_lib (the same objects the CLI links). Thin on
// purpose: every computation is a public lrc function (quant/stats.h, pipeline/*.h,
// eval/perplexity.h, io/lrc_checkpoint.h, plot/*.h); python/lrc/__init__.py gives it the
// documented, keyword-argument API. Arrays come in as float32/float64 C-contiguous CPU arrays
// (numpy, or anything speaking DLPack — torch CPU tensors pass without a copy) and go out as
// numpy arrays owning their memory. lrc::Error becomes lrc.Error (a ValueError) with the C++
// message, which names the file or field.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/eval/perplexity.h"
#include "lrc/format/act_quant.h"
#include "lrc/io/corpus.h"
#include "lrc/io/lrc_checkpoint.h"
#include "lrc/io/model_loader.h"
#include "lrc/kernels/registry.h"
#include "lrc/model/layer_linears.h"
#include "lrc/pipeline/checkpoint_sink.h"
#include "lrc/pipeline/linear_quantizer.h"
#include "lrc/pipeline/quantize_model.h"
#include "lrc/plot/demo_figure.h"
#include "lrc/plot/report_figure.h"
#include "lrc/quant/stats.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using Matrix32 = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Matrix64 = nb::ndarray<const double, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

// A numpy array that owns `v` (moved to the heap, freed with the array).
template <class T>
nb::object to_numpy(std::vector<T>&& v, std::initializer_list<size_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(heap->data(), shape, owner).cast();
}
template <class T>
nb::object to_numpy(const std::vector<T>& v, std::initializer_list<size_t> shape) {
  return to_numpy(std::vector<T>(v), shape);
}

nb::object json_to_py(const nlohmann::json& j) {
  return nb::module_::import_("json").attr("loads")(j.dump());
}

// The options of QuantizeOptions::to_json (the checkpoint's record), with the user's values
// over the defaults: an unknown name or a value of the wrong kind fails naming the option.
lrc::QuantizeOptions options_from_json(const std::string& text, const char* where) {
  const lrc::QuantizeOptions defaults;
  nlohmann::json j = defaults.to_json();
  const nlohmann::json user = nlohmann::json::parse(text);
  for (const auto& [key, value] : user.items()) {
    if (key == "ranks") continue;  // a name -> rank map, checked by from_json
    if (!j.contains(key)) {
      std::string known;
      for (const auto& [k, v] : j.items()) known += (known.empty() ? "" : ", ") + k;
      lrc::fail(where, "unknown option '" + key + "' (options: " + known + ", ranks)");
    }
    const auto& d = j[key];
    const bool ok = (d.is_number() && value.is_number() && !value.is_boolean()) ||
                    (d.is_boolean() && value.is_boolean()) || (d.is_string() && value.is_string());
    if (!ok)
      lrc::fail(where, "option '" + key + "' takes a " + std::string(d.type_name()) + ", got " +
                           value.dump());
  }
  j.update(user);
  lrc::QuantizeOptions o;
  try {
    o = lrc::QuantizeOptions::from_json(j);
  } catch (const nlohmann::json::exception& e) {
    lrc::fail(where, std::string("options: ") + e.what());
  }
  o.validate();
  return o;
}

// lrc.Stats: StatsAccumulator (quant/stats.h) behind a Python object, or fixed arrays.
class Stats {
 public:
  Stats(int d, int abits, double a_clip, int a_groupsize, const std::string& precision) : d_(d) {
    if (d <= 0) lrc::fail("Stats", "d_in must be positive, got " + std::to_string(d));
    act_.bits = abits;
    act_.clip = static_cast<float>(a_clip);  // Q_a's clip is a float, as in QuantizeOptions
    act_.groupsize = a_groupsize;
    if (abits < 2 || abits > 16) lrc::fail("Stats", "abits must be 2..16 (16 = no Q_a)");
    if (!(a_clip > 0 && a_clip <= 1)) lrc::fail("Stats", "a_clip must be in (0, 1]");
    if (a_groupsize < 0 || (a_groupsize > 0 && d % a_groupsize != 0))
      lrc::fail("Stats", "a_groupsize must be 0 or divide d_in");
    acc_.emplace(d, act_, /*cross=*/true, lrc::parse_stats_precision(precision));
  }

  static Stats from_arrays(Matrix64 xx, Matrix64 yy, Matrix64 xy, int64_t n, int abits,
                           double a_clip, int a_groupsize) {
    const int d = static_cast<int>(xx.shape(0));
    Stats s(d, abits, a_clip, a_groupsize, "f64");
    s.acc_.reset();
    lrc::LayerStats f;
    f.d = d;
    f.n = n;
    using Entry = std::tuple<const char*, const Matrix64*, std::vector<double>*>;
    for (const auto& [name, m, dst] : {Entry{"xx", &xx, &f.xx}, Entry{"yy", &yy, &f.yy},
                                       Entry{"xy", &xy, &f.xy}}) {
      if (m->shape(0) != static_cast<size_t>(d) || m->shape(1) != static_cast<size_t>(d))
        lrc::fail("Stats.from_arrays", std::string(name) + " must be " + std::to_string(d) + " x " +
                                           std::to_string(d) + " like xx");
      dst->assign(m->data(), m->data() + static_cast<size_t>(d) * d);
    }
    lrc::check_layer_stats(f, d, "Stats.from_arrays");
    s.fixed_ = std::move(f);
    return s;
  }

  void add(Matrix32 x) {
    if (!acc_) lrc::fail("Stats.add", "these statistics were given as arrays; they take no tokens");
    if (x.shape(1) != static_cast<size_t>(d_))
      lrc::fail("Stats.add", "X has " + std::to_string(x.shape(1)) +
                                 " columns; expected d_in = " + std::to_string(d_) +
                                 " (X is tokens x d_in)");
    nb::gil_scoped_release unlocked;
    acc_->add(x.data(), static_cast<int64_t>(x.shape(0)));
  }

  lrc::LayerStats get() const { return fixed_ ? *fixed_ : acc_->finish(); }
  int d() const { return d_; }
  int64_t n() const { return fixed_ ? fixed_->n : acc_->tokens(); }
  const lrc::ActQuantSpec& act() const { return act_; }

 private:
  int d_;
  lrc::ActQuantSpec act_;
  std::optional<lrc::StatsAccumulator> acc_;
  std::optional<lrc::LayerStats> fixed_;
};

nb::dict solve(Matrix32 W, const Stats& stats, const std::string& options) {
  lrc::QuantizeOptions opt = options_from_json(options, "lrc.solve");
  const int d_out = static_cast<int>(W.shape(0)), d_in = static_cast<int>(W.shape(1));
  if (d_in != stats.d())
    lrc::fail("lrc.solve", "W has " + std::to_string(d_in) + " columns but the statistics are of d_in = " +
                               std::to_string(stats.d()));
  lrc::Linear lin;
  lin.d_out = d_out;
  lin.d_in = d_in;
  lin.w.assign(W.data(), W.data() + static_cast<size_t>(d_out) * d_in);
  lrc::LinearReport rep;
  {
    nb::gil_scoped_release unlocked;
    const lrc::LayerStats s = stats.get();
    const int rank = lrc::rank_for(opt, "W", d_out, d_in);
    rep = lrc::quantize_linear(lin, "W", &s, stats.act(), rank, opt);
  }
  const lrc::PackedWeight& p = *lin.packed;
  std::vector<uint8_t> codes(static_cast<size_t>(d_out) * d_in);
  for (int r = 0; r < d_out; ++r)
    for (int j = 0; j < d_in; ++j)
      codes[static_cast<size_t>(r) * d_in + j] = static_cast<uint8_t>(p.code(r, j));
  std::vector<float> w_hat(codes.size());
  p.dequantize(w_hat.data());
  const size_t g = static_cast<size_t>(p.n_groups()), k = static_cast<size_t>(rep.rank);
  const size_t o = static_cast<size_t>(d_out), i = static_cast<size_t>(d_in);
  nb::dict r;
  r["method"] = lrc::method_name(opt.method);
  r["rank"] = rep.rank;
  r["bits"] = p.bits;
  r["groupsize"] = p.groupsize;
  r["codes"] = to_numpy(std::move(codes), {o, i});
  r["scales"] = to_numpy(p.scales, {o, g});
  r["zeros"] = to_numpy(p.zeros, {o, g});
  r["u"] = to_numpy(lin.lr.u, {o, k});
  r["v"] = to_numpy(lin.lr.v, {i, k});
  r["w_hat"] = to_numpy(std::move(w_hat), {o, i});
  r["objective"] = rep.objective;
  r["objective_fp"] = rep.objective_fp;
  return r;
}

// A Python exception raised in a progress callback, carried through the C++ pipeline (whose
// CheckpointWriter then removes its partial directory) and raised again as itself.
struct CallbackRaised {};

nb::object quantize(const std::string& model, const std::string& calib, const std::string& out,
                    const std::string& tokenizer, const std::string& options, nb::object progress,
                    const std::string& report_svg) {
  lrc::QuantizeOptions opt = options_from_json(options, "lrc.quantize");
  if (!report_svg.empty()) {
    if (opt.method == lrc::QuantMethod::RTN)
      lrc::fail("report", "rtn gathers no statistics, so it has no eq. 2 error to draw");
    opt.baseline_objective = true;
    opt.compare_gptq = true;
  }
  lrc::CheckpointSink::Progress prog;
  // A handle, not an object: the std::function is copied while the GIL is released, and a
  // handle's copy touches no reference count (the caller keeps `progress` alive).
  const nb::handle callback = progress;
  if (!progress.is_none())
    prog = [callback](int done, int total) {
      nb::gil_scoped_acquire locked;
      try {
        callback(done, total);
      } catch (nb::python_error& e) {
        e.restore();
        throw CallbackRaised{};
      }
    };
  nlohmann::json j;
  try {
    nb::gil_scoped_release unlocked;
    lrc::LoadedModel lm = lrc::load_model(model, tokenizer, true, /*lazy_layers=*/true);
    const lrc::CalibrationSet cs = lrc::load_calibration(calib, *lm.tokenizer, opt.nsamples,
                                                         opt.seq, lm.model.cfg.max_seq_len);
    lrc::CheckpointSink sink(out, opt, prog);
    const lrc::QuantizeReport rep = lrc::quantize_model(lm.model, cs, opt, &sink);
    lrc::CheckpointInfo info;
    info.source_model = model;
    info.tokenizer_file = tokenizer.empty() ? lm.tokenizer_path : tokenizer;
    info.options = opt;
    info.calib = &cs;
    info.report = &rep;
    sink.writer().finish(lm.model, info);
    if (!report_svg.empty())
      lrc::plot::write_svg(lrc::plot::quantize_report_figure(
                               rep, lrc::method_name(opt.method), "lrc.quantize(" + model + ")"),
                           report_svg);
    j = rep.to_json();
    j["out"] = out;
    j["options"] = opt.to_json();
  } catch (CallbackRaised&) {
    throw nb::python_error();
  }
  return json_to_py(j);
}

nb::object eval_ppl(const std::string& model, const std::string& data, int seq, int max_chunks,
                    const std::string& tokenizer, const std::string& kernels, bool progress) {
  nlohmann::json j;
  {
    nb::gil_scoped_release unlocked;
    lrc::LoadedModel lm = lrc::load_model(model, tokenizer);
    lm.model.backend = lrc::make_backend("cpu", kernels);
    const std::vector<int32_t> tokens = lrc::tokenize_corpus(data, *lm.tokenizer);
    const lrc::PplResult r = lrc::perplexity(lm.model, tokens, seq, max_chunks, 0, progress);
    j = {{"ppl", r.ppl},       {"nll", r.nll},   {"tokens", r.tokens},
         {"chunks", r.chunks}, {"seq", r.seq},   {"seconds", r.seconds},
         {"model", model},     {"data", data},   {"format", lm.format},
         {"backend", lm.model.run_backend().name()}};
  }
  return json_to_py(j);
}

// Any model lrc reads (an lrc checkpoint, an HF directory, a GGUF or llama2.c file): its
// linears as arrays (codes/scales/zeros/U/V when quantized, w when not), the token embeddings
// and the norms, and the checkpoint's lrc_config.json (an FP model: its config).
nb::dict load_checkpoint(const std::string& path) {
  nlohmann::json config;
  std::optional<lrc::LlamaModel> m;
  {
    nb::gil_scoped_release unlocked;
    if (lrc::is_lrc_checkpoint(path)) {
      m = lrc::load_checkpoint(path, &config);
    } else {
      m = std::move(lrc::load_model(path, "", /*need_tokenizer=*/false).model);
      config = {{"model", lrc::config_to_json(m->cfg)}};
    }
  }
  const size_t vocab = static_cast<size_t>(m->cfg.vocab_size), dim = static_cast<size_t>(m->cfg.dim);
  nb::dict norms;
  for (size_t li = 0; li < m->layers.size(); ++li) {
    const std::string p = "layers." + std::to_string(li) + ".";
    norms[(p + "input_layernorm").c_str()] = to_numpy(m->layers[li].attn_norm, {dim});
    norms[(p + "post_attention_layernorm").c_str()] = to_numpy(m->layers[li].ffn_norm, {dim});
  }
  norms["norm"] = to_numpy(m->final_norm, {dim});
  nb::dict linears;
  for (size_t li = 0; li < m->layers.size(); ++li)
    for (const auto& t : lrc::layer_linears(m->cfg)) {
      const lrc::Linear& l = t.of(m->layers[li]);
      const size_t o = static_cast<size_t>(l.d_out), i = static_cast<size_t>(l.d_in);
      nb::dict d;
      d["shape"] = nb::make_tuple(l.d_out, l.d_in);
      d["a_bits"] = l.act.bits;
      d["a_clip"] = l.act.clip;
      d["a_groupsize"] = l.act.groupsize;
      d["rank"] = l.lr.rank;
      const size_t k = static_cast<size_t>(l.lr.rank);
      d["u"] = to_numpy(l.lr.u, {o, k});
      d["v"] = to_numpy(l.lr.v, {i, k});
      if (l.packed) {
        const lrc::PackedWeight& p = *l.packed;
        std::vector<uint8_t> codes(o * i);
        for (int r = 0; r < l.d_out; ++r)
          for (int j = 0; j < l.d_in; ++j) codes[r * i + j] = static_cast<uint8_t>(p.code(r, j));
        const size_t g = static_cast<size_t>(p.n_groups());
        d["bits"] = p.bits;
        d["groupsize"] = p.groupsize;
        d["codes"] = to_numpy(std::move(codes), {o, i});
        d["scales"] = to_numpy(p.scales, {o, g});
        d["zeros"] = to_numpy(p.zeros, {o, g});
      } else {
        d["w"] = to_numpy(l.w, {o, i});
      }
      linears[lrc::layer_linear_name(static_cast<int>(li), t).c_str()] = d;
    }
  nb::dict r;
  r["config"] = json_to_py(config);
  r["linears"] = linears;
  r["norms"] = norms;
  r["embeddings"] = to_numpy(m->tok_embeddings, {vocab, dim});
  r["norm_eps"] = m->cfg.norm_eps;
  return r;
}

// Token ids of `text` with the model's tokenizer (BOS first when the tokenizer adds one).
nb::object tokenize(const std::string& model, const std::string& text, const std::string& tokenizer) {
  std::vector<int32_t> ids;
  {
    nb::gil_scoped_release unlocked;
    const lrc::LoadedModel lm = lrc::load_model(model, tokenizer, true, /*lazy_layers=*/true);
    const std::vector<int> enc = lm.tokenizer->encode(text);
    if (lm.tokenizer->add_bos()) ids.push_back(lm.tokenizer->bos_id());
    ids.insert(ids.end(), enc.begin(), enc.end());
  }
  const size_t n = ids.size();
  return to_numpy(std::move(ids), {n});
}

nb::object quantize_activations(Matrix32 x, int bits, float clip, int groupsize) {
  lrc::ActQuantSpec spec;
  spec.bits = bits;
  spec.clip = clip;
  spec.groupsize = groupsize;
  const size_t n = x.shape(0), d = x.shape(1);
  if (groupsize < 0 || (groupsize > 0 && d % static_cast<size_t>(groupsize) != 0))
    lrc::fail("quantize_activations", "groupsize must be 0 or divide the row length");
  std::vector<float> y(n * d);
  lrc::quantize_activations(x.data(), static_cast<int64_t>(n), static_cast<int>(d), spec, y.data());
  return to_numpy(std::move(y), {n, d});
}

// lrc demo --plot's picture from the demo's --json rows (a JSON string), written to `path`.
void plot_demo(const std::string& rows_json, const std::string& path, const std::string& caption) {
  nlohmann::json rows;
  try {
    rows = nlohmann::json::parse(rows_json);
  } catch (const nlohmann::json::exception& e) {
    lrc::fail("plot_demo", std::string("rows are not JSON: ") + e.what());
  }
  lrc::plot::write_svg(
      lrc::plot::demo_figure(lrc::plot::demo_plot_rows(rows, "plot_demo"), caption, "plot_demo"),
      path);
}

}  // namespace

NB_MODULE(_lrc, m) {
  m.doc() = "lrc's C++ core (see the lrc package for the documented API)";
  m.attr("__version__") = LRC_VERSION;
  nb::exception<lrc::Error>(m, "Error", PyExc_ValueError);
  m.def("default_options", [] { return json_to_py(lrc::QuantizeOptions().to_json()); });

  nb::class_<Stats>(m, "Stats")
      .def(nb::init<int, int, double, int, const std::string&>(), "d_in"_a, "abits"_a = 4,
           "a_clip"_a = 0.9, "a_groupsize"_a = 0, "precision"_a = "f64")
      .def_static("from_arrays", &Stats::from_arrays, "xx"_a, "yy"_a, "xy"_a, "n"_a = 0,
                  "abits"_a = 4, "a_clip"_a = 0.9, "a_groupsize"_a = 0)
      .def("add", &Stats::add, "x"_a)
      .def_prop_ro("d_in", &Stats::d)
      .def_prop_ro("n", &Stats::n)
      .def_prop_ro("abits", [](const Stats& s) { return s.act().bits; })
      .def_prop_ro("a_clip", [](const Stats& s) { return s.act().clip; })
      .def_prop_ro("a_groupsize", [](const Stats& s) { return s.act().groupsize; })
      .def("arrays", [](const Stats& s) {
        lrc::LayerStats f = s.get();
        const size_t d = static_cast<size_t>(f.d);
        return nb::make_tuple(to_numpy(std::move(f.xx), {d, d}), to_numpy(std::move(f.yy), {d, d}),
                              to_numpy(std::move(f.xy), {d, d}));
      });

  m.def("solve", &solve, "w"_a, "stats"_a, "options"_a);
  m.def("quantize", &quantize, "model"_a, "calib"_a, "out"_a, "tokenizer"_a, "options"_a,
        "progress"_a.none(), "report"_a);
  m.def("eval_ppl", &eval_ppl, "model"_a, "data"_a, "seq"_a, "max_chunks"_a, "tokenizer"_a,
        "kernels"_a, "progress"_a);
  m.def("load_checkpoint", &load_checkpoint, "path"_a);
  m.def("tokenize", &tokenize, "model"_a, "text"_a, "tokenizer"_a);
  m.def("quantize_activations", &quantize_activations, "x"_a, "bits"_a, "clip"_a, "groupsize"_a);
  m.def("plot_demo", &plot_demo, "rows_json"_a, "path"_a, "caption"_a);
}
