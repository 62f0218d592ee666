// The quantized rows of `lrc demo` (the paper's Table 1): QuaRot-RTN, QuaRot-GPTQ, SVD k and
// LRC(T) k at W4A4, each quantized from the FP model on the same calibration set and
// evaluated on the same chunks; gap closed = (ppl_GPTQ − ppl) / (ppl_GPTQ − ppl_FP).
// --ablation and --experiment (the paper's other tables and figures) are other row plans.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
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

// The paper's other experiments as presets of rows (issue 32), one line each. rows: specs
// separated by spaces, METHOD[:RANK][+update-rtn][+alt-calib] (+update-rtn: RTN inside LRC's
// Update-Quant instead of GPTQ, the paper's Figure 3; +alt-calib: calibrated on --calib-alt, its
// Table 5). setting: what every row shares besides the command's flags: "" (W4A4 per token),
// "ag128" (activation groups of 128, or of --a-groupsize), "a16" (weight-only).
struct Experiment {
  const char* name;
  const char* title;  // the paper's table or figure
  const char* setting;
  const char* rows;
};
constexpr Experiment kExperiments[] = {
    {"table1", "paper Table 1: W4A4, no groups, ranks 10%", "", "rtn gptq svd:0.1 lrc:0.1"},
    {"table2", "paper Table 2: W4A4, activation groups of 128, ranks 10%", "ag128",
     "rtn gptq svd:0.1 lrc:0.1"},
    {"table3", "paper Table 3: weight-only W4A16, ranks 10%", "a16", "rtn gptq svd:0.1 lrc:0.1"},
    {"fig3", "paper Figure 3: LRC with RTN or GPTQ in Update-Quant", "",
     "rtn lrc:0.1+update-rtn lrc:0.3+update-rtn gptq lrc:0.1 lrc:0.3"},
    {"table5", "paper Table 5: calibration text in domain (--calib) or not (--calib-alt)", "",
     "gptq gptq+alt-calib lrc:0.1 lrc:0.1+alt-calib"},
    {"rank-sweep", "paper Figures 2 and 4: ranks 0-30%, LRC and SVD", "",
     "gptq svd:0 svd:0.05 svd:0.1 svd:0.2 svd:0.3 lrc:0 lrc:0.05 lrc:0.1 lrc:0.2 lrc:0.3"},
    {"table9", "paper Table 9: W4A4, no groups, ranks 30%", "", "rtn gptq svd:0.3 lrc:0.3"},
    {"table10", "paper Table 10: W4A4, activation groups of 128, ranks 30%", "ag128",
     "rtn gptq svd:0.3 lrc:0.3"},
};

const Experiment* find_experiment(const std::string& name) {
  for (const Experiment& e : kExperiments)
    if (name == e.name) return &e;
  std::string names;
  for (const Experiment& e : kExperiments) names += std::string(names.empty() ? "" : ", ") + e.name;
  fail("--experiment", "unknown experiment '" + name + "' (one of " + names + ")");
}

struct QuantRowsOptions {
  std::string methods = "rtn,gptq,svd,lrc";
  std::string svd_ranks = "0.1";
  std::string lrc_ranks = "0.1,0.3";
  std::string calib;  // default <shared>/data/debtext-calib.txt
  std::string calib_alt;   // --experiment table5's other text (default: see alt_calibration)
  std::string experiment;  // --experiment: a row of kExperiments
  std::string seeds;  // rotation seeds to average over (default: --seed)
  bool ablation = false;
  QuantizeFlagStrings flags;
  QuantizeOptions opt;
  CLI::Option* rank_flag = nullptr;  // --rank of add_quantize_options: refused, see plan_rows
  std::vector<CLI::Option*> row_flags;  // --methods, --ranks, --svd-ranks, --ablation
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

std::vector<std::string> split_spaces(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; ss >> item;) out.push_back(item);
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
               "rows: GPTQ (clip as given / searched / calibrated rotation); per --ranks: LRC "
               "paper, + consistent ridge, + clip search, + rank allocation, + FP targets "
               "(--target-mix), consistent + calibrated rotation, the first three, all four");
  for (const char* f : {"--methods", "--ranks", "--svd-ranks", "--ablation"})
    o.row_flags.push_back(sub.get_option(f));
  std::string help = "the rows of one of the paper's experiments:";
  for (const Experiment& e : kExperiments) help += std::string(" ") + e.name + " (" + e.title + ");";
  sub.add_option("--experiment", o.experiment, help);
  sub.add_option("--calib-alt", o.calib_alt,
                 "--experiment table5's second calibration text (default: whichever of "
                 "<shared>/data/debtext-calib.txt and wikitext2-valid.txt --calib is not)");
  add_quantize_options(sub, o.opt, o.flags, /*calibration_flags=*/false);
  o.rank_flag = sub.get_option("--rank");
}

// "W4A4 clip 0.90 T=1 reg=consistent alloc=error", what differs from the paper's setting.
std::string row_settings(const QuantizeOptions& q) {
  std::string s = "W" + std::to_string(q.wbits) + "A" + std::to_string(q.abits);
  if (q.w_groupsize > 0) s += " wg" + std::to_string(q.w_groupsize);
  if (q.a_groupsize > 0 && q.abits < 16) s += " ag" + std::to_string(q.a_groupsize);
  if (q.kv_bits < 16) s += "KV" + std::to_string(q.kv_bits);
  s += " clip " + (q.a_clip_search ? std::string("search") : std::to_string(q.a_clip).substr(0, 4));
  if (!q.calib_act_quant) s += " calib-act=fp";
  if (q.fp_targets) s += " target=fp:" + std::to_string(q.target_mix).substr(0, 4);
  if (q.rotation_calibrated)
    s += " rot=calibrated:" + q.rotation_objective + ":" + std::to_string(q.rotation_steps);
  if (q.smooth_alpha > 0) s += " smooth=" + std::to_string(q.smooth_alpha).substr(0, 4);
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

std::string shared_file(const DemoContext& ctx, const std::string& name, const char* flag) {
  if (ctx.shared_dir.empty())
    fail("demo", std::string("no shared assets dir; pass ") + flag);
  return ctx.shared_dir + "/data/" + name;
}

// The calibration file of a row: --calib (default debtext-calib), or with alt the other text:
// --calib-alt, else whichever of debtext-calib and wikitext2-valid --calib is not.
std::string calibration_file(const DemoContext& ctx, bool alt) {
  const auto& o = *g_opts;
  const std::string main =
      o.calib.empty() ? shared_file(ctx, "debtext-calib.txt", "--calib") : o.calib;
  if (!alt) return main;
  if (!o.calib_alt.empty()) return o.calib_alt;
  const bool main_is_debtext = std::filesystem::path(main).filename() == "debtext-calib.txt";
  return shared_file(ctx, main_is_debtext ? "wikitext2-valid.txt" : "debtext-calib.txt",
                     "--calib-alt");
}

// The calibration sets, each loaded by the first row that needs it in this process.
class LazyCalibration {
 public:
  const CalibrationSet& get(const DemoContext& ctx, int nsamples, const std::string& file) {
    auto it = sets_.find(file);
    if (it != sets_.end()) return it->second;
    const CalibrationSet& c =
        sets_[file] = load_calibration(file, *ctx.fp.tokenizer, nsamples, ctx.seq,
                                       ctx.fp.model.cfg.max_seq_len);
    std::fprintf(stderr, "demo: calibration %d x %d tokens from %s\n", c.n_seq, c.seq_len,
                 file.c_str());
    return c;
  }

 private:
  std::map<std::string, CalibrationSet> sets_;
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
  if (q.rotation_calibrated) c += 1.0;  // the rotation search, about an FP evaluation or two
  return c * static_cast<double>(n_seeds);
}

std::vector<DemoJob> plan_rows(const DemoPlanContext&) {
  auto& o = *g_opts;
  // Every row takes its rank from --ranks / --svd-ranks: a --rank would be silently replaced.
  if (o.rank_flag && o.rank_flag->count() > 0)
    fail("--rank", "lrc demo sets each row's rank from --ranks (LRC rows) and --svd-ranks (SVD "
                   "rows); use those");
  finish_quantize_options(o.opt, o.flags);
  const Experiment* exp = o.experiment.empty() ? nullptr : find_experiment(o.experiment);
  if (exp)
    for (const CLI::Option* f : o.row_flags)
      if (f && f->count() > 0)
        fail(f->get_name(), "--experiment " + o.experiment + " sets the rows; drop " +
                                f->get_name() + " or the experiment");
  const auto methods = split(o.methods);
  if (methods.empty() && !o.ablation && !exp) return {};

  // The options of each row, and whether it calibrates on the alternative text.
  std::vector<QuantizeOptions> plan;
  std::vector<bool> alt_calib;
  auto add = [&](QuantMethod m, double rank, auto&& tweak) {
    QuantizeOptions q = o.opt;
    q.method = m;
    q.rank = rank;
    tweak(q);
    plan.push_back(q);
    alt_calib.push_back(false);
  };
  auto same = [](QuantizeOptions&) {};
  if (exp) {
    const std::string setting = exp->setting;
    for (const std::string& spec : split_spaces(exp->rows)) {
      std::vector<std::string> parts;
      std::stringstream ss(spec);
      for (std::string part; std::getline(ss, part, '+');) parts.push_back(part);
      const size_t colon = parts[0].find(':');
      const QuantMethod m = parse_method(parts[0].substr(0, colon));
      const double rank = colon == std::string::npos ? 0 : std::stod(parts[0].substr(colon + 1));
      add(m, rank, [&](QuantizeOptions& q) {
        // (--a-groupsize overrides the paper's 128: SmolLM2's 576 needs 64.)
        if (setting == "ag128") q.a_groupsize = o.opt.a_groupsize > 0 ? o.opt.a_groupsize : 128;
        if (setting == "a16") q.abits = 16;
        for (size_t i = 1; i < parts.size(); ++i)
          if (parts[i] == "update-rtn") q.lrc_use_gptq = false;
      });
      for (size_t i = 1; i < parts.size(); ++i) alt_calib.back() = alt_calib.back() || parts[i] == "alt-calib";
    }
  } else if (o.ablation) {
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
    // Issue 31: the calibrated residual rotation alone (no low-rank branch), clip as given.
    add(QuantMethod::GPTQ, 0, [](QuantizeOptions& q) {
      q.a_clip_search = false;
      q.fp_targets = false;
      q.rotation_calibrated = true;
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
      add(QuantMethod::LRC, r, [&](QuantizeOptions& q) {  // issue 31, with the default ridge
        paper(q);
        q.reg = LrcRegularization::Consistent;
        q.rotation_calibrated = true;
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
  for (size_t j = 0; j < plan.size(); ++j) {
    const QuantizeOptions& q = plan[j];
    const bool alt = alt_calib[j];
    char label[64];
    std::snprintf(label, sizeof label, "%s %g", method_name(q.method), q.rank);
    auto run = [q, alt, seeds, calib](const DemoContext& ctx) {
      const auto& go = *g_opts;
      const std::string file = calibration_file(ctx, alt);
      const CalibrationSet& cs = calib->get(ctx, go.opt.nsamples, file);
      DemoRow row;
      row.method = method_name(q.method);
      row.rank = q.rank;
      row.clip_searched = q.a_clip_search;
      row.settings = row_settings(q);
      if (alt) row.settings += " calib=" + std::filesystem::path(file).filename().string();
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
        row.size_mb = model_size_mb(m.cfg, rep.bits_per_weight);
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
const std::string& demo_gpu_math() { return g_opts->opt.gpu_math; }
std::string demo_experiment() { return g_opts->experiment; }
std::string demo_experiment_title() {
  return g_opts->experiment.empty() ? "" : find_experiment(g_opts->experiment)->title;
}

}  // namespace lrc::cli
