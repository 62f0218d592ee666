// llama2.c checkpoint loader: the real 22M model against its HF twin (RoPE row order),
// synthetic files (tied / untied) and bad input.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/hf_writer.h"
#include "lrc/io/model_loader.h"
#include "lrc/io/rope_permute.h"
#include "support/paths.h"
#include "support/random_model.h"

namespace fs = std::filesystem;
using namespace lrc;

namespace {

// Writes m in the legacy llama2.c layout (the inverse of load_llama2c_model).
void write_llama2c(const LlamaModel& m, const std::string& path) {
  const LlamaConfig& c = m.cfg;
  std::ofstream f(path, std::ios::binary);
  const int32_t h[7] = {c.dim,        c.hidden_dim,
                        c.n_layers,   c.n_heads,
                        c.n_kv_heads, c.tied_embeddings ? c.vocab_size : -c.vocab_size,
                        c.max_seq_len};
  f.write(reinterpret_cast<const char*>(h), sizeof h);
  auto put = [&](const std::vector<float>& v) {
    f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  };
  put(m.tok_embeddings);
  for (auto& L : m.layers) put(L.attn_norm);
  for (auto& L : m.layers) put(L.wq.w);
  for (auto& L : m.layers) put(L.wk.w);
  for (auto& L : m.layers) put(L.wv.w);
  for (auto& L : m.layers) put(L.wo.w);
  for (auto& L : m.layers) put(L.ffn_norm);
  for (auto& L : m.layers) put(L.w_gate.w);
  for (auto& L : m.layers) put(L.w_down.w);
  for (auto& L : m.layers) put(L.w_up.w);
  put(m.final_norm);
  put(std::vector<float>(static_cast<size_t>(c.max_seq_len) * c.head_dim(), 0.5f));  // freq_cis
  if (!c.tied_embeddings) put(m.lm_head.w);
}

LlamaModel tiny(bool tied) {
  LlamaConfig c = test::tiny_config();
  c.tied_embeddings = tied;
  c.rope = RopeStyle::Interleaved;
  c.norm_eps = 1e-5f;
  return test::random_model(c, tied ? 11 : 12);
}

void expect_error(const std::string& file, std::initializer_list<std::string> needles) {
  try {
    load_llama2c_model(file);
    FAIL() << "no error loading " << file;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

// Count of elements where f16(a) != b.
size_t f16_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  size_t bad = a.size() == b.size() ? 0 : 1 + a.size();
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    bad += f16_to_f32(f32_to_f16(a[i])) != b[i];
  return bad;
}

}  // namespace

TEST(Llama2cLoader, SyntheticTiedAndUntiedExact) {
  for (bool tied : {true, false}) {
    const LlamaModel m = tiny(tied);
    const std::string dir = test::temp_dir(std::string("l2c-") + (tied ? "tied" : "untied"));
    write_llama2c(m, dir + "/model.bin");
    const LlamaModel r = load_llama2c_model(dir + "/model.bin");
    EXPECT_EQ(r.cfg.rope, RopeStyle::Interleaved);
    EXPECT_EQ(r.cfg.tied_embeddings, tied);
    EXPECT_EQ(r.cfg.vocab_size, m.cfg.vocab_size);
    EXPECT_EQ(r.cfg.n_kv_heads, m.cfg.n_kv_heads);
    EXPECT_EQ(r.cfg.norm_eps, 1e-5f);
    EXPECT_EQ(r.cfg.rope_theta, 10000.f);
    const auto va = hf_tensor_views(m), vb = hf_tensor_views(r);
    ASSERT_EQ(va.size(), vb.size());
    for (size_t t = 0; t < va.size(); ++t) EXPECT_EQ(*va[t].data, *vb[t].data) << va[t].name;
    EXPECT_EQ(r.lm_head.w, m.lm_head.w);
    EXPECT_EQ(r.source_dtypes.at("model.layers.0.self_attn.q_proj.weight"), "F32");
    fs::remove_all(dir);
  }
}

TEST(Llama2cLoader, RealModelMatchesHfUpToFp16AndRopeRowOrder) {
  const std::string hf_dir = test::default_model_dir();
  const std::string bin = hf_dir + "/llama2c/model.bin";
  if (!fs::exists(bin) || !fs::exists(hf_dir + "/config.json")) GTEST_SKIP() << "no " << bin;
  const auto t0 = std::chrono::steady_clock::now();
  const LlamaModel l2c = load_llama2c_model(bin);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("loaded %s in %.3f s\n", bin.c_str(), s);
  const LlamaModel hf = load_hf_model(hf_dir);
  ASSERT_EQ(l2c.cfg.dim, hf.cfg.dim);
  ASSERT_EQ(l2c.cfg.n_kv_heads, hf.cfg.n_kv_heads);
  EXPECT_EQ(l2c.cfg.tied_embeddings, hf.cfg.tied_embeddings);
  EXPECT_EQ(l2c.cfg.max_seq_len, hf.cfg.max_seq_len);
  EXPECT_EQ(l2c.n_params(), hf.n_params());
  const int hd = hf.cfg.head_dim(), dim = hf.cfg.dim;

  const auto vl = hf_tensor_views(l2c), vh = hf_tensor_views(hf);
  ASSERT_EQ(vl.size(), vh.size());
  for (size_t t = 0; t < vl.size(); ++t) {
    const bool qk = vl[t].name.ends_with("q_proj.weight") || vl[t].name.ends_with("k_proj.weight");
    if (!qk) {
      EXPECT_EQ(f16_mismatches(*vl[t].data, *vh[t].data), 0u) << vl[t].name;
      continue;
    }
    // q/k: within each head, HF row i <-> llama2.c row 2i and HF row i + hd/2 <-> 2i + 1.
    const int heads = static_cast<int>(vl[t].shape[0]) / hd;
    const auto& w = *vl[t].data;
    const auto& h = *vh[t].data;
    size_t bad = 0;
    for (int head = 0; head < heads; ++head)
      for (int i = 0; i < hd / 2; ++i)
        for (int j = 0; j < 2; ++j) {
          const size_t hf_row = static_cast<size_t>(head) * hd + i + j * (hd / 2);
          const size_t l2c_row = static_cast<size_t>(head) * hd + 2 * i + j;
          for (int k = 0; k < dim; ++k)
            bad += f16_to_f32(f32_to_f16(w[l2c_row * dim + k])) != h[hf_row * dim + k];
        }
    EXPECT_EQ(bad, 0u) << vl[t].name;
    // The library's permutation says the same, and the unpermuted rows do not match.
    EXPECT_EQ(f16_mismatches(interleaved_to_halfsplit_rows(w, heads, hd, dim), h), 0u);
    EXPECT_EQ(halfsplit_to_interleaved_rows(interleaved_to_halfsplit_rows(w, heads, hd, dim), heads,
                                            hd, dim),
              w);
    EXPECT_GT(f16_mismatches(w, h), w.size() / 2) << vl[t].name;
  }
  EXPECT_LT(s, 5.0);
}

TEST(Llama2cLoader, InterleavedModelSavedAsHfGetsHfRowOrder) {
  const LlamaModel m = tiny(true);
  const std::string dir = test::temp_dir("l2c-to-hf");
  save_hf_model(m, dir);
  const LlamaModel r = load_hf_model(dir);
  const int hd = m.cfg.head_dim();
  EXPECT_EQ(r.layers[1].wq.w,
            interleaved_to_halfsplit_rows(m.layers[1].wq.w, m.cfg.n_heads, hd, m.cfg.dim));
  EXPECT_EQ(r.layers[1].wk.w,
            interleaved_to_halfsplit_rows(m.layers[1].wk.w, m.cfg.n_kv_heads, hd, m.cfg.dim));
  EXPECT_EQ(r.layers[1].wv.w, m.layers[1].wv.w);
  fs::remove_all(dir);
}

// ---- bad input -------------------------------------------------------------------------

TEST(Llama2cLoaderBadInput, TruncatedFile) {
  const std::string dir = test::temp_dir("l2c-trunc");
  const std::string path = dir + "/model.bin";
  write_llama2c(tiny(true), path);
  const auto full = fs::file_size(path);
  fs::resize_file(path, full - 4);
  expect_error(
      path, {"truncated", std::to_string(full - 4) + " bytes", "implies " + std::to_string(full)});
  fs::resize_file(path, 10);
  expect_error(path, {"truncated", "28-byte llama2.c header"});
  fs::remove_all(dir);
}

TEST(Llama2cLoaderBadInput, TrailingBytesAndBadHeader) {
  const std::string dir = test::temp_dir("l2c-bad");
  const std::string path = dir + "/model.bin";
  write_llama2c(tiny(true), path);
  std::ofstream(path, std::ios::binary | std::ios::app) << "xxxx";
  expect_error(path, {"size mismatch"});
  {
    std::ofstream f(path, std::ios::binary);
    const int32_t h[7] = {0x616b3432, 2, 0, 0, 0, 0, 0};  // llama2.c version-2 magic
    f.write(reinterpret_cast<const char*>(h), sizeof h);
  }
  expect_error(path, {"version 2", "not supported"});
  {
    std::ofstream f(path, std::ios::binary);
    const int32_t h[7] = {64, 96, -2, 4, 2, 97, 64};
    f.write(reinterpret_cast<const char*>(h), sizeof h);
  }
  expect_error(path, {"header field 'n_layers' = -2"});
  fs::remove_all(dir);
}

TEST(Llama2cLoaderBadInput, MissingFile) {
  expect_error("/nonexistent/model.bin", {"cannot open"});
}
