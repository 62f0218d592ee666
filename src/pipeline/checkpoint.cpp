#include "lrc/pipeline/checkpoint.h"

#include <filesystem>
#include <fstream>

#include "lrc/core/error.h"
#include "lrc/io/safetensors.h"
#include "lrc/io/safetensors_writer.h"
#include "lrc/quant/weight_quant.h"
#include "lrc/rotate/quarot.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

constexpr const char* kConfigName = "lrc_config.json";
constexpr const char* kWeightsName = "model.safetensors";
constexpr const char* kFormat = "lrc-quantized-v1";

template <class LayerT, class LinearT>
std::vector<std::pair<LinearT*, std::string>> layer_linears(LayerT& L, int i) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  return {{&L.wq, p + "self_attn.q_proj"},  {&L.wk, p + "self_attn.k_proj"},
          {&L.wv, p + "self_attn.v_proj"},  {&L.wo, p + "self_attn.o_proj"},
          {&L.w_gate, p + "mlp.gate_proj"}, {&L.w_up, p + "mlp.up_proj"},
          {&L.w_down, p + "mlp.down_proj"}};
}

std::string norm_name(int i, bool attn) {
  return "model.layers." + std::to_string(i) +
         (attn ? ".input_layernorm.weight" : ".post_attention_layernorm.weight");
}

void add_linear(SafetensorsWriter& w, const Linear& l, const std::string& name,
                nlohmann::json& rec) {
  rec = {{"shape", {l.d_out, l.d_in}},
         {"rank", l.rank},
         {"act_bits", l.act.bits},
         {"act_clip", l.act.clip},
         {"act_groupsize", l.act.groupsize}};
  if (!l.packed) {
    w.add_f32(name + ".weight", {l.d_out, l.d_in}, l.w, DType::F16);
    rec["quantized"] = false;
  } else {
    const auto& p = *l.packed;
    const int64_t ng = static_cast<int64_t>(p.scales.size()) / l.d_out;
    rec["quantized"] = true;
    rec["bits"] = p.bits;
    rec["groupsize"] = p.groupsize;
    rec["symmetric"] = p.symmetric;
    w.add_bytes(name + ".qweight", DType::U8, {static_cast<int64_t>(p.codes.size())}, p.codes);
    w.add_f32(name + ".scales", {l.d_out, ng}, p.scales, DType::F16);
    if (!p.zeros.empty()) w.add_f32(name + ".zeros", {l.d_out, ng}, p.zeros, DType::F16);
  }
  if (l.rank > 0) {
    w.add_f32(name + ".lr_u", {l.d_out, l.rank}, l.u, DType::F16);
    w.add_f32(name + ".lr_v", {l.d_in, l.rank}, l.v, DType::F16);
  }
}

Linear read_linear(const SafetensorsFile& st, const std::string& name, const nlohmann::json& rec,
                   const std::string& where) {
  Linear l;
  try {
    l.d_out = rec.at("shape").at(0).get<int>();
    l.d_in = rec.at("shape").at(1).get<int>();
    l.rank = rec.at("rank").get<int>();
    l.act.bits = rec.at("act_bits").get<int>();
    l.act.clip = rec.at("act_clip").get<float>();
    l.act.groupsize = rec.at("act_groupsize").get<int>();
    if (rec.at("quantized").get<bool>()) {
      PackedWeight p;
      p.bits = rec.at("bits").get<int>();
      p.groupsize = rec.at("groupsize").get<int>();
      p.symmetric = rec.at("symmetric").get<bool>();
      p.codes = st.read_bytes(name + ".qweight");
      p.scales = st.read_f32(name + ".scales");
      if (st.has(name + ".zeros")) p.zeros = st.read_f32(name + ".zeros");
      l.w.assign(static_cast<size_t>(l.d_out) * l.d_in, 0.f);
      dequantize(p, l.d_out, l.d_in, l.w.data());
      l.packed = std::move(p);
    } else {
      l.w = st.read_f32(name + ".weight");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(where, "linears['" + name + "']: " + e.what());
  }
  if (l.rank > 0) {
    l.u = st.read_f32(name + ".lr_u");
    l.v = st.read_f32(name + ".lr_v");
  }
  return l;
}

}  // namespace

nlohmann::json config_to_json(const LlamaConfig& c) {
  return {{"arch", c.arch},
          {"dim", c.dim},
          {"hidden_dim", c.hidden_dim},
          {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"vocab_size", c.vocab_size},
          {"max_seq_len", c.max_seq_len},
          {"norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope", c.rope == RopeStyle::HalfSplit ? "half_split" : "interleaved"},
          {"tied_embeddings", c.tied_embeddings},
          {"bos_id", c.bos_id},
          {"eos_id", c.eos_id}};
}

LlamaConfig config_from_json(const nlohmann::json& j, const std::string& where) {
  LlamaConfig c;
  try {
    c.arch = j.at("arch").get<std::string>();
    c.dim = j.at("dim").get<int>();
    c.hidden_dim = j.at("hidden_dim").get<int>();
    c.n_layers = j.at("n_layers").get<int>();
    c.n_heads = j.at("n_heads").get<int>();
    c.n_kv_heads = j.at("n_kv_heads").get<int>();
    c.vocab_size = j.at("vocab_size").get<int>();
    c.max_seq_len = j.at("max_seq_len").get<int>();
    c.norm_eps = j.at("norm_eps").get<float>();
    c.rope_theta = j.at("rope_theta").get<float>();
    c.rope = j.at("rope").get<std::string>() == "half_split" ? RopeStyle::HalfSplit
                                                             : RopeStyle::Interleaved;
    c.tied_embeddings = j.at("tied_embeddings").get<bool>();
    c.bos_id = j.at("bos_id").get<int>();
    c.eos_id = j.at("eos_id").get<int>();
  } catch (const nlohmann::json::exception& e) {
    fail(where, std::string("model config: ") + e.what());
  }
  return c;
}

void save_checkpoint(const LlamaModel& m, const std::string& dir, const CheckpointInfo& info) {
  const fs::path final_dir(dir);
  const fs::path partial = final_dir.string() + ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);
  fs::create_directories(partial, ec);
  if (ec) fail(dir, "cannot create output directory: " + ec.message());
  try {
    SafetensorsWriter w;
    const auto& c = m.cfg;
    w.add_f32("model.embed_tokens.weight", {c.vocab_size, c.dim}, m.tok_embeddings, DType::F16);
    nlohmann::json linears = nlohmann::json::object();
    for (int i = 0; i < c.n_layers; ++i) {
      const auto& L = m.layers[i];
      w.add_f32(norm_name(i, true), {c.dim}, L.attn_norm, DType::F16);
      w.add_f32(norm_name(i, false), {c.dim}, L.ffn_norm, DType::F16);
      for (auto& [lin, name] : layer_linears<const LlamaLayer, const Linear>(L, i))
        add_linear(w, *lin, name, linears[name]);
    }
    w.add_f32("model.norm.weight", {c.dim}, m.final_norm, DType::F16);
    add_linear(w, m.lm_head, "lm_head", linears["lm_head"]);
    w.set_metadata("format", kFormat);
    w.write((partial / kWeightsName).string());

    nlohmann::json cfg = {{"format", kFormat},
                          {"lrc_version", LRC_VERSION},
                          {"source_model", info.source_model},
                          {"model", config_to_json(c)},
                          {"quantization", info.options.to_json()},
                          {"kv_cache", {{"bits", m.kv.bits}, {"clip", m.kv.clip}}},
                          {"linears", linears}};
    if (info.report) {
      cfg["rotation"] = info.report->rotation;
      cfg["bits_per_weight"] = info.report->bits_per_weight;
      cfg["quantize_seconds"] = info.report->seconds;
      if (!info.report->allocation.is_null()) cfg["rank_allocation"] = info.report->allocation;
    }
    if (info.calib)
      cfg["calibration"] = {{"file", fs::path(info.calib->source).filename().string()},
                            {"sha256", info.calib->sha256},
                            {"n_seq", info.calib->n_seq},
                            {"seq_len", info.calib->seq_len}};
    if (!info.tokenizer_file.empty()) {
      const fs::path tf(info.tokenizer_file);
      if (tf.extension() == ".gguf") {
        cfg["tokenizer"] = {{"source", fs::absolute(tf).string()}};
      } else {
        fs::copy_file(tf, partial / tf.filename(), fs::copy_options::overwrite_existing);
        cfg["tokenizer"] = {{"file", tf.filename().string()}};
      }
    }
    {
      std::ofstream f(partial / kConfigName);
      f << cfg.dump(2) << "\n";
      if (!f) fail((partial / kConfigName).string(), "write failed");
    }
    // Swap into place: an old checkpoint at `dir` is replaced only once the new one is whole.
    if (fs::exists(final_dir)) {
      if (!fs::is_directory(final_dir) ||
          (!fs::is_empty(final_dir) && !fs::exists(final_dir / kConfigName)))
        fail(dir, "exists and is not an lrc checkpoint; refusing to overwrite it");
      fs::remove_all(final_dir);
    }
    fs::rename(partial, final_dir);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(partial, ec);
    fail(dir, std::string("cannot write checkpoint: ") + e.what());
  } catch (...) {
    fs::remove_all(partial, ec);
    throw;
  }
}

bool is_lrc_checkpoint(const std::string& dir) {
  return fs::is_directory(dir) && fs::exists(fs::path(dir) / kConfigName);
}

LlamaModel load_checkpoint(const std::string& dir, nlohmann::json* config_out) {
  const std::string cfg_path = (fs::path(dir) / kConfigName).string();
  nlohmann::json cfg;
  {
    std::ifstream f(cfg_path);
    if (!f) fail(cfg_path, "cannot open");
    try {
      cfg = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      fail(cfg_path, std::string("invalid JSON: ") + e.what());
    }
  }
  if (cfg.value("format", std::string()) != kFormat)
    fail(cfg_path, "field 'format': expected '" + std::string(kFormat) + "'");
  LlamaModel m;
  m.cfg = config_from_json(cfg.at("model"), cfg_path);
  const auto& c = m.cfg;
  SafetensorsFile st((fs::path(dir) / kWeightsName).string());
  m.tok_embeddings = st.read_f32("model.embed_tokens.weight");
  m.final_norm = st.read_f32("model.norm.weight");
  if (!cfg.contains("linears")) fail(cfg_path, "missing field 'linears'");
  const auto& linears = cfg["linears"];
  auto rec = [&](const std::string& name) -> const nlohmann::json& {
    if (!linears.contains(name)) fail(cfg_path, "linears: missing entry '" + name + "'");
    return linears[name];
  };
  m.layers.resize(c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) {
    auto& L = m.layers[i];
    L.attn_norm = st.read_f32(norm_name(i, true));
    L.ffn_norm = st.read_f32(norm_name(i, false));
    for (auto& [lin, name] : layer_linears<LlamaLayer, Linear>(L, i))
      *lin = read_linear(st, name, rec(name), cfg_path);
  }
  m.lm_head = read_linear(st, "lm_head", rec("lm_head"), cfg_path);
  if (cfg.contains("kv_cache")) {
    m.kv.bits = cfg["kv_cache"].value("bits", 16);
    m.kv.clip = cfg["kv_cache"].value("clip", 1.0f);
  }
  if (cfg.contains("rotation") && !cfg["rotation"].is_null())
    attach_online_transforms(m, cfg["rotation"].get<RotationInfo>());
  for (const auto& t : st.tensors()) m.source_dtypes[t.name] = std::string(dtype_name(t.dtype));
  validate_model(m, dir);
  if (config_out) *config_out = std::move(cfg);
  return m;
}

}  // namespace lrc
