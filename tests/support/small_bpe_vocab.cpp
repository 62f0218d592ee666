#include "support/small_bpe_vocab.h"

#include "lrc/io/byte_level.h"

namespace lrc::test {

BpeVocab small_bpe_vocab(const std::string& pre) {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(byte_to_codepoint(static_cast<uint8_t>(b)), &s);
    v.tokens.push_back(s);
  }
  auto add_merge = [&](const std::string& a, const std::string& b) {
    v.merges.emplace_back(a, b);
    v.tokens.push_back(a + b);
  };
  add_merge("Ġ", "t");                 // 256
  add_merge("h", "e");                 // 257
  add_merge("Ġt", "he");               // 258 "Ġthe"
  add_merge("Ġ", "c");                 // 259
  add_merge("Ġc", "a");                // 260
  add_merge("Ġca", "t");               // 261 "Ġcat"
  add_merge("a", "b");                 // 262
  add_merge("l", "l");                 // 263
  add_merge("he", "ll");               // 264
  add_merge("hell", "o");              // 265 "hello"
  add_merge("1", "2");                 // 266: never used under "smollm" (digits are split first)
  v.tokens.push_back("<|im_start|>");  // 267
  v.tokens.push_back("<|im_end|>");    // 268
  v.token_types.assign(v.tokens.size(), static_cast<int>(BpeTokenType::Normal));
  v.token_types[267] = v.token_types[268] = static_cast<int>(BpeTokenType::Control);
  v.pre = pre;
  v.bos_id = 267;
  v.eos_id = 268;
  return v;
}

}  // namespace lrc::test
