// Byte-level BPE encode/decode (interface and semantics in include/lrc/io/bpe_tokenizer.h).
// Mirrors HF tokenizers: AddedVocabulary split -> pre-tokenizer -> ByteLevel -> BPE
// (models/bpe/word.rs merge_all: a min-heap of (rank, position) over adjacent pairs).
#include "lrc/io/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <deque>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "io/nfc_quick_check.h"
#include "lrc/core/error.h"
#include "lrc/io/byte_level.h"

namespace lrc {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Heterogeneous lookup: find a std::string key by string_view without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

uint64_t pair_key(int a, int b) {
  return static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32 | static_cast<uint32_t>(b);
}

constexpr size_t kCacheLimit = 1 << 18;  // pieces cached before the cache is cleared

}  // namespace

std::vector<PreTokenizerStep> pre_tokenizer_steps(const std::string& name,
                                                  const std::string& where) {
  if (name == "gpt2" || name == "gpt-2") return {{kGpt2Pattern, false}};
  if (name == "smollm") return {{R"(\p{N})", false}, {kGpt2Pattern, false}};
  if (name == "llama3" || name == "llama-bpe") return {{kLlama3Pattern, false}};
  fail(where, "pre-tokenizer '" + name + "' is not supported (lrc knows gpt2, smollm, llama3)");
}

struct BpeTokenizer::Impl {
  StringMap<int> ids;                                        // token text -> id
  std::unordered_map<uint64_t, std::pair<int, int>> merges;  // (left, right) -> (rank, merged)
  std::array<int, 256> byte_ids{};                           // byte -> id of its 1-char token
  std::vector<std::string> decoded;                          // id -> bytes
  struct Special {
    std::string text;
    int id;
  };
  std::vector<Special> specials;                       // longest first
  std::array<std::vector<int>, 256> special_by_first;  // first byte -> indices into specials
  std::vector<pcre2_code*> regexes;  // one per pre-tokenizer step (null: no split)
  std::vector<bool> prefix_space;

  mutable std::mutex cache_mu;
  mutable StringMap<std::vector<int>> cache;

  ~Impl() {
    for (auto* r : regexes)
      if (r) pcre2_code_free(r);
  }

  void split(const pcre2_code* re, std::string_view s, pcre2_match_data* md,
             std::vector<std::string_view>* out) const;
  void bpe(std::string_view piece, bool ignore_merges, std::vector<int>* out) const;
  // Pieces of text after every pre-tokenizer step (views into text or into *owned).
  void pre_tokenize(std::string_view text, pcre2_match_data* md, std::deque<std::string>* owned,
                    std::vector<std::string_view>* pieces) const;
};

namespace {

// RAII for the per-call PCRE2 match data (encode is const and may run on several threads).
struct MatchData {
  pcre2_match_data* md;
  explicit MatchData(uint32_t pairs) : md(pcre2_match_data_create(pairs, nullptr)) {
    if (!md) fail("bpe tokenizer", "out of memory");
  }
  ~MatchData() { pcre2_match_data_free(md); }
};

}  // namespace

void BpeTokenizer::Impl::split(const pcre2_code* re, std::string_view s, pcre2_match_data* md,
                               std::vector<std::string_view>* out) const {
  size_t start = 0, last = 0;
  const auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  while (start < s.size()) {
    int rc = pcre2_match(re, subject, s.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // very long runs: the interpreter has no such limit
      rc =
          pcre2_match(re, subject, s.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("bpe tokenizer",
           std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t ms = ov[0], me = ov[1];
    if (me <= ms) {  // empty match: step over one character
      uint32_t cp;
      const int n = utf8_sequence(s, ms < s.size() ? ms : s.size() - 1, &cp);
      start = ms + static_cast<size_t>(std::max(n, 1));
      continue;
    }
    if (ms > last) out->push_back(s.substr(last, ms - last));
    out->push_back(s.substr(ms, me - ms));
    last = start = me;
  }
  if (last < s.size()) out->push_back(s.substr(last));
}

void BpeTokenizer::Impl::bpe(std::string_view piece, bool ignore_merges,
                             std::vector<int>* out) const {
  if (ignore_merges) {
    auto it = ids.find(byte_level_encode(piece));
    if (it != ids.end()) {
      out->push_back(it->second);
      return;
    }
  }
  struct Symbol {
    int id, prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(piece.size());
  for (char c : piece) {
    const int id = byte_ids[static_cast<uint8_t>(c)];
    if (id < 0) continue;  // a byte without a token is dropped (HF BPE without unk_token)
    const int i = static_cast<int>(sym.size());
    sym.push_back({id, i - 1, i + 1, true});
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  struct Candidate {
    int rank, pos, merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](int left) {
    const int right = sym[left].next;
    if (right < 0) return;
    auto it = merges.find(pair_key(sym[left].id, sym[right].id));
    if (it != merges.end()) heap.push({it->second.first, left, it->second.second});
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = sym[c.pos];
    if (!left.alive || left.next < 0) continue;
    // The pair may have changed since it was queued: merge only if it still maps to `merged`.
    auto it = merges.find(pair_key(left.id, sym[left.next].id));
    if (it == merges.end() || it->second.second != c.merged) continue;
    Symbol& right = sym[left.next];
    left.id = c.merged;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = c.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(c.pos);
  }
  for (int i = 0; i >= 0; i = sym[i].next) out->push_back(sym[i].id);
}

BpeTokenizer::BpeTokenizer(BpeVocab vocab, const std::string& where)
    : vocab_(std::move(vocab)), impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  const int n = static_cast<int>(vocab_.tokens.size());
  if (n == 0) fail(where, "tokenizer vocabulary is empty");
  if (!vocab_.token_types.empty() && static_cast<int>(vocab_.token_types.size()) != n)
    fail(where, "token types: " + std::to_string(vocab_.token_types.size()) +
                    " entries for a vocabulary of " + std::to_string(n));
  for (int id : {vocab_.bos_id, vocab_.eos_id})
    if (id >= n) fail(where, "special token id " + std::to_string(id) + " out of the vocabulary");

  im.ids.reserve(static_cast<size_t>(n));
  im.decoded.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const std::string& t = vocab_.tokens[static_cast<size_t>(i)];
    if (!t.empty()) im.ids.emplace(t, i);  // first occurrence wins
    // HF ByteLevel decoder: a token whose characters are not all byte-level stays as it is.
    if (!byte_level_decode(t, &im.decoded[static_cast<size_t>(i)]))
      im.decoded[static_cast<size_t>(i)] = t;
  }
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    append_utf8(byte_to_codepoint(static_cast<uint8_t>(b)), &ch);
    auto it = im.ids.find(ch);
    im.byte_ids[static_cast<size_t>(b)] = it == im.ids.end() ? -1 : it->second;
  }

  im.merges.reserve(vocab_.merges.size());
  for (size_t r = 0; r < vocab_.merges.size(); ++r) {
    const auto& [a, b] = vocab_.merges[r];
    auto ia = im.ids.find(a), ib = im.ids.find(b), iab = im.ids.find(a + b);
    if (ia == im.ids.end() || ib == im.ids.end() || iab == im.ids.end())
      fail(where, "merge " + std::to_string(r) + " '" + a + " " + b + "': '" +
                      (ia == im.ids.end()   ? a
                       : ib == im.ids.end() ? b
                                            : a + b) +
                      "' is not in the vocabulary");
    // Later duplicates overwrite earlier ones, as HF's HashMap collect does.
    im.merges[pair_key(ia->second, ib->second)] = {static_cast<int>(r), iab->second};
  }

  // Added tokens (control / user-defined) are matched whole before pre-tokenization.
  for (int i = 0; i < static_cast<int>(vocab_.token_types.size()); ++i) {
    const int t = vocab_.token_types[static_cast<size_t>(i)];
    const std::string& text = vocab_.tokens[static_cast<size_t>(i)];
    if ((t == static_cast<int>(BpeTokenType::Control) ||
         t == static_cast<int>(BpeTokenType::UserDefined)) &&
        !text.empty())
      im.specials.push_back({text, i});
  }
  std::stable_sort(im.specials.begin(), im.specials.end(),
                   [](const auto& x, const auto& y) { return x.text.size() > y.text.size(); });
  for (int k = 0; k < static_cast<int>(im.specials.size()); ++k)
    im.special_by_first[static_cast<uint8_t>(im.specials[static_cast<size_t>(k)].text[0])]
        .push_back(k);

  if (vocab_.pre_steps.empty()) vocab_.pre_steps = pre_tokenizer_steps(vocab_.pre, where);
  for (const auto& step : vocab_.pre_steps) {
    pcre2_code* re = nullptr;
    if (!step.regex.empty()) {
      int err = 0;
      PCRE2_SIZE off = 0;
      re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(step.regex.data()), step.regex.size(),
                         PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
      if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        fail(where, "pre-tokenizer regex /" + step.regex + "/ at offset " + std::to_string(off) +
                        ": " + reinterpret_cast<const char*>(msg));
      }
      pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // best effort: falls back to the interpreter
    }
    im.regexes.push_back(re);
    im.prefix_space.push_back(step.add_prefix_space);
  }
}

BpeTokenizer::~BpeTokenizer() = default;

int BpeTokenizer::token_id(std::string_view token_text) const {
  auto it = impl_->ids.find(token_text);
  return it == impl_->ids.end() ? -1 : it->second;
}

void BpeTokenizer::Impl::pre_tokenize(std::string_view text, pcre2_match_data* md,
                                      std::deque<std::string>* owned,
                                      std::vector<std::string_view>* pieces) const {
  std::vector<std::string_view> next;
  pieces->clear();
  if (!text.empty()) pieces->push_back(text);  // HF drops empty pieces at every step
  for (size_t s = 0; s < regexes.size(); ++s) {
    next.clear();
    for (std::string_view p : *pieces) {
      if (prefix_space[s] && p[0] != ' ') {
        std::string& q = owned->emplace_back(1, ' ');
        q.append(p);
        p = q;
      }
      if (regexes[s])
        split(regexes[s], p, md, &next);
      else if (!p.empty())
        next.push_back(p);
    }
    pieces->swap(next);
  }
}

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view text) const {
  MatchData md(4);
  std::deque<std::string> owned;
  std::vector<std::string_view> pieces;
  impl_->pre_tokenize(text, md.md, &owned, &pieces);
  return {pieces.begin(), pieces.end()};
}

namespace {
// The NFC normalizer on valid UTF-8 text s: the identity when every code point passes the
// quick check; otherwise an error naming the first one that may change (no silent skip).
void check_nfc(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    char32_t c = n == 1 ? b : b & (0x7F >> n);
    for (int k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    if (!nfc_quick_check_yes(c)) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(c));
      fail("tokenizer", std::string("the NFC normalizer would change text with ") + hex +
                            " at byte " + std::to_string(i) +
                            " (lrc implements NFC only for text already in NFC; normalize the "
                            "text to NFC first)");
    }
    i += static_cast<size_t>(n);
  }
}
}  // namespace

std::vector<int> BpeTokenizer::encode(std::string_view text) const {
  const Impl& im = *impl_;
  std::string clean;
  if (!is_valid_utf8(text)) {
    clean = sanitize_utf8(text);
    text = clean;
  }
  std::vector<int> out;
  out.reserve(text.size() / 3 + 1);

  MatchData md(4);
  std::deque<std::string> owned;
  std::vector<std::string_view> pieces;
  auto encode_segment = [&](std::string_view seg) {
    if (seg.empty()) return;
    if (vocab_.nfc) check_nfc(seg);
    im.pre_tokenize(seg, md.md, &owned, &pieces);
    for (std::string_view piece : pieces) {
      {
        std::lock_guard<std::mutex> lock(im.cache_mu);
        auto it = im.cache.find(piece);
        if (it != im.cache.end()) {
          out.insert(out.end(), it->second.begin(), it->second.end());
          continue;
        }
      }
      std::vector<int> ids;
      im.bpe(piece, vocab_.ignore_merges, &ids);
      out.insert(out.end(), ids.begin(), ids.end());
      std::lock_guard<std::mutex> lock(im.cache_mu);
      if (im.cache.size() >= kCacheLimit) im.cache.clear();
      im.cache.emplace(piece, std::move(ids));
    }
  };

  // Split on added tokens: at the leftmost position where one matches, the longest.
  size_t seg_start = 0;
  for (size_t i = 0; i < text.size();) {
    const auto& cands = im.special_by_first[static_cast<uint8_t>(text[i])];
    int hit = -1;
    for (int k : cands) {
      const std::string& s = im.specials[static_cast<size_t>(k)].text;
      if (text.compare(i, s.size(), s) == 0) {
        hit = k;
        break;
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    encode_segment(text.substr(seg_start, i - seg_start));
    out.push_back(im.specials[static_cast<size_t>(hit)].id);
    i += im.specials[static_cast<size_t>(hit)].text.size();
    seg_start = i;
  }
  encode_segment(text.substr(seg_start));
  return out;
}

std::string BpeTokenizer::decode(int /*prev*/, int token) const {
  if (token < 0 || token >= vocab_size())
    fail("bpe tokenizer", "token id " + std::to_string(token) + " out of the vocabulary of " +
                              std::to_string(vocab_size()));
  return impl_->decoded[static_cast<size_t>(token)];
}

}  // namespace lrc
