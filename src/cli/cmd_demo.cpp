// lrc demo: one table comparing the FP model with its quantized versions on one data set.
// Rows come from DemoRowSources (src/cli/demo_rows.h); this file holds the FP row.
//
// Defaults: the model llama-22m-debtext and debtext-valid.txt from the shared assets dir,
// found as $LRC_SHARED, else the first "shared" folder holding models/llama-22m-debtext next
// to the executable or one of its parent folders (../shared relative to the repository).
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/command_registry.h"
#include "cli/demo_rows.h"
#include "lrc/core/blas_info.h"
#include "lrc/core/error.h"
#include "lrc/eval/perplexity.h"
#include "lrc/io/json_file.h"
#include "lrc/kernels/registry.h"
#include "lrc/model/layer_linears.h"
#include "lrc/plot/demo_figure.h"

namespace fs = std::filesystem;

namespace lrc::cli {

std::vector<DemoRowSource>& demo_row_sources() {
  static std::vector<DemoRowSource> s;
  return s;
}

namespace {

constexpr const char* kDefaultModel = "models/llama-22m-debtext";
constexpr const char* kDefaultData = "data/debtext-valid.txt";

std::string find_shared_dir() {
  if (const char* s = std::getenv("LRC_SHARED"); s && *s) return s;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path d = exe.parent_path(); !d.empty(); d = d.parent_path()) {
      if (fs::exists(d / "shared" / kDefaultModel)) return (d / "shared").string();
      if (d == d.parent_path()) break;
    }
  return "";
}

struct DemoOptions {
  std::string model, data, tokenizer;
  int seq = 512, max_chunks = 24;
  bool json = false;
  std::vector<std::string> tasks;
  int64_t limit = -1;
  bool no_fp = false;
  int jobs = 0;         // rows run at once in child processes (0 = one per thread, up to the rows)
  int row = -1;         // child of --jobs: run only this job of the plan ...
  std::string row_out;  // ... and write its row here
  std::string plot;     // --plot FILE.svg
};

// The FP reference row: perplexity of the model as loaded.
DemoRow fp_row(const DemoContext& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  const PplResult r = perplexity(ctx.fp.model, ctx.tokens, ctx.seq, ctx.max_chunks);
  DemoRow row;
  row.method = "fp";
  row.settings = "float32 compute, " + ctx.fp.format + " weights";
  row.ppl = r.ppl;
  row.bits_per_weight = 16;
  row.size_mb = model_size_mb(ctx.fp.model.cfg, 16);
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  score_row_tasks(ctx, ctx.fp.model, row);
  return row;
}
std::vector<DemoJob> plan_fp(const DemoPlanContext& pc) {
  if (pc.skip_fp) return {};
  return {{"fp", 1.0, fp_row}};
}
const DemoRowRegistrar reg_fp({0, {}, plan_fp});

// Gap closed relative to QuaRot-GPTQ (its first row with the given clip), in perplexity and in
// average accuracy; and in perplexity against GPTQ with searched clip, when that row exists.
void fill_gap_closed(std::vector<DemoRow>& rows) {
  const DemoRow* fp = nullptr;
  const DemoRow* base = nullptr;
  const DemoRow* searched = nullptr;
  for (const auto& r : rows) {
    if (r.method == "fp" && !fp) fp = &r;
    if (r.method == "gptq" && !r.clip_searched && !base) base = &r;
    if (r.method == "gptq" && r.clip_searched && !searched) searched = &r;
  }
  if (!fp) return;
  auto closed = [&](const DemoRow* b, const DemoRow& r) -> std::optional<double> {
    if (!b || !(b->ppl > fp->ppl)) return std::nullopt;
    return (b->ppl - r.ppl) / (b->ppl - fp->ppl);
  };
  const bool acc = base && fp->zero_shot && base->zero_shot &&
                   fp->zero_shot->acc_avg != base->zero_shot->acc_avg;
  for (auto& r : rows) {
    if (&r == fp) continue;
    r.gap_closed = closed(base, r);
    r.gap_closed_searched = closed(searched, r);
    if (acc && r.zero_shot)
      r.acc_gap_closed = (r.zero_shot->acc_avg - base->zero_shot->acc_avg) /
                         (fp->zero_shot->acc_avg - base->zero_shot->acc_avg);
  }
}

std::string percent(const std::optional<double>& v) {
  if (!v) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100.0 * *v);
  return b;
}

void print_table(const std::vector<DemoRow>& rows) {
  const bool zs = !rows.empty() && rows.front().zero_shot;
  bool searched = false;
  for (const auto& r : rows) searched = searched || r.gap_closed_searched;
  std::printf("%-10s %6s %10s %11s", "method", "rank", "ppl", "gap closed");
  if (searched) std::printf(" %11s", "vs searched");
  std::printf(" %12s %9s %9s", "bits/weight", "size MB", "seconds");
  if (zs) {
    for (const auto& t : rows.front().zero_shot->tasks) std::printf(" %12.12s", t.name.c_str());
    std::printf(" %8s %9s", "acc avg", "acc gap");
  }
  std::printf("  settings\n");
  for (const auto& r : rows) {
    std::printf("%-10s %6g %10.4f %11s", r.method.c_str(), r.rank, r.ppl,
                percent(r.gap_closed).c_str());
    if (searched) std::printf(" %11s", percent(r.gap_closed_searched).c_str());
    std::printf(" %12.2f %9.1f %9.1f", r.bits_per_weight, r.size_mb, r.seconds);
    if (zs && r.zero_shot) {
      for (const auto& t : r.zero_shot->tasks) std::printf(" %12.4f", t.acc);
      std::printf(" %8.4f %9s", r.zero_shot->acc_avg, percent(r.acc_gap_closed).c_str());
    }
    std::printf("  %s\n", r.settings.c_str());
  }
  if (zs)
    std::printf(
        "accuracy: acc per task (95%% CI about +-%.3f at n = %lld); acc gap = (acc - "
        "acc_gptq) / (acc_fp - acc_gptq)\n",
        accuracy_ci95(0.5, rows.front().zero_shot->tasks.front().n),
        static_cast<long long>(rows.front().zero_shot->tasks.front().n));
}

nlohmann::json row_json(const DemoRow& r) {
  auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nullptr; };
  nlohmann::json j = {{"method", r.method},
                      {"settings", r.settings},
                      {"rank", r.rank},
                      {"ppl", r.ppl},
                      {"gap_closed", opt(r.gap_closed)},
                      {"gap_closed_vs_searched_clip", opt(r.gap_closed_searched)},
                      {"bits_per_weight", r.bits_per_weight},
                      {"size_mb", r.size_mb},
                      {"seconds", r.seconds}};
  if (r.ppl_seeds.size() > 1) j["ppl_seeds"] = r.ppl_seeds;
  if (!r.linears.is_null()) j["linears"] = r.linears;  // of the first seed
  if (r.zero_shot) {
    j.update(task_results_json(*r.zero_shot));
    j["acc_gap_closed"] = opt(r.acc_gap_closed);
  }
  return j;
}

}  // namespace

double model_size_mb(const LlamaConfig& cfg, double linear_bits_per_weight) {
  double linear = 0;
  for (const auto& t : layer_linears(cfg))
    linear += static_cast<double>(linear_dim(cfg, t.out)) * static_cast<double>(linear_dim(cfg, t.in));
  linear *= cfg.n_layers;
  const double table = static_cast<double>(cfg.vocab_size) * cfg.dim;
  const double other = table * (cfg.tied_embeddings ? 1 : 2) +
                       static_cast<double>(cfg.dim) * (2.0 * cfg.n_layers + 1);
  return (linear * linear_bits_per_weight / 8 + other * 2) / 1e6;
}

void score_row_tasks(const DemoContext& ctx, const LlamaModel& model, DemoRow& row) {
  if (ctx.task_files.empty()) return;
  row.zero_shot = evaluate_tasks(model, *ctx.fp.tokenizer, ctx.task_files, ctx.task_limit, stderr);
}

namespace {

int run_demo(const DemoOptions& o) {
  const std::string shared = find_shared_dir();
  auto from_shared = [&](const std::string& given, const char* rel, const char* flag) {
    if (!given.empty()) return given;
    if (shared.empty())
      fail("demo", std::string("cannot find the shared assets folder (") + rel +
                       "); set LRC_SHARED or pass " + flag);
    return shared + "/" + rel;
  };
  DemoOptions opt = o;
  opt.model = from_shared(o.model, kDefaultModel, "--model");
  opt.data = from_shared(o.data, kDefaultData, "--data");
  for (const auto& [path, flag] : {std::pair{opt.model, "--model"}, {opt.data, "--data"}})
    if (!fs::exists(path)) fail(flag, path + ": no such file or directory");

  auto sources = demo_row_sources();
  std::stable_sort(sources.begin(), sources.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  std::vector<DemoJob> jobs;
  for (const auto& s : sources)
    for (auto& j : s.plan(DemoPlanContext{opt.no_fp})) jobs.push_back(std::move(j));

  // Where the rows run: here one after another, or in child processes --jobs at a time, each
  // with its share of the threads (OMP_NUM_THREADS, else every core). A row's numbers depend
  // on its thread count (docs/design.md, "Determinism"), not on how many rows run beside it.
  const int total_threads = std::max(1, omp_get_max_threads());
  const int n_jobs = static_cast<int>(jobs.size());
  const int lanes = opt.row >= 0 ? 1 : std::min(n_jobs, opt.jobs > 0 ? opt.jobs : total_threads);
  std::vector<DemoRow> rows;
  const int threads = lanes > 1 ? std::max(1, total_threads / lanes) : total_threads;
  if (opt.row < 0)
    std::fprintf(stderr, "demo: OpenBLAS kernels %s%s\n", blas_core_name().c_str(),
                 std::getenv("OPENBLAS_CORETYPE") ? " (chosen by OPENBLAS_CORETYPE)" : "");
  if (lanes > 1) {
    std::fprintf(stderr, "demo: %d rows, %d at a time in child processes, %d thread%s each\n",
                 n_jobs, lanes, threads, threads == 1 ? "" : "s");
    rows = run_demo_lanes(jobs, lanes, threads, process_args());
  } else {
    if (opt.row >= n_jobs)
      fail("--row",
           std::to_string(opt.row) + " is past the plan's " + std::to_string(n_jobs) + " rows");
    LoadedModel fp = load_model(opt.model, opt.tokenizer);
    // --device cuda: every row's evaluation runs on the GPU too (the fp32 simulation, as the
    // CPU's; on TF32 tensor cores with --gpu-math tf32); the calibration forward makes its own
    // backend (quantize_model).
    if (demo_device() != "cpu")
      fp.model.backend = make_backend(demo_device(), "sim", /*decoding=*/false, demo_gpu_math());
    const std::vector<int32_t> tokens = tokenize_corpus(opt.data, *fp.tokenizer);
    std::fprintf(stderr, "demo: model %s, data %s (%zu tokens), seq %d, %d chunks\n",
                 opt.model.c_str(), opt.data.c_str(), tokens.size(), opt.seq, opt.max_chunks);
    const DemoContext ctx{fp,      tokens,         opt.model, opt.data, shared,
                          opt.seq, opt.max_chunks, opt.tasks, opt.limit};
    if (opt.row >= 0) {  // a child of --jobs: one row, to the file the parent reads
      const DemoRow r = jobs[opt.row].run(ctx);
      write_file_atomic(opt.row_out, demo_row_to_wire(r).dump() + "\n");
      return 0;
    }
    for (const auto& j : jobs) rows.push_back(j.run(ctx));
  }
  fill_gap_closed(rows);
  if (!opt.plot.empty()) {
    std::string cmd = "lrc";
    for (size_t i = 1; i < process_args().size(); ++i) cmd += " " + process_args()[i];
    std::vector<plot::DemoPlotRow> shown;
    for (const DemoRow& r : rows)
      shown.push_back(
          {r.method, r.settings, r.rank, r.ppl, r.ppl_seeds, r.clip_searched, r.gap_closed});
    plot::write_svg(plot::demo_figure(shown, cmd), opt.plot);
    std::fprintf(stderr, "demo: figure %s\n", opt.plot.c_str());
  }

  if (opt.json) {
    nlohmann::json j;
    j["model"] = opt.model;
    j["data"] = opt.data;
    j["seq"] = opt.seq;
    j["max_chunks"] = opt.max_chunks;
    j["jobs"] = lanes;  // rows at once
    j["threads_per_row"] = threads;
    j["blas_core"] = blas_core_name();  // with threads_per_row, what the numbers depend on
    if (!demo_experiment().empty()) {
      j["experiment"] = demo_experiment();
      j["experiment_title"] = demo_experiment_title();
    }
    j["rows"] = nlohmann::json::array();
    for (const auto& r : rows) j["rows"].push_back(row_json(r));
    std::printf("%s\n", j.dump().c_str());
  } else {
    if (!demo_experiment().empty())
      std::printf("experiment %s: %s\n", demo_experiment().c_str(), demo_experiment_title().c_str());
    print_table(rows);
  }
  return 0;
}

const Registrar reg_demo(
    "demo", "Perplexity table: the FP model and its quantized versions", [](CLI::App& sub) {
      auto o = std::make_shared<DemoOptions>();
      sub.add_option("--model", o->model, "model (default: <shared>/models/llama-22m-debtext)");
      sub.add_option("--data", o->data,
                     "evaluation text (default: <shared>/data/debtext-valid.txt)");
      sub.add_option("--seq", o->seq, "tokens predicted per chunk")->capture_default_str();
      sub.add_option("--max-chunks", o->max_chunks, "chunks evaluated (0 = all)")
          ->capture_default_str();
      sub.add_option("--tokenizer", o->tokenizer, "tokenizer file (default: beside the model)");
      sub.add_option("--tasks", o->tasks,
                     "zero-shot task files FILE[,FILE...]: accuracy columns for every row")
          ->delimiter(',');
      sub.add_option("--limit", o->limit, "score only the first N examples of each task file");
      sub.add_flag("--json", o->json, "print one JSON object");
      sub.add_option("--plot", o->plot,
                     "write an SVG: perplexity against rank (LRC, SVD; GPTQ and FP as lines) "
                     "and/or gap closed per row with per-seed points");
      sub.add_flag("--no-fp", o->no_fp, "skip the FP row (no gap closed is computed then)");
      sub.add_option("--jobs", o->jobs,
                     "rows run at once, each in a child process with threads/jobs threads "
                     "(0 = as many as threads, up to the rows; 1 = one after another here)")
          ->check(CLI::NonNegativeNumber)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
          ->capture_default_str();
      sub.add_option("--row", o->row, "(internal, --jobs) run only this row of the plan")
          ->group("");
      sub.add_option("--row-out", o->row_out, "(internal, --jobs) file for that row")->group("");
      for (const auto& s : demo_row_sources())
        if (s.add_options) s.add_options(sub);
      return [o] { return run_demo(*o); };
    });

}  // namespace
}  // namespace lrc::cli
