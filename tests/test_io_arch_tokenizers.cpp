// Llama-3's and Qwen2's tokenizer.json styles against HF `tokenizers` (issue 28): a small BPE
// of each style (scripts/make-arch-tokenizer-refs.py: the family's pre-tokenizer regex, added /
// special tokens, BOS by post-processor or tokenizer_config.json, Qwen's NFC normalizer)
// encodes a mixed text of > 2,000 characters (Latin, Cyrillic, Greek, CJK, Hangul, emoji,
// digits, whitespace runs, special tokens inline) to exactly the library's ids.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/io/tokenizer.h"
#include "support/paths.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace lrc;

namespace {

struct Loaded {
  json ref;
  std::unique_ptr<Tokenizer> tok;
};

Loaded load_style(const std::string& style) {
  Loaded l;
  std::ifstream f(fs::path(LRC_SOURCE_DIR) / "tests" / "data" / "arch" / ("tok-" + style + ".json"));
  l.ref = json::parse(f);
  const std::string dir = test::temp_dir("tok-" + style);
  std::ofstream(fs::path(dir) / "tokenizer.json") << l.ref.at("tokenizer").dump();
  std::ofstream(fs::path(dir) / "tokenizer_config.json") << l.ref.at("tokenizer_config").dump();
  l.tok = load_tokenizer((fs::path(dir) / "tokenizer.json").string());
  return l;
}

// HF's encode(text, add_special_tokens=True): BOS (when the tokenizer adds one) + the text.
std::vector<int> encode_like_hf(const Tokenizer& t, const std::string& text) {
  std::vector<int> ids;
  if (t.add_bos()) ids.push_back(t.bos_id());
  for (int id : t.encode(text)) ids.push_back(id);
  return ids;
}

TEST(ArchTokenizers, Llama3StyleIdExact) {
  const Loaded l = load_style("llama3");
  const std::string text = l.ref.at("text");
  ASSERT_GE(text.size(), 2000u);
  EXPECT_TRUE(l.tok->add_bos());  // from the TemplateProcessing post-processor
  EXPECT_EQ(l.tok->bos_id(), l.ref.at("ids")[0].get<int>());
  EXPECT_EQ(encode_like_hf(*l.tok, text), l.ref.at("ids").get<std::vector<int>>());
}

TEST(ArchTokenizers, Qwen2StyleIdExact) {
  const Loaded l = load_style("qwen2");
  const std::string text = l.ref.at("text");
  ASSERT_GE(text.size(), 2000u);
  EXPECT_FALSE(l.tok->add_bos());  // tokenizer_config.json: add_bos_token false
  EXPECT_EQ(l.tok->eos_id(), l.tok->encode("<|im_end|>").at(0));
  EXPECT_EQ(encode_like_hf(*l.tok, text), l.ref.at("ids").get<std::vector<int>>());
}

// NFC is applied only where it is the identity; text it would change is refused by name.
TEST(ArchTokenizers, Qwen2NfcRefusesTextItWouldChange) {
  const Loaded l = load_style("qwen2");
  EXPECT_NO_THROW(l.tok->encode("caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD"));  // é precomposed, 你好
  try {
    l.tok->encode("cafe\xCC\x81");  // e + U+0301 COMBINING ACUTE: NFC makes it é
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("U+0301"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NFC"), std::string::npos) << e.what();
  }
  // The Llama-3 style has no normalizer: the same text encodes.
  EXPECT_NO_THROW(load_style("llama3").tok->encode("cafe\xCC\x81"));
}

}  // namespace
