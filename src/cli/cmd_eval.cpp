// lrc eval: perplexity of a model on a text file (protocol: include/lrc/io/corpus.h and
// include/lrc/eval/perplexity.h).
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/backend_flags.h"
#include "cli/command_registry.h"
#include "lrc/core/error.h"
#include "lrc/eval/perplexity.h"
#include "lrc/eval/zero_shot.h"
#include "lrc/io/model_loader.h"
#include "lrc/kernels/registry.h"

namespace lrc::cli {
namespace {

struct EvalOptions {
  std::string model, data, tokenizer;
  int seq = 512;
  int max_chunks = 0;
  int batch = 0;
  bool json = false;
  std::vector<std::string> tasks;  // zero-shot task files (include/lrc/eval/zero_shot.h)
  int64_t limit = -1;
  std::string device = "cpu", kernels = "real", lm_head = "fp", gpu_math = "fp32";
};

// Zero-shot accuracy on --tasks files: a table, or its fields merged into the JSON object.
void run_tasks(const EvalOptions& o, const LoadedModel& lm, nlohmann::json* j) {
  const ZeroShotResults z = evaluate_tasks(lm.model, *lm.tokenizer, o.tasks, o.limit, stderr);
  if (j)
    j->update(task_results_json(z));
  else
    std::printf("%s", format_task_table(z).c_str());
}

int run_eval(const EvalOptions& o) {
  if (o.data.empty() && o.tasks.empty())
    fail("lrc eval", "give --data (perplexity) and/or --tasks (zero-shot accuracy)");
  LoadedModel lm = load_model(o.model, o.tokenizer);
  lm.model.backend = make_backend(o.device, o.kernels, /*decoding=*/false, o.gpu_math);
  apply_lm_head_option(lm.model, o.lm_head);
  const LinearMemory mem = hand_over_and_measure(lm.model);
  if (o.data.empty()) {
    nlohmann::json j = {
        {"model", o.model}, {"format", lm.format}, {"tokenizer", lm.tokenizer->kind()}};
    run_tasks(o, lm, o.json ? &j : nullptr);
    if (o.json) std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  const std::vector<int32_t> tokens = tokenize_corpus(o.data, *lm.tokenizer);
  std::fprintf(stderr, "eval: %s (%s), %s: %zu tokens, backend %s\n", o.model.c_str(),
               lm.format.c_str(), o.data.c_str(), tokens.size(),
               lm.model.run_backend().name().c_str());
  const PplResult r = perplexity(lm.model, tokens, o.seq, o.max_chunks, o.batch);
  if (o.json) {
    nlohmann::json j = {{"ppl", r.ppl},        {"nll", r.nll},
                        {"tokens", r.tokens},  {"chunks", r.chunks},
                        {"seq", r.seq},        {"seconds", r.seconds},
                        {"model", o.model},    {"data", o.data},
                        {"format", lm.format}, {"tokenizer", lm.tokenizer->kind()},
                        {"backend", lm.model.run_backend().name()}, {"lm_head", o.lm_head},
                        {"linears_mb", mem.resident_mb}, {"linears_mb_accounted", mem.accounted_mb},
                        {"rss_mb_loaded", mem.rss_before_mb}, {"rss_mb_handed_over", mem.rss_after_mb}};
    if (!o.tasks.empty()) run_tasks(o, lm, &j);
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("ppl %.4f  (nll %.5f over %lld tokens, %d chunks of %d, %.1fs)\n", r.ppl, r.nll,
                static_cast<long long>(r.tokens), r.chunks, r.seq, r.seconds);
    if (!o.tasks.empty()) run_tasks(o, lm, nullptr);
  }
  return 0;
}

const Registrar reg_eval(
    "eval", "Perplexity (--data) and/or zero-shot accuracy (--tasks)", [](CLI::App& sub) {
      auto o = std::make_shared<EvalOptions>();
      sub.add_option("--model", o->model, "HF directory, llama2.c .bin, GGUF or lrc checkpoint")
          ->required();
      sub.add_option("--data", o->data, "text file (one document a line): perplexity");
      sub.add_option("--tasks", o->tasks, "zero-shot task files FILE[,FILE...] (lrc tasks make)")
          ->delimiter(',');
      sub.add_option("--limit", o->limit, "score only the first N examples of each task file");
      sub.add_option("--seq", o->seq, "tokens predicted per chunk (chunks hold seq+1)")
          ->capture_default_str();
      sub.add_option("--max-chunks", o->max_chunks, "evaluate only the first N chunks (0 = all)")
          ->capture_default_str();
      sub.add_option("--batch", o->batch, "chunks per prefill (0 = automatic)")
          ->capture_default_str();
      sub.add_option("--tokenizer", o->tokenizer, "tokenizer file (default: beside the model)");
      add_backend_options(sub, o->device, o->kernels, o->gpu_math);
      add_lm_head_option(sub, o->lm_head);
      sub.add_flag("--json", o->json, "print one JSON object");
      return [o] { return run_eval(*o); };
    });

}  // namespace
}  // namespace lrc::cli
