// SentencePiece vocabularies stored in GGUF (tokenizer.ggml.model "llama": every Llama-2,
// Mistral and Phi-3 GGUF), tokenized from the metadata alone with the semantics of llama.cpp's
// SPM tokenizer (and so of the sentencepiece library on the model they came from):
//
//   1. The text is split at special tokens (token_type CONTROL, USER_DEFINED or UNKNOWN:
//      <s>, </s>, <unk>, [INST], ...), longest match first, left to right.
//   2. Each piece of text between them gets a prefix ' ' when add_space_prefix is set (default
//      true; sentencepiece's add_dummy_prefix): the first piece and every piece after a special
//      token, as llama.cpp does; then ' ' -> U+2581 '▁'.
//   3. The piece is split into UTF-8 characters; adjacent symbols are merged while some pair's
//      concatenation is a NORMAL or USER_DEFINED token, always the pair of highest score
//      (tokenizer.ggml.scores), the leftmost among equal scores.
//   4. Each final symbol is its token; a symbol that is none (a character outside the
//      vocabulary) becomes its bytes' <0xXX> tokens (byte fallback), or <unk> where the
//      vocabulary has no byte tokens.
// Decoding: '▁' -> ' ', <0xXX> -> the byte, CONTROL -> "", <unk> -> " ⁇ ", and after BOS the
// prefix space is dropped (as the sentencepiece tokenizer does).
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/spm_piece.h"
#include "lrc/core/error.h"
#include "lrc/io/gguf.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/tokenizer.h"

namespace lrc {

namespace {

// llama.cpp's token types (tokenizer.ggml.token_type).
enum TokenType : int {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

constexpr std::string_view kSpace = io_detail::kSpmSpace;

class GgufSpmTokenizer final : public Tokenizer {
 public:
  explicit GgufSpmTokenizer(const gguf::GgufFile& f) : path_(f.path()) {
    const std::string& where = path_;
    tokens_ = f.get_string_array("tokenizer.ggml.tokens");
    const size_t n = tokens_.size();
    if (n == 0) fail(where, "metadata 'tokenizer.ggml.tokens': empty vocabulary");
    if (!f.has("tokenizer.ggml.scores"))
      fail(where,
           "metadata 'tokenizer.ggml.scores': missing (a sentencepiece vocabulary needs "
           "its merge scores)");
    const auto& scores = f.get_array("tokenizer.ggml.scores", gguf::ValueType::FLOAT32);
    if (scores.size() != n)
      fail(where, "metadata 'tokenizer.ggml.scores': " + std::to_string(scores.size()) +
                      " entries for " + std::to_string(n) + " tokens");
    scores_.reserve(n);
    for (const auto& v : scores) scores_.push_back(static_cast<float>(std::get<double>(v.data)));
    types_.assign(n, kNormal);
    if (f.has("tokenizer.ggml.token_type")) {
      const auto t = f.get_int_array("tokenizer.ggml.token_type");
      if (t.size() != n)
        fail(where, "metadata 'tokenizer.ggml.token_type': " + std::to_string(t.size()) +
                        " entries for " + std::to_string(n) + " tokens");
      for (size_t i = 0; i < n; ++i) {
        if (t[i] < 1 || t[i] > kByte)
          fail(where, "metadata 'tokenizer.ggml.token_type'[" + std::to_string(i) + "]: type " +
                          std::to_string(t[i]) + " is not one of 1..6");
        types_[i] = static_cast<int>(t[i]);
      }
    }
    for (size_t i = 0; i < n; ++i) {
      const int id = static_cast<int>(i);
      const std::string& s = tokens_[i];
      if (types_[i] == kNormal || types_[i] == kUserDefined) merge_ids_.emplace(s, id);
      if ((types_[i] == kControl || types_[i] == kUserDefined || types_[i] == kUnknown) &&
          !s.empty()) {
        specials_.emplace_back(s, id);
        first_byte_[static_cast<unsigned char>(s[0])] = true;
      }
      if (types_[i] == kByte) {
        // "<0xXX>"
        if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>')
          fail(where, "metadata 'tokenizer.ggml.tokens'[" + std::to_string(i) + "]: byte token '" +
                          s + "' is not <0xXX>");
        byte_ids_[std::stoi(s.substr(3, 2), nullptr, 16)] = id;
      }
    }
    std::stable_sort(specials_.begin(), specials_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    auto id = [&](const char* key, int dflt) -> int {
      if (!f.has(key)) return dflt < static_cast<int>(n) ? dflt : -1;
      const int64_t x = f.get_int(key);
      if (x < 0 || x >= static_cast<int64_t>(n))
        fail(where, std::string("metadata '") + key + "': id " + std::to_string(x) +
                        " is outside the vocabulary of " + std::to_string(n));
      return static_cast<int>(x);
    };
    // llama.cpp's defaults for SPM vocabularies.
    bos_ = id("tokenizer.ggml.bos_token_id", 1);
    eos_ = id("tokenizer.ggml.eos_token_id", 2);
    unk_ = id("tokenizer.ggml.unknown_token_id", 0);
    add_bos_ = !f.has("tokenizer.ggml.add_bos_token") || f.get_bool("tokenizer.ggml.add_bos_token");
    add_space_prefix_ =
        !f.has("tokenizer.ggml.add_space_prefix") || f.get_bool("tokenizer.ggml.add_space_prefix");
  }

  // Step 1 of the file comment: special tokens, then encode_piece for the text between.
  std::vector<int> encode(std::string_view text) const override {
    std::vector<int> ids;
    size_t start = 0;
    bool prev_special = true;  // the first piece gets the prefix space too
    for (size_t i = 0; i <= text.size();) {
      int hit = -1;
      size_t len = 0;
      if (i < text.size() && first_byte_[static_cast<unsigned char>(text[i])]) {
        for (const auto& [s, sid] : specials_)
          if (text.compare(i, s.size(), s) == 0) {
            hit = sid;
            len = s.size();
            break;
          }
      }
      if (hit < 0 && i < text.size()) {
        ++i;
        continue;
      }
      if (i > start) {
        encode_piece(text.substr(start, i - start), prev_special, ids);
        prev_special = false;
      }
      if (hit < 0) break;  // end of text
      ids.push_back(hit);
      prev_special = true;
      i += len;
      start = i;
    }
    return ids;
  }

  std::string decode(int prev, int token) const override {
    if (token < 0 || token >= vocab_size())
      fail(path_, "token id " + std::to_string(token) + " out of range");
    const int type = types_[static_cast<size_t>(token)];
    const std::string& s = tokens_[static_cast<size_t>(token)];
    if (type == kControl) return "";
    if (type == kUnknown) return " \xE2\x81\x87 ";  // " ⁇ ", as sentencepiece decodes <unk>
    if (type == kByte) return io_detail::spm_byte_piece_text(s);
    std::string out = io_detail::spm_piece_text(s);
    if (add_space_prefix_ && prev == bos_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

  int vocab_size() const override { return static_cast<int>(tokens_.size()); }
  int bos_id() const override { return bos_; }
  int eos_id() const override { return eos_; }
  bool add_bos() const override { return add_bos_; }
  std::string kind() const override { return "sentencepiece"; }

 private:
  struct Symbol {
    size_t pos, len;  // bytes of the escaped text; len 0: merged into its left neighbour
    int prev, next;   // neighbours' indices, -1 at the ends
  };
  struct Bigram {
    float score;
    int left;    // symbol index
    size_t len;  // bytes of the pair when queued (stale once either side has changed)
    bool operator<(const Bigram& o) const {  // max-heap: highest score, then leftmost
      return score < o.score || (score == o.score && left > o.left);
    }
  };

  // Steps 2-4 of the file comment for one piece of text without special tokens.
  void encode_piece(std::string_view piece, bool prefix, std::vector<int>& ids) const {
    std::string text;
    if (add_space_prefix_ && prefix) text += kSpace;
    for (char c : piece) {
      if (c == ' ')
        text += kSpace;
      else
        text += c;
    }
    std::vector<Symbol> sym;
    for (size_t i = 0; i < text.size();) {
      const auto b = static_cast<unsigned char>(text[i]);
      size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;  // invalid lead bytes: 1-4
      if (b >= 0x80 && b < 0xC0) len = 1;
      len = std::min(len, text.size() - i);
      const int k = static_cast<int>(sym.size());
      sym.push_back({i, len, k - 1, -1});
      if (k > 0) sym[static_cast<size_t>(k - 1)].next = k;
      i += len;
    }
    std::priority_queue<Bigram> queue;
    auto try_pair = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      const Symbol& a = sym[static_cast<size_t>(l)];
      const Symbol& b = sym[static_cast<size_t>(r)];
      const auto it = merge_ids_.find(std::string_view(text).substr(a.pos, a.len + b.len));
      if (it == merge_ids_.end()) return;
      queue.push({scores_[static_cast<size_t>(it->second)], l, a.len + b.len});
    };
    for (int k = 1; k < static_cast<int>(sym.size()); ++k) try_pair(k - 1, k);
    while (!queue.empty()) {
      const Bigram g = queue.top();
      queue.pop();
      Symbol& a = sym[static_cast<size_t>(g.left)];
      if (a.len == 0 || a.next < 0) continue;
      Symbol& b = sym[static_cast<size_t>(a.next)];
      if (a.len + b.len != g.len) continue;  // stale: a side has merged since
      a.len += b.len;
      b.len = 0;
      a.next = b.next;
      if (a.next >= 0) sym[static_cast<size_t>(a.next)].prev = g.left;
      try_pair(a.prev, g.left);
      try_pair(g.left, a.next);
    }
    for (int k = sym.empty() ? -1 : 0; k >= 0; k = sym[static_cast<size_t>(k)].next) {
      const Symbol& s = sym[static_cast<size_t>(k)];
      const std::string_view t = std::string_view(text).substr(s.pos, s.len);
      if (const auto it = merge_ids_.find(t); it != merge_ids_.end()) {
        ids.push_back(it->second);
        continue;
      }
      for (char c : t) {  // byte fallback
        const int id = byte_ids_[static_cast<unsigned char>(c)];
        if (id >= 0) {
          ids.push_back(id);
        } else {
          if (unk_ < 0) fail(path_, "text has a character outside the vocabulary and no <unk>");
          ids.push_back(unk_);
          break;
        }
      }
    }
  }

  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  std::string path_;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<int> types_;
  std::unordered_map<std::string, int, Hash, std::equal_to<>> merge_ids_;  // NORMAL, USER_DEFINED
  std::vector<std::pair<std::string, int>> specials_;                      // longest first
  std::array<bool, 256> first_byte_{};
  std::array<int, 256> byte_ids_ = [] {
    std::array<int, 256> a;
    a.fill(-1);
    return a;
  }();
  int bos_ = -1, eos_ = -1, unk_ = -1;
  bool add_bos_ = true, add_space_prefix_ = true;
};

}  // namespace

std::unique_ptr<Tokenizer> load_gguf_spm_tokenizer(const gguf::GgufFile& f) {
  return std::make_unique<GgufSpmTokenizer>(f);
}

std::unique_ptr<Tokenizer> load_gguf_vocab_tokenizer(const std::string& file) {
  const gguf::GgufFile f(file);
  if (f.has("tokenizer.ggml.model") && f.get_string("tokenizer.ggml.model") == "llama")
    return load_gguf_spm_tokenizer(f);
  return std::make_unique<BpeTokenizer>(load_gguf_bpe_vocab(f), file);
}

}  // namespace lrc
