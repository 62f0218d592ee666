// The forward pass on the real 22M model: HF (HalfSplit RoPE) and llama2.c (Interleaved)
// exports give the same logits, prefill == decode, and greedy generation reproduces
// llama2c/greedy.tsv (run.c -n 48 -t 0) from both.
//
// greedy.tsv rows are "prompt TAB output": output is run.c's stdout (the prompt's text, the
// continuation, run.c's final newline) on one line, the newline written as a space; `lrc
// generate --steps 48` prints the same text and newline.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lrc/io/model_loader.h"
#include "lrc/model/forward.h"
#include "lrc/eval/generate.h"
#include "support/paths.h"

namespace {

std::string dir() { return lrc::test::default_model_dir(); }
bool have_assets() {
  return std::filesystem::exists(dir() + "/config.json") &&
         std::filesystem::exists(dir() + "/llama2c/model.bin");
}

const lrc::LoadedModel& hf() {
  static const lrc::LoadedModel m = lrc::load_model(dir());
  return m;
}
const lrc::LoadedModel& l2c() {
  static const lrc::LoadedModel m = lrc::load_model(dir() + "/llama2c/model.bin");
  return m;
}

std::vector<std::pair<std::string, std::string>> greedy_rows() {
  std::vector<std::pair<std::string, std::string>> rows;
  std::ifstream in(dir() + "/llama2c/greedy.tsv");
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    if (tab != std::string::npos) rows.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return rows;
}

std::vector<int32_t> text_tokens(const lrc::Tokenizer& tok, const std::string& text) {
  std::vector<int32_t> t = {tok.bos_id()};
  for (int id : tok.encode(text)) t.push_back(id);
  return t;
}

const char* kText =
    "Rowel \\Row\"el\\, n. [OF. roele, rouele, properly, a little wheel, F. rouelle collop, "
    "slice, LL. rotella a little wheel, dim. of L. rota a wheel.] 1. The little wheel of a spur.";

}  // namespace

TEST(ModelReal, HfAndLlama2cLogitsAgree) {
  if (!have_assets()) GTEST_SKIP() << "llama-22m-debtext assets absent";
  EXPECT_EQ(hf().model.cfg.rope, lrc::RopeStyle::HalfSplit);
  EXPECT_EQ(l2c().model.cfg.rope, lrc::RopeStyle::Interleaved);
  const auto toks = text_tokens(*hf().tokenizer, kText);
  const int T = static_cast<int>(toks.size());
  const auto a = lrc::forward_logits(hf().model, toks.data(), 1, T);
  const auto b = lrc::forward_logits(l2c().model, toks.data(), 1, T);
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  std::printf("%d tokens, max |logit_hf - logit_llama2c| = %.3g\n", T, worst);
  EXPECT_LT(worst, 1e-3);
}

TEST(ModelReal, DecoderMatchesPrefill) {
  if (!have_assets()) GTEST_SKIP() << "llama-22m-debtext assets absent";
  const auto& m = hf().model;
  const auto toks = text_tokens(*hf().tokenizer, kText);
  const int T = static_cast<int>(toks.size()), V = m.cfg.vocab_size;
  const auto ref = lrc::forward_logits(m, toks.data(), 1, T);
  lrc::Decoder dec(m, T);
  double worst = 0;
  for (int t = 0; t < T; ++t) {
    const auto& l = dec.step(toks[t]);
    for (int j = 0; j < V; ++j)
      worst = std::max(worst, double(std::fabs(l[j] - ref[static_cast<size_t>(t) * V + j])));
  }
  EXPECT_LT(worst, 1e-4);
}

TEST(ModelReal, GreedyReproducesLlama2cRunC) {
  if (!have_assets()) GTEST_SKIP() << "llama-22m-debtext assets absent";
  const auto rows = greedy_rows();
  ASSERT_FALSE(rows.empty());
  for (const auto* lm : {&hf(), &l2c()})
    for (const auto& [prompt, expected] : rows) {
      lrc::GenerateOptions opt;
      opt.steps = 48;
      const auto r = lrc::generate(lm->model, *lm->tokenizer, prompt, opt);
      const std::string got = r.text + " ";  // run.c's final newline, as the TSV writes it
      if (got != expected) {
        std::printf("top-1 minus top-2 logit at each generated step:");
        for (float mg : r.top2_margins) std::printf(" %.3f", mg);
        std::printf("\n");
      }
      EXPECT_EQ(got, expected) << lm->format << " prompt: " << prompt;
    }
}

TEST(ModelReal, GenerateCliReproducesGreedyTsv) {
  if (!have_assets()) GTEST_SKIP() << "llama-22m-debtext assets absent";
  const auto rows = greedy_rows();
  ASSERT_FALSE(rows.empty());
  const auto& [prompt, expected] = rows.back();
  const std::string cmd = lrc::test::lrc_binary() + " generate --model " + dir() +
                          "/llama2c/model.bin --prompt '" + prompt + "' --steps 48 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0);
  std::replace(out.begin(), out.end(), '\n', ' ');
  EXPECT_EQ(out, expected);
}
