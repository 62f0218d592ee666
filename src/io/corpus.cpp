// Text file -> token stream (protocol in include/lrc/io/corpus.h).
//
// Every line is text the model is scored on, including lines of only spaces (wikitext's
// paragraph separators " "): the SmolLM2 reference perplexity (18.24 on wikitext2-test, seq
// 2048, 16 chunks) is reproduced only when they are kept. Only truly empty lines (a final
// newline, "\n\n") are skipped, since they carry no token in the no-BOS protocol and a lone
// BOS in the BOS protocol. debtext-valid.txt has neither, so llama-22m-debtext gives 11.3509
// either way (docs/results.md, "Foundation").
#include "lrc/io/corpus.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>

#include "lrc/core/error.h"

namespace lrc {

namespace {

// Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629:
// no overlongs, no surrogates, nothing above U+10FFFF), or npos if the text is valid.
size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // > U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace

std::string read_text_file(const std::string& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) fail(file, "is a directory, expected a text file");
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot open data file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(file, "read error");
  if (text.empty()) fail(file, "data file is empty");
  if (const size_t bad = first_invalid_utf8(text); bad != std::string_view::npos)
    fail(file, "not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
  return text;
}

std::vector<int32_t> tokenize_corpus(const std::string& file, const Tokenizer& tokenizer) {
  const std::string text = read_text_file(file);
  const bool bos = tokenizer.add_bos();
  std::vector<int32_t> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    std::vector<int> ids;
    if (bos) {
      out.push_back(tokenizer.bos_id());
      ids = tokenizer.encode(line);
    } else {
      ids = tokenizer.encode(std::string(line) + "\n");
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }
  if (out.empty()) fail(file, "data file has no text (only empty lines)");
  return out;
}

}  // namespace lrc
