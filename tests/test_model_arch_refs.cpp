// The model families of issue 28 against HF transformers (mixtral: against the script's numpy
// transcription of HF's MixtralSparseMoeBlock, see scripts/make-arch-refs.py).
// tests/data/arch/<family>.json (made once by scripts/make-arch-refs.py on a machine with torch)
// holds a tiny random-weight model's config.json as transformers saved it, its tensor list, fixed
// token ids and transformers' logits; the weights are not stored: this test regenerates them from
// the script's counter rule, writes the HF directory a user would have and checks that lrc
//   * loads it and computes the same logits (max abs diff < 1e-3, fp32),
//   * keeps them through the QuaRot rotation, online q/k Hadamard included (< 1e-3),
//   * streams it layer by layer to the same logits,
//   * quantizes it with rtn, gptq and lrc through the CLI, and evaluates the checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/gguf_writer.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/hf_writer.h"
#include "lrc/io/model_loader.h"
#include "lrc/io/synth_model.h"
#include "lrc/model/forward.h"
#include "lrc/model/layer_linears.h"
#include "lrc/pipeline/quantize_model.h"
#include "lrc/pipeline/resume.h"
#include "lrc/quant/rank.h"
#include "lrc/rotate/quarot.h"
#include "support/arch_refs.h"
#include "support/paths.h"
#include "support/run_command.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace lrc;

namespace {

json read_ref(const std::string& family) { return test::read_arch_ref(family); }

std::string write_hf_dir(const json& ref, const std::string& tag, const std::string& skip = "") {
  return test::write_arch_hf_dir(ref, tag, skip);
}

using test::max_abs_diff;

struct Case {
  json ref;
  std::string dir;
  std::vector<int32_t> tokens;
  std::vector<float> logits;
};

Case load_case(const std::string& family) {
  Case c;
  c.ref = read_ref(family);
  c.dir = write_hf_dir(c.ref, family);
  c.tokens = c.ref.at("tokens").get<std::vector<int32_t>>();
  c.logits = c.ref.at("logits").get<std::vector<float>>();
  return c;
}

std::vector<float> logits_of(const LlamaModel& m, const std::vector<int32_t>& tokens) {
  return forward_logits(m, tokens.data(), 1, static_cast<int>(tokens.size()));
}

class ArchRef : public ::testing::TestWithParam<std::string> {};

// The family's feature is on in the loaded config (so the match below exercises it).
void expect_feature(const std::string& family, const LlamaConfig& c) {
  EXPECT_EQ(c.arch, family == "llama3" ? "llama" : family);
  EXPECT_EQ(c.rope_scaling.kind, family == "llama3" ? RopeScaling::Kind::Llama3
                                  : family == "phi3" ? RopeScaling::Kind::LongRope
                                                     : RopeScaling::Kind::None);
  EXPECT_EQ(c.sliding_window, family == "mistral" ? 5 : 0);
  EXPECT_EQ(c.qkv_bias, family == "qwen2");
  EXPECT_EQ(c.qk_norm, family == "qwen3");
  EXPECT_EQ(c.head_dim(), family == "qwen3" ? 32 : 16);  // qwen3: != dim / n_heads
  EXPECT_EQ(c.fused_proj, family == "phi3");
  EXPECT_EQ(c.n_experts, family == "mixtral" ? 4 : 0);  // mixtral: 4 experts, top-2
  EXPECT_EQ(c.n_experts_used, family == "mixtral" ? 2 : 0);
  EXPECT_LT(c.n_kv_heads, c.n_heads);  // GQA everywhere
}

// 40 lines of calibration text (enough for --nsamples 4 --seq 64 with the tiny tokenizers).
void write_calibration_text(const std::string& path) {
  std::ofstream f(path);
  for (int i = 0; i < 40; ++i)
    f << "Line " << i << ": the quick brown fox jumps over the lazy dog, " << i * 7 << "\n";
}

TEST_P(ArchRef, FpLogitsEqualTransformers) {
  const Case c = load_case(GetParam());
  const LlamaModel m = load_model(c.dir).model;
  expect_feature(GetParam(), m.cfg);
  const std::vector<float> got = logits_of(m, c.tokens);
  const double d = max_abs_diff(got, c.logits);
  std::printf("%s (reference: %s): max |logit - ref| = %.3g\n", GetParam().c_str(),
              c.ref.value("reference", "?").c_str(), d);
  EXPECT_LT(d, 1e-3);
  // Not vacuous: the logits spread well beyond the tolerance.
  double spread = 0;
  for (float x : c.logits) spread = std::max(spread, std::fabs(static_cast<double>(x)));
  EXPECT_GT(spread, 0.1);
}

TEST_P(ArchRef, QuarotRotationKeepsLogits) {
  const Case c = load_case(GetParam());
  LlamaModel m = load_model(c.dir).model;
  RotationOptions opt;
  opt.seed = 3;
  opt.online_qk = true;  // after RoPE, and so after qwen3's q/k norm
  rotate_model(m, opt);
  ASSERT_TRUE(m.online_qk && m.online_o && m.online_down);
  const double d = max_abs_diff(logits_of(m, c.tokens), c.logits);
  std::printf("%s rotated: max |logit - ref| = %.3g\n", GetParam().c_str(), d);
  EXPECT_LT(d, 1e-3);
}

TEST_P(ArchRef, StreamedLayersEqualEager) {
  const Case c = load_case(GetParam());
  const LlamaModel eager = load_model(c.dir).model;
  LlamaModel lazy = load_model(c.dir, "", false, /*lazy_layers=*/true).model;
  ASSERT_TRUE(lazy.layer_source);
  for (int i = 0; i < lazy.cfg.n_layers; ++i) lazy.load_layer(i);
  EXPECT_EQ(logits_of(lazy, c.tokens), logits_of(eager, c.tokens));
}

TEST_P(ArchRef, QuantizeThenEvalEndToEnd) {
  const Case c = load_case(GetParam());
  const std::string work = test::temp_dir("arch-q-" + GetParam());
  const std::string text = (fs::path(work) / "text.txt").string();
  write_calibration_text(text);
  const std::string bin = test::lrc_binary();
  for (const char* method : {"rtn", "gptq", "lrc"}) {
    SCOPED_TRACE(method);
    const std::string out = (fs::path(work) / method).string();
    const auto q = test::run_command(bin + " quantize --model " + c.dir + " --calib " + text +
                                     " --nsamples 4 --seq 64 --method " + method +
                                     " --rank 0.1 --out " + out + " 2>&1");
    ASSERT_EQ(q.exit_code, 0) << q.out;
    const auto e = test::run_command(bin + " eval --model " + out + " --data " + text +
                                     " --seq 64 --json 2>&1");
    ASSERT_EQ(e.exit_code, 0) << e.out;
    const json r = json::parse(e.out.substr(e.out.find('{')));
    EXPECT_TRUE(std::isfinite(r.at("ppl").get<double>())) << e.out;
    // Every quantized matrix of the family is listed, with its rank (10% for lrc).
    const auto in = test::run_command(bin + " inspect --model " + out + " --json 2>&1");
    ASSERT_EQ(in.exit_code, 0) << in.out;
    const json ij = json::parse(in.out.substr(in.out.find('{')));
    const LlamaModel m = load_model(out).model;
    for (int i = 0; i < m.cfg.n_layers; ++i)
      for (const auto& t : layer_linears(m.cfg)) {
        const Linear& l = t.of(m.layers[static_cast<size_t>(i)]);
        EXPECT_TRUE(l.quantized()) << layer_linear_name(i, t);
        const int k = l.lr.rank;
        if (std::string(method) == "lrc")
          EXPECT_EQ(k, rank_from_fraction(0.1, l.d_out, l.d_in)) << layer_linear_name(i, t);
        else
          EXPECT_EQ(k, 0);
      }
    EXPECT_NE(in.out.find(GetParam() == "llama3" ? "llama" : GetParam()), std::string::npos);
  }
}

// GGUF, as llama.cpp stores these families (llama with rope_freqs for Llama-3.1's scaling,
// qwen2 with attn_{q,k,v}.bias, qwen3 with attn_{q,k}_norm and key_length): written by lrc's
// GGUF writer, read back eagerly and streamed, the reference logits.
// Mixtral as llama with expert_count, its experts stacked in ffn_{gate,up,down}_exps (each
// expert read back as its slice) and its router in ffn_gate_inp. Phi-3 as phi3 with fused
// attn_qkv / ffn_up, rope_factors_{long,short} and the attention factor.
TEST(ArchGguf, Llama3Qwen2Qwen3MixtralPhi3RoundTrip) {
  for (const std::string family : {"llama3", "qwen2", "qwen3", "mixtral", "phi3"}) {
    SCOPED_TRACE(family);
    const Case c = load_case(family);
    const LlamaModel hf = load_model(c.dir).model;
    const std::string path = (fs::path(c.dir) / "model.gguf").string();
    save_gguf_model(hf, nullptr, path, gguf::GgmlType::F32);
    const LlamaModel g = load_gguf_model(path);
    EXPECT_EQ(g.cfg.arch, hf.cfg.arch);
    EXPECT_EQ(g.cfg.qkv_bias, hf.cfg.qkv_bias);
    EXPECT_EQ(g.cfg.qk_norm, hf.cfg.qk_norm);
    EXPECT_EQ(g.cfg.head_dim(), hf.cfg.head_dim());
    EXPECT_EQ(g.cfg.n_experts, hf.cfg.n_experts);
    EXPECT_EQ(g.cfg.n_experts_used, hf.cfg.n_experts_used);
    EXPECT_EQ(g.cfg.fused_proj, hf.cfg.fused_proj);
    EXPECT_EQ(g.cfg.sliding_window, hf.cfg.sliding_window);
    EXPECT_EQ(g.cfg.rope_scaling.enabled(), family == "llama3" || family == "phi3");
    if (family == "phi3") {  // LongRoPE as it is (llama3's becomes rope_freqs' factors)
      EXPECT_EQ(g.cfg.rope_scaling.kind, RopeScaling::Kind::LongRope);
      EXPECT_EQ(g.cfg.rope_scaling.short_factor, hf.cfg.rope_scaling.short_factor);
      EXPECT_EQ(g.cfg.rope_scaling.long_factor, hf.cfg.rope_scaling.long_factor);
      EXPECT_EQ(g.cfg.rope_scaling.original, hf.cfg.rope_scaling.original);
      EXPECT_EQ(g.cfg.rope_scaling.attention_factor, hf.cfg.rope_scaling.attention_factor);
    }
    EXPECT_LT(max_abs_diff(logits_of(g, c.tokens), c.logits), 1e-3);
    LlamaModel lazy = load_gguf_model(path, /*lazy_layers=*/true);
    for (int i = 0; i < lazy.cfg.n_layers; ++i) lazy.load_layer(i);
    EXPECT_EQ(logits_of(lazy, c.tokens), logits_of(g, c.tokens));
  }
}

// The same Phi-3 as llama.cpp's converter writes it, made without lrc: scripts/make-gguf-refs.py
// wrote tests/data/arch/phi3-llamacpp.gguf.dat with gguf-py (F16 matrices, F32 norms and
// LongRoPE factors, phi3.* keys). Loaded, it is the HF model with its matrices rounded to F16
// (bit for bit: fused q/k/v and gate/up rows in HF's order, nothing permuted), its logits are
// transformers' (< 1e-3), streaming gives the same, and `lrc quantize` -> `lrc eval` run on it.
TEST(ArchGguf, Phi3AsLlamaCppConvertsIt) {
  const Case c = load_case("phi3");
  const std::string path = std::string(LRC_SOURCE_DIR) + "/tests/data/arch/phi3-llamacpp.gguf.dat";
  const LlamaModel g = load_gguf_model(path);
  const LlamaModel hf = load_model(c.dir).model;
  expect_feature("phi3", g.cfg);
  EXPECT_EQ(g.cfg.dim, hf.cfg.dim);
  EXPECT_EQ(g.cfg.hidden_dim, hf.cfg.hidden_dim);
  EXPECT_EQ(g.cfg.n_heads, hf.cfg.n_heads);
  EXPECT_EQ(g.cfg.n_kv_heads, hf.cfg.n_kv_heads);
  EXPECT_EQ(g.cfg.max_seq_len, hf.cfg.max_seq_len);
  EXPECT_EQ(g.cfg.norm_eps, hf.cfg.norm_eps);
  EXPECT_EQ(g.cfg.rope_theta, hf.cfg.rope_theta);
  EXPECT_EQ(g.cfg.tied_embeddings, hf.cfg.tied_embeddings);
  EXPECT_EQ(g.cfg.sliding_window, hf.cfg.sliding_window);
  EXPECT_EQ(g.cfg.rope_scaling.short_factor, hf.cfg.rope_scaling.short_factor);
  EXPECT_EQ(g.cfg.rope_scaling.long_factor, hf.cfg.rope_scaling.long_factor);
  EXPECT_EQ(g.cfg.rope_scaling.original, hf.cfg.rope_scaling.original);
  EXPECT_FLOAT_EQ(g.cfg.rope_scaling.attention_factor, hf.cfg.rope_scaling.attention_factor);
  EXPECT_EQ(g.source_dtypes.at("model.layers.0.self_attn.qkv_proj.weight"), "F16");
  // Every tensor is the HF one, matrices rounded to F16 as the converter stores them.
  const auto hv = hf_tensor_views(hf), gv = hf_tensor_views(g);
  ASSERT_EQ(hv.size(), gv.size());
  for (size_t i = 0; i < hv.size(); ++i) {
    ASSERT_EQ(hv[i].name, gv[i].name);
    std::vector<float> want = *hv[i].data;
    if (hv[i].shape.size() == 2)
      for (float& x : want) x = f16_to_f32(f32_to_f16(x));
    EXPECT_EQ(*gv[i].data, want) << hv[i].name;
  }
  const double d = max_abs_diff(logits_of(g, c.tokens), c.logits);
  std::printf("phi3 GGUF (llama.cpp layout, F16): max |logit - transformers| = %.3g\n", d);
  EXPECT_LT(d, 1e-3);
  LlamaModel lazy = load_gguf_model(path, /*lazy_layers=*/true);
  for (int i = 0; i < lazy.cfg.n_layers; ++i) lazy.load_layer(i);
  EXPECT_EQ(logits_of(lazy, c.tokens), logits_of(g, c.tokens));

  const std::string work = test::temp_dir("arch-phi3-gguf");
  const std::string text = (fs::path(work) / "text.txt").string();
  write_calibration_text(text);
  const std::string bin = test::lrc_binary(), out = (fs::path(work) / "rtn").string();
  const auto q = test::run_command(bin + " quantize --model " + path + " --tokenizer " + c.dir +
                                   "/tokenizer.json --calib " + text +
                                   " --nsamples 4 --seq 64 --method rtn --out " + out + " 2>&1");
  ASSERT_EQ(q.exit_code, 0) << q.out;
  const auto e =
      test::run_command(bin + " eval --model " + out + " --data " + text + " --seq 64 --json 2>&1");
  ASSERT_EQ(e.exit_code, 0) << e.out;
  EXPECT_TRUE(std::isfinite(json::parse(e.out.substr(e.out.find('{'))).at("ppl").get<double>()))
      << e.out;
  const LlamaModel qm = load_model(out).model;
  EXPECT_TRUE(qm.cfg.fused_proj);
  for (const auto& t : layer_linears(qm.cfg)) EXPECT_TRUE(t.of(qm.layers[0]).quantized()) << t.name;
}

// What a phi3 GGUF can say that lrc does not run is refused, naming the file and the key or
// tensor: one LongRoPE factor set without the other, a scaling type other than longrope, an
// attention factor without factors, a partial rotary dimension.
TEST(ArchGguf, Phi3UnsupportedMetadataNamesFileAndKey) {
  const Case c = load_case("phi3");
  const LlamaModel hf = load_model(c.dir).model;
  const std::string path = (fs::path(c.dir) / "bad.gguf").string();
  const auto expect_error = [&](const GgufWriter& w, const std::string& what) {
    w.write(path);
    try {
      load_gguf_model(path);
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  GgufWriter w = gguf_model_writer(hf, nullptr);
  w.erase_tensor("rope_factors_short.weight");
  expect_error(w, "rope_factors_short.weight");
  w = gguf_model_writer(hf, nullptr);
  w.set("phi3.rope.scaling.type", gguf::Value::str("yarn"));
  expect_error(w, "phi3.rope.scaling.type");
  w = gguf_model_writer(hf, nullptr);
  w.erase_tensor("rope_factors_short.weight");
  w.erase_tensor("rope_factors_long.weight");
  expect_error(w, "phi3.rope.scaling.attn_factor");
  w = gguf_model_writer(hf, nullptr);
  w.set("phi3.rope.dimension_count", gguf::Value::u32(8));
  expect_error(w, "phi3.rope.dimension_count");
  w = gguf_model_writer(hf, nullptr);
  w.erase_tensor("blk.1.ffn_up.weight");
  expect_error(w, "blk.1.ffn_up.weight");
  // lrc's writer refuses what llama.cpp's phi3 would not read: rope_freqs' factors.
  LlamaModel ff = load_model(c.dir).model;
  ff.cfg.rope_scaling = RopeScaling{};
  ff.cfg.rope_scaling.kind = RopeScaling::Kind::FreqFactors;
  ff.cfg.rope_scaling.short_factor.assign(8, 2.f);
  EXPECT_THROW(gguf_model_writer(ff, nullptr), Error);
}

INSTANTIATE_TEST_SUITE_P(Families, ArchRef,
                         ::testing::Values("llama3", "mistral", "qwen2", "qwen3", "phi3",
                                           "mixtral"));

// Transformers 5 writes rope_parameters; configs on the Hub (4.x) say rope_theta +
// rope_scaling {"type"/"rope_type": ...} and, for Phi-3, original_max_position_embeddings
// beside it. Both spellings give the same model.
TEST(ArchConfig, LegacyRopeScalingEqualsRopeParameters) {
  for (const std::string family : {"llama3", "phi3"}) {
    SCOPED_TRACE(family);
    Case c = load_case(family);
    json cfg = c.ref.at("config");
    json rp = cfg.at("rope_parameters");
    cfg.erase("rope_parameters");
    cfg["rope_theta"] = rp.at("rope_theta");
    rp.erase("rope_theta");
    rp["type"] = rp.at("rope_type");
    rp.erase("rope_type");
    if (rp.contains("original_max_position_embeddings") && family == "phi3") {
      cfg["original_max_position_embeddings"] = rp.at("original_max_position_embeddings");
      rp.erase("original_max_position_embeddings");
      rp.erase("factor");
    }
    cfg["rope_scaling"] = rp;
    std::ofstream(fs::path(c.dir) / "config.json") << cfg.dump(2);
    EXPECT_LT(max_abs_diff(logits_of(load_model(c.dir).model, c.tokens), c.logits), 1e-3);
  }
}

TEST(ArchConfig, UnsupportedFeaturesNameTheFileAndField) {
  const Case c = load_case("qwen2");
  const auto expect_error = [&](json cfg, const std::string& field) {
    std::ofstream(fs::path(c.dir) / "config.json") << cfg.dump(2);
    try {
      load_model(c.dir);
      ADD_FAILURE() << "no error for " << field;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  json cfg = c.ref.at("config");
  json t = cfg;
  t["model_type"] = "gpt_neox";
  t["architectures"] = {"GPTNeoXForCausalLM"};
  expect_error(t, "model_type");
  // A MoE config whose experts-per-token exceeds its experts is refused, naming the field.
  json mix = read_ref("mixtral").at("config");
  mix["num_experts_per_tok"] = 5;
  expect_error(mix, "num_experts_per_tok");
  t = cfg;
  t["use_sliding_window"] = true;
  expect_error(t, "use_sliding_window");
  t = cfg;
  t["rope_parameters"]["rope_type"] = "yarn";
  expect_error(t, "rope_parameters");
  // A missing bias tensor is named, with its file.
  const std::string dir =
      write_hf_dir(c.ref, "qwen2-nobias", "model.layers.1.self_attn.k_proj.bias");
  try {
    load_model(dir);
    ADD_FAILURE() << "no error for the missing bias";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.layers.1.self_attn.k_proj.bias"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace

namespace {

// `lrc synth` presets of the families: each preset's features survive the HF writer and the
// loader (at small dims: a 7B layer would not fit a unit test), and the model runs.
TEST(ArchSynth, PresetFamiliesRoundTripThroughHfDirectories) {
  for (const std::string name :
       {"mistral-7b", "qwen2.5-7b", "qwen3-8b", "phi3-mini", "mixtral-8x7b"}) {
    SCOPED_TRACE(name);
    LlamaConfig c = synth_preset(name).cfg;
    const LlamaConfig full = c;
    c.dim = 64;
    c.hidden_dim = 96;
    c.n_heads = 4;
    c.n_kv_heads = full.n_kv_heads == full.n_heads ? 4 : 2;
    c.vocab_size = 300;
    c.n_layers = 2;
    if (c.sliding_window > 0) c.sliding_window = 3;
    const std::string dir = test::temp_dir("arch-synth");
    write_synth_model(c, dir);
    const LlamaModel m = load_model(dir).model;
    EXPECT_EQ(m.cfg.arch, full.arch);
    EXPECT_EQ(m.cfg.qkv_bias, full.qkv_bias);
    EXPECT_EQ(m.cfg.qk_norm, full.qk_norm);
    EXPECT_EQ(m.cfg.fused_proj, full.fused_proj);
    EXPECT_EQ(m.cfg.sliding_window, c.sliding_window);
    EXPECT_EQ(m.cfg.n_experts, full.n_experts);
    EXPECT_EQ(m.cfg.n_experts_used, full.n_experts_used);
    EXPECT_NE(full.arch, "llama");
    const std::vector<int32_t> toks = {5, 17, 200, 3, 99, 42};
    for (float x : logits_of(m, toks)) ASSERT_TRUE(std::isfinite(x));
  }
}

}  // namespace

namespace {

// HF's routing (MixtralSparseMoeBlock): softmax over every expert, the top k, renormalised;
// each expert gets its tokens in row order. Checked on hand-made logits.
TEST(ArchMoe, RoutingIsSoftmaxTopKRenormalised) {
  LlamaConfig c;
  c.n_experts = 4;
  c.n_experts_used = 2;
  const std::vector<float> logits = {
      0.f,  1.f,  2.f, 3.f,    // token 0: experts 3 and 2
      5.f,  -1.f, 5.f, 0.f,    // token 1: a tie, 0 and 2 (equal weights)
      -2.f, 4.f,  1.f, 4.5f};  // token 2: experts 3 and 1
  const MoeRouting r = route_tokens(c, logits.data(), 3);
  ASSERT_EQ(r.rows.size(), 4u);
  EXPECT_EQ(r.rows[0], (std::vector<int32_t>{1}));
  EXPECT_EQ(r.rows[1], (std::vector<int32_t>{2}));
  EXPECT_EQ(r.rows[2], (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(r.rows[3], (std::vector<int32_t>{0, 2}));
  // Renormalised over the chosen two: w = 1 / (1 + e^-(l_a - l_b)).
  const auto sig = [](double d) { return static_cast<float>(1.0 / (1.0 + std::exp(-d))); };
  EXPECT_FLOAT_EQ(r.weights[3][0], sig(1.0));
  EXPECT_FLOAT_EQ(r.weights[2][0], sig(-1.0));
  EXPECT_FLOAT_EQ(r.weights[0][0], 0.5f);
  EXPECT_FLOAT_EQ(r.weights[2][1], 0.5f);
  EXPECT_FLOAT_EQ(r.weights[3][1], sig(0.5));
  EXPECT_FLOAT_EQ(r.weights[1][0], sig(-0.5));
}

// Acceptance 3 of issue 28: an expert that receives no calibration token is quantized (gptq and
// lrc) from the statistics of every token of its layer, without NaN, and the rule is reported
// (stderr, the --json report, the checkpoint's lrc_config.json); the checkpoint evaluates.
TEST(ArchMoe, ExpertWithoutCalibrationTokensUsesAllTokensAndIsReported) {
  const Case c = load_case("mixtral");
  LlamaModel m = load_model(c.dir).model;
  // Layer 0's router rows 1, 2, 3 made equal: among equal probabilities the lower index wins
  // (route_tokens), so expert 3 is never in the top 2 of 4, whatever the input.
  const int dim = m.cfg.dim;
  std::vector<float>& r = m.layers[0].router.w;
  for (int e : {2, 3}) std::copy_n(r.begin() + dim, dim, r.begin() + e * dim);
  const std::string dir = test::temp_dir("arch-moe-empty");
  save_hf_model(m, dir, DType::F32);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(c.dir) / f, fs::path(dir) / f, fs::copy_options::overwrite_existing);
  const std::string text = (fs::path(dir) / "text.txt").string();
  write_calibration_text(text);
  const std::string bin = test::lrc_binary();
  for (const char* method : {"gptq", "lrc"}) {
    SCOPED_TRACE(method);
    const std::string out = (fs::path(dir) / method).string();
    const std::string err = out + ".stderr";
    const auto q = test::run_command(bin + " quantize --model " + dir + " --calib " + text +
                                     " --nsamples 4 --seq 64 --method " + method +
                                     " --rank 0.1 --json --out " + out + " 2>" + err);
    std::ifstream ef(err);
    const std::string stderr_text((std::istreambuf_iterator<char>(ef)), {});
    ASSERT_EQ(q.exit_code, 0) << q.out << stderr_text;
    EXPECT_NE(stderr_text.find("layers.0 expert 3: 0 routed calibration tokens"), std::string::npos)
        << stderr_text;
    const json rep = json::parse(q.out.substr(q.out.find('{')));
    const json cfg = json::parse(std::ifstream(fs::path(out) / "lrc_config.json"));
    int experts_seen = 0, routed = 0;
    for (const json& l : rep.at("linears")) {
      const std::string name = l.at("name").get<std::string>();
      if (name.find("block_sparse_moe.experts.") == std::string::npos) {
        EXPECT_FALSE(l.contains("rule")) << name;
        continue;
      }
      ++experts_seen;
      ASSERT_TRUE(l.contains("rule") && l.contains("expert_tokens")) << l.dump();
      EXPECT_TRUE(std::isfinite(l.at("objective_rel").get<double>())) << l.dump();
      const json& rec = cfg.at("linears").at("model." + name);
      EXPECT_EQ(rec.at("rule"), l.at("rule")) << name;
      EXPECT_EQ(rec.at("expert_tokens"), l.at("expert_tokens")) << name;
      const int64_t n = l.at("expert_tokens").get<int64_t>();
      if (name.starts_with("layers.0.block_sparse_moe.experts.3.")) {
        EXPECT_EQ(n, 0) << name;
        EXPECT_EQ(l.at("rule"), "all-tokens") << name;
      } else {
        EXPECT_EQ(l.at("rule"), n < 32 ? "all-tokens" : "routed") << name;
        routed += l.at("rule") == "routed";
      }
    }
    EXPECT_EQ(experts_seen, 2 * 4 * 3);           // 2 layers x 4 experts x w1, w3, w2
    EXPECT_GT(routed, 0);                         // the usual rule is exercised too
    const LlamaModel qm = load_model(out).model;  // loading refuses NaN/Inf weights
    const Linear& w2 = qm.layers[0].experts[3].w_down;
    EXPECT_TRUE(w2.quantized());
    const auto e = test::run_command(bin + " eval --model " + out + " --data " + text +
                                     " --seq 64 --json 2>&1");
    ASSERT_EQ(e.exit_code, 0) << e.out;
    const double ppl = json::parse(e.out.substr(e.out.find('{'))).at("ppl").get<double>();
    EXPECT_TRUE(std::isfinite(ppl));
    // Issue 30 with experts: two ranks (each routes half the sequences; counts, rules and
    // statistics summed over both) decide every rule and token count as one rank does, and
    // give its perplexity.
    const auto q2 = test::run_command(bin + " quantize --model " + dir + " --calib " + text +
                                      " --nsamples 4 --seq 64 --method " + method +
                                      " --rank 0.1 --json --nproc 2 --out " + out + "-2 2>/dev/null");
    ASSERT_EQ(q2.exit_code, 0) << q2.out;
    const json rep2 = json::parse(q2.out.substr(q2.out.find('{')));
    ASSERT_EQ(rep2.at("linears").size(), rep.at("linears").size());
    for (size_t k = 0; k < rep.at("linears").size(); ++k) {
      const json &a = rep.at("linears").at(k), &b = rep2.at("linears").at(k);
      EXPECT_EQ(a.at("name"), b.at("name"));
      EXPECT_EQ(a.value("rule", ""), b.value("rule", "")) << a.at("name");
      EXPECT_EQ(a.value("expert_tokens", -1), b.value("expert_tokens", -1)) << a.at("name");
    }
    const auto e2 = test::run_command(bin + " eval --model " + out + "-2 --data " + text +
                                      " --seq 64 --json 2>&1");
    ASSERT_EQ(e2.exit_code, 0) << e2.out;
    const double ppl2 = json::parse(e2.out.substr(e2.out.find('{'))).at("ppl").get<double>();
    std::printf("%s: ppl 1 rank %.10g, 2 ranks %.10g\n", method, ppl, ppl2);
    EXPECT_LT(std::fabs(ppl2 - ppl) / ppl, 1e-4);
  }
}

// The MoE block in incremental decoding (one token at a time through the KV cache) gives the
// prefill's logits, and the integer CPU kernels run a quantized MoE checkpoint (each expert's
// linears are ordinary Backend::linear calls) to the simulation's logits.
TEST(ArchMoe, DecodeEqualsPrefillAndIntegerKernelsRunTheExperts) {
  const Case c = load_case("mixtral");
  const LlamaModel m = load_model(c.dir).model;
  const std::vector<float> full = logits_of(m, c.tokens);
  Decoder dec(m, 32);
  const int vocab = m.cfg.vocab_size;
  double d = 0;
  for (size_t t = 0; t < c.tokens.size(); ++t) {
    const std::vector<float>& row = dec.step(c.tokens[t]);
    for (int j = 0; j < vocab; ++j)
      d = std::max(d, std::fabs(static_cast<double>(row[j] - full[t * vocab + j])));
  }
  EXPECT_LT(d, 1e-4);

  const std::string work = test::temp_dir("arch-moe-int");
  const std::string text = (fs::path(work) / "text.txt").string();
  write_calibration_text(text);
  const auto q =
      test::run_command(test::lrc_binary() + " quantize --model " + c.dir + " --calib " + text +
                        " --nsamples 2 --seq 64 --method gptq" + " --out " + work + "/q 2>&1");
  ASSERT_EQ(q.exit_code, 0) << q.out;
  LlamaModel sim = load_model(work + "/q").model;
  LlamaModel real = load_model(work + "/q").model;
  real.backend = make_cpu_int_backend();
  const std::vector<float> a = logits_of(sim, c.tokens), b = logits_of(real, c.tokens);
  double spread = 0;
  for (float x : a) spread = std::max(spread, std::fabs(static_cast<double>(x)));
  EXPECT_LT(max_abs_diff(a, b), 1e-3 * spread);
  EXPECT_GT(max_abs_diff(a, full), 1e-3);  // the checkpoint is quantized: not the FP logits
}

// The resume journal (lrc quantize --resume) records a MoE layer whole: restoring it gives the
// same experts (codes, scales, U, V), the same router and the experts' reports with their rule.
TEST(ArchMoe, ResumeJournalRestoresExpertsAndRouter) {
  const Case c = load_case("mixtral");
  LlamaModel m = load_model(c.dir).model;
  CalibrationSet calib;
  calib.n_seq = 2;
  calib.seq_len = 32;
  for (int i = 0; i < calib.n_seq * calib.seq_len; ++i) calib.tokens.push_back((i * 53 + 7) % 258);
  QuantizeOptions opt;
  opt.method = QuantMethod::LRC;
  opt.rank = 0.1;
  opt.moe_min_tokens = 20;  // 64 tokens x 2 over 4 experts: some may fall under it
  const std::string out = test::temp_dir("arch-moe-journal") + "/q";
  const nlohmann::json fp = {{"test", "moe"}};
  QuantizeReport rep;
  {
    QuantizeJournal j(out, fp, /*resume=*/false);
    rep = quantize_model(m, calib, opt, nullptr, &j);
  }
  QuantizeJournal j(out, fp, /*resume=*/true);
  // Both layer records are there; the hidden states after the last layer are never recorded
  // (a resume redoes that layer), so one layer counts as finished.
  ASSERT_EQ(j.layers_done(), 1);
  std::vector<LinearReport> reports;
  for (int i = 0; i < 2; ++i) {
    LlamaLayer R;
    QuantizeReport::LayerTimes times;
    j.restore_layer(i, m.cfg, R, reports, times);
    const LlamaLayer& L = m.layers[static_cast<size_t>(i)];
    EXPECT_EQ(R.router.w, L.router.w);
    EXPECT_EQ(R.router.d_out, 4);
    EXPECT_EQ(R.router.d_in, m.cfg.dim);
    for (const auto& t : layer_linears(m.cfg)) {
      const Linear &a = t.of(R), &b = t.of(L);
      ASSERT_TRUE(a.packed && b.packed) << layer_linear_name(i, t);
      EXPECT_EQ(a.packed->codes, b.packed->codes) << layer_linear_name(i, t);
      EXPECT_EQ(a.packed->scales, b.packed->scales);
      EXPECT_EQ(a.lr.u, b.lr.u);
      EXPECT_EQ(a.lr.v, b.lr.v);
    }
  }
  ASSERT_EQ(reports.size(), rep.linears.size());
  int experts = 0;
  for (size_t k = 0; k < reports.size(); ++k) {
    EXPECT_EQ(reports[k].name, rep.linears[k].name);
    EXPECT_EQ(reports[k].expert_tokens, rep.linears[k].expert_tokens);
    EXPECT_EQ(reports[k].rule, rep.linears[k].rule);
    experts += reports[k].expert_tokens >= 0;
  }
  EXPECT_EQ(experts, 2 * 4 * 3);
}

// The router (block_sparse_moe.gate) is not quantized: the checkpoint holds it as fp16 values.
TEST(ArchMoe, RouterStaysSixteenBitAndUnquantized) {
  const Case c = load_case("mixtral");
  const std::string out = test::temp_dir("arch-moe-router");
  const std::string text = (fs::path(out) / "text.txt").string();
  write_calibration_text(text);
  const auto q =
      test::run_command(test::lrc_binary() + " quantize --model " + c.dir + " --calib " + text +
                        " --nsamples 2 --seq 32 --method rtn" + " --out " + out + "/q 2>&1");
  ASSERT_EQ(q.exit_code, 0) << q.out;
  const LlamaModel m = load_model(out + "/q").model;
  for (const LlamaLayer& L : m.layers) {
    EXPECT_FALSE(L.router.quantized());
    EXPECT_EQ(L.router.d_out, 4);
    for (float x : L.router.w) ASSERT_EQ(x, f16_to_f32(f32_to_f16(x)));  // fp16 values
  }
}

}  // namespace
