// Generation semantics (llama2.c run.c) on a random model with a byte tokenizer: greedy equals
// the argmax chain of the prefill, step counting, stop tokens, seeded sampling.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "lrc/model/forward.h"
#include "lrc/eval/generate.h"
#include "support/byte_tokenizer.h"
#include "support/random_model.h"

namespace {

using lrc::test::ByteTokenizer;

lrc::LlamaModel model(uint64_t seed) {
  return lrc::test::random_model(lrc::test::tiny_config(64, 96, 2, 4, 2, 259, 64), seed);
}

}  // namespace

TEST(ModelGenerate, GreedyIsTheArgmaxChainAndStepsCountPositions) {
  auto m = model(1);
  m.cfg.bos_id = m.cfg.eos_id = -1;  // no stop token: run the full step budget
  const ByteTokenizer tok;
  lrc::GenerateOptions opt;
  opt.steps = 20;
  const auto r = lrc::generate(m, tok, "abc", opt);
  ASSERT_EQ(r.n_prompt, 4);                                        // BOS a b c
  EXPECT_EQ(r.tokens.size(), static_cast<size_t>(opt.steps + 1));  // steps - P + 1 new tokens
  EXPECT_EQ(r.top2_margins.size(), static_cast<size_t>(opt.steps - r.n_prompt + 1));
  const int V = m.cfg.vocab_size;
  for (size_t t = r.n_prompt; t < r.tokens.size(); ++t) {
    const auto lg = lrc::forward_logits(m, r.tokens.data(), 1, static_cast<int>(t));
    const float* last = lg.data() + (t - 1) * V;
    EXPECT_EQ(r.tokens[t], std::max_element(last, last + V) - last) << "position " << t;
  }
  // The emitted text starts with the prompt itself, as run.c prints it.
  EXPECT_EQ(r.text.substr(0, 3), "abc");

  lrc::GenerateOptions by_new;
  by_new.max_tokens = 5;
  EXPECT_EQ(lrc::generate(m, tok, "abc", by_new).tokens.size(), 4u + 5u);
}

TEST(ModelGenerate, StopsAtEos) {
  auto m = model(2);
  m.cfg.bos_id = -1;
  const ByteTokenizer tok;
  lrc::GenerateOptions opt;
  opt.steps = 30;
  auto free_run = m;
  free_run.cfg.eos_id = -1;
  const auto r0 = lrc::generate(free_run, tok, "x", opt);
  // Make the first generated token the EOS id: generation must stop right there.
  m.cfg.eos_id = r0.tokens[r0.n_prompt];
  const auto r = lrc::generate(m, tok, "x", opt);
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.tokens.size(), static_cast<size_t>(r.n_prompt + 1));
  EXPECT_EQ(r.text, "x");
}

TEST(ModelGenerate, SeededSamplingIsReproducible) {
  auto m = model(3);
  m.cfg.bos_id = m.cfg.eos_id = -1;
  const ByteTokenizer tok;
  lrc::GenerateOptions opt;
  opt.max_tokens = 24;
  opt.temperature = 1.5f;
  opt.seed = 42;
  const auto a = lrc::generate(m, tok, "hi", opt);
  const auto b = lrc::generate(m, tok, "hi", opt);
  EXPECT_EQ(a.tokens, b.tokens);
  opt.seed = 43;
  const auto c = lrc::generate(m, tok, "hi", opt);
  EXPECT_NE(a.tokens, c.tokens);  // 24 draws at T = 1.5 over 259 tokens: equal by chance ~never
}
