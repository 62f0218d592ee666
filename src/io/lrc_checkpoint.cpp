#include "lrc/io/lrc_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "lrc/core/error.h"
#include "lrc/io/safetensors.h"
#include "lrc/rotate/quarot.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

Linear read_linear(const SafetensorsFile& st, const std::string& name, const nlohmann::json& rec,
                   const std::string& where) {
  Linear l;
  try {
    l.d_out = rec.at("shape").at(0).get<int>();
    l.d_in = rec.at("shape").at(1).get<int>();
    l.lr.rank = rec.at("rank").get<int>();
    l.act.bits = rec.at("act_bits").get<int>();
    l.act.clip = rec.at("act_clip").get<float>();
    l.act.groupsize = rec.at("act_groupsize").get<int>();
    if (rec.at("quantized").get<bool>()) {
      PackedWeight p;
      p.d_out = l.d_out;
      p.d_in = l.d_in;
      p.bits = rec.at("bits").get<int>();
      p.groupsize = rec.at("groupsize").get<int>();
      p.symmetric = rec.at("symmetric").get<bool>();
      p.codes = st.read_bytes(name + ".qweight");
      p.scales = st.read_f32(name + ".scales");
      if (st.has(name + ".zeros")) p.zeros = st.read_f32(name + ".zeros");
      p.validate((where + ": linears['" + name + "']").c_str());
      l.packed = std::move(p);
    } else {
      l.w = st.read_f32(name + ".weight");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(where, "linears['" + name + "']: " + e.what());
  }
  // Ranges the forward relies on, checked here so that a hand-edited file fails naming the
  // field instead of deep inside a kernel.
  const std::string field = "linears['" + name + "']: ";
  if (l.d_out <= 0 || l.d_in <= 0) fail(where, field + "shape must be positive");
  if (l.lr.rank < 0 || l.lr.rank > std::min(l.d_out, l.d_in))
    fail(where, field + "rank " + std::to_string(l.lr.rank) + " outside 0.." +
                    std::to_string(std::min(l.d_out, l.d_in)));
  if (l.act.bits != 16 && (l.act.bits < 2 || l.act.bits > 8))
    fail(where, field + "act_bits must be in 2..8 or 16, got " + std::to_string(l.act.bits));
  if (l.act.groupsize < 0)
    fail(where, field + "act_groupsize must be >= 0, got " + std::to_string(l.act.groupsize));
  if (!(l.act.clip > 0.f && l.act.clip <= 1.f))
    fail(where, field + "act_clip must be in (0, 1], got " + std::to_string(l.act.clip));
  if (l.lr.rank > 0) {
    l.lr.u = st.read_f32(name + ".lr_u");
    l.lr.v = st.read_f32(name + ".lr_v");
  }
  return l;
}

}  // namespace

nlohmann::json config_to_json(const LlamaConfig& c) {
  nlohmann::json j = {{"arch", c.arch},
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
  // Family features, written only where they differ from Llama's (a Llama checkpoint's config
  // is as before).
  if (c.head_dim_explicit > 0) j["head_dim"] = c.head_dim_explicit;
  if (c.qkv_bias) j["qkv_bias"] = true;
  if (c.qk_norm) j["qk_norm"] = true;
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  if (c.fused_proj) j["fused_proj"] = true;
  if (c.moe()) {
    j["n_experts"] = c.n_experts;
    j["n_experts_used"] = c.n_experts_used;
  }
  const RopeScaling& s = c.rope_scaling;
  if (s.enabled())
    j["rope_scaling"] = {{"type", rope_scaling_name(s.kind)},
                         {"factor", s.factor},
                         {"low_freq_factor", s.low_freq_factor},
                         {"high_freq_factor", s.high_freq_factor},
                         {"original", s.original},
                         {"short_factor", s.short_factor},
                         {"long_factor", s.long_factor},
                         {"attention_factor", s.attention_factor}};
  return j;
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
    c.head_dim_explicit = j.value("head_dim", 0);
    c.qkv_bias = j.value("qkv_bias", false);
    c.qk_norm = j.value("qk_norm", false);
    c.sliding_window = j.value("sliding_window", 0);
    c.fused_proj = j.value("fused_proj", false);
    c.n_experts = j.value("n_experts", 0);
    c.n_experts_used = j.value("n_experts_used", 0);
    if (j.contains("rope_scaling")) {
      const auto& r = j.at("rope_scaling");
      RopeScaling& s = c.rope_scaling;
      const std::string type = r.at("type").get<std::string>();
      if (type == "llama3")
        s.kind = RopeScaling::Kind::Llama3;
      else if (type == "longrope")
        s.kind = RopeScaling::Kind::LongRope;
      else if (type == "freq_factors")
        s.kind = RopeScaling::Kind::FreqFactors;
      else
        fail(where, "model config: field 'rope_scaling': unknown type '" + type + "'");
      s.factor = r.at("factor").get<float>();
      s.low_freq_factor = r.at("low_freq_factor").get<float>();
      s.high_freq_factor = r.at("high_freq_factor").get<float>();
      s.original = r.at("original").get<int>();
      s.short_factor = r.at("short_factor").get<std::vector<float>>();
      s.long_factor = r.at("long_factor").get<std::vector<float>>();
      s.attention_factor = r.at("attention_factor").get<float>();
    }
  } catch (const nlohmann::json::exception& e) {
    fail(where, std::string("model config: ") + e.what());
  }
  // Bounds before anything is sized from them (a layer count of 10^9 would allocate first and
  // fail later); the shapes themselves are checked against the tensors.
  constexpr int kMax = 1 << 24;
  for (const auto& [field, v] : {std::pair{"dim", c.dim}, std::pair{"hidden_dim", c.hidden_dim},
                                 std::pair{"n_layers", c.n_layers}, std::pair{"n_heads", c.n_heads},
                                 std::pair{"n_kv_heads", c.n_kv_heads},
                                 std::pair{"vocab_size", c.vocab_size}})
    if (v <= 0 || v > kMax)
      fail(where, std::string("model config: field '") + field + "': " + std::to_string(v) +
                      " out of range 1.." + std::to_string(kMax));
  return c;
}

bool is_lrc_checkpoint(const std::string& dir) {
  return fs::is_directory(dir) && fs::exists(fs::path(dir) / kCheckpointConfigName);
}

LlamaModel load_checkpoint(const std::string& dir, nlohmann::json* config_out) {
  const std::string cfg_path = (fs::path(dir) / kCheckpointConfigName).string();
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
  // Every field access below may meet a value of the wrong type in a damaged file: one
  // handler turns nlohmann's exception into an error naming the file.
  LlamaModel m;
  try {
    if (cfg.value("format", std::string()) != kCheckpointFormat)
      fail(cfg_path, "field 'format': expected '" + std::string(kCheckpointFormat) + "'");
    m.cfg = config_from_json(cfg.at("model"), cfg_path);
    const auto& c = m.cfg;
    SafetensorsFile st((fs::path(dir) / kCheckpointWeightsName).string());
    m.tok_embeddings = st.read_f32("model.embed_tokens.weight");
    m.final_norm = st.read_f32("model.norm.weight");
    if (!cfg.contains("linears")) fail(cfg_path, "missing field 'linears'");
    const auto& linears = cfg["linears"];
    auto rec = [&](const std::string& name) -> const nlohmann::json& {
      if (!linears.contains(name)) fail(cfg_path, "linears: missing entry '" + name + "'");
      return linears[name];
    };
    // Each layer has 9 tensors at least: a layer count the file cannot hold is refused before
    // anything is allocated for it.
    if (static_cast<uint64_t>(c.n_layers) * 9 > st.tensors().size())
      fail(cfg_path, "model config: field 'n_layers': " + std::to_string(c.n_layers) +
                         " layers, but model.safetensors holds only " +
                         std::to_string(st.tensors().size()) + " tensors");
    m.layers.resize(c.n_layers);
    for (int i = 0; i < c.n_layers; ++i) {
      auto& L = m.layers[i];
      L.attn_norm = st.read_f32(checkpoint_norm_name(i, true));
      L.ffn_norm = st.read_f32(checkpoint_norm_name(i, false));
      for (const LayerLinearInfo& t : layer_linears(c)) {
        const std::string name = checkpoint_linear_name(i, t);
        t.of(L) = read_linear(st, name, rec(name), cfg_path);
      }
      for (const LayerVector& v : layer_vectors(c, L))
        set_layer_vector(v, st.read_f32("model.layers." + std::to_string(i) + "." + v.name));
    }
    m.lm_head = read_linear(st, "lm_head", rec("lm_head"), cfg_path);
    if (cfg.contains("kv_cache")) {
      m.kv.bits = cfg["kv_cache"].value("bits", 16);
      m.kv.clip = cfg["kv_cache"].value("clip", 1.0f);
      if (m.kv.bits != 16 && (m.kv.bits < 2 || m.kv.bits > 8))
        fail(cfg_path, "kv_cache: bits must be in 2..8 or 16, got " + std::to_string(m.kv.bits));
      if (!(m.kv.clip > 0.f && m.kv.clip <= 1.f))
        fail(cfg_path, "kv_cache: clip must be in (0, 1], got " + std::to_string(m.kv.clip));
    }
    if (cfg.contains("rotation") && !cfg["rotation"].is_null())
      attach_online_transforms(m, cfg["rotation"].get<RotationInfo>());
    for (const auto& t : st.tensors()) m.source_dtypes[t.name] = std::string(dtype_name(t.dtype));
  } catch (const nlohmann::json::exception& e) {
    fail(cfg_path, e.what());
  }
  validate_model(m, dir);
  if (config_out) *config_out = std::move(cfg);
  return m;
}

}  // namespace lrc
