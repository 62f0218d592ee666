// The real GGUF model: SmolLM2-135M-Instruct (Q4_1 linears, Q8_0 embedding) from
// scripts/fetch-models.sh. Loads, dequantizes like the reference `gguf` Python package,
// scores wikitext2 (a 2-chunk run; the 16-chunk number is in docs/results.md) and answers
// "The capital of France is" with Paris.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "lrc/io/corpus.h"
#include "lrc/eval/perplexity.h"
#include "lrc/io/gguf.h"
#include "lrc/io/model_loader.h"
#include "lrc/model/forward.h"
#include "support/paths.h"

using namespace lrc;

namespace {

class SmolLM2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::filesystem::exists(lrc::test::smollm2_gguf()))
      lm_ = new LoadedModel(load_model(lrc::test::smollm2_gguf()));
  }
  static void TearDownTestSuite() { delete lm_; }
  void SetUp() override {
    if (!lm_) GTEST_SKIP() << lrc::test::smollm2_gguf() << " missing: run scripts/fetch-models.sh";
  }
  static LoadedModel* lm_;
};
LoadedModel* SmolLM2::lm_ = nullptr;

}  // namespace

TEST_F(SmolLM2, ConfigFromLlamaKeys) {
  const LlamaConfig& c = lm_->model.cfg;
  EXPECT_EQ(lm_->format, "gguf");
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.dim, 576);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.hidden_dim, 1536);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_seq_len, 8192);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.f);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  EXPECT_EQ(lm_->model.source_dtypes.at("model.embed_tokens.weight"), "Q8_0");
  EXPECT_EQ(lm_->model.source_dtypes.at("model.layers.17.mlp.down_proj.weight"), "Q4_1");
  EXPECT_EQ(lm_->model.source_dtypes.at("model.layers.17.input_layernorm.weight"), "F32");
  EXPECT_EQ(lm_->model.lm_head.w, lm_->model.tok_embeddings);
  EXPECT_EQ(lm_->tokenizer->kind(), "bpe");
  EXPECT_FALSE(lm_->tokenizer->add_bos());
}

// Values from gguf-py's reference dequantize() (gguf 0.19): a row's first values and the sum.
TEST_F(SmolLM2, DequantizationMatchesGgufPy) {
  const gguf::GgufFile f(lrc::test::smollm2_gguf());
  struct Ref {
    const char* name;
    int row, cols;
    double first[6];
    double sum;
  };
  const Ref refs[] = {
      {"token_embd.weight",
       1000,
       576,
       {-0.1119384765625, -0.0739593505859375, 0.0379791259765625, -0.0179901123046875,
        -0.1619110107421875, -0.0099945068359375},
       -15353.04449415207},
      {"blk.0.ffn_down.weight",
       5,
       1536,
       {-0.198577880859375, -0.127227783203125, -0.055877685546875, -0.055877685546875,
        0.015472412109375, 0.12249755859375},
       150.63577270507812},
      {"blk.29.attn_v.weight",
       191,
       576,
       {0.02117919921875, 0.12353515625, -0.6953125, 0.12353515625, 0.22589111328125,
        -0.18353271484375},
       -23.565185546875},
  };
  for (const Ref& r : refs) {
    const auto w = f.tensor_f32(*f.find_tensor(r.name));
    for (int j = 0; j < 6; ++j)
      EXPECT_NEAR(w[static_cast<size_t>(r.row) * r.cols + j], r.first[j], 1e-6)
          << r.name << " " << j;
    const double sum = std::accumulate(w.begin(), w.end(), 0.0);
    EXPECT_NEAR(sum, r.sum, 1e-3 * std::fabs(r.sum)) << r.name;
  }
}

// Perplexity of the first 2 chunks of 256 tokens of wikitext2-test, every line encoded as
// line + "\n" without BOS (the tokenization is spelled out here so the value depends only on
// the model and tokenizer, not on lrc eval's blank-line rule).
TEST_F(SmolLM2, WikitextPerplexityTwoChunks) {
  const std::string text = read_text_file(lrc::test::shared("data/wikitext2-test.txt"));
  std::vector<int32_t> tokens;
  for (size_t start = 0; start < text.size() && tokens.size() < 2 * 257;) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    for (int id : lm_->tokenizer->encode(text.substr(start, end - start) + "\n"))
      tokens.push_back(id);
    start = end + 1;
  }
  const PplResult r = perplexity(lm_->model, tokens, 256, 2, 0, false);
  EXPECT_EQ(r.tokens, 512);
  std::printf("SmolLM2 wikitext2-test seq 256, 2 chunks: ppl %.4f\n", r.ppl);
  EXPECT_NEAR(r.ppl, 22.17, 0.05);
}

TEST_F(SmolLM2, GreedyContinuationKnowsParis) {
  const Tokenizer& tok = *lm_->tokenizer;
  std::vector<int> ids = tok.encode("The capital of France is");
  Decoder d(lm_->model, 64);
  std::vector<int32_t> in(ids.begin(), ids.end());
  std::vector<float> logits = d.forward(in.data(), static_cast<int>(in.size()));
  std::string out;
  for (int i = 0; i < 6; ++i) {
    const int next =
        static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (next == tok.eos_id()) break;
    out += tok.decode(-1, next);
    logits = d.step(next);
  }
  EXPECT_NE(out.find("Paris"), std::string::npos) << "continuation: \"" << out << "\"";
}
