// The lrc quantized checkpoint: a directory
//   lrc_config.json    model config, every quantization parameter, rotation seeds/kinds,
//                      per-linear rank and activation clip, lrc version, calibration hash
//   model.safetensors  fp16 embeddings / norms / LM head; per quantized linear
//                      <name>.qweight (U8, packed integer codes), <name>.scales (F16),
//                      <name>.zeros (F16; symmetric too: 2^(b-1)), <name>.lr_u / <name>.lr_v (F16)
//   tokenizer.*        a copy of the tokenizer file, when it was a file of its own
// Written into <dir>.partial and renamed, so an interrupted run never leaves a directory
// that looks valid. Loading gives the in-memory model back bit for bit.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

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

void save_checkpoint(const LlamaModel& m, const std::string& dir, const CheckpointInfo& info);

// True if `dir` holds lrc_config.json.
bool is_lrc_checkpoint(const std::string& dir);
// The model, and in *config the parsed lrc_config.json (if non-null).
LlamaModel load_checkpoint(const std::string& dir, nlohmann::json* config = nullptr);

nlohmann::json config_to_json(const LlamaConfig& c);
LlamaConfig config_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace lrc
