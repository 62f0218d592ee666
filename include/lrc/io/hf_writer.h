// Write a LlamaModel as an HF Llama directory: config.json + model.safetensors, or
// n_shards files model-0000K-of-0000N.safetensors + model.safetensors.index.json.
// An Interleaved-RoPE model (llama2.c, GGUF) gets its q/k rows permuted to HF order.
// Each file is written to a temp name and renamed. Only the FP weights are written
// (quantized layers: the lrc checkpoint writer).
#pragma once

#include <string>

#include "lrc/io/dtype.h"
#include "lrc/model/llama.h"

namespace lrc {

void save_hf_model(const LlamaModel& m, const std::string& dir, DType dtype = DType::F32,
                   int n_shards = 1);

// The config.json object for cfg (as text), as save_hf_model writes it.
std::string hf_config_json(const LlamaConfig& cfg);

}  // namespace lrc
