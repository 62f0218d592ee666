// The lrc quantized checkpoint, its layout and its reader (the writer is
// pipeline/checkpoint.h). A directory:
//   lrc_config.json    model config, every quantization parameter, rotation seeds/kinds,
//                      per-linear rank and activation clip, lrc version, calibration hash
//   model.safetensors  fp16 embeddings / norms / LM head; per quantized linear
//                      <name>.qweight (U8, packed integer codes), <name>.scales (F16),
//                      <name>.zeros (F16), <name>.lr_u / <name>.lr_v (F16)
//                      (layout of the codes: format/packed_weight.h)
//   tokenizer.*        a copy of the tokenizer file, when it was a file of its own
// Loading gives the in-memory model back bit for bit; quantized linears stay packed.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "lrc/model/layer_linears.h"
#include "lrc/model/llama.h"

namespace lrc {

inline constexpr const char* kCheckpointConfigName = "lrc_config.json";
inline constexpr const char* kCheckpointWeightsName = "model.safetensors";
inline constexpr const char* kCheckpointFormat = "lrc-quantized-v1";

// The tensor-name prefix of a layer's linear t (model/layer_linears.h): "model.layers.i." + HF name.
inline std::string checkpoint_linear_name(int i, const LayerLinearInfo& t) {
  return "model.layers." + std::to_string(i) + "." + t.name;
}

inline std::string checkpoint_norm_name(int i, bool attn) {
  return "model.layers." + std::to_string(i) +
         (attn ? ".input_layernorm.weight" : ".post_attention_layernorm.weight");
}

// True if `dir` holds lrc_config.json.
bool is_lrc_checkpoint(const std::string& dir);
// The model, and in *config the parsed lrc_config.json (if non-null).
LlamaModel load_checkpoint(const std::string& dir, nlohmann::json* config = nullptr);

nlohmann::json config_to_json(const LlamaConfig& c);
LlamaConfig config_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace lrc
