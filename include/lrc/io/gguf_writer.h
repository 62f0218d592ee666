// A minimal GGUF v3 writer: metadata of every value type, float tensors stored as F32 / F16 /
// BF16, and raw pre-encoded tensors (hand-built quant blocks in tests). Layout as gguf.h
// describes; each tensor's data starts at a multiple of the alignment.
//
// save_gguf_model writes a LlamaModel as llama.cpp's convert_hf_to_gguf.py would: `<arch>.*`
// keys, GGUF tensor names, q/k rows permuted for interleaved RoPE (llama), norms in F32, and the
// vocabulary in `tokenizer.ggml.*` when one is given. phi3 as its Phi3MiniModel: fused attn_qkv /
// ffn_up, rope_factors_{long,short}.weight and rope.scaling.{attn_factor,original_context_length}
// for LongRoPE, attention.sliding_window.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/gguf.h"
#include "lrc/model/llama.h"

namespace lrc {

class GgufWriter {
 public:
  // Sets `key`; a key set twice keeps its first position and the new value.
  void set(const std::string& key, gguf::Value v);
  void erase(const std::string& key);
  void erase_tensor(const std::string& name);
  // Also writes general.alignment (uint32).
  void set_alignment(uint32_t alignment);
  // shape in row-major (PyTorch) order; data converted to `type` (F32, F16 or BF16).
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape,
                  std::span<const float> data, gguf::GgmlType type = gguf::GgmlType::F32);
  // Pre-encoded data of any type; its size must match shape and type.
  void add_raw_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t type,
                      std::vector<uint8_t> bytes);

  std::vector<uint8_t> bytes() const;  // the whole file
  // Writes `path.tmp` and renames it to `path`; nothing is left behind on failure.
  void write(const std::string& path) const;

 private:
  void serialize(const std::function<void(const void*, size_t)>& sink) const;
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;  // ggml order
    uint32_t type;
    std::vector<uint8_t> bytes;
  };
  std::vector<gguf::KeyValue> kv_;
  std::vector<Tensor> tensors_;
  uint64_t alignment_ = gguf::kDefaultAlignment;
};

// type: F32, F16 or BF16 for the matrices (1-D norms stay F32). vocab may be null.
GgufWriter gguf_model_writer(const LlamaModel& m, const BpeVocab* vocab,
                             gguf::GgmlType type = gguf::GgmlType::F32);
void save_gguf_model(const LlamaModel& m, const BpeVocab* vocab, const std::string& path,
                     gguf::GgmlType type = gguf::GgmlType::F32);

}  // namespace lrc
