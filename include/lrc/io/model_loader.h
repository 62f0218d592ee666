// One entry point for every model format lrc reads:
//   - HF directory (config.json + model.safetensors or sharded + index),
//   - llama2.c checkpoint file (legacy version 0),
//   - GGUF file,
//   - lrc quantized checkpoint directory (lrc_config.json).
#pragma once

#include <memory>
#include <string>

#include "lrc/io/tokenizer.h"
#include "lrc/model/llama.h"

namespace lrc {

struct LoadedModel {
  LlamaModel model;
  std::unique_ptr<Tokenizer> tokenizer;  // null if none was found and none was asked for
  std::string format;                    // "hf", "llama2c", "gguf", "lrc"
  std::string path;
  std::string tokenizer_path;  // the file the tokenizer came from ("" if none)
};

// tokenizer_path empty: the default beside the model (tokenizer.model / tokenizer.json in an
// HF dir, tokenizer.bin beside a llama2.c file, the GGUF's own vocabulary).
// lazy_layers: an HF directory's or a GGUF file's layers stay in their mapped files until the
// pipeline loads them one at a time (load_hf_model, load_gguf_model); llama2.c files and lrc
// checkpoints load whole.
LoadedModel load_model(const std::string& path, const std::string& tokenizer_path = "",
                       bool need_tokenizer = true, bool lazy_layers = false);

// The individual loaders (src/io/*.cpp).
// lazy_layers: only the embeddings, final norm and LM head are read; each layer is read from
// the mapped files when the pipeline asks for it (LlamaModel::layer_source).
LlamaModel load_hf_model(const std::string& dir, bool lazy_layers = false);
LlamaModel load_llama2c_model(const std::string& file);

}  // namespace lrc
