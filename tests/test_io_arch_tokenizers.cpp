// Llama-3's and Qwen2's tokenizer.json styles against HF `tokenizers` (issue 28): a small BPE
// of each style (scripts/make-arch-tokenizer-refs.py: the family's pre-tokenizer regex, added /
// special tokens, BOS by post-processor or tokenizer_config.json, Qwen's NFC normalizer)
// encodes a mixed text of > 2,000 characters (Latin, Cyrillic, Greek, CJK, Hangul, emoji,
// digits, whitespace runs, special tokens inline) to exactly the library's ids.
// Mistral's SentencePiece style: a small byte-fallback SentencePiece BPE (tok-mistral.model)
// loaded from a Mistral-like HF directory matches `tokenizers` on the tokenizer.json that
// transformers makes of it; the same vocabulary written into a GGUF (as llama.cpp's converter
// does) matches the sentencepiece library with llama.cpp's special-token rule.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/gguf_writer.h"
#include "lrc/io/tokenizer.h"
#include "support/paths.h"
#include "tokenizer_decode.h"

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
  std::ifstream f(fs::path(LRC_SOURCE_DIR) / "tests" / "data" / "arch" /
                  ("tok-" + style + ".json"));
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

// The Mistral reference and a directory holding tok-mistral.model as tokenizer.model, with
// the HF files named in `hf_files` ("tokenizer.json", "tokenizer_config.json") beside it.
struct MistralDir {
  json ref;
  std::string dir, model;
};

MistralDir mistral_dir(const std::string& tag, std::initializer_list<const char*> hf_files) {
  MistralDir m;
  const fs::path data = fs::path(LRC_SOURCE_DIR) / "tests" / "data" / "arch";
  std::ifstream f(data / "tok-mistral.json");
  m.ref = json::parse(f);
  m.dir = test::temp_dir("tok-mistral-" + tag);
  m.model = (fs::path(m.dir) / "tokenizer.model").string();
  fs::copy_file(data / "tok-mistral.model", m.model, fs::copy_options::overwrite_existing);
  for (const std::string name : hf_files) {
    const json& j = m.ref.at(name == "tokenizer.json" ? "tokenizer" : "tokenizer_config");
    std::ofstream(fs::path(m.dir) / name) << j.dump();
  }
  return m;
}

using lrc::test::decode_all;

// As a user loads a Mistral HF directory: lrc takes tokenizer.model (before tokenizer.json,
// src/io/model_loader.cpp) and follows tokenizer.json's Metaspace(prepend_scheme "first").
TEST(ArchTokenizers, MistralStyleIdExact) {
  const MistralDir m = mistral_dir("hf", {"tokenizer.json", "tokenizer_config.json"});
  const std::string text = m.ref.at("text");
  ASSERT_GE(text.size(), 2000u);
  const auto tok = load_tokenizer(m.model);
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(encode_like_hf(*tok, text), m.ref.at("ids").get<std::vector<int>>());
  // tokenizer_config.json's "legacy": false alone asks for the same rule.
  const MistralDir c = mistral_dir("config", {"tokenizer_config.json"});
  EXPECT_EQ(encode_like_hf(*load_tokenizer(c.model), text),
            m.ref.at("ids").get<std::vector<int>>());
  // The model alone: sentencepiece's dummy prefix on every piece of text, as llama.cpp.
  const MistralDir a = mistral_dir("alone", {});
  const auto alone = load_tokenizer(a.model);
  EXPECT_EQ(encode_like_hf(*alone, text), m.ref.at("spm_ids").get<std::vector<int>>());
  // Decoding round-trips the text without its special tokens.
  const std::string plain = m.ref.at("plain_text");
  EXPECT_EQ(alone->encode(plain), m.ref.at("plain_ids").get<std::vector<int>>());
  EXPECT_EQ(decode_all(*alone, alone->encode(plain)), plain);
}

// tok-mistral.model's vocabulary as llama.cpp's convert_hf_to_gguf.py writes a SentencePiece
// vocabulary (tokens, scores, token_type 1 normal / 2 unknown / 3 control / 5 unused / 6 byte,
// special ids, add_bos_token, add_space_prefix), in a GGUF without tensors.
std::string write_spm_gguf(const std::string& model, const std::string& path) {
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(model).ok()) throw std::runtime_error("cannot load " + model);
  std::vector<std::string> tokens;
  gguf::Value::Array scores;
  std::vector<int> types;
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    tokens.push_back(sp.IdToPiece(id));
    scores.push_back(gguf::Value::f32(sp.GetScore(id)));
    types.push_back(sp.IsUnknown(id)   ? 2
                    : sp.IsControl(id) ? 3
                    : sp.IsUnused(id)  ? 5
                    : sp.IsByte(id)    ? 6
                                       : 1);
  }
  GgufWriter w;
  w.set("general.architecture", gguf::Value::str("llama"));
  w.set("tokenizer.ggml.model", gguf::Value::str("llama"));
  w.set("tokenizer.ggml.pre", gguf::Value::str("default"));
  w.set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens));
  w.set("tokenizer.ggml.scores", gguf::Value::array(gguf::ValueType::FLOAT32, scores));
  w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
  w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(static_cast<uint32_t>(sp.bos_id())));
  w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(static_cast<uint32_t>(sp.eos_id())));
  w.set("tokenizer.ggml.unknown_token_id", gguf::Value::u32(static_cast<uint32_t>(sp.unk_id())));
  w.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(true));
  w.set("tokenizer.ggml.add_eos_token", gguf::Value::boolean(false));
  w.set("tokenizer.ggml.add_space_prefix", gguf::Value::boolean(true));
  w.write(path);
  return path;
}

// The GGUF vocabulary alone gives the sentencepiece library's ids (with llama.cpp's split at
// <unk> <s> </s>: "spm_ids") and decodes back to the text.
TEST(ArchTokenizers, MistralGgufVocabularyIdExact) {
  const MistralDir m = mistral_dir("gguf", {});
  const auto tok = load_tokenizer(write_spm_gguf(m.model, m.dir + "/vocab.gguf"));
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_EQ(tok->vocab_size(), 1000);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const std::string text = m.ref.at("text");
  EXPECT_EQ(encode_like_hf(*tok, text), m.ref.at("spm_ids").get<std::vector<int>>());
  const std::string plain = m.ref.at("plain_text");
  const auto plain_ids = m.ref.at("plain_ids").get<std::vector<int>>();
  EXPECT_EQ(tok->encode(plain), plain_ids);
  EXPECT_EQ(decode_all(*tok, plain_ids), plain);
  EXPECT_TRUE(tok->encode("").empty());
  EXPECT_EQ(tok->decode(5, 3 + '\n'), "\n");  // <0x0A>
  EXPECT_EQ(tok->decode(5, 2), "");           // </s>: control
}

// Bad SentencePiece metadata is refused naming the file and the field.
TEST(ArchTokenizers, GgufSentencePieceBadMetadata) {
  const MistralDir m = mistral_dir("gguf-bad", {});
  const std::string path = write_spm_gguf(m.model, m.dir + "/vocab.gguf");
  auto error_of = [&](const std::function<void(GgufWriter&)>& edit) -> std::string {
    gguf::GgufFile f(path);
    GgufWriter w;
    for (const auto& kv : f.metadata()) w.set(kv.key, kv.value);
    edit(w);
    w.write(m.dir + "/bad.gguf");
    try {
      load_tokenizer(m.dir + "/bad.gguf");
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  std::string e = error_of([](GgufWriter& w) { w.erase("tokenizer.ggml.scores"); });
  EXPECT_NE(e.find("bad.gguf"), std::string::npos) << e;
  EXPECT_NE(e.find("'tokenizer.ggml.scores': missing"), std::string::npos) << e;
  e = error_of([](GgufWriter& w) {
    w.set("tokenizer.ggml.token_type", gguf::Value::i32_array({1, 2}));
  });
  EXPECT_NE(e.find("'tokenizer.ggml.token_type': 2 entries for 1000 tokens"), std::string::npos)
      << e;
  e = error_of([](GgufWriter& w) { w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(1000)); });
  EXPECT_NE(e.find("'tokenizer.ggml.eos_token_id': id 1000 is outside"), std::string::npos) << e;
}

}  // namespace
