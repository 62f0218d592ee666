// The rows of `lrc demo`. Each method contributes rows through a DemoRowSource registered
// from its own file (like subcommands), so adding the quantized rows touches no other file:
//
//   static const lrc::cli::DemoRowRegistrar reg({/*order*/ 10, add_my_options, plan_my_rows});
//
// A source plans its rows as jobs (one per row) from the options alone; the demo then loads
// the FP model and the evaluation tokens once and runs the jobs in `order` (FP is 0), or, with
// --jobs N > 1, runs them N at a time in child processes of the same binary (demo_lanes.cpp),
// largest first. Gap closed is computed once every row is in. The table prints method, rank,
// ppl, gap closed, bits/weight, seconds.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lrc/eval/zero_shot.h"
#include "lrc/io/model_loader.h"

namespace lrc::cli {

struct DemoContext {
  const LoadedModel& fp;               // the model as loaded (FP weights, tokenizer)
  const std::vector<int32_t>& tokens;  // evaluation corpus (tokenize_corpus of data_file)
  std::string model_path, data_file, shared_dir;
  int seq = 512, max_chunks = 24;
  std::vector<std::string> task_files;  // zero-shot task files (--tasks); may be empty
  int64_t task_limit = -1;              // first N examples of each (--limit)
};

struct DemoRow {
  std::string method;                         // "fp", "rtn", "gptq", "svd", "lrc", ...
  std::string settings;                       // free text, e.g. "W4A4 g128"
  double rank = 0;                            // low-rank size: fraction of each matrix, or integer
  double ppl = 0;                             // mean over ppl_seeds
  std::vector<double> ppl_seeds;              // one per rotation seed (--seeds)
  bool clip_searched = false;                 // --a-clip search
  std::optional<double> gap_closed;           // (ppl_base - ppl) / (ppl_base - ppl_fp); none for fp
  std::optional<double> gap_closed_searched;  // the same against GPTQ with searched clip
  double bits_per_weight = 16;
  double size_mb = 0;                        // model_size_mb
  double seconds = 0;                        // wall time of the row (quantization + perplexity)
  std::optional<ZeroShotResults> zero_shot;  // with --tasks (its own .seconds)
  nlohmann::json linears;                    // per quantized linear: name, rank, a_clip
  std::optional<double> acc_gap_closed;      // (acc_avg - acc_base) / (acc_fp - acc_base)
};

// Fills row.zero_shot with the accuracy of `model` on ctx.task_files (no-op without --tasks).
void score_row_tasks(const DemoContext& ctx, const LlamaModel& model, DemoRow& row);

// The quantized rows' --device (demo_quantized_rows.cpp): cpu, or cuda[:N] for the GPU pipeline
// and GPU evaluation.
const std::string& demo_device();
const std::string& demo_gpu_math();  // --gpu-math (the FP row's evaluation too)
// --experiment (demo_quantized_rows.cpp): its name and the paper's table or figure it mirrors,
// empty without one.
std::string demo_experiment();
std::string demo_experiment_title();

// The model's size in MB as the paper's tables give it: the linears of the layers at
// linear_bits_per_weight (codes, scales and low-rank factors: QuantizeReport::bits_per_weight),
// everything else (embeddings, LM head unless tied, norms) in 16 bits.
double model_size_mb(const LlamaConfig& cfg, double linear_bits_per_weight);

// One row to compute. run() is self-contained (it may load its own calibration set), so a
// child process can run any one job of the plan on its own.
struct DemoJob {
  std::string label;  // "lrc 0.1", for progress lines
  double cost = 1;    // relative run time estimate: --jobs starts the largest first
  std::function<DemoRow(const DemoContext&)> run;
};

struct DemoPlanContext {
  bool skip_fp = false;  // --no-fp
};

struct DemoRowSource {
  int order = 0;
  std::function<void(CLI::App&)> add_options;  // may be empty
  std::function<std::vector<DemoJob>(const DemoPlanContext&)> plan;
};

std::vector<DemoRowSource>& demo_row_sources();

// Row <-> JSON, the child -> parent transfer of --jobs (doubles round-trip): every field a row
// computes itself; the gap-closed fields are left to the parent (fill_gap_closed).
nlohmann::json demo_row_to_wire(const DemoRow& r);
DemoRow demo_row_from_wire(const nlohmann::json& j);

// Runs every job in a child process, `lanes` at a time (largest cost first), each with
// `threads` OpenMP/OpenBLAS threads: `argv` (this process's command line) plus
// `--jobs 1 --row i --row-out FILE` for job i. Returns the rows in job order. Child stderr goes
// to a log file, shown when the child fails; progress lines go to stderr.
std::vector<DemoRow> run_demo_lanes(const std::vector<DemoJob>& jobs, int lanes, int threads,
                                    const std::vector<std::string>& argv);

struct DemoRowRegistrar {
  explicit DemoRowRegistrar(DemoRowSource s) { demo_row_sources().push_back(std::move(s)); }
};

}  // namespace lrc::cli
