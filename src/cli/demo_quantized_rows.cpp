// The quantized rows of `lrc demo` (the paper's Table 1): QuaRot-RTN, QuaRot-GPTQ, SVD k and
// LRC(T) k at W4A4, each quantized from the FP model on the same calibration set and
// evaluated on the same chunks; gap closed = (ppl_GPTQ − ppl) / (ppl_GPTQ − ppl_FP).
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/demo_rows.h"
#include "cli/quantize_flags.h"
#include "lrc/core/error.h"
#include "lrc/eval/perplexity.h"
#include "lrc/pipeline/quantize_model.h"

namespace lrc::cli {

namespace {

struct QuantRowsOptions {
  std::string methods = "rtn,gptq,svd,lrc";
  std::string svd_ranks = "0.1";
  std::string lrc_ranks = "0.1,0.3";
  std::string calib;  // default <shared>/data/debtext-calib.txt
  std::string a_clip = "0.9", reg = "paper", update_quant = "gptq";
  QuantizeOptions opt;
};

std::shared_ptr<QuantRowsOptions> g_opts = std::make_shared<QuantRowsOptions>();

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<double> parse_ranks(const std::string& s, const char* flag) {
  std::vector<double> out;
  for (const auto& r : split(s)) {
    try {
      out.push_back(std::stod(r));
    } catch (const std::exception&) {
      fail(flag, "not a number: '" + r + "'");
    }
  }
  return out;
}

void add_options(CLI::App& sub) {
  auto& o = *g_opts;
  o.opt.nsamples = 128;
  sub.add_option("--methods", o.methods, "quantized rows: any of rtn,gptq,svd,lrc")
      ->capture_default_str();
  sub.add_option("--svd-ranks", o.svd_ranks, "ranks of the SVD rows")->capture_default_str();
  sub.add_option("--ranks,--lrc-ranks", o.lrc_ranks, "ranks of the LRC rows")
      ->capture_default_str();
  sub.add_option("--calib", o.calib, "calibration text (default: <shared>/data/debtext-calib.txt)");
  sub.add_option("--nsamples", o.opt.nsamples, "calibration sequences of --seq tokens")
      ->capture_default_str();
  add_quantize_options(sub, o.opt, o.a_clip, o.reg, o.update_quant, /*calibration_flags=*/false);
}

void run_rows(const DemoContext& ctx, std::vector<DemoRow>& rows) {
  auto& o = *g_opts;
  finish_quantize_options(o.opt, o.a_clip, o.reg, o.update_quant);
  const auto methods = split(o.methods);
  if (methods.empty()) return;
  const std::string calib_file =
      !o.calib.empty()
          ? o.calib
          : (ctx.shared_dir.empty() ? fail("demo", "no shared assets dir; pass --calib"),
             std::string()          : ctx.shared_dir + "/data/debtext-calib.txt");
  const CalibrationSet calib = load_calibration(calib_file, *ctx.fp.tokenizer, o.opt.nsamples,
                                                ctx.seq, ctx.fp.model.cfg.max_seq_len);
  std::fprintf(stderr, "demo: calibration %d x %d tokens from %s\n", calib.n_seq, calib.seq_len,
               calib_file.c_str());

  struct Plan {
    QuantMethod method;
    double rank;
  };
  std::vector<Plan> plan;
  for (const auto& name : methods) {
    const QuantMethod m = parse_method(name);
    if (m == QuantMethod::SVD)
      for (double r : parse_ranks(o.svd_ranks, "--svd-ranks")) plan.push_back({m, r});
    else if (m == QuantMethod::LRC)
      for (double r : parse_ranks(o.lrc_ranks, "--ranks")) plan.push_back({m, r});
    else
      plan.push_back({m, 0});
  }

  for (const auto& p : plan) {
    const auto t0 = std::chrono::steady_clock::now();
    LlamaModel m = ctx.fp.model;
    QuantizeOptions q = o.opt;
    q.method = p.method;
    q.rank = p.rank;
    q.seq = calib.seq_len;
    const QuantizeReport rep = quantize_model(m, calib, q);
    const PplResult r = perplexity(m, ctx.tokens, ctx.seq, ctx.max_chunks);
    DemoRow row;
    row.method = method_name(p.method);
    row.rank = p.rank;
    row.ppl = r.ppl;
    row.bits_per_weight = rep.bits_per_weight;
    char settings[160];
    std::snprintf(settings, sizeof settings, "W%dA%d%s clip %s%s%s", q.wbits, q.abits,
                  q.kv_bits < 16 ? ("KV" + std::to_string(q.kv_bits)).c_str() : "",
                  q.a_clip_search ? "search" : std::to_string(q.a_clip).substr(0, 4).c_str(),
                  p.method == QuantMethod::LRC ? (" T=" + std::to_string(q.iters)).c_str() : "",
                  p.method == QuantMethod::LRC && q.reg == LrcRegularization::Consistent
                      ? " reg=consistent"
                      : "");
    row.settings = settings;
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    score_row_tasks(ctx, m, row);
    rows.push_back(row);
    std::fprintf(stderr, "demo: %s rank %g -> ppl %.4f (%.1fs)\n", row.method.c_str(), p.rank,
                 r.ppl, row.seconds);
  }
}

const DemoRowRegistrar reg_quantized({10, add_options, run_rows});

}  // namespace

}  // namespace lrc::cli
