// llama2.c tokenizer (tokenizer.bin), encoding exactly as run.c's encode() does.
//
// File: int32 max_token_length, then per token: float32 score, int32 len, len bytes.
// Pieces are sentencepiece pieces with '▁' already replaced by ' '; BOS = 1, EOS = 2.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>

#include "lrc/core/error.h"
#include "lrc/io/mapped_file.h"
#include "lrc/io/tokenizer.h"

namespace lrc {

namespace {

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(const std::string& path, int vocab_size) : path_(path) {
    const MappedFile f(path);
    const uint8_t* p = f.data();
    const uint8_t* end = p + f.size();
    auto read_i32 = [&](const char* field) {
      if (end - p < 4)
        fail(path, std::string("truncated: ") + field + " of token " +
                       std::to_string(pieces_.size()) + " runs past the end of the file");
      int32_t v;
      std::memcpy(&v, p, 4);
      p += 4;
      return v;
    };
    max_token_length_ = read_i32("max_token_length");
    if (max_token_length_ <= 0 || max_token_length_ > (1 << 16))
      fail(path, "max_token_length " + std::to_string(max_token_length_) +
                     " is not valid (not a llama2.c tokenizer.bin?)");
    while (vocab_size < 0 ? p < end : static_cast<int>(pieces_.size()) < vocab_size) {
      const int32_t s = read_i32("score");
      float score;
      std::memcpy(&score, &s, 4);
      const int32_t len = read_i32("len");
      if (len < 0 || len > end - p)
        fail(path, "token " + std::to_string(pieces_.size()) + ": length " + std::to_string(len) +
                       " runs past the end of the file");
      pieces_.emplace_back(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
      scores_.push_back(score);
      p += len;
    }
    // encode() falls back to ids 3..258 (<0x00>..<0xFF>) for a codepoint the vocabulary lacks,
    // as run.c does: a smaller vocabulary would make it emit ids that do not exist.
    if (pieces_.size() < 259)
      fail(path, "vocabulary has " + std::to_string(pieces_.size()) +
                     " tokens; a llama2.c tokenizer needs at least 259 (<unk>, <s>, </s> and the "
                     "256 byte tokens)");
    for (int i = 0; i < static_cast<int>(pieces_.size()); ++i)
      lookup_.emplace(pieces_[i], i);  // first id wins for a duplicated piece
    auto sp = lookup_.find(" ");
    dummy_prefix_ = sp == lookup_.end() ? -1 : sp->second;
  }

  std::vector<int> encode(std::string_view text) const override {
    text = text.substr(0, text.find('\0'));  // run.c works on C strings
    std::vector<int> t;
    if (text.empty()) return t;
    if (dummy_prefix_ >= 0) t.push_back(dummy_prefix_);  // add_dummy_prefix

    // UTF-8 codepoints -> ids; a codepoint not in the vocabulary -> its bytes + 3
    // (ids 3..258 are the <0xNN> byte tokens).
    std::string buf;
    for (size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if ((c & 0xC0) != 0x80) buf.clear();  // not a continuation byte: a new codepoint
      buf += static_cast<char>(c);
      const bool next_cont =
          i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
      if (next_cont && buf.size() < 4) continue;
      if (auto it = lookup_.find(buf); it != lookup_.end()) {
        t.push_back(it->second);
      } else {
        for (unsigned char b : buf) t.push_back(b + 3);
      }
      buf.clear();
    }

    // Greedy merge: repeatedly replace the adjacent pair whose concatenation is the
    // highest-scoring vocabulary entry (first such pair on ties; scores must beat -1e10).
    // pair_id/pair_score cache each pair's merge so one merge costs O(n), not O(n) lookups.
    std::vector<int> pair_id(t.size());
    std::vector<float> pair_score(t.size());
    auto eval_pair = [&](size_t i) {
      pair_id[i] = -1;
      if (i + 1 >= t.size()) return;
      const std::string& a = pieces_[t[i]];
      const std::string& b = pieces_[t[i + 1]];
      if (static_cast<int>(a.size() + b.size()) > max_token_length_) return;
      if (auto it = lookup_.find(a + b); it != lookup_.end()) {
        pair_id[i] = it->second;
        pair_score[i] = scores_[it->second];
      }
    };
    for (size_t i = 0; i < t.size(); ++i) eval_pair(i);
    while (true) {
      float best_score = -1e10f;
      int best_idx = -1;
      for (size_t i = 0; i + 1 < t.size(); ++i)
        if (pair_id[i] >= 0 && pair_score[i] > best_score) {
          best_score = pair_score[i];
          best_idx = static_cast<int>(i);
        }
      if (best_idx < 0) break;
      const auto b = static_cast<size_t>(best_idx);
      t[b] = pair_id[b];
      t.erase(t.begin() + static_cast<std::ptrdiff_t>(b) + 1);
      pair_id.erase(pair_id.begin() + static_cast<std::ptrdiff_t>(b) + 1);
      pair_score.erase(pair_score.begin() + static_cast<std::ptrdiff_t>(b) + 1);
      eval_pair(b);
      if (b > 0) eval_pair(b - 1);
    }
    return t;
  }

  // As run.c: after BOS drop the piece's leading space; "<0xNN>" -> the byte.
  std::string decode(int prev, int token) const override {
    if (token < 0 || token >= vocab_size())
      fail(path_, "token id " + std::to_string(token) + " out of range");
    std::string_view piece = pieces_[token];
    if (prev == bos_id() && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
    unsigned int byte = 0;
    if (piece.size() == 6 && piece.starts_with("<0x") && piece[5] == '>' &&
        std::sscanf(std::string(piece).c_str(), "<0x%02X>", &byte) == 1)
      return std::string(1, static_cast<char>(byte));
    return std::string(piece);
  }

  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }
  bool add_bos() const override { return true; }
  std::string kind() const override { return "llama2c"; }

 private:
  std::string path_;
  int max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> lookup_;
  int dummy_prefix_ = -1;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int vocab_size) {
  if (!std::filesystem::is_regular_file(path)) fail(path, "tokenizer file not found");
  return std::make_unique<Llama2cTokenizer>(path, vocab_size);
}

}  // namespace lrc
