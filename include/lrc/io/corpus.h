// A text corpus as one stream of token ids, for perplexity and calibration.
//
// Protocol (shared by `lrc eval` and the quantization pipeline's calibration data):
//   - the file must exist, be non-empty and be valid UTF-8;
//   - it is split into lines at '\n' (a final '\n' does not start an extra line, a '\r'
//     before it is kept as text); empty lines are skipped, lines of only spaces are kept
//     (src/io/corpus.cpp says why);
//   - tokenizer.add_bos(): each line becomes  BOS, encode(line);
//     otherwise:           each line becomes  encode(line + "\n")  (no BOS);
//   - the lines' tokens are concatenated in file order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lrc/io/tokenizer.h"

namespace lrc {

std::vector<int32_t> tokenize_corpus(const std::string& file, const Tokenizer& tokenizer);

// Reads a whole text file; throws lrc::Error naming the file if it is missing, empty or not
// valid UTF-8 (with the byte offset of the first bad sequence).
std::string read_text_file(const std::string& file);

}  // namespace lrc
