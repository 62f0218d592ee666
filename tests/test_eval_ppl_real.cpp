// The perplexity protocol on the real 22M model against its reference value:
// llama-22m-debtext on debtext-valid.txt, seq 512, first 24 chunks -> ppl 11.35 ± 0.02.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "lrc/eval/perplexity.h"
#include "lrc/io/model_loader.h"
#include "support/paths.h"

namespace {

const std::string kData = lrc::test::shared("data/debtext-valid.txt");

bool have_assets() {
  return std::filesystem::exists(lrc::test::default_model_dir() + "/config.json") &&
         std::filesystem::exists(kData);
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  pclose(p);
  return out;
}

}  // namespace

TEST(EvalPplReal, HfModelMatchesReference) {
  if (!have_assets()) GTEST_SKIP() << "llama-22m-debtext assets absent";
  const auto lm = lrc::load_model(lrc::test::default_model_dir());
  const auto tokens = lrc::tokenize_corpus(kData, *lm.tokenizer);
  const auto r = lrc::perplexity(lm.model, tokens, 512, 24);
  std::printf("hf: ppl %.4f over %lld tokens\n", r.ppl, static_cast<long long>(r.tokens));
  EXPECT_EQ(r.chunks, 24);
  EXPECT_EQ(r.tokens, 24 * 512);
  EXPECT_NEAR(r.ppl, 11.35, 0.02);
}

// The llama2.c export through the CLI, with the HF sentencepiece model as tokenizer: the same
// ppl as the HF model (compared on the first 4 chunks to keep the test quick; the logits of
// the two exports agree to ~2e-5, test_model_real).
TEST(EvalPplReal, Llama2cCopyViaCliMatchesHf) {
  if (!have_assets()) GTEST_SKIP() << "llama-22m-debtext assets absent";
  const std::string dir = lrc::test::default_model_dir();
  const std::string out =
      run(lrc::test::lrc_binary() + " eval --model " + dir + "/llama2c/model.bin --tokenizer " +
          dir + "/tokenizer.model --data " + kData + " --seq 512 --max-chunks 4 --json");
  const auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "not JSON: " << out;
  for (const char* key : {"ppl", "nll", "tokens", "chunks", "seq", "seconds", "model"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["format"], "llama2c");
  EXPECT_EQ(j["chunks"], 4);
  const auto lm = lrc::load_model(dir);
  const auto r = lrc::perplexity(lm.model, lrc::tokenize_corpus(kData, *lm.tokenizer), 512, 4);
  std::printf("4 chunks: hf %.6f, llama2c + tokenizer.model %.6f\n", r.ppl, j["ppl"].get<double>());
  EXPECT_NEAR(j["ppl"].get<double>(), r.ppl, 1e-4);
}

// llama2.c's own tokenizer.bin tokenizes this text exactly as the sentencepiece model does
// (so `lrc eval` on llama2c/model.bin with its default tokenizer gives the same ppl).
TEST(EvalPplReal, Llama2cTokenizerBinGivesSameTokens) {
  if (!have_assets()) GTEST_SKIP() << "llama-22m-debtext assets absent";
  const std::string dir = lrc::test::default_model_dir();
  const auto sp = lrc::load_tokenizer(dir + "/tokenizer.model");
  const auto bin = lrc::load_tokenizer(dir + "/llama2c/tokenizer.bin");
  const auto a = lrc::tokenize_corpus(kData, *sp);
  const auto b = lrc::tokenize_corpus(kData, *bin);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b);
}

TEST(EvalPplReal, CliErrorsAreOneLineAndNonZero) {
  if (!have_assets()) GTEST_SKIP() << "llama-22m-debtext assets absent";
  const std::string cmd = lrc::test::lrc_binary() + " eval --model " +
                          lrc::test::default_model_dir() + " --data /nonexistent/x.txt";
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("error: /nonexistent/x.txt"), std::string::npos) << out;
}
