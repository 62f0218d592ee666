// A tokenizer for tests: one token per byte (id = byte + 3), BOS = 1, EOS = 2.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lrc/io/tokenizer.h"

namespace lrc::test {

class ByteTokenizer : public lrc::Tokenizer {
 public:
  explicit ByteTokenizer(bool add_bos = true) : add_bos_(add_bos) {}
  std::vector<int> encode(std::string_view text) const override {
    std::vector<int> ids;
    for (unsigned char c : text) ids.push_back(c + 3);
    return ids;
  }
  std::string decode(int, int token) const override {
    return token >= 3 ? std::string(1, static_cast<char>(token - 3)) : "";
  }
  int vocab_size() const override { return 259; }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }
  bool add_bos() const override { return add_bos_; }
  std::string kind() const override { return "bytes"; }

 private:
  bool add_bos_;
};

}  // namespace lrc::test
