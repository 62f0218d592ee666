// Byte-level BPE on small hand-made vocabularies: the GPT-2 byte mapping, merge order,
// pre-tokenization, added tokens, decoding, and the same ids whether the vocabulary comes
// from a tokenizer.json or a GGUF.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lrc/core/error.h"
#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/byte_level.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/gguf_writer.h"
#include "lrc/io/json_file.h"
#include "support/paths.h"
#include "support/small_bpe_vocab.h"

using namespace lrc;

namespace {

BpeVocab small_vocab(const std::string& pre = "smollm") { return lrc::test::small_bpe_vocab(pre); }

std::vector<int> ids(std::initializer_list<int> l) { return l; }

}  // namespace

TEST(ByteLevel, Gpt2Mapping) {
  EXPECT_EQ(byte_level_encode(" "), "Ġ");
  EXPECT_EQ(byte_level_encode("\n"), "Ċ");
  EXPECT_EQ(byte_level_encode("a!~"), "a!~");
  EXPECT_EQ(byte_to_codepoint(0), 256u);
  EXPECT_EQ(byte_to_codepoint(0xAD), 0x143u);  // the last of the 68 remapped bytes
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(codepoint_to_byte(byte_to_codepoint(static_cast<uint8_t>(b))), b);
  std::string all, back;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  ASSERT_TRUE(byte_level_decode(byte_level_encode(all), &back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(byte_level_decode("▁", &back));  // not one of the 256
  EXPECT_EQ(sanitize_utf8("a\xff"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));  // overlong
  EXPECT_TRUE(is_valid_utf8("naïve 👍"));
}

TEST(BpeTokenizer, MergesByRank) {
  BpeTokenizer t(small_vocab(), "small");
  EXPECT_EQ(t.encode(" the cat"), ids({258, 261}));
  EXPECT_EQ(t.encode("hello"), ids({265}));
  EXPECT_EQ(t.encode("hellx"), ids({264, 'x'}));
  EXPECT_EQ(t.encode("abab"), ids({262, 262}));
  EXPECT_EQ(t.encode("a"), ids({'a'}));
  EXPECT_TRUE(t.encode("").empty());
}

TEST(BpeTokenizer, PreTokenizerSmollmSplitsDigitsAndWords) {
  BpeTokenizer t(small_vocab(), "small");
  using V = std::vector<std::string>;
  EXPECT_EQ(t.pre_tokenize("don't 12 x  y\n"),
            (V{"don", "'t", " ", "1", "2", " x", " ", " y", "\n"}));
  EXPECT_EQ(t.pre_tokenize("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(t.pre_tokenize("hi!!  "), (V{"hi", "!!", "  "}));
  EXPECT_EQ(t.encode("12"), ids({'1', '2'}));  // "1 2" merge not applied across pieces
  BpeTokenizer g(small_vocab("gpt2"), "small");
  EXPECT_EQ(g.pre_tokenize("don't 12"), (V{"don", "'t", " 12"}));
  EXPECT_EQ(g.encode("12"), ids({266}));
}

TEST(BpeTokenizer, AddedTokensMatchedWholeAndDecoded) {
  BpeTokenizer t(small_vocab(), "small");
  EXPECT_EQ(t.encode("<|im_start|>hello<|im_end|>"), ids({267, 265, 268}));
  // An incomplete added token is ordinary text.
  EXPECT_EQ(t.encode("<|im_start hello"),
            ids({'<', '|', 'i', 'm', '_', 's', 't', 'a', 'r', 't', ' ', 265}));
  std::string text;
  for (int id : t.encode("<|im_start|> the cat\n\tnaïve 👍<|im_end|>")) text += t.decode(-1, id);
  EXPECT_EQ(text, "<|im_start|> the cat\n\tnaïve 👍<|im_end|>");
  EXPECT_EQ(t.bos_id(), 267);
  EXPECT_EQ(t.eos_id(), 268);
  EXPECT_FALSE(t.add_bos());
  EXPECT_THROW(t.decode(-1, 100000), Error);
}

TEST(BpeTokenizer, InvalidUtf8IsReplacedNotFatal) {
  BpeTokenizer t(small_vocab(), "small");
  const auto a = t.encode("a\xff");
  const auto b = t.encode("a\xEF\xBF\xBD");
  EXPECT_EQ(a, b);
}

TEST(BpeTokenizer, BadVocabularyErrorsNameTheMerge) {
  BpeVocab v = small_vocab();
  v.merges.emplace_back("q", "zz");
  try {
    BpeTokenizer t(v, "vocab.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab.gguf: merge 11 'q zz'"), std::string::npos)
        << e.what();
  }
  BpeVocab w = small_vocab();
  w.pre = "bogus";
  EXPECT_THROW(BpeTokenizer(w, "x"), Error);
}

// The same vocabulary as tokenizer.json and as GGUF metadata gives the same ids.
TEST(BpeTokenizer, TokenizerJsonAndGgufGiveEqualIds) {
  const std::string dir = lrc::test::temp_dir("bpe-json-gguf");
  const BpeVocab v = small_vocab();
  write_file_atomic(dir + "/tokenizer.json", bpe_tokenizer_json(v));
  GgufWriter w;
  w.set("general.architecture", gguf::Value::str("llama"));
  w.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
  w.set("tokenizer.ggml.pre", gguf::Value::str(v.pre));
  w.set("tokenizer.ggml.tokens", gguf::Value::string_array(v.tokens));
  w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(v.token_types));
  std::vector<std::string> merges;
  for (auto& [a, b] : v.merges) merges.push_back(a + " " + b);
  w.set("tokenizer.ggml.merges", gguf::Value::string_array(merges));
  w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(267));
  w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(268));
  w.write(dir + "/vocab.gguf");

  auto from_json = load_tokenizer(dir + "/tokenizer.json");
  auto from_gguf = load_gguf_tokenizer(dir + "/vocab.gguf");
  EXPECT_EQ(from_json->kind(), "bpe");
  EXPECT_EQ(from_json->vocab_size(), from_gguf->vocab_size());
  for (const char* s : {" the cat sat on the hello", "abab12 345 don't\n\n  x",
                        "<|im_start|>hi<|im_end|>", "naïve café 👍🏽", "", "   "}) {
    EXPECT_EQ(from_json->encode(s), from_gguf->encode(s)) << s;
  }
  EXPECT_EQ(from_json->encode(" the cat"), ids({258, 261}));
  // tokenizer.json alone does not name bos/eos: the usual names are looked up (none here).
  std::filesystem::remove_all(dir);
}

TEST(BpeTokenizer, TokenizerJsonVariants) {
  const std::string dir = lrc::test::temp_dir("bpe-json-variants");
  nlohmann::json j = nlohmann::json::parse(bpe_tokenizer_json(small_vocab()));
  // Merges as pairs (tokenizers >= 0.20) and a tokenizer_config.json naming bos/eos.
  nlohmann::json pairs = nlohmann::json::array();
  for (auto& m : j["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    pairs.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  j["model"]["merges"] = pairs;
  write_file_atomic(dir + "/tokenizer.json", j.dump());
  write_file_atomic(dir + "/tokenizer_config.json",
                    R"({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"},
                        "add_bos_token": true})");
  auto t = load_bpe_tokenizer_json(dir + "/tokenizer.json");
  EXPECT_EQ(t->encode(" the cat"), ids({258, 261}));
  EXPECT_EQ(t->bos_id(), 267);
  EXPECT_EQ(t->eos_id(), 268);
  EXPECT_TRUE(t->add_bos());
  EXPECT_EQ(t->vocab().pre, "smollm");

  // Unsupported pieces are errors naming the field.
  auto expect_error = [&](nlohmann::json bad, const std::string& field) {
    write_file_atomic(dir + "/bad.json", bad.dump());
    try {
      load_bpe_tokenizer_json(dir + "/bad.json");
      FAIL() << field;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  auto bad = j;
  bad["normalizer"] = {{"type", "NFKC"}};  // NFC is supported (Qwen), NFKC is not
  expect_error(bad, "normalizer");
  bad = j;
  bad["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error(bad, "pre_tokenizer.type");
  bad = j;
  bad["model"]["type"] = "Unigram";
  expect_error(bad, "model.type");
  bad = j;
  bad["model"]["merges"][0] = "Ġ";
  expect_error(bad, "model.merges[0]");
  bad = j;
  bad["model"]["vocab"]["zzz"] = -4;
  expect_error(bad, "model.vocab['zzz']");
  std::filesystem::remove_all(dir);
}
