// A tiny byte-level BPE vocabulary for tests: the 256 byte tokens (id = byte value), merges
// building "Ġthe" (258), "Ġcat" (261), "ab" (262), "hello" (265) and "12" (266), and two control
// tokens <|im_start|> (267, BOS) and <|im_end|> (268, EOS). 269 tokens.
#pragma once

#include <string>

#include "lrc/io/bpe_tokenizer.h"

namespace lrc::test {

BpeVocab small_bpe_vocab(const std::string& pre = "smollm");

}  // namespace lrc::test
