// lrc solve: one matrix through one method's solver, from a file (no model): what the Python
// package's lrc.solve does, so the two can be held against each other bit for bit.
//
//   input  (safetensors)  W  F32 [d_out x d_in], and either
//                         X  F32 [n x d_in] (activations: Σ accumulated here with Q_a of
//                            --abits/--a-clip/--a-groupsize, --stats-precision), or
//                         xx, yy, xy  F64 [d_in x d_in] (the statistics themselves,
//                            quant/stats.h; metadata "n" = tokens, optional)
//   output (safetensors)  codes U8 [d_out x d_in] (one code a byte), scales, zeros F32
//                         [d_out x groups], u F32 [d_out x k], v F32 [d_in x k], w_hat F32,
//                         objective, objective_fp F64 [1], xx, yy, xy F64 (the statistics used)
//
// The solve is the pipeline's own (pipeline/linear_quantizer.h): fp16 scales, zeros, U, V and
// the eq. 2 objective of what a checkpoint would hold.
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cli/command_registry.h"
#include "cli/quantize_flags.h"
#include "lrc/core/error.h"
#include "lrc/io/safetensors.h"
#include "lrc/io/safetensors_writer.h"
#include "lrc/pipeline/linear_quantizer.h"

namespace lrc::cli {
namespace {

std::vector<double> read_f64_square(const SafetensorsFile& f, const std::string& name, int d) {
  const SafetensorInfo& t = f.info(name);
  if (t.dtype != DType::F64 || t.shape != std::vector<int64_t>{d, d})
    fail(f.path(), "tensor '" + name + "': expected F64 [" + std::to_string(d) + ", " +
                       std::to_string(d) + "] (the d_in of W)");
  std::vector<double> v(static_cast<size_t>(d) * d);
  const auto b = f.bytes(name);
  std::memcpy(v.data(), b.data(), b.size());
  return v;
}

void add_f64(SafetensorsWriter& w, const std::string& name, std::vector<int64_t> shape,
             const std::vector<double>& v) {
  w.add_bytes(name, DType::F64, std::move(shape),
              {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(double)});
}

struct SolveArgs {
  std::string in, out, method = "lrc";
  QuantizeFlagStrings flags;
  QuantizeOptions opt;
  bool json = false;
};

int run_solve(SolveArgs& a) {
  a.opt.method = parse_method(a.method);
  finish_quantize_options(a.opt, a.flags);
  // What needs a model or a calibration pass has no meaning for one matrix.
  if (a.opt.a_clip_search) fail("--a-clip", "search needs the pipeline; give a ratio");
  if (a.opt.fp_targets) fail("--target", "fp needs the FP model's inputs; not for one matrix");
  if (a.opt.rank_alloc != RankAllocation::Uniform)
    fail("--rank-alloc", "spreads ranks over a model; not for one matrix");

  const SafetensorsFile f(a.in);
  const SafetensorInfo& wi = f.info("W");
  if (wi.shape.size() != 2 || wi.dtype != DType::F32)
    fail(a.in, "tensor 'W': expected F32 [d_out, d_in]");
  const int d_out = static_cast<int>(wi.shape[0]), d_in = static_cast<int>(wi.shape[1]);
  ActQuantSpec act;
  act.bits = a.opt.abits;
  act.clip = a.opt.a_clip;
  act.groupsize = a.opt.a_groupsize;

  LayerStats stats;
  if (f.has("X")) {
    const SafetensorInfo& xi = f.info("X");
    if (xi.shape.size() != 2 || xi.shape[1] != d_in || xi.dtype != DType::F32)
      fail(a.in, "tensor 'X': expected F32 [n, " + std::to_string(d_in) + "] (rows = tokens)");
    const std::vector<float> x = f.read_f32("X");
    StatsAccumulator acc(d_in, act, /*cross=*/true, a.opt.stats_precision);
    acc.add(x.data(), xi.shape[0]);
    stats = acc.finish();
  } else {
    stats.d = d_in;
    stats.xx = read_f64_square(f, "xx", d_in);
    stats.yy = read_f64_square(f, "yy", d_in);
    stats.xy = read_f64_square(f, "xy", d_in);
    if (auto it = f.metadata().find("n"); it != f.metadata().end()) {
      try {
        stats.n = std::stoll(it->second);
      } catch (const std::exception&) {
        fail(a.in, "metadata 'n' (tokens) is not an integer: '" + it->second + "'");
      }
    }
    check_layer_stats(stats, d_in, a.in.c_str());
  }

  Linear lin;
  lin.d_out = d_out;
  lin.d_in = d_in;
  lin.w = f.read_f32("W");
  const int rank = rank_for(a.opt, "W", d_out, d_in);
  const LinearReport rep = quantize_linear(lin, "W", &stats, act, rank, a.opt);

  const PackedWeight& p = *lin.packed;
  std::vector<uint8_t> codes(static_cast<size_t>(d_out) * d_in);
  for (int r = 0; r < d_out; ++r)
    for (int j = 0; j < d_in; ++j)
      codes[static_cast<size_t>(r) * d_in + j] = static_cast<uint8_t>(p.code(r, j));
  std::vector<float> w_hat(codes.size());
  p.dequantize(w_hat.data());
  SafetensorsWriter w;
  w.add_bytes("codes", DType::U8, {d_out, d_in}, codes);
  w.add_f32("scales", {d_out, p.n_groups()}, p.scales);
  w.add_f32("zeros", {d_out, p.n_groups()}, p.zeros);
  w.add_f32("u", {d_out, rep.rank}, lin.lr.u);
  w.add_f32("v", {d_in, rep.rank}, lin.lr.v);
  w.add_f32("w_hat", {d_out, d_in}, w_hat);
  add_f64(w, "objective", {1}, {rep.objective});
  add_f64(w, "objective_fp", {1}, {rep.objective_fp});
  add_f64(w, "xx", {d_in, d_in}, stats.xx);
  add_f64(w, "yy", {d_in, d_in}, stats.yy);
  add_f64(w, "xy", {d_in, d_in}, stats.xy);
  w.set_metadata("method", method_name(a.opt.method));
  w.set_metadata("rank", std::to_string(rep.rank));
  // Numerical guards (issue 27): LRC that lost to GPTQ kept GPTQ's Ŵ; raised damping.
  const nlohmann::json guards = numerical_guards_json(rep);
  if (!guards.empty()) w.set_metadata("numerical_guards", guards.dump());
  w.write(a.out);
  if (a.json) {
    std::printf("%s\n", nlohmann::json({{"method", method_name(a.opt.method)},
                                        {"rank", rep.rank},
                                        {"objective", rep.objective},
                                        {"objective_fp", rep.objective_fp},
                                        {"out", a.out}})
                            .dump()
                            .c_str());
  } else {
    std::printf("%s rank %d  eq. 2 objective %.10g  relative %.6g  -> %s\n",
                method_name(a.opt.method), rep.rank, rep.objective,
                rep.objective_fp > 0 ? rep.objective / rep.objective_fp : -1.0, a.out.c_str());
  }
  return 0;
}

const Registrar reg_solve(
    "solve", "one matrix through rtn | gptq | svd | lrc from W and X (or Σ) in a safetensors file",
    [](CLI::App& sub) -> std::function<int()> {
      auto a = std::make_shared<SolveArgs>();
      sub.add_option("--in", a->in, "safetensors with W and X (or xx, yy, xy)")->required();
      sub.add_option("--out", a->out, "safetensors to write the solution to")->required();
      sub.add_option("--method", a->method, "rtn | gptq | svd | lrc")->capture_default_str();
      add_quantize_options(sub, a->opt, a->flags, /*calibration_flags=*/false);
      sub.add_flag("--json", a->json, "print the objective as JSON");
      return [a] { return run_solve(*a); };
    });

}  // namespace
}  // namespace lrc::cli
