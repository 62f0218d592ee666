// SentencePiece pieces as text, shared by the sentencepiece-library tokenizer and the one that
// reads a GGUF "llama" vocabulary: '▁' (U+2581) stands for a space, "<0xNN>" for one byte.
#pragma once

#include <string>
#include <string_view>

namespace lrc::io_detail {

inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 '▁'

// The byte of a byte-fallback piece "<0xNN>".
inline std::string spm_byte_piece_text(std::string_view piece) {
  return std::string(1, static_cast<char>(std::stoi(std::string(piece.substr(3, 2)), nullptr, 16)));
}

// A normal piece's text: every '▁' a space.
inline std::string spm_piece_text(std::string_view piece) {
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
      out += ' ';
      i += kSpmSpace.size();
    } else {
      out += piece[i++];
    }
  }
  return out;
}

}  // namespace lrc::io_detail
