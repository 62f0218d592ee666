// SentencePiece tokenizer (tokenizer.model) through libsentencepiece.
#include <sentencepiece_processor.h>

#include <filesystem>
#include <memory>

#include "lrc/core/error.h"
#include "lrc/io/tokenizer.h"

namespace lrc {

namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const auto st = sp_.Load(path);
    if (!st.ok()) fail(path, "not a sentencepiece model: " + st.ToString());
  }

  std::vector<int> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto st = sp_.Encode(absl::string_view(text.data(), text.size()), &ids);
    if (!st.ok()) fail(path_, "encode failed: " + st.ToString());
    return ids;
  }

  // Piece text with '▁' -> ' ', <0xNN> byte pieces -> the byte; control tokens (BOS/EOS)
  // -> "". After BOS the leading space (the dummy prefix) is dropped, as llama2.c does.
  std::string decode(int prev, int token) const override {
    if (token < 0 || token >= vocab_size())
      fail(path_, "token id " + std::to_string(token) + " out of range");
    if (sp_.IsControl(token)) return "";
    if (sp_.IsUnknown(token)) return " \xE2\x81\x87 ";  // " ⁇ ", as sentencepiece decodes <unk>
    const std::string& piece = sp_.IdToPiece(token);
    if (sp_.IsByte(token)) {  // "<0xNN>"
      return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    }
    std::string out;
    static constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 '▁'
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, kSpace.size(), kSpace) == 0) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += piece[i++];
      }
    }
    if (prev == bos_id() && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

  int vocab_size() const override { return sp_.GetPieceSize(); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }
  bool add_bos() const override { return true; }
  std::string kind() const override { return "sentencepiece"; }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail(path, "tokenizer file not found");
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace lrc
