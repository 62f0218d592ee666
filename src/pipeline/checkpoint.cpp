#include "lrc/pipeline/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/format/code_packing.h"
#include "lrc/pipeline/resume.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

// The tensors of one linear, in file order (shapes from its layout).
void declare_linear(std::vector<SafetensorsEntry>& e, const std::string& name, int d_out,
                    int d_in, const CheckpointLinearLayout& l) {
  if (!l.quantized) {
    e.push_back({name + ".weight", DType::F16, {d_out, d_in}});
  } else {
    const int64_t ng = l.groupsize > 0 ? d_in / l.groupsize : 1;
    e.push_back({name + ".qweight", DType::U8,
                 {packed_code_bytes(static_cast<int64_t>(d_out) * d_in, l.bits)}});
    e.push_back({name + ".scales", DType::F16, {d_out, ng}});
    e.push_back({name + ".zeros", DType::F16, {d_out, ng}});
  }
  if (l.rank > 0) {
    e.push_back({name + ".lr_u", DType::F16, {d_out, l.rank}});
    e.push_back({name + ".lr_v", DType::F16, {d_in, l.rank}});
  }
}

// Empties <dir>.partial but for the resume work area (resume.h) when keep_work_area; the work
// area belongs to the QuantizeJournal, which replaces it on a fresh run.
void clear_partial(const fs::path& partial, bool keep_work_area) {
  std::error_code ec;
  if (!keep_work_area || !fs::is_directory(partial, ec)) {
    fs::remove_all(partial, ec);
    return;
  }
  for (const auto& e : fs::directory_iterator(partial, ec))
    if (e.path().filename() != kResumeDirName) fs::remove_all(e.path(), ec);
}

}  // namespace

CheckpointLinearLayout CheckpointLinearLayout::of(const Linear& l) {
  CheckpointLinearLayout out;
  out.quantized = l.packed.has_value();
  if (l.packed) {
    out.bits = l.packed->bits;
    out.groupsize = l.packed->groupsize;
  }
  out.rank = l.lr.rank;
  return out;
}

CheckpointWriter::CheckpointWriter(const std::string& dir, const LlamaConfig& c,
                                   const LayoutOf& layout)
    : dir_(dir), partial_(dir + ".partial"), cfg_(c) {
  std::error_code ec;
  clear_partial(partial_, /*keep_work_area=*/true);
  fs::create_directories(partial_, ec);
  if (ec) fail(dir, "cannot create output directory: " + ec.message());
  try {  // a failure below (a layout the caller cannot give, a write error) leaves no .partial
    std::vector<SafetensorsEntry> e;
    e.push_back({"model.embed_tokens.weight", DType::F16, {c.vocab_size, c.dim}});
    for (int i = 0; i < c.n_layers; ++i) {
      e.push_back({checkpoint_norm_name(i, true), DType::F16, {c.dim}});
      e.push_back({checkpoint_norm_name(i, false), DType::F16, {c.dim}});
      for (const LayerLinearInfo& t : layer_linears(c)) {
        const std::string name = checkpoint_linear_name(i, t);
        const int d_out = static_cast<int>(linear_dim(c, t.out)),
                  d_in = static_cast<int>(linear_dim(c, t.in));
        layouts_[name] = layout(name, d_out, d_in);
        declare_linear(e, name, d_out, d_in, layouts_[name]);
      }
      // Biases and q/k norms stay fp32: they are added/multiplied after the (rounded) products.
      // A MoE router is fp16 (the pipeline rounded it: round_fp_parts_to_half).
      for (const LayerVector& v : layer_vectors(c, LlamaLayer{}))
        e.push_back({"model.layers." + std::to_string(i) + "." + v.name,
                     v.linear ? DType::F16 : DType::F32, v.dims()});
    }
    e.push_back({"model.norm.weight", DType::F16, {c.dim}});
    layouts_["lm_head"] = CheckpointLinearLayout{};
    declare_linear(e, "lm_head", c.vocab_size, c.dim, layouts_["lm_head"]);
    st_ = std::make_unique<SafetensorsStreamWriter>(
        (fs::path(partial_) / kCheckpointWeightsName).string(), std::move(e),
        std::map<std::string, std::string>{{"format", kCheckpointFormat}});
  } catch (...) {
    clear_partial(partial_, work_area_has_layers(partial_));
    throw;
  }
}

CheckpointWriter::~CheckpointWriter() {
  if (finished_) return;
  st_.reset();  // removes its .tmp
  // Finished layers in the work area stay for `lrc quantize --resume` (a kill -9 leaves them
  // too); otherwise nothing is left.
  clear_partial(partial_, work_area_has_layers(partial_));
}

void CheckpointWriter::put_f32(const std::vector<float>& v, size_t n, const std::string& what) {
  if (v.size() != n)
    fail(dir_, "tensor '" + what + "' has " + std::to_string(v.size()) + " values, expected " +
                   std::to_string(n));
  std::vector<uint8_t> bytes(4 * n);
  std::memcpy(bytes.data(), v.data(), 4 * n);
  st_->append(bytes);
}

void CheckpointWriter::put_f16(const std::vector<float>& v, size_t n, const std::string& what) {
  if (v.size() != n)
    fail(dir_, "tensor '" + what + "' has " + std::to_string(v.size()) + " values, expected " +
                   std::to_string(n));
  std::vector<uint8_t> bytes(2 * n);
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_f16(v[i]);
    std::memcpy(bytes.data() + 2 * i, &h, 2);
  }
  st_->append(bytes);
}

void CheckpointWriter::put_linear(const Linear& l, const std::string& name) {
  const CheckpointLinearLayout& want = layouts_.at(name);
  const CheckpointLinearLayout got = CheckpointLinearLayout::of(l);
  if (got.quantized != want.quantized || got.bits != want.bits ||
      got.groupsize != want.groupsize || got.rank != want.rank ||
      (l.packed && l.packed->zeros.empty()))
    fail(dir_, "linear '" + name + "' is not laid out as declared (quantized, bits, group size, "
                               "zeros or rank differ)");
  nlohmann::json& rec = linears_[name];
  rec = {{"shape", {l.d_out, l.d_in}},
         {"rank", l.lr.rank},
         {"act_bits", l.act.bits},
         {"act_clip", l.act.clip},
         {"act_groupsize", l.act.groupsize}};
  const size_t w_count = static_cast<size_t>(l.d_out) * l.d_in;
  if (!l.packed) {
    put_f16(l.w, w_count, name + ".weight");
    rec["quantized"] = false;
  } else {
    const PackedWeight& p = *l.packed;
    rec["quantized"] = true;
    rec["bits"] = p.bits;
    rec["groupsize"] = p.groupsize;
    rec["symmetric"] = p.symmetric;
    p.validate(name.c_str());
    st_->append(p.codes);
    put_f16(p.scales, p.scales.size(), name + ".scales");
    put_f16(p.zeros, p.zeros.size(), name + ".zeros");
  }
  if (l.lr.rank > 0) {
    put_f16(l.lr.u, static_cast<size_t>(l.d_out) * l.lr.rank, name + ".lr_u");
    put_f16(l.lr.v, static_cast<size_t>(l.d_in) * l.lr.rank, name + ".lr_v");
  }
}

void CheckpointWriter::write_embeddings(const std::vector<float>& tok_embeddings) {
  put_f16(tok_embeddings, static_cast<size_t>(cfg_.vocab_size) * cfg_.dim, "embed_tokens");
}

void CheckpointWriter::write_layer(int i, const LlamaLayer& L) {
  if (i != next_layer_)
    fail(dir_, "layer " + std::to_string(i) + " written out of order (expected " +
                   std::to_string(next_layer_) + ")");
  put_f16(L.attn_norm, static_cast<size_t>(cfg_.dim), checkpoint_norm_name(i, true));
  put_f16(L.ffn_norm, static_cast<size_t>(cfg_.dim), checkpoint_norm_name(i, false));
  for (const LayerLinearInfo& t : layer_linears(cfg_))
    put_linear(t.of(L), checkpoint_linear_name(i, t));
  for (const LayerVector& v : layer_vectors(cfg_, L)) {
    if (v.linear)
      put_f16(*v.data, static_cast<size_t>(v.size),
              "model.layers." + std::to_string(i) + "." + v.name);
    else
      put_f32(*v.data, static_cast<size_t>(v.size), v.name);
  }
  ++next_layer_;
}

void CheckpointWriter::finish(const LlamaModel& m, const CheckpointInfo& info) {
  if (next_layer_ != cfg_.n_layers)
    fail(dir_, "only " + std::to_string(next_layer_) + " of " + std::to_string(cfg_.n_layers) +
                   " layers were written");
  const fs::path final_dir(dir_);
  const fs::path partial(partial_);
  const LlamaConfig& c = m.cfg;
  try {
    put_f16(m.final_norm, static_cast<size_t>(c.dim), "model.norm.weight");
    put_linear(m.lm_head, "lm_head");
    st_->finish();
    nlohmann::json cfg = {{"format", kCheckpointFormat},
                          {"lrc_version", LRC_VERSION},
                          {"source_model", info.source_model},
                          {"model", config_to_json(c)},
                          {"quantization", info.options.to_json()},
                          {"kv_cache", {{"bits", m.kv.bits}, {"clip", m.kv.clip}}},
                          {"linears", linears_}};
    if (info.report) {
      // Numerical guards (issue 27): per linear the damping a solve had to raise and LRC solves
      // that kept GPTQ's result, and how many of each.
      int raised = 0, fallback = 0;
      for (const LinearReport& r : info.report->linears) {
        const nlohmann::json g = numerical_guards_json(r);
        if (g.empty()) continue;
        raised += g.contains("damping");
        fallback += g.contains("gptq_fallback");
        if (auto it = cfg["linears"].find("model." + r.name); it != cfg["linears"].end())
          it->update(g);
      }
      cfg["numerical_guards"] = {{"damping_raised", raised}, {"gptq_fallback", fallback}};
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
      std::ofstream f(partial / kCheckpointConfigName);
      f << cfg.dump(2) << "\n";
      if (!f) fail((partial / kCheckpointConfigName).string(), "write failed");
    }
    fs::remove_all(partial / kResumeDirName);  // the work area goes before the rename
    // Swap into place: an old checkpoint at `dir` is replaced only once the new one is whole.
    if (fs::exists(final_dir)) {
      if (!fs::is_directory(final_dir) ||
          (!fs::is_empty(final_dir) && !fs::exists(final_dir / kCheckpointConfigName)))
        fail(dir_, "exists and is not an lrc checkpoint; refusing to overwrite it");
      fs::remove_all(final_dir);
    }
    fs::rename(partial, final_dir);
  } catch (const fs::filesystem_error& e) {
    fail(dir_, std::string("cannot write checkpoint: ") + e.what());
  }
  finished_ = true;
}

void save_checkpoint(const LlamaModel& m, const std::string& dir, const CheckpointInfo& info) {
  std::map<std::string, CheckpointLinearLayout> layout;
  for (int i = 0; i < m.cfg.n_layers; ++i)
    for (const LayerLinearInfo& t : layer_linears(m.cfg))
      layout[checkpoint_linear_name(i, t)] =
          CheckpointLinearLayout::of(t.of(m.layers[static_cast<size_t>(i)]));
  CheckpointWriter w(dir, m.cfg, [&](const std::string& name, int, int) {
    return layout.at(name);
  });
  w.write_embeddings(m.tok_embeddings);
  for (int i = 0; i < m.cfg.n_layers; ++i) w.write_layer(i, m.layers[static_cast<size_t>(i)]);
  w.finish(m, info);
}

}  // namespace lrc
