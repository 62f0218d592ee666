// SmolLM2's tokenizer against Hugging Face `tokenizers`: the golden ids in
// tests/data/smollm2_tokenizer_golden.json come from scripts/make-tokenizer-golden.py (HF's
// BPE built from the same GGUF vocabulary, Digits(individual) + ByteLevel pre-tokenizer).
// Needs the GGUF from scripts/fetch-models.sh and /work/shared/data/wikitext2-test.txt.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/byte_level.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/json_file.h"
#include "support/paths.h"

using namespace lrc;

namespace {

uint64_t fnv1a64(const std::vector<int>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int id : ids) {
    const uint32_t u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) h = (h ^ ((u >> (8 * k)) & 0xff)) * 0x100000001b3ull;
  }
  return h;
}

std::string hex64(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string list(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s + "]";
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i; (i = text.find('\n', start)) != std::string::npos; start = i + 1)
    lines.push_back(text.substr(start, i - start));
  if (start < text.size()) lines.push_back(text.substr(start));
  return lines;
}

class SmolLM2Golden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(lrc::test::smollm2_gguf())) return;
    tok_ = load_gguf_tokenizer(lrc::test::smollm2_gguf()).release();
    golden_ = new nlohmann::json(
        read_json_file(std::string(LRC_SOURCE_DIR) + "/tests/data/smollm2_tokenizer_golden.json"));
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete golden_;
  }
  void SetUp() override {
    if (!tok_) GTEST_SKIP() << lrc::test::smollm2_gguf() << " missing: run scripts/fetch-models.sh";
  }

  // Every wikitext line (line + "\n") against the golden digests; the first mismatch is
  // reported with lrc's ids and the command that prints HF's.
  static void check_lines(const BpeTokenizer& t) {
    const std::string text = read_file(lrc::test::shared("data/wikitext2-test.txt"));
    ASSERT_FALSE(text.empty());
    const auto lines = split_lines(text);
    const auto& gold = (*golden_)["lines"];
    ASSERT_EQ(lines.size(), gold.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      const auto ids = t.encode(lines[i] + "\n");
      const size_t count = gold[i][0].get<size_t>();
      const std::string hash = gold[i][1].get<std::string>();
      if (ids.size() != count || hex64(fnv1a64(ids)) != hash) {
        FAIL() << "wikitext2-test.txt line " << i << " differs from HF:\n  lrc ids (" << ids.size()
               << ", fnv " << hex64(fnv1a64(ids)) << "): " << list(ids) << "\n  HF (" << count
               << ", fnv " << hash << "): scripts/make-tokenizer-golden.py --show-line " << i;
      }
    }
    const auto whole = t.encode(text);
    EXPECT_EQ(whole.size(), (*golden_)["whole_file"][0].get<size_t>());
    EXPECT_EQ(hex64(fnv1a64(whole)), (*golden_)["whole_file"][1].get<std::string>());
  }

  static void check_hard_strings(const BpeTokenizer& t) {
    for (const auto& h : (*golden_)["hard_strings"]) {
      const std::string text = h["text"].get<std::string>();
      const std::vector<int> want = h["ids"].get<std::vector<int>>();
      const auto got = t.encode(text);
      EXPECT_EQ(got, want) << "text: \"" << text << "\"\n lrc: " << list(got)
                           << "\n HF:  " << list(want);
      std::string back;
      for (int id : got) back += t.decode(-1, id);
      EXPECT_EQ(back, text);
    }
  }

  static BpeTokenizer* tok_;
  static nlohmann::json* golden_;
};
BpeTokenizer* SmolLM2Golden::tok_ = nullptr;
nlohmann::json* SmolLM2Golden::golden_ = nullptr;

}  // namespace

TEST_F(SmolLM2Golden, VocabularyFromGguf) {
  EXPECT_EQ(tok_->vocab_size(), 49152);
  EXPECT_EQ(tok_->bos_id(), 1);  // <|im_start|>
  EXPECT_EQ(tok_->eos_id(), 2);  // <|im_end|>
  EXPECT_FALSE(tok_->add_bos());
  EXPECT_EQ(tok_->vocab().pre, "smollm");
  EXPECT_EQ(tok_->decode(-1, 2), "<|im_end|>");
}

TEST_F(SmolLM2Golden, HardStringsEqualHF) { check_hard_strings(*tok_); }

TEST_F(SmolLM2Golden, WikitextLinesEqualHF) {
  const auto t0 = std::chrono::steady_clock::now();
  check_lines(*tok_);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wikitext2-test lines + whole file encoded in %.2f s\n", s);
}

// The same vocabulary written as an HF tokenizer.json and read back gives the same ids.
TEST_F(SmolLM2Golden, TokenizerJsonOfTheSameVocabularyEqualsHF) {
  const std::string dir = lrc::test::temp_dir("smollm2-json");
  write_file_atomic(dir + "/tokenizer.json", bpe_tokenizer_json(tok_->vocab()));
  auto t = load_bpe_tokenizer_json(dir + "/tokenizer.json");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(t->vocab().pre, "smollm");
  EXPECT_EQ(t->eos_id(), 0);  // <|endoftext|>: tokenizer.json alone does not name the EOS
  check_hard_strings(*t);
  check_lines(*t);
}

// Pre-tokenization alone, against HF's pre_tokenize_str for every pre-tokenizer lrc knows
// (needs no model: a vocabulary of the 256 byte tokens is enough).
TEST(BpePreTokenizerGolden, PiecesEqualHF) {
  const nlohmann::json golden =
      read_json_file(std::string(LRC_SOURCE_DIR) + "/tests/data/smollm2_tokenizer_golden.json");
  const auto& strings = golden["hard_strings"];
  int checked = 0;
  for (const auto& [name, lists] : golden["pre_tokenizer_pieces"].items()) {
    BpeVocab v;
    for (int b = 0; b < 256; ++b)
      v.tokens.push_back(byte_level_encode(std::string(1, static_cast<char>(b))));
    if (name == "gpt2_prefix")
      v.pre_steps = {{kGpt2Pattern, true}};
    else
      v.pre = name;
    const BpeTokenizer t(v, name);
    ASSERT_EQ(lists.size(), strings.size());
    for (size_t i = 0; i < lists.size(); ++i) {
      const std::string text = strings[i]["text"].get<std::string>();
      std::vector<std::string> got;
      for (const auto& p : t.pre_tokenize(text)) got.push_back(byte_level_encode(p));
      EXPECT_EQ(got, lists[i].get<std::vector<std::string>>()) << name << ": \"" << text << "\"";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 4 * 44);
}
