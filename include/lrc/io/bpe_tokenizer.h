// Byte-level BPE tokenizer (GPT-2 family: SmolLM2, Llama 3, ...), with Hugging Face
// `tokenizers` semantics:
//
//   1. added/special tokens (e.g. "<|im_start|>") are matched whole in the raw text (longest
//      match first); the text between them goes through steps 2-4,
//   2. pre-tokenization splits the text into pieces by a sequence of regexes (PCRE2, UTF+UCP),
//      e.g. SmolLM2: each digit on its own, then the GPT-2 pattern,
//   3. each piece's bytes become byte-level characters (byte_level.h),
//   4. BPE merges adjacent symbols of a piece, lowest merge rank first (leftmost on ties),
//      until no ranked pair is left; the symbols' ids are the tokens.
// Pieces seen before come from a cache. Decoding maps each token's characters back to bytes.
//
// The vocabulary comes from GGUF metadata (tokenizer.ggml.*, see gguf_loader.h) or an HF
// tokenizer.json (load_bpe_tokenizer_json).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lrc/io/tokenizer.h"

namespace lrc {

// Token types as GGUF stores them (llama.cpp's llama_token_type).
enum class BpeTokenType : int {
  Normal = 1,
  Unknown = 2,
  Control = 3,      // special tokens (HF added_tokens with special=true)
  UserDefined = 4,  // HF added_tokens with special=false
  Unused = 5,
  Byte = 6,
};

// One pre-tokenization step: every current piece is split by `regex`; each match and each
// non-empty gap between matches becomes a piece (HF Split, behaviour "Isolated"). An empty
// regex splits nothing. add_prefix_space: a ' ' is first put before every piece that does
// not start with one (HF ByteLevel add_prefix_space).
struct PreTokenizerStep {
  std::string regex;
  bool add_prefix_space = false;
};

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
extern const char* const kGpt2Pattern;
// The steps of a llama.cpp pre-tokenizer name (GGUF `tokenizer.ggml.pre`):
//   "gpt2"                -> GPT-2 pattern (HF ByteLevel(use_regex))
//   "smollm"              -> \p{N} then the GPT-2 pattern (HF Digits(individual) + ByteLevel)
//   "llama3", "llama-bpe" -> the Llama 3 pattern
// Throws lrc::Error naming `where` for any other name.
std::vector<PreTokenizerStep> pre_tokenizer_steps(const std::string& name,
                                                  const std::string& where);

struct BpeVocab {
  std::vector<std::string> tokens;  // id -> token text, in byte-level form ("Ġthe")
  std::vector<int> token_types;     // id -> BpeTokenType; empty = all Normal
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  std::string pre = "gpt2";  // the pre-tokenizer's llama.cpp name ("" if custom)
  std::vector<PreTokenizerStep> pre_steps;
  bool ignore_merges = false;  // HF: a piece that is itself a token is not merged
  // HF normalizer NFC (Qwen2/2.5/3): text whose code points all pass NFC's quick check is
  // already NFC and encodes as is; other text is refused (full NFC is not implemented).
  bool nfc = false;
  int bos_id = -1, eos_id = -1;
  bool add_bos = false;
};

class BpeTokenizer : public Tokenizer {
 public:
  // Builds merge tables; `where` (file name) prefixes errors: a merge whose parts or result is
  // not a token, a bad regex, token types of the wrong length.
  BpeTokenizer(BpeVocab vocab, const std::string& where);
  ~BpeTokenizer() override;
  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  // Invalid UTF-8 in text is replaced by U+FFFD first (HF takes only valid strings).
  std::vector<int> encode(std::string_view text) const override;
  std::string decode(int prev, int token) const override;
  int vocab_size() const override { return static_cast<int>(vocab_.tokens.size()); }
  int bos_id() const override { return vocab_.bos_id; }
  int eos_id() const override { return vocab_.eos_id; }
  bool add_bos() const override { return vocab_.add_bos; }
  std::string kind() const override { return "bpe"; }

  const BpeVocab& vocab() const { return vocab_; }
  int token_id(std::string_view token_text) const;  // -1 if absent
  // The pieces pre-tokenization makes of text (no special-token matching); for tests.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

 private:
  struct Impl;
  BpeVocab vocab_;
  std::unique_ptr<Impl> impl_;
};

// HF tokenizer.json: model.type "BPE" (vocab, merges as "a b" or [a, b], ignore_merges),
// added_tokens, normalizer null, pre_tokenizer from Sequence / Digits / ByteLevel / Split
// (Isolated). bos/eos/add_bos from tokenizer_config.json beside it when present, else from a
// TemplateProcessing post-processor, else the usual names (<|endoftext|>, </s>, ...).
std::unique_ptr<BpeTokenizer> load_bpe_tokenizer_json(const std::string& path);
// The tokenizer.json text HF would read for this vocabulary (for tests and conversion);
// pre-tokenizers "gpt2" and "smollm" only.
std::string bpe_tokenizer_json(const BpeVocab& vocab);

}  // namespace lrc
