// GGUF model loading on small random models: a model written as GGUF (q/k rows permuted as
// llama.cpp's converter does) and as an HF safetensors directory loads, through
// lrc::load_model, to the same logits; the permutation itself is checked against interleaved
// RoPE; malformed model files give errors naming the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/gguf_writer.h"
#include "lrc/io/hf_writer.h"
#include "lrc/io/json_file.h"
#include "lrc/io/model_loader.h"
#include "lrc/model/forward.h"
#include "support/paths.h"
#include "support/random_model.h"
#include "support/small_bpe_vocab.h"

using namespace lrc;

namespace {

LlamaConfig test_config(bool tied) {
  LlamaConfig c = lrc::test::tiny_config(64, 96, 2, 4, 2, /*vocab=*/269, /*max_seq=*/64);
  c.rope_theta = 100000.f;  // not the default, so a dropped key would show
  c.norm_eps = 1e-6f;
  c.tied_embeddings = tied;
  return c;
}

std::vector<int32_t> test_tokens(int n_seq, int seq_len, int vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n_seq) * seq_len);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>((i * 37 + 11) % vocab);
  return t;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// The same weights as GGUF and as HF safetensors + tokenizer.json: equal logits and ids.
class GgufVsHf : public ::testing::TestWithParam<std::tuple<bool, gguf::GgmlType>> {};

TEST_P(GgufVsHf, SameLogitsThroughLoadModel) {
  const auto [tied, type] = GetParam();
  const std::string dir = lrc::test::temp_dir("gguf-vs-hf");
  LlamaModel m = lrc::test::random_model(test_config(tied), 7);
  if (type == gguf::GgmlType::F16) {
    // GGUF keeps norms in F32 while the HF writer rounds everything to F16: make every weight
    // F16-exact so both files hold the same model.
    auto round = [](std::vector<float>& v) {
      for (float& x : v) x = f16_to_f32(f32_to_f16(x));
    };
    round(m.tok_embeddings);
    round(m.final_norm);
    round(m.lm_head.w);
    for (auto& L : m.layers) {
      for (auto* v : {&L.attn_norm, &L.ffn_norm, &L.wq.w, &L.wk.w, &L.wv.w, &L.wo.w, &L.w_gate.w,
                      &L.w_up.w, &L.w_down.w})
        round(*v);
    }
  }
  const BpeVocab vocab = lrc::test::small_bpe_vocab();
  save_gguf_model(m, &vocab, dir + "/model.gguf", type);
  save_hf_model(m, dir + "/hf", type == gguf::GgmlType::F16 ? DType::F16 : DType::F32);
  write_file_atomic(dir + "/hf/tokenizer.json", bpe_tokenizer_json(vocab));

  const LoadedModel g = load_model(dir + "/model.gguf");
  const LoadedModel h = load_model(dir + "/hf");
  EXPECT_EQ(g.format, "gguf");
  EXPECT_EQ(h.format, "hf");
  const LlamaConfig& gc = g.model.cfg;
  EXPECT_EQ(gc.dim, 64);
  EXPECT_EQ(gc.hidden_dim, 96);
  EXPECT_EQ(gc.n_layers, 2);
  EXPECT_EQ(gc.n_heads, 4);
  EXPECT_EQ(gc.n_kv_heads, 2);
  EXPECT_EQ(gc.vocab_size, 269);
  EXPECT_EQ(gc.max_seq_len, 64);
  EXPECT_FLOAT_EQ(gc.rope_theta, 100000.f);
  EXPECT_FLOAT_EQ(gc.norm_eps, 1e-6f);
  EXPECT_EQ(gc.tied_embeddings, tied);
  EXPECT_EQ(gc.rope, RopeStyle::HalfSplit);
  EXPECT_EQ(gc.bos_id, 267);
  EXPECT_EQ(gc.eos_id, 268);
  const std::string tname = type == gguf::GgmlType::F16 ? "F16" : "F32";
  EXPECT_EQ(g.model.source_dtypes.at("model.layers.1.self_attn.k_proj.weight"), tname);
  EXPECT_EQ(g.model.source_dtypes.at("model.norm.weight"), "F32");
  EXPECT_EQ(g.model.source_dtypes.count("lm_head.weight"), tied ? 0u : 1u);

  // The GGUF's own vocabulary is its default tokenizer, equal to the tokenizer.json one.
  ASSERT_TRUE(g.tokenizer && h.tokenizer);
  EXPECT_EQ(g.tokenizer->kind(), "bpe");
  for (const char* s : {" the cat", "hello 123 <|im_end|>", "naïve\n\n x"})
    EXPECT_EQ(g.tokenizer->encode(s), h.tokenizer->encode(s)) << s;

  const int n_seq = 2, seq = 12;
  const auto toks = test_tokens(n_seq, seq, 269);
  const auto lg = forward_logits(g.model, toks.data(), n_seq, seq);
  const auto lh = forward_logits(h.model, toks.data(), n_seq, seq);
  const float diff = max_abs_diff(lg, lh);
  std::printf("GGUF (%s) vs HF logits: max |diff| %.3g over %zu logits\n", tied ? "tied" : "untied",
              static_cast<double>(diff), lg.size());
  EXPECT_LT(diff, 1e-3f);
  // Both equal the in-memory model (all weights are exact in the stored type).
  const auto lm = forward_logits(m, toks.data(), n_seq, seq);
  EXPECT_LT(max_abs_diff(lg, lm), 1e-4f);
  EXPECT_EQ(g.model.layers[1].wq.w, m.layers[1].wq.w);  // un-permuted exactly
  EXPECT_EQ(g.model.layers[1].wk.w, m.layers[1].wk.w);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(TiedAndTypes, GgufVsHf,
                         ::testing::Values(std::make_tuple(true, gguf::GgmlType::F32),
                                           std::make_tuple(false, gguf::GgmlType::F32),
                                           std::make_tuple(true, gguf::GgmlType::F16)));

// The rows the file holds are llama.cpp's: with interleaved RoPE they give the HF logits, with
// half-split RoPE they do not (so the un-permutation is needed and the test can fail).
TEST(GgufModel, StoredQkRowsAreInterleavedRopeOrder) {
  const LlamaModel m = lrc::test::random_model(test_config(true), 11);
  const auto bytes = gguf_model_writer(m, nullptr).bytes();
  const gguf::GgufFile f(bytes, "mem.gguf");
  LlamaModel raw = m;  // q/k as stored, no un-permutation
  for (int l = 0; l < 2; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    raw.layers[l].wq.w = f.tensor_f32(*f.find_tensor(p + "attn_q.weight"));
    raw.layers[l].wk.w = f.tensor_f32(*f.find_tensor(p + "attn_k.weight"));
  }
  EXPECT_NE(raw.layers[0].wq.w, m.layers[0].wq.w);
  EXPECT_NE(raw.layers[0].wk.w, m.layers[0].wk.w);
  const auto toks = test_tokens(1, 16, 269);
  const auto ref = forward_logits(m, toks.data(), 1, 16);
  raw.cfg.rope = RopeStyle::Interleaved;
  EXPECT_LT(max_abs_diff(forward_logits(raw, toks.data(), 1, 16), ref), 1e-4f);
  raw.cfg.rope = RopeStyle::HalfSplit;
  EXPECT_GT(max_abs_diff(forward_logits(raw, toks.data(), 1, 16), ref), 1e-2f);
}

// Model-level errors name the file and the field.
TEST(GgufModel, BadModelFilesNameTheField) {
  const std::string dir = lrc::test::temp_dir("gguf-bad-model");
  const LlamaModel m = lrc::test::random_model(test_config(true), 3);
  const BpeVocab vocab = lrc::test::small_bpe_vocab();
  int k = 0;
  auto load_error = [&](const std::function<void(GgufWriter&)>& edit) {
    GgufWriter w = gguf_model_writer(m, &vocab);
    edit(w);
    const std::string path = dir + "/bad" + std::to_string(k++) + ".gguf";
    w.write(path);
    return error_of([&] { load_model(path); });
  };
  auto expect_has = [](const std::string& msg, std::initializer_list<std::string> parts) {
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << msg << "  lacks  " << p;
  };
  expect_has(
      load_error([](GgufWriter& w) { w.set("general.architecture", gguf::Value::str("mamba")); }),
      {".gguf", "general.architecture", "unknown architecture 'mamba'"});
  expect_has(load_error([](GgufWriter& w) { w.erase("general.architecture"); }),
             {"metadata 'general.architecture': missing"});
  for (const char* key : {"llama.block_count", "llama.embedding_length",
                          "llama.feed_forward_length", "llama.attention.head_count",
                          "llama.context_length", "llama.attention.layer_norm_rms_epsilon"})
    expect_has(load_error([&](GgufWriter& w) { w.erase(key); }),
               {".gguf", std::string("metadata '") + key + "': missing"});
  expect_has(load_error([](GgufWriter& w) { w.set("llama.block_count", gguf::Value::str("2")); }),
             {"metadata 'llama.block_count': has type string"});
  expect_has(
      load_error([](GgufWriter& w) { w.set("llama.block_count", gguf::Value::u32(1u << 24)); }),
      {"metadata 'llama.block_count': 16777216 layers, but the file holds only"});
  expect_has(load_error([](GgufWriter& w) { w.set("llama.vocab_size", gguf::Value::u32(300)); }),
             {"llama.vocab_size", "contradicts token_embd.weight"});
  expect_has(load_error([&](GgufWriter& w) {
               auto t = vocab.tokens;
               t.pop_back();
               w.set("tokenizer.ggml.tokens", gguf::Value::string_array(t));
             }),
             {"tokenizer.ggml.tokens", "268 tokens contradicts token_embd.weight with 269 rows"});
  expect_has(load_error([](GgufWriter& w) { w.erase_tensor("blk.1.ffn_up.weight"); }),
             {"tensor 'blk.1.ffn_up.weight': missing"});
  expect_has(
      load_error([](GgufWriter& w) {
        w.erase_tensor("blk.0.attn_k.weight");
        std::vector<float> z(64 * 64);
        w.add_tensor("blk.0.attn_k.weight", {64, 64}, z);
      }),
      {"tensor 'blk.0.attn_k.weight': shape [64, 64] contradicts the config (expected [32, 64])"});
  expect_has(load_error([](GgufWriter& w) {  // a type lrc cannot dequantize
               w.erase_tensor("blk.0.attn_q.weight");
               w.add_raw_tensor("blk.0.attn_q.weight", {64, 64}, 9 /* Q8_1 */,
                                std::vector<uint8_t>(64 * 2 * 40));
             }),
             {"tensor 'blk.0.attn_q.weight'", "tensor type Q8_1 is not supported"});
  expect_has(
      load_error([](GgufWriter& w) { w.set("llama.rope.dimension_count", gguf::Value::u32(8)); }),
      {"llama.rope.dimension_count", "partial rotary"});
  expect_has(
      load_error([](GgufWriter& w) { w.set("tokenizer.ggml.pre", gguf::Value::str("qwen9")); }),
      {"tokenizer.ggml.pre", "'qwen9' is not supported"});
  expect_has(
      load_error([](GgufWriter& w) { w.set("tokenizer.ggml.model", gguf::Value::str("bert")); }),
      {"tokenizer.ggml.model", "'bert' vocabularies are not supported"});
  // A SentencePiece vocabulary ("llama") is read, and needs its scores.
  expect_has(
      load_error([](GgufWriter& w) { w.set("tokenizer.ggml.model", gguf::Value::str("llama")); }),
      {"tokenizer.ggml.scores", "missing"});
  expect_has(load_error([](GgufWriter& w) {
               w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(5000));
             }),
             {"tokenizer.ggml.eos_token_id", "outside the vocabulary"});
  std::filesystem::remove_all(dir);
}
