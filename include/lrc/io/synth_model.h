// Synthetic Llama models of real shapes (`lrc synth`): an HF directory with random bf16 weights,
// for measuring time and memory at 7B+ scale without downloading a model.
//
// The directory: config.json (as hf_config_json writes it), model-0000K-of-0000N.safetensors
// shards of at most shard_bytes each (one shard: model.safetensors) with
// model.safetensors.index.json, and a tokenizer (see SynthOptions::tokenizer).
//
// Weights (the recipe; every draw from a counter-based generator keyed by (seed, tensor, row),
// so the bytes depend on the seed alone, not on thread count or write order):
//   - outlier channels: n_o = max(2, round(0.002 d)) of the d hidden channels (the same set in
//     every layer, as in real LLMs), each with a gain g_c drawn log-uniform in [10, 100];
//   - embedding [vocab x dim]: N(0, 0.02²), outlier columns times g_c, so the residual stream
//     carries massive-activation channels from the first token on;
//   - input_layernorm / post_attention_layernorm [dim]: |N(1, 0.1²)|, outlier channels times
//     g_c, so the inputs of q/k/v and gate/up have a few channels 10-100x the rest (the
//     LLM.int8 / QuaRot outlier features that make per-token activation quantization hard);
//     model.norm: |N(1, 0.1²)| without outliers;
//   - linears W [d_out x d_in]: Kaiming N(0, 1/d_in) (no depth-dependent scaling, so that a
//     --layers N model is exactly the first N layers of the full one, same seed); max(2, round(0.002 d_out)) rows of v_proj and of up_proj times a gain log-uniform in
//     [10, 100], so the inputs of o_proj and down_proj have outlier channels too;
//   - lm_head (untied): N(0, 1/dim).
// Without outliers (SynthOptions::outliers = false) every gain is 1: the control.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "lrc/model/llama.h"

namespace lrc {

struct SynthPreset {
  std::string name;  // "llama2-7b", ...
  LlamaConfig cfg;   // the real model's shapes
};

// llama2-7b, llama2-13b, llama3-8b, smollm2-135m.
const std::vector<SynthPreset>& synth_presets();
// Throws lrc::Error naming --preset and the known names.
const SynthPreset& synth_preset(const std::string& name);

struct SynthOptions {
  uint64_t seed = 0;
  bool outliers = true;
  uint64_t shard_bytes = 4000000000ull;  // a shard holds at most this (one tensor may exceed it)
  // "" = a byte-level BPE tokenizer.json (256 byte tokens, <s> = 256, </s> = 257, no merges)
  // and a tokenizer_config.json naming <s>, </s> and add_bos; lrc accepts a tokenizer vocabulary smaller than the model's). Otherwise a tokenizer file
  // (tokenizer.model, tokenizer.json) copied into the directory; its vocabulary must not exceed
  // the model's.
  std::string tokenizer;
  std::FILE* progress = nullptr;  // progress lines (stderr from the CLI), null = quiet
};

struct SynthReport {
  std::vector<std::string> files;  // written, relative to the directory
  uint64_t weight_bytes = 0;       // bf16 data over every shard
  int64_t n_params = 0;
  double seconds = 0;
};

// Writes the synthetic model for cfg (n_layers as given) into dir (created if needed). Peak
// memory is a few chunk buffers (about 64 MB), whatever the model size.
SynthReport write_synth_model(const LlamaConfig& cfg, const std::string& dir,
                              const SynthOptions& opt = {});

// tokenizer.json of 256 byte tokens, <s> (256, BOS) and </s> (257, EOS), no merges: any text
// encodes byte by byte (vocab_size >= 258). Synthetic models and tests use it.
std::string byte_tokenizer_json();

}  // namespace lrc
