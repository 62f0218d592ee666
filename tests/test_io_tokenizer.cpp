// Tokenizers: llama2.c encode against a brute-force transcription of run.c, sentencepiece
// vs tokenizer.bin on real text, decode round trips, and bad input.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "lrc/core/error.h"
#include "lrc/io/tokenizer.h"
#include "support/paths.h"
#include "tokenizer_decode.h"

namespace fs = std::filesystem;
using namespace lrc;

namespace {

std::string sp_model() { return test::default_model_dir() + "/tokenizer.model"; }
std::string l2c_tok() { return test::default_model_dir() + "/llama2c/tokenizer.bin"; }
bool have_tokenizers() { return fs::exists(sp_model()) && fs::exists(l2c_tok()); }

std::vector<std::string> read_lines(const std::string& path, size_t max_lines) {
  std::ifstream f(path);
  std::vector<std::string> out;
  for (std::string line; out.size() < max_lines && std::getline(f, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// run.c's encode(), transcribed literally (bos = eos = 0): every merge step rescans all
// adjacent pairs with a fresh lookup. O(n^2) lookups per merge: the reference, not the
// implementation.
struct RunCReference {
  std::vector<std::string> vocab;
  std::vector<float> scores;
  std::map<std::string, int> sorted;  // run.c: bsearch over the sorted vocabulary

  explicit RunCReference(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    int32_t max_len;
    f.read(reinterpret_cast<char*>(&max_len), 4);
    float score;
    int32_t len;
    while (f.read(reinterpret_cast<char*>(&score), 4) && f.read(reinterpret_cast<char*>(&len), 4)) {
      std::string s(static_cast<size_t>(len), '\0');
      f.read(s.data(), len);
      vocab.push_back(s);
      scores.push_back(score);
    }
    for (int i = 0; i < static_cast<int>(vocab.size()); ++i) sorted.emplace(vocab[i], i);
  }
  int lookup(const std::string& s) const {
    auto it = sorted.find(s);
    return it == sorted.end() ? -1 : it->second;
  }
  std::vector<int> encode(const std::string& text) const {
    std::vector<int> tokens;
    if (!text.empty()) tokens.push_back(lookup(" "));
    std::string buf;
    const char* c = text.c_str();
    for (; *c != '\0'; c++) {
      if ((*c & 0xC0) != 0x80) buf.clear();
      buf += *c;
      if ((*(c + 1) & 0xC0) == 0x80 && buf.size() < 4) continue;
      const int id = lookup(buf);
      if (id != -1) {
        tokens.push_back(id);
      } else {
        for (unsigned char b : buf) tokens.push_back(b + 3);
      }
      buf.clear();
    }
    while (true) {
      float best_score = -1e10f;
      int best_id = -1, best_idx = -1;
      for (int i = 0; i + 1 < static_cast<int>(tokens.size()); i++) {
        const int id = lookup(vocab[tokens[i]] + vocab[tokens[i + 1]]);
        if (id != -1 && scores[id] > best_score) {
          best_score = scores[id];
          best_id = id;
          best_idx = i;
        }
      }
      if (best_idx == -1) break;
      tokens[best_idx] = best_id;
      tokens.erase(tokens.begin() + best_idx + 1);
    }
    return tokens;
  }
};

using lrc::test::decode_all;

void expect_error(const std::string& path, std::initializer_list<std::string> needles) {
  try {
    load_tokenizer(path);
    FAIL() << "no error loading " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

}  // namespace

TEST(Llama2cTokenizer, EncodeMatchesRunCReference) {
  if (!have_tokenizers()) GTEST_SKIP() << "no " << l2c_tok();
  const auto tok = load_tokenizer(l2c_tok());
  const RunCReference ref(l2c_tok());
  EXPECT_EQ(tok->kind(), "llama2c");
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos());
  std::vector<std::string> texts = read_lines(test::shared("data/debtext-valid.txt"), 60);
  // Edge cases: empty, whitespace runs, multi-byte UTF-8, codepoints outside the
  // vocabulary (byte fallback), a stray continuation byte, invalid UTF-8.
  texts.insert(texts.end(), {"", " ", "   a  b   ", "héllo wörld — ünïcödé", "日本語のテキスト",
                             "emoji \xF0\x9F\xA6\x99 and \xE2\x82\xAC", "\x80\x80 stray",
                             "tab\there\nnewline", "\xF0\x9F\x98\x80\x80\x80"});
  std::mt19937 rng(3);
  for (int k = 0; k < 20; ++k) {  // random byte strings
    std::string s(1 + rng() % 40, '\0');
    for (auto& ch : s) ch = static_cast<char>(1 + rng() % 255);
    texts.push_back(s);
  }
  for (const auto& t : texts) {
    const auto got = tok->encode(t);
    EXPECT_EQ(got, ref.encode(t)) << "text: " << t;
  }
}

TEST(Llama2cTokenizer, DecodeLikeRunC) {
  if (!have_tokenizers()) GTEST_SKIP() << "no " << l2c_tok();
  const auto tok = load_tokenizer(l2c_tok());
  const RunCReference ref(l2c_tok());
  const int nl = ref.lookup("<0x0A>");
  ASSERT_GE(nl, 0);
  EXPECT_EQ(tok->decode(5, nl), "\n");
  const int the = ref.lookup(" the");
  ASSERT_GE(the, 0);
  EXPECT_EQ(tok->decode(1, the), "the");   // after BOS: leading space stripped
  EXPECT_EQ(tok->decode(5, the), " the");  // elsewhere kept
  EXPECT_THROW(tok->decode(1, 32000), Error);
  // Round trip: decoding the ids (after BOS) reproduces the text exactly.
  for (const auto& line : read_lines(test::shared("data/debtext-valid.txt"), 300))
    EXPECT_EQ(decode_all(*tok, tok->encode(line)), line);
}

TEST(SentencePieceTokenizer, BasicsAndRoundTrip) {
  if (!have_tokenizers()) GTEST_SKIP() << "no " << sp_model();
  const auto tok = load_tokenizer(sp_model());
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos());
  const auto ids = tok->encode("Hello world");
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids.front(), tok->bos_id());  // no BOS/EOS added
  EXPECT_NE(ids.back(), tok->eos_id());
  EXPECT_EQ(tok->decode(tok->bos_id(), ids[0]), "Hello");
  EXPECT_EQ(tok->decode(ids[0], ids[0])[0], ' ');
  EXPECT_EQ(tok->decode(0, 3 + '\n'), "\n");     // byte-fallback piece <0x0A>
  EXPECT_EQ(tok->decode(0, tok->eos_id()), "");  // control token
  EXPECT_TRUE(tok->encode("").empty());
  for (const auto& line : read_lines(test::shared("data/debtext-valid.txt"), 300))
    EXPECT_EQ(decode_all(*tok, tok->encode(line)), line);
  EXPECT_EQ(decode_all(*tok, tok->encode("emoji \xF0\x9F\xA6\x99 日本")),
            "emoji \xF0\x9F\xA6\x99 日本");
}

// sentencepiece's BPE and run.c's greedy highest-score merge could in principle differ.
// Measured: identical ids on every line of debtext-valid/calib and wikitext2-valid/test
// (18067 lines), so the test demands identity on debtext-valid.
TEST(Tokenizers, SentencePieceVsLlama2cOnDebtextValid) {
  const std::string valid = test::shared("data/debtext-valid.txt");
  if (!have_tokenizers() || !fs::exists(valid)) GTEST_SKIP() << "no tokenizers/data";
  const auto sp = load_tokenizer(sp_model());
  const auto l2c = load_tokenizer(l2c_tok());
  const auto lines = read_lines(valid, 1000000);
  size_t same = 0, sp_tokens = 0, l2c_tokens = 0;
  double t_sp = 0, t_l2c = 0;
  std::string first_diff;
  for (const auto& line : lines) {
    auto t0 = std::chrono::steady_clock::now();
    const auto a = sp->encode(line);
    auto t1 = std::chrono::steady_clock::now();
    const auto b = l2c->encode(line);
    auto t2 = std::chrono::steady_clock::now();
    t_sp += std::chrono::duration<double>(t1 - t0).count();
    t_l2c += std::chrono::duration<double>(t2 - t1).count();
    sp_tokens += a.size();
    l2c_tokens += b.size();
    if (a == b)
      ++same;
    else if (first_diff.empty())
      first_diff = line;
  }
  std::printf(
      "debtext-valid: %zu/%zu lines tokenize identically (%.2f%%); tokens sp %zu, "
      "llama2c %zu; encode time sp %.3f s, llama2c %.3f s\n",
      same, lines.size(), 100.0 * same / lines.size(), sp_tokens, l2c_tokens, t_sp, t_l2c);
  if (!first_diff.empty()) std::printf("first differing line: %s\n", first_diff.c_str());
  EXPECT_GT(lines.size(), 3000u);
  EXPECT_EQ(same, lines.size());
}

// ---- bad input -------------------------------------------------------------------------

TEST(TokenizerBadInput, MissingTokenizer) {
  const std::string dir = test::temp_dir("tok-missing");
  expect_error(dir + "/tokenizer.model", {"tokenizer file not found"});
  expect_error(dir + "/tokenizer.bin", {"tokenizer file not found"});
  EXPECT_THROW(load_sentencepiece_tokenizer(dir + "/x.model"), Error);
  EXPECT_THROW(load_llama2c_tokenizer(dir + "/x.bin"), Error);
  fs::remove_all(dir);
}

TEST(TokenizerBadInput, UnsupportedAndCorruptFiles) {
  const std::string dir = test::temp_dir("tok-bad");
  std::ofstream(dir + "/vocab.txt") << "hello\n";
  expect_error(dir + "/vocab.txt", {"unsupported tokenizer file"});
  std::ofstream(dir + "/tokenizer.model") << "this is not a protobuf";
  expect_error(dir + "/tokenizer.model", {"not a sentencepiece model"});
  {  // tokenizer.bin whose second token claims 1000 bytes
    std::ofstream f(dir + "/tokenizer.bin", std::ios::binary);
    const int32_t max_len = 8, len1 = 1, len2 = 1000;
    const float score = 0.f;
    f.write(reinterpret_cast<const char*>(&max_len), 4);
    f.write(reinterpret_cast<const char*>(&score), 4);
    f.write(reinterpret_cast<const char*>(&len1), 4);
    f << "a";
    f.write(reinterpret_cast<const char*>(&score), 4);
    f.write(reinterpret_cast<const char*>(&len2), 4);
    f << "bc";
  }
  expect_error(dir + "/tokenizer.bin", {"token 1", "length 1000", "past the end"});
  {  // well-formed but without the 256 byte tokens encode() falls back to (found by fuzzing:
     // encoding "é" read past the vocabulary)
    std::ofstream f(dir + "/tokenizer.bin", std::ios::binary);
    const int32_t max_len = 8, len = 1;
    f.write(reinterpret_cast<const char*>(&max_len), 4);
    for (int i = 0; i < 40; ++i) {
      const float score = -static_cast<float>(i);
      f.write(reinterpret_cast<const char*>(&score), 4);
      f.write(reinterpret_cast<const char*>(&len), 4);
      f << static_cast<char>('0' + i);
    }
  }
  expect_error(dir + "/tokenizer.bin", {"vocabulary has 40 tokens", "at least 259"});
  fs::create_directories(dir + "/sub.model");
  expect_error(dir + "/sub.model", {"directory"});
  fs::remove_all(dir);
}
