// Text generation with llama2.c run.c semantics, on the KV-cache Decoder.
//
// The prompt becomes tokens p0..p(P-1) (BOS first when the tokenizer adds one). Position by
// position, as run.c's generate():
//   token = p0;  for pos = 0, 1, ... while pos < steps:
//     logits = decoder.step(token)
//     next = p(pos+1) while still inside the prompt, else sample(logits)
//     stop if next is BOS or EOS;  emit decode(token, next);  token = next
// So `steps` counts every position including BOS and the prompt (run.c's -n), the output
// starts with the prompt's own text, and the number of new tokens is steps - P + 1.
// temperature 0 is greedy (argmax, first index on ties); otherwise softmax(logits / T) sampled
// with a std::mt19937_64 seeded by `seed`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lrc/io/tokenizer.h"
#include "lrc/model/llama.h"

namespace lrc {

struct GenerateOptions {
  int steps = 0;        // run.c -n: total positions incl. BOS and prompt (0: use max_tokens)
  int max_tokens = 64;  // new tokens after the prompt (used when steps == 0)
  float temperature = 0.f;
  uint64_t seed = 0;
};

struct GenerateResult {
  std::vector<int32_t> tokens;      // prompt tokens then generated ones
  int n_prompt = 0;                 // P
  std::string text;                 // everything emitted (prompt text included)
  std::vector<float> top2_margins;  // per generated token: top-1 minus top-2 logit
  bool stopped = false;             // ended on BOS/EOS rather than on the step limit
};

// on_piece (optional) receives each emitted piece as soon as it is known (streaming).
// Pieces that are a single non-printable, non-space byte are dropped, as run.c's safe_printf.
GenerateResult generate(const LlamaModel& m, const Tokenizer& tok, const std::string& prompt,
                        const GenerateOptions& opt,
                        const std::function<void(const std::string&)>& on_piece = {});

}  // namespace lrc
