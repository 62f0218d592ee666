#include "lrc/pipeline/checkpoint.h"

#include <filesystem>
#include <fstream>

#include "lrc/core/error.h"
#include "lrc/io/safetensors_writer.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

constexpr const char* kConfigName = kCheckpointConfigName;
constexpr const char* kWeightsName = kCheckpointWeightsName;
constexpr const char* kFormat = kCheckpointFormat;

void add_linear(SafetensorsWriter& w, const Linear& l, const std::string& name,
                nlohmann::json& rec) {
  rec = {{"shape", {l.d_out, l.d_in}},
         {"rank", l.lr.rank},
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
  if (l.lr.rank > 0) {
    w.add_f32(name + ".lr_u", {l.d_out, l.lr.rank}, l.lr.u, DType::F16);
    w.add_f32(name + ".lr_v", {l.d_in, l.lr.rank}, l.lr.v, DType::F16);
  }
}

}  // namespace

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
      w.add_f32(checkpoint_norm_name(i, true), {c.dim}, L.attn_norm, DType::F16);
      w.add_f32(checkpoint_norm_name(i, false), {c.dim}, L.ffn_norm, DType::F16);
      for (const LayerLinearInfo& t : kLayerLinears) {
        const std::string name = checkpoint_linear_name(i, t);
        add_linear(w, L.*t.member, name, linears[name]);
      }
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

}  // namespace lrc
