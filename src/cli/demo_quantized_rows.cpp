// The quantized rows of `lrc demo` (the paper's Table 1): QuaRot-RTN, QuaRot-GPTQ, SVD k and
// LRC(T) k at W4A4, each quantized from the FP model on the same calibration set and
// evaluated on the same chunks; gap closed = (ppl_GPTQ − ppl) / (ppl_GPTQ − ppl_FP).
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
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
  std::string seeds;  // rotation seeds to average over (default: --seed)
  bool ablation = false;
  QuantizeFlagStrings flags;
  QuantizeOptions opt;
  CLI::Option* rank_flag = nullptr;  // --rank of add_quantize_options: refused, see plan_rows
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

std::vector<double> parse_numbers(const std::string& s, const char* flag) {
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
  sub.add_option("--seeds", o.seeds,
                 "rotation seeds S[,S...]: every row is run once per seed, ppl is their mean");
  sub.add_flag("--ablation", o.ablation,
               "rows: GPTQ (clip as given / searched); per --ranks: LRC paper, + consistent "
               "ridge, + clip search, + rank allocation, + FP targets (--target-mix), the "
               "first three, all four");
  add_quantize_options(sub, o.opt, o.flags, /*calibration_flags=*/false);
  o.rank_flag = sub.get_option("--rank");
}

// "W4A4 clip 0.90 T=1 reg=consistent alloc=error", what differs from the paper's setting.
std::string row_settings(const QuantizeOptions& q) {
  std::string s = "W" + std::to_string(q.wbits) + "A" + std::to_string(q.abits);
  if (q.kv_bits < 16) s += "KV" + std::to_string(q.kv_bits);
  s += " clip " + (q.a_clip_search ? std::string("search") : std::to_string(q.a_clip).substr(0, 4));
  if (!q.calib_act_quant) s += " calib-act=fp";
  if (q.fp_targets) s += " target=fp:" + std::to_string(q.target_mix).substr(0, 4);
  if (q.stats_precision != StatsPrecision::Float64 && q.method != QuantMethod::RTN)
    s += std::string(" stats=") + stats_precision_name(q.stats_precision);
  if (q.method == QuantMethod::LRC) {
    s += " T=" + std::to_string(q.iters);
    s += q.reg == LrcRegularization::Consistent ? " reg=consistent" : " reg=paper";
    if (q.rank_alloc == RankAllocation::Error) s += " alloc=error";
    if (!q.lrc_use_gptq) s += " update=rtn";
  }
  return s;
}

// The calibration set, loaded by the first row that runs in this process.
class LazyCalibration {
 public:
  const CalibrationSet& get(const DemoContext& ctx, int nsamples, const std::string& calib) {
    if (set_) return *set_;
    const std::string file =
        !calib.empty()
            ? calib
            : (ctx.shared_dir.empty() ? fail("demo", "no shared assets dir; pass --calib"),
               std::string()          : ctx.shared_dir + "/data/debtext-calib.txt");
    set_ =
        load_calibration(file, *ctx.fp.tokenizer, nsamples, ctx.seq, ctx.fp.model.cfg.max_seq_len);
    std::fprintf(stderr, "demo: calibration %d x %d tokens from %s\n", set_->n_seq, set_->seq_len,
                 file.c_str());
    return *set_;
  }

 private:
  std::optional<CalibrationSet> set_;
};

// Relative run time of a row, for --jobs to start the largest first (2-core SmolLM2 table:
// FP 1, RTN 1.3, GPTQ 4.4, SVD 5, LRC 8).
double row_cost(const QuantizeOptions& q, size_t n_seeds) {
  double c = 1.3;
  if (q.method == QuantMethod::GPTQ) c = 4.4;
  if (q.method == QuantMethod::SVD) c = 5.0 + q.rank;
  if (q.method == QuantMethod::LRC) c = 8.0 * q.iters + q.rank;
  if (q.a_clip_search) c *= 1.4;
  if (q.rank_alloc == RankAllocation::Error) c *= 1.3;
  if (q.fp_targets) c *= 1.6;  // the FP model's forward pass and X̄Xᵀ beside the calibration
  return c * static_cast<double>(n_seeds);
}

std::vector<DemoJob> plan_rows(const DemoPlanContext&) {
  auto& o = *g_opts;
  // Every row takes its rank from --ranks / --svd-ranks: a --rank would be silently replaced.
  if (o.rank_flag && o.rank_flag->count() > 0)
    fail("--rank", "lrc demo sets each row's rank from --ranks (LRC rows) and --svd-ranks (SVD "
                   "rows); use those");
  finish_quantize_options(o.opt, o.flags);
  const auto methods = split(o.methods);
  if (methods.empty() && !o.ablation) return {};

  // The options of each row.
  std::vector<QuantizeOptions> plan;
  auto add = [&](QuantMethod m, double rank, auto&& tweak) {
    QuantizeOptions q = o.opt;
    q.method = m;
    q.rank = rank;
    tweak(q);
    plan.push_back(q);
  };
  auto same = [](QuantizeOptions&) {};
  if (o.ablation) {
    // Beyond the paper, one change at a time, then together (issue: consistent ridge, clip
    // search, rank allocation; then FP-model targets); both baselines: clip as given, and
    // searched the same way, each with the paper's target.
    add(QuantMethod::GPTQ, 0, [](QuantizeOptions& q) {
      q.a_clip_search = false;
      q.fp_targets = false;
    });
    add(QuantMethod::GPTQ, 0, [](QuantizeOptions& q) {
      q.a_clip_search = true;
      q.fp_targets = false;
    });
    for (double r : parse_numbers(o.lrc_ranks, "--ranks")) {
      auto paper = [](QuantizeOptions& q) {
        q.reg = LrcRegularization::Paper;
        q.a_clip_search = false;
        q.rank_alloc = RankAllocation::Uniform;
        q.fp_targets = false;
      };
      add(QuantMethod::LRC, r, paper);
      add(QuantMethod::LRC, r, [&](QuantizeOptions& q) {
        paper(q);
        q.reg = LrcRegularization::Consistent;
      });
      add(QuantMethod::LRC, r, [&](QuantizeOptions& q) {
        paper(q);
        q.a_clip_search = true;
      });
      add(QuantMethod::LRC, r, [&](QuantizeOptions& q) {
        paper(q);
        q.rank_alloc = RankAllocation::Error;
      });
      add(QuantMethod::LRC, r, [&](QuantizeOptions& q) {
        paper(q);
        q.fp_targets = true;
      });
      auto all_three = [](QuantizeOptions& q) {
        q.reg = LrcRegularization::Consistent;
        q.a_clip_search = true;
        q.rank_alloc = RankAllocation::Error;
        q.fp_targets = false;
      };
      add(QuantMethod::LRC, r, all_three);
      add(QuantMethod::LRC, r, [&](QuantizeOptions& q) {
        all_three(q);
        q.fp_targets = true;
      });
    }
  } else {
    for (const auto& name : methods) {
      const QuantMethod m = parse_method(name);
      if (m == QuantMethod::SVD)
        for (double r : parse_numbers(o.svd_ranks, "--svd-ranks")) add(m, r, same);
      else if (m == QuantMethod::LRC)
        for (double r : parse_numbers(o.lrc_ranks, "--ranks")) add(m, r, same);
      else
        add(m, 0, same);
    }
  }

  std::vector<uint64_t> seeds;
  for (double s : parse_numbers(o.seeds, "--seeds")) {
    if (s < 0 || s != static_cast<double>(static_cast<uint64_t>(s)))
      fail("--seeds", "seeds are integers >= 0");
    seeds.push_back(static_cast<uint64_t>(s));
  }
  if (seeds.empty()) seeds.push_back(o.opt.seed);

  auto calib = std::make_shared<LazyCalibration>();
  std::vector<DemoJob> jobs;
  for (const QuantizeOptions& q : plan) {
    char label[64];
    std::snprintf(label, sizeof label, "%s %g", method_name(q.method), q.rank);
    auto run = [q, seeds, calib](const DemoContext& ctx) {
      const auto& go = *g_opts;
      const CalibrationSet& cs = calib->get(ctx, go.opt.nsamples, go.calib);
      DemoRow row;
      row.method = method_name(q.method);
      row.rank = q.rank;
      row.clip_searched = q.a_clip_search;
      row.settings = row_settings(q);
      // Each seed is its own rotation and calibration run; the row shows the mean perplexity.
      for (uint64_t seed : seeds) {
        const auto t0 = std::chrono::steady_clock::now();
        LlamaModel m = ctx.fp.model;
        QuantizeOptions qs = q;
        qs.seq = cs.seq_len;
        qs.seed = seed;
        const QuantizeReport rep = quantize_model(m, cs, qs);
        // A device backend (--device cuda) caches weights by address: this row's are new.
        m.run_backend().forget_parameters();
        const PplResult r = perplexity(m, ctx.tokens, ctx.seq, ctx.max_chunks);
        row.ppl_seeds.push_back(r.ppl);
        row.bits_per_weight = rep.bits_per_weight;
        row.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(stderr, "demo: %s rank %g seed %llu (%s) -> ppl %.4f\n", row.method.c_str(),
                     q.rank, static_cast<unsigned long long>(seed), row.settings.c_str(), r.ppl);
        if (seed != seeds.front()) continue;
        score_row_tasks(ctx, m, row);
        row.linears = nlohmann::json::array();
        for (const auto& l : rep.linears)
          row.linears.push_back({{"name", l.name}, {"rank", l.rank}, {"a_clip", l.a_clip}});
      }
      double sum = 0;
      for (double v : row.ppl_seeds) sum += v;
      row.ppl = sum / static_cast<double>(row.ppl_seeds.size());
      row.seconds /= static_cast<double>(seeds.size());
      return row;
    };
    jobs.push_back({label, row_cost(q, seeds.size()), run});
  }
  return jobs;
}

const DemoRowRegistrar reg_quantized({10, add_options, plan_rows});

}  // namespace

const std::string& demo_device() { return g_opts->opt.device; }

}  // namespace lrc::cli
