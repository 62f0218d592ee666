// Perplexity protocol on synthetic inputs: corpus reading and its errors, the BOS / "\n"
// rule, blank lines, chunking, and batch-size invariance.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/eval/perplexity.h"
#include "lrc/model/forward.h"
#include "support/byte_tokenizer.h"
#include "support/paths.h"
#include "support/random_model.h"

namespace {

using lrc::test::ByteTokenizer;

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string p = dir + "/" + name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const lrc::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(EvalCorpus, BosBeforeEachLineEmptyLinesSkippedSpaceLinesKept) {
  const auto dir = lrc::test::temp_dir("corpus-bos");
  const auto f = write_file(dir, "a.txt", "ab\n\n \t\nc\n");  // an empty and a blank line
  const auto t = lrc::tokenize_corpus(f, ByteTokenizer(true));
  EXPECT_EQ(t, (std::vector<int32_t>{1, 'a' + 3, 'b' + 3, 1, ' ' + 3, '\t' + 3, 1, 'c' + 3}));
}

TEST(EvalCorpus, NoBosTokenizerEncodesLineWithNewline) {
  const auto dir = lrc::test::temp_dir("corpus-nobos");
  const auto f = write_file(dir, "a.txt", "ab\n\nc");  // no final newline: "c" is still a line
  const auto t = lrc::tokenize_corpus(f, ByteTokenizer(false));
  EXPECT_EQ(t, (std::vector<int32_t>{'a' + 3, 'b' + 3, '\n' + 3, 'c' + 3, '\n' + 3}));
}

TEST(EvalCorpus, ErrorsNameTheFile) {
  const auto dir = lrc::test::temp_dir("corpus-err");
  const ByteTokenizer tok(true);
  const auto missing = dir + "/missing.txt";
  EXPECT_NE(error_of([&] { lrc::tokenize_corpus(missing, tok); }).find(missing), std::string::npos);
  const auto empty = write_file(dir, "empty.txt", "");
  EXPECT_NE(error_of([&] { lrc::tokenize_corpus(empty, tok); }).find("empty"), std::string::npos);
  const auto bad = write_file(dir, "bad.txt", "ok\nbad \xC3\x28 here\n");
  const auto e = error_of([&] { lrc::tokenize_corpus(bad, tok); });
  EXPECT_NE(e.find(bad), std::string::npos);
  EXPECT_NE(e.find("UTF-8"), std::string::npos);
  EXPECT_NE(e.find("offset 7"), std::string::npos);
  const auto blank = write_file(dir, "blank.txt", "\n\n");
  EXPECT_NE(error_of([&] { lrc::tokenize_corpus(blank, tok); }), "");
  // Valid multi-byte UTF-8 (2, 3 and 4 bytes) is accepted.
  const auto good = write_file(dir, "good.txt", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\n");
  EXPECT_EQ(lrc::tokenize_corpus(good, tok).size(), 1u + 14u);  // BOS + 14 bytes
  // Overlong encodings and surrogates are not.
  const auto overlong = write_file(dir, "overlong.txt", "\xC0\xAF");
  EXPECT_NE(error_of([&] { lrc::tokenize_corpus(overlong, tok); }), "");
  const auto surrogate = write_file(dir, "surrogate.txt", "\xED\xA0\x80");
  EXPECT_NE(error_of([&] { lrc::tokenize_corpus(surrogate, tok); }), "");
}

TEST(EvalPerplexity, ChunksAreConsecutiveAndRemainderDropped) {
  const auto m = lrc::test::random_model(lrc::test::tiny_config(), 3);
  const int seq = 16, V = m.cfg.vocab_size;
  std::vector<int32_t> toks(5 * (seq + 1) + 7);  // 5 whole chunks and a remainder
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>((i * 31 + 7) % V);
  // Reference: chunk by chunk, predict tokens 1..seq of each from the ones before.
  double ref = 0;
  for (int c = 0; c < 3; ++c) {
    const auto lg = lrc::forward_logits(m, toks.data() + c * (seq + 1), 1, seq);
    for (int t = 0; t < seq; ++t) {
      double z = 0;
      for (int j = 0; j < V; ++j) z += std::exp(double(lg[t * V + j]));
      ref += std::log(z) - lg[t * V + toks[c * (seq + 1) + t + 1]];
    }
  }
  const auto r = lrc::perplexity(m, toks, seq, 3, 0, false);
  EXPECT_EQ(r.chunks, 3);
  EXPECT_EQ(r.tokens, 3 * seq);
  EXPECT_NEAR(r.nll, ref / (3 * seq), 1e-5);
  EXPECT_NEAR(r.ppl, std::exp(ref / (3 * seq)), 1e-4);
  EXPECT_EQ(lrc::perplexity(m, toks, seq, 0, 0, false).chunks, 5);  // 0 = all whole chunks
}

TEST(EvalPerplexity, BatchSizeDoesNotChangeResult) {
  const auto m = lrc::test::random_model(lrc::test::tiny_config(), 4);
  std::vector<int32_t> toks(7 * 33);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>((i * 13 + 5) % 97);
  const auto a = lrc::perplexity(m, toks, 32, 0, 1, false);
  const auto b = lrc::perplexity(m, toks, 32, 0, 3, false);
  EXPECT_EQ(a.chunks, 7);
  EXPECT_NEAR(a.nll, b.nll, 1e-6);
}

TEST(EvalPerplexity, TooFewTokensOrBadSeqThrow) {
  const auto m = lrc::test::random_model(lrc::test::tiny_config(), 5);
  std::vector<int32_t> toks(10, 3);
  EXPECT_THROW(lrc::perplexity(m, toks, 16, 0, 0, false), lrc::Error);
  EXPECT_THROW(lrc::perplexity(m, toks, 0, 0, 0, false), lrc::Error);
  EXPECT_THROW(lrc::perplexity(m, toks, 4096, 0, 0, false), lrc::Error);  // > max_seq_len 64
}
