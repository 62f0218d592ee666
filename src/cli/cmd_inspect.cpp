// lrc inspect --model PATH [--tokenizer P] [--json]
//
// Describes a model: format, architecture, config, every tensor (shape, stored dtype) and
// the parameter count. The description is built once as JSON (describe_* below); the text
// form is printed from that same object, so a new field (e.g. per-tensor bits or ranks of a
// quantized model) is added in one place and shows in both outputs.
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/command_registry.h"
#include "lrc/model/layer_linears.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/model_loader.h"
#include "lrc/pipeline/linear_quantizer.h"
#include "lrc/pipeline/quantize_model.h"

namespace lrc::cli {

namespace {

using nlohmann::ordered_json;

// A float32 as the double with the same shortest decimal form (1e-05, not 9.9999997e-06).
double shortest(float f) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, f);
  return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}

ordered_json describe_config(const LlamaConfig& c) {
  ordered_json j = {{"dim", c.dim},
          {"hidden_dim", c.hidden_dim},
          {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"head_dim", c.head_dim()},
          {"vocab_size", c.vocab_size},
          {"max_seq_len", c.max_seq_len},
          {"rope_style", c.rope == RopeStyle::HalfSplit ? "half-split" : "interleaved"},
          {"rope_theta", shortest(c.rope_theta)},
          {"norm_eps", shortest(c.norm_eps)},
          {"tied_embeddings", c.tied_embeddings},
          {"bos_id", c.bos_id},
          {"eos_id", c.eos_id}};
  // The family's features, where it has them (lrc/model/llama.h).
  if (c.rope_scaling.enabled()) j["rope_scaling"] = rope_scaling_name(c.rope_scaling.kind);
  if (c.qkv_bias) j["qkv_bias"] = true;
  if (c.qk_norm) j["qk_norm"] = true;
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  if (c.fused_proj) j["fused_proj"] = true;
  if (c.moe()) {
    j["n_experts"] = c.n_experts;
    j["n_experts_used"] = c.n_experts_used;
  }
  return j;
}

// The linears of m by the address of their weights (to annotate the tensor list).
std::map<const std::vector<float>*, const Linear*> linears_by_weights(const LlamaModel& m) {
  std::map<const std::vector<float>*, const Linear*> by;
  for (const auto& L : m.layers)
    for (const auto& t : layer_linears(m.cfg)) by[&t.of(L).w] = &t.of(L);
  by[&m.lm_head.w] = &m.lm_head;
  return by;
}

// One entry per stored tensor (HF names; lm_head absent when tied). A quantized linear
// shows its code type, low-rank size, activation quantizer and bits per weight (codes +
// scales + 16-bit U, V: the paper's "4 + overhead" accounting).
ordered_json describe_tensors(const LlamaModel& m) {
  ordered_json out = ordered_json::array();
  const auto linears = linears_by_weights(m);
  for (const HfTensorView& v : hf_tensor_views(m)) {
    auto dt = m.source_dtypes.find(v.name);
    ordered_json t = {{"name", v.name},
                      {"shape", v.shape},
                      {"dtype", dt == m.source_dtypes.end() ? "F32" : dt->second}};
    auto it = linears.find(v.data);
    if (it != linears.end() && it->second->packed) {
      const Linear& l = *it->second;
      t["dtype"] = "INT" + std::to_string(l.packed->bits);
      t["w_group"] = l.packed->groupsize;
      t["rank"] = l.lr.rank;
      t["a_bits"] = l.act.enabled() ? l.act.bits : 16;
      if (l.act.enabled()) t["a_clip"] = shortest(l.act.clip);
      t["bits_per_weight"] = linear_bits(l) / (static_cast<double>(l.d_out) * l.d_in);
    }
    out.push_back(std::move(t));
  }
  return out;
}

ordered_json describe_tokenizer(const Tokenizer* t, const std::string& path) {
  if (!t) return nullptr;
  return {{"kind", t->kind()},     {"path", path},          {"vocab_size", t->vocab_size()},
          {"bos_id", t->bos_id()}, {"eos_id", t->eos_id()}, {"add_bos", t->add_bos()}};
}

ordered_json describe(const LoadedModel& lm) {
  const LlamaModel& m = lm.model;
  ordered_json j;
  j["path"] = lm.path;
  j["format"] = lm.format;
  j["architecture"] = m.cfg.arch;
  j["config"] = describe_config(m.cfg);
  j["n_params"] = m.n_params();
  bool quantized = false;
  for (const auto& L : m.layers)
    quantized = quantized || layer_linears(m.cfg)[0].of(L).packed.has_value();
  if (quantized) {
    int64_t lowrank = 0;
    for (const auto& L : m.layers)
      for (const auto& t : layer_linears(m.cfg)) {
        const Linear& l = t.of(L);
        lowrank += static_cast<int64_t>(l.lr.rank) * (l.d_out + l.d_in);
      }
    j["bits_per_weight"] = model_bits_per_weight(m);  // over the quantized linears
    j["low_rank_params"] = lowrank;
  }
  j["tokenizer"] = describe_tokenizer(lm.tokenizer.get(), lm.tokenizer_path);
  j["tensors"] = describe_tensors(m);
  return j;
}

// "k=v, k=v" for an object's scalar members (nested values as compact JSON).
std::string inline_fields(const ordered_json& o, std::initializer_list<const char*> skip = {}) {
  std::string s;
  for (const auto& [k, v] : o.items()) {
    bool skipped = false;
    for (const char* x : skip) skipped = skipped || k == x;
    if (skipped) continue;
    s += (s.empty() ? "" : ", ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return s;
}

void print_text(const ordered_json& j) {
  for (const auto& [key, v] : j.items()) {
    if (key == "tensors") continue;
    if (v.is_object())
      std::printf("%-15s %s\n", key.c_str(), inline_fields(v).c_str());
    else
      std::printf("%-15s %s\n", key.c_str(),
                  v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
  }
  const auto& tensors = j["tensors"];
  std::printf("tensors (%zu):\n", tensors.size());
  size_t width = 0;
  for (const auto& t : tensors) width = std::max(width, t["name"].get<std::string>().size());
  for (const auto& t : tensors) {
    const std::string extra = inline_fields(t, {"name", "shape", "dtype"});
    std::printf("  %-*s %-14s %s%s%s\n", static_cast<int>(width),
                t["name"].get<std::string>().c_str(), t["shape"].dump().c_str(),
                t["dtype"].get<std::string>().c_str(), extra.empty() ? "" : "  ", extra.c_str());
  }
}

struct InspectOptions {
  std::string model, tokenizer;
  bool json = false;
};

const Registrar kRegistrar(
    "inspect", "Describe a model: format, config, tensors, parameter count",
    [](CLI::App& sub) -> std::function<int()> {
      auto o = std::make_shared<InspectOptions>();
      sub.add_option("--model", o->model, "HF directory or llama2.c model.bin")->required();
      sub.add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: beside the model)");
      sub.add_flag("--json", o->json, "One JSON object on stdout");
      return [o]() {
        const LoadedModel lm = load_model(o->model, o->tokenizer, !o->tokenizer.empty());
        const ordered_json j = describe(lm);
        if (o->json)
          std::printf("%s\n", j.dump(1).c_str());
        else
          print_text(j);
        return 0;
      };
    });

}  // namespace

}  // namespace lrc::cli
