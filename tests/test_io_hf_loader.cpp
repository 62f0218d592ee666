// HF directory loader: write/load round trips on random models, the real 22M model, and
// every bad-input error (each names the file and the problem).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/hf_writer.h"
#include "lrc/io/model_loader.h"
#include "support/paths.h"
#include "support/random_model.h"

namespace fs = std::filesystem;
using namespace lrc;
using nlohmann::json;

namespace {

void expect_same_weights(const LlamaModel& a, const LlamaModel& b, bool f16_rounded = false) {
  const auto va = hf_tensor_views(a), vb = hf_tensor_views(b);
  ASSERT_EQ(va.size(), vb.size());
  for (size_t t = 0; t < va.size(); ++t) {
    ASSERT_EQ(va[t].name, vb[t].name);
    ASSERT_EQ(va[t].shape, vb[t].shape);
    const auto& x = *va[t].data;
    const auto& y = *vb[t].data;
    ASSERT_EQ(x.size(), y.size()) << va[t].name;
    size_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i)
      bad += (f16_rounded ? f16_to_f32(f32_to_f16(x[i])) : x[i]) != y[i];
    EXPECT_EQ(bad, 0u) << va[t].name;
  }
  EXPECT_EQ(a.lm_head.w.size(), b.lm_head.w.size());
}

LlamaModel tiny(bool tied) {
  LlamaConfig c = test::tiny_config();
  c.tied_embeddings = tied;
  c.norm_eps = 1e-6f;
  c.rope_theta = 500000.f;
  return test::random_model(c, tied ? 7 : 8);
}

void edit_json(const std::string& path, const std::function<void(json&)>& edit) {
  json j;
  std::ifstream(path) >> j;
  edit(j);
  std::ofstream(path) << j.dump(1);
}

// load_hf_model(dir) must throw a message containing every needle.
void expect_error(const std::string& dir, std::initializer_list<std::string> needles) {
  try {
    load_hf_model(dir);
    FAIL() << "no error loading " << dir;
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

}  // namespace

TEST(HfLoader, RoundTripSingleFileAndShardsExact) {
  for (bool tied : {true, false}) {
    const LlamaModel m = tiny(tied);
    for (int shards : {1, 3}) {
      const std::string dir =
          test::temp_dir("hf-rt-" + std::to_string(tied) + std::to_string(shards));
      save_hf_model(m, dir, DType::F32, shards);
      EXPECT_EQ(fs::exists(dir + "/model.safetensors.index.json"), shards > 1);
      const LlamaModel r = load_hf_model(dir);
      EXPECT_EQ(r.cfg.dim, m.cfg.dim);
      EXPECT_EQ(r.cfg.hidden_dim, m.cfg.hidden_dim);
      EXPECT_EQ(r.cfg.n_layers, m.cfg.n_layers);
      EXPECT_EQ(r.cfg.n_heads, m.cfg.n_heads);
      EXPECT_EQ(r.cfg.n_kv_heads, m.cfg.n_kv_heads);
      EXPECT_EQ(r.cfg.vocab_size, m.cfg.vocab_size);
      EXPECT_EQ(r.cfg.max_seq_len, m.cfg.max_seq_len);
      EXPECT_EQ(r.cfg.norm_eps, m.cfg.norm_eps);
      EXPECT_EQ(r.cfg.rope_theta, m.cfg.rope_theta);
      EXPECT_EQ(r.cfg.tied_embeddings, tied);
      EXPECT_EQ(r.cfg.rope, RopeStyle::HalfSplit);
      expect_same_weights(m, r);
      EXPECT_EQ(r.lm_head.w, m.lm_head.w);  // tied: a copy of the embedding
      EXPECT_EQ(r.source_dtypes.at("model.layers.1.mlp.down_proj.weight"), "F32");
      EXPECT_EQ(r.n_params(), m.n_params());
      fs::remove_all(dir);
    }
  }
}

TEST(HfLoader, F16StorageRoundsToNearestHalf) {
  const LlamaModel m = tiny(false);
  const std::string dir = test::temp_dir("hf-f16");
  save_hf_model(m, dir, DType::F16);
  const LlamaModel r = load_hf_model(dir);
  expect_same_weights(m, r, /*f16_rounded=*/true);
  EXPECT_EQ(r.source_dtypes.at("lm_head.weight"), "F16");
  fs::remove_all(dir);
}

TEST(HfLoader, RealModel22M) {
  const std::string dir = test::default_model_dir();
  if (!fs::exists(dir + "/config.json")) GTEST_SKIP() << "no " << dir;
  const auto t0 = std::chrono::steady_clock::now();
  const LoadedModel lm = load_model(dir);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("loaded %s (HF, 3 fp16 shards + tokenizer) in %.3f s\n", dir.c_str(), s);
  const LlamaConfig& c = lm.model.cfg;
  EXPECT_EQ(lm.format, "hf");
  EXPECT_EQ(c.dim, 384);
  EXPECT_EQ(c.hidden_dim, 1024);
  EXPECT_EQ(c.n_layers, 6);
  EXPECT_EQ(c.n_heads, 6);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(lm.model.n_params(), 21730176);  // train_log.json "params"
  EXPECT_EQ(lm.model.source_dtypes.at("model.embed_tokens.weight"), "F16");
  EXPECT_EQ(lm.model.lm_head.w, lm.model.tok_embeddings);
  ASSERT_TRUE(lm.tokenizer);
  EXPECT_EQ(lm.tokenizer->kind(), "sentencepiece");
  EXPECT_LT(s, 5.0);  // ~0.1 s on 2 cores; generous for a loaded CI machine
}

// ---- bad input: each names the file and the problem ------------------------------------

TEST(HfLoaderBadInput, TensorShapeContradictsConfig) {
  const std::string dir = test::temp_dir("hf-shape");
  save_hf_model(tiny(true), dir);
  edit_json(dir + "/config.json", [](json& j) { j["num_key_value_heads"] = 4; });
  expect_error(dir, {dir + "/model.safetensors", "model.layers.0.self_attn.k_proj.weight",
                     "shape [32, 64]", "contradicts config.json", "expected [64, 64]"});
  fs::remove_all(dir);
}

TEST(HfLoaderBadInput, MissingShard) {
  const std::string dir = test::temp_dir("hf-shard");
  save_hf_model(tiny(true), dir, DType::F32, 3);
  fs::remove(dir + "/model-00002-of-00003.safetensors");
  expect_error(
      dir, {"model.safetensors.index.json", "missing shard", "model-00002-of-00003.safetensors"});
  fs::remove_all(dir);
}

TEST(HfLoaderBadInput, MissingTensor) {
  const std::string dir = test::temp_dir("hf-tensor");
  // Stored tied (no lm_head.weight), but config.json says untied: lm_head.weight is missing.
  save_hf_model(tiny(true), dir);
  edit_json(dir + "/config.json", [](json& j) { j["tie_word_embeddings"] = false; });
  expect_error(dir, {dir + "/model.safetensors: missing tensor 'lm_head.weight'"});
  // Sharded: a tensor absent from the index is reported against the index.
  const std::string dir2 = test::temp_dir("hf-tensor2");
  save_hf_model(tiny(true), dir2, DType::F32, 2);
  edit_json(dir2 + "/model.safetensors.index.json",
            [](json& j) { j["weight_map"].erase("model.layers.1.mlp.up_proj.weight"); });
  expect_error(
      dir2, {"model.safetensors.index.json: missing tensor", "model.layers.1.mlp.up_proj.weight"});
  fs::remove_all(dir);
  fs::remove_all(dir2);
}

TEST(HfLoaderBadInput, UnknownArchitecture) {
  const std::string dir = test::temp_dir("hf-arch");
  save_hf_model(tiny(true), dir);
  edit_json(dir + "/config.json", [](json& j) {
    j["architectures"] = {"GPT2LMHeadModel"};
    j["model_type"] = "gpt2";
  });
  expect_error(dir, {dir + "/config.json", "field 'architectures'", "unknown architecture",
                     "GPT2LMHeadModel"});
  fs::remove_all(dir);
}

TEST(HfLoaderBadInput, MissingOrMistypedConfigField) {
  const std::string dir = test::temp_dir("hf-field");
  save_hf_model(tiny(true), dir);
  edit_json(dir + "/config.json", [](json& j) { j.erase("hidden_size"); });
  expect_error(dir, {dir + "/config.json", "missing field 'hidden_size'"});
  edit_json(dir + "/config.json", [](json& j) {
    j["hidden_size"] = 64;
    j["num_hidden_layers"] = "two";
  });
  expect_error(dir, {dir + "/config.json", "field 'num_hidden_layers'", "integer"});
  std::ofstream(dir + "/config.json") << "{ not json";
  expect_error(dir, {dir + "/config.json", "bad JSON"});
  fs::remove_all(dir);
}

TEST(HfLoaderBadInput, NoWeightsFile) {
  const std::string dir = test::temp_dir("hf-noweights");
  save_hf_model(tiny(true), dir);
  fs::remove(dir + "/model.safetensors");
  expect_error(dir, {dir, "no model.safetensors"});
  fs::remove_all(dir);
}

TEST(HfLoaderBadInput, TruncatedShard) {
  const std::string dir = test::temp_dir("hf-trunc");
  save_hf_model(tiny(true), dir);
  fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 64);
  expect_error(dir, {dir + "/model.safetensors", "truncated"});
  fs::remove_all(dir);
}
