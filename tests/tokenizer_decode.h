// Test helper: HF's decode of a whole id sequence, each id decoded after the previous one
// (BOS first), as lrc's streaming decode does.
#pragma once

#include <string>
#include <vector>

#include "lrc/io/tokenizer.h"

namespace lrc::test {

inline std::string decode_all(const Tokenizer& t, const std::vector<int>& ids) {
  std::string out;
  int prev = t.bos_id();
  for (int id : ids) {
    out += t.decode(prev, id);
    prev = id;
  }
  return out;
}

}  // namespace lrc::test
