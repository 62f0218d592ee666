// lrc speed: prompt-processing and generation speed of a model, the way llama-bench measures
// them (its pp512 / tg128), so the two tools can be set side by side on the same cores:
//   prefill: one Decoder::forward over `--prefill` tokens from an empty cache   -> tokens/s
//   decode:  `--decode` single-token steps from an empty cache                  -> tokens/s
// Tokens are fixed pseudo-random ids (speed does not depend on them). Each figure is the mean
// (± sd) of --reps runs after one warm-up run; threads: OMP_NUM_THREADS.
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/backend_flags.h"
#include "cli/command_registry.h"
#include "lrc/core/error.h"
#include "lrc/io/model_loader.h"
#include "lrc/kernels/registry.h"
#include "lrc/model/forward.h"

namespace lrc::cli {
namespace {

struct SpeedOptions {
  std::string model, tokenizer, device = "cpu", kernels = "real", lm_head = "fp",
      gpu_math = "fp32";
  int prefill = 512, decode = 128, reps = 3;
  bool json = false;
};

struct Stat {
  double mean = 0, sd = 0;
};

Stat stat_of(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / static_cast<double>(v.size() - 1)) : 0.0;
  return s;
}

int run_speed(const SpeedOptions& o) {
  if (o.prefill < 1 || o.decode < 1 || o.reps < 1)
    fail("lrc speed", "--prefill, --decode and --reps must be at least 1");
  LoadedModel lm = load_model(o.model, o.tokenizer);
  LlamaModel& m = lm.model;
  apply_lm_head_option(lm.model, o.lm_head);
  if (m.cfg.max_seq_len > 0 && std::max(o.prefill, o.decode) > m.cfg.max_seq_len)
    fail("lrc speed", "--prefill/--decode exceed the model's context of " +
                          std::to_string(m.cfg.max_seq_len) + " tokens");
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> id(0, m.cfg.vocab_size - 1);
  std::vector<int32_t> tokens(static_cast<size_t>(std::max(o.prefill, o.decode)));
  for (auto& t : tokens) t = id(rng);
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };

  std::vector<double> pp, tg;
  // Real kernels: one backend for both runs, holding the only copy of the linears, as eval and
  // generate run them (Backend::take_over); the simulation keeps each Ŵ dequantized for the
  // decode run only.
  const bool one_backend = o.kernels == "real";
  if (one_backend) {
    m.backend = make_backend(o.device, o.kernels, /*decoding=*/false, o.gpu_math);
    (void)hand_over_and_measure(m);
  }
  for (const bool decode_run : {false, true}) {
    if (!one_backend)
      m.backend = make_backend(o.device, o.kernels, /*decoding=*/decode_run, o.gpu_math);
    for (int r = 0; r <= o.reps; ++r) {  // r = 0: warm-up (repacking, page faults)
      Decoder dec(m, decode_run ? o.decode : o.prefill);
      const auto t0 = Clock::now();
      if (decode_run)
        for (int i = 0; i < o.decode; ++i) dec.step(tokens[static_cast<size_t>(i)]);
      else
        dec.forward(tokens.data(), o.prefill);
      const double s = seconds(t0);
      if (r > 0) (decode_run ? tg : pp).push_back((decode_run ? o.decode : o.prefill) / s);
    }
  }
  const Stat p = stat_of(pp), g = stat_of(tg);
  const std::string backend = m.run_backend().name();
  const int threads = omp_get_max_threads();
  if (o.json) {
    const nlohmann::json j = {{"model", o.model},     {"format", lm.format},
                              {"backend", backend},   {"threads", threads},
                              {"prefill", o.prefill}, {"prefill_tok_s", p.mean},
                              {"prefill_sd", p.sd},   {"decode", o.decode},
                              {"decode_tok_s", g.mean}, {"decode_sd", g.sd},
                              {"reps", o.reps},         {"lm_head", o.lm_head}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s  %s  lm-head %s  threads %d  pp%d %.1f ± %.1f tok/s  tg%d %.1f ± %.1f tok/s\n",
                o.model.c_str(), backend.c_str(), o.lm_head.c_str(), threads, o.prefill, p.mean,
                p.sd, o.decode,
                g.mean, g.sd);
  }
  return 0;
}

const Registrar reg_speed(
    "speed", "prefill and decode tokens/s (llama-bench's pp/tg), --kernels real|sim",
    [](CLI::App& sub) {
      auto o = std::make_shared<SpeedOptions>();
      sub.add_option("--model", o->model, "HF directory, llama2.c .bin, GGUF or lrc checkpoint")
          ->required();
      sub.add_option("--tokenizer", o->tokenizer, "tokenizer file (default: beside the model)");
      sub.add_option("--prefill", o->prefill, "prompt tokens in one pass")->capture_default_str();
      sub.add_option("--decode", o->decode, "single-token steps")->capture_default_str();
      sub.add_option("--reps", o->reps, "timed runs of each (after one warm-up)")
          ->capture_default_str();
      add_backend_options(sub, o->device, o->kernels, o->gpu_math);
      add_lm_head_option(sub, o->lm_head);
      sub.add_flag("--json", o->json, "print one JSON object");
      return [o] { return run_speed(*o); };
    });

}  // namespace
}  // namespace lrc::cli
