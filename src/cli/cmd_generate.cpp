// lrc generate: text continuation with llama2.c run.c semantics (include/lrc/eval/generate.h).
// The output starts with the prompt's own text, then the continuation, then a newline.
//   reproduce a line of llama2c/greedy.tsv (run.c -n 48 -t 0):
//     lrc generate --model DIR --prompt "A computer is" --steps 48
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/backend_flags.h"
#include "cli/command_registry.h"
#include "lrc/core/error.h"
#include "lrc/io/model_loader.h"
#include "lrc/eval/generate.h"
#include "lrc/kernels/registry.h"

namespace lrc::cli {
namespace {

struct GenerateCliOptions {
  std::string model, prompt, tokenizer;
  bool chat = false;
  std::string device = "cpu", kernels = "real", lm_head = "fp", gpu_math = "fp32";
  GenerateOptions gen;
};

int run_generate(GenerateCliOptions o) {
  LoadedModel lm = load_model(o.model, o.tokenizer);
  lm.model.backend = make_backend(o.device, o.kernels, /*decoding=*/true, o.gpu_math);
  apply_lm_head_option(lm.model, o.lm_head);
  (void)hand_over_and_measure(lm.model);  // the kernels' copies become the only ones
  // ChatML, as SmolLM2-Instruct's chat template (without its default system turn).
  if (o.chat) o.prompt = "<|im_start|>user\n" + o.prompt + "<|im_end|>\n<|im_start|>assistant\n";
  const auto t0 = std::chrono::steady_clock::now();
  const GenerateResult r =
      generate(lm.model, *lm.tokenizer, o.prompt, o.gen, [](const std::string& piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      });
  std::printf("\n");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const size_t n_new = r.tokens.size() - r.n_prompt;
  std::fprintf(stderr, "generate: %d prompt + %zu new tokens in %.2fs (%.1f tok/s, %s)%s\n",
               r.n_prompt, n_new, s, (r.n_prompt + n_new) / s,
               lm.model.run_backend().name().c_str(), r.stopped ? ", stopped at BOS/EOS" : "");
  return 0;
}

const Registrar reg_generate(
    "generate", "Continue a prompt (greedy at temperature 0), streaming to stdout",
    [](CLI::App& sub) {
      auto o = std::make_shared<GenerateCliOptions>();
      sub.add_option("--model", o->model, "HF directory, llama2.c .bin, GGUF or lrc checkpoint")
          ->required();
      sub.add_option("--prompt", o->prompt, "prompt text")->required();
      sub.add_option("--max-tokens", o->gen.max_tokens, "new tokens after the prompt")
          ->capture_default_str();
      sub.add_option("--steps", o->gen.steps,
                     "llama2.c run.c -n: total positions incl. BOS and prompt (overrides "
                     "--max-tokens)");
      sub.add_option("--temperature", o->gen.temperature, "0 = greedy")->capture_default_str();
      sub.add_option("--seed", o->gen.seed, "sampling seed")->capture_default_str();
      sub.add_option("--tokenizer", o->tokenizer, "tokenizer file (default: beside the model)");
      sub.add_flag(
          "--chat", o->chat,
          "wrap the prompt as a ChatML user turn (<|im_start|>user ... <|im_start|>assistant)");
      add_backend_options(sub, o->device, o->kernels, o->gpu_math);
      add_lm_head_option(sub, o->lm_head);
      return [o] { return run_generate(*o); };
    });

}  // namespace
}  // namespace lrc::cli
