// The writer of the lrc quantized checkpoint (layout and reader: io/lrc_checkpoint.h).
// Written into <dir>.partial and renamed, so an interrupted run never leaves a directory
// that looks valid.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lrc/io/lrc_checkpoint.h"
#include "lrc/io/safetensors_writer.h"
#include "lrc/model/llama.h"
#include "lrc/pipeline/quantize_model.h"

namespace lrc {

struct CheckpointInfo {
  std::string source_model;    // path of the FP model it came from
  std::string tokenizer_file;  // tokenizer to copy beside it ("" = none)
  QuantizeOptions options;
  CalibrationSet const* calib = nullptr;  // for the record (file, hash, size)
  QuantizeReport const* report = nullptr;
};

// How one linear is stored: its tensors follow from this and its shape.
struct CheckpointLinearLayout {
  bool quantized = false;
  int bits = 4, groupsize = 0;
  int rank = 0;
  static CheckpointLinearLayout of(const Linear& l);
};

// The checkpoint written as it is produced, for a model that never sits whole in memory: every
// tensor is declared up front (shapes from the config and each linear's layout), so the
// safetensors header goes first; then the embeddings, each layer in order as the pipeline
// finishes it, and at finish() the final norm, the LM head, lrc_config.json and the rename of
// <dir>.partial to <dir>. Destroyed unfinished, it removes <dir>.partial, but for a resume work
// area that holds finished layers (resume.h; finish() removes the work area before the rename).
// save_checkpoint is this writer over an in-memory model (same bytes).
class CheckpointWriter {
 public:
  using LayoutOf =
      std::function<CheckpointLinearLayout(const std::string& name, int d_out, int d_in)>;
  CheckpointWriter(const std::string& dir, const LlamaConfig& c, const LayoutOf& layout);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  void write_embeddings(const std::vector<float>& tok_embeddings);  // [vocab x dim]
  void write_layer(int i, const LlamaLayer& L);                      // i = 0, 1, ... in order
  void finish(const LlamaModel& m, const CheckpointInfo& info);     // m: norm, head, kv, cfg

 private:
  void put_f16(const std::vector<float>& v, size_t n, const std::string& what);
  void put_f32(const std::vector<float>& v, size_t n, const std::string& what);
  void put_linear(const Linear& l, const std::string& name);

  std::string dir_, partial_;
  LlamaConfig cfg_;
  std::map<std::string, CheckpointLinearLayout> layouts_;
  std::unique_ptr<SafetensorsStreamWriter> st_;
  nlohmann::json linears_ = nlohmann::json::object();
  int next_layer_ = 0;
  bool finished_ = false;
};

void save_checkpoint(const LlamaModel& m, const std::string& dir, const CheckpointInfo& info);

}  // namespace lrc
