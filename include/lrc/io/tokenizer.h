// Tokenizer interface: sentencepiece (tokenizer.model), llama2.c (tokenizer.bin),
// byte-level BPE (GGUF metadata or HF tokenizer.json).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lrc {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of text, without BOS/EOS.
  virtual std::vector<int> encode(std::string_view text) const = 0;
  // The text of `token` following `prev` (for streaming output; handles leading-space rules).
  virtual std::string decode(int prev, int token) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  // Whether this tokenizer prepends BOS (eval protocol: BOS before each line if true,
  // otherwise each line is encoded as line + "\n" without BOS).
  virtual bool add_bos() const = 0;
  virtual std::string kind() const = 0;  // "sentencepiece", "llama2c", "bpe"
};

// By file: *.model -> sentencepiece, *.bin -> llama2.c, tokenizer.json -> BPE.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int vocab_size = -1);

}  // namespace lrc
