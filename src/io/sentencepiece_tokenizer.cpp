// SentencePiece tokenizer (tokenizer.model) through libsentencepiece, with the special-token
// and prefix-space rules of HF's tokenizers for the same model.
//
// libsentencepiece encodes "<s>" written in the text as the characters '<' 's' '>'; HF (every
// Llama / Mistral tokenizer.json) and llama.cpp match <unk>, <s>, </s> and the other control
// pieces in the text first and encode only the text between them. So does this tokenizer. The
// text between two special tokens gets sentencepiece's dummy prefix '▁' in one of two ways:
//   legacy (HF legacy=True tokenizer.json: Prepend("▁") normalizer; llama.cpp; sentencepiece
//          itself): every piece of text gets it, also after a special token and also when it
//          starts with a space ("  x" -> "▁▁▁x").
//   first  (HF legacy=False: Metaspace(prepend_scheme="first"), Mistral's tokenizer_config and
//          every transformers-5 LlamaTokenizer): only the text at offset 0 gets it, and only
//          when it does not start with a space.
// The rule comes from the files beside the model as HF would pick them: tokenizer.json's
// normalizer / pre_tokenizer if there is one, else tokenizer_config.json's "legacy" (false ->
// first), else legacy. A model alone keeps sentencepiece's (and lrc's earlier) ids.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "io/spm_piece.h"
#include "lrc/core/error.h"
#include "lrc/io/tokenizer.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

// Whether the HF files beside `model_path` ask for prefix "first" (see the file comment).
// Unreadable JSON is named by file and ignored only where HF itself would not read it.
bool hf_prefix_first(const std::string& model_path) {
  const fs::path dir = fs::path(model_path).parent_path();
  const fs::path tj = dir / "tokenizer.json", tc = dir / "tokenizer_config.json";
  auto parse = [](const fs::path& p) {
    std::ifstream f(p);
    nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail(p.string(), "not a JSON object");
    return j;
  };
  if (fs::is_regular_file(tj)) {
    const nlohmann::json j = parse(tj);
    const auto pre = j.find("pre_tokenizer");
    if (pre != j.end() && pre->is_object() && pre->value("type", "") == "Metaspace")
      return pre->value("prepend_scheme", "always") == "first";
    return false;  // Prepend("▁") normalizer (legacy) or no prefix rule at all
  }
  if (fs::is_regular_file(tc)) {
    const nlohmann::json j = parse(tc);
    const auto legacy = j.find("legacy");
    if (legacy != j.end() && legacy->is_boolean()) return !legacy->get<bool>();
  }
  return false;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const auto st = sp_.Load(path);
    if (!st.ok()) fail(path, "not a sentencepiece model: " + st.ToString());
    // The same model without the dummy prefix: a serialized ModelProto followed by
    // normalizer_spec (field 3) { add_dummy_prefix (field 3) = false } parses as the merge of
    // both (protobuf semantics), so no generated proto header is needed.
    std::string proto = sp_.serialized_model_proto();
    proto += std::string("\x1A\x02\x18\x00", 4);
    const auto st2 = sp_no_prefix_.LoadFromSerializedProto(proto);
    if (!st2.ok()) fail(path, "sentencepiece model without dummy prefix: " + st2.ToString());
    for (int id = 0; id < sp_.GetPieceSize(); ++id)
      if ((sp_.IsControl(id) || sp_.IsUnknown(id)) && !sp_.IdToPiece(id).empty()) {
        specials_.emplace_back(sp_.IdToPiece(id), id);
        first_byte_[static_cast<unsigned char>(sp_.IdToPiece(id)[0])] = true;
      }
    // Longest first: at one position the longest special token wins (as HF's matcher).
    std::stable_sort(specials_.begin(), specials_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    prefix_first_ = hf_prefix_first(path);
  }

  // Splits text at the special pieces (longest match, left to right); the text between them
  // is encoded by sentencepiece with the prefix rule of the file comment.
  std::vector<int> encode(std::string_view text) const override {
    std::vector<int> ids;
    size_t start = 0;  // start of the pending piece of text
    auto flush = [&](size_t end) {
      if (end > start) encode_piece(text.substr(start, end - start), start == 0, ids);
    };
    for (size_t i = 0; i < text.size();) {
      int hit = -1;
      size_t len = 0;
      if (first_byte_[static_cast<unsigned char>(text[i])]) {
        for (const auto& [piece, id] : specials_)
          if (text.compare(i, piece.size(), piece) == 0) {
            hit = id;
            len = piece.size();
            break;
          }
      }
      if (hit < 0) {
        ++i;
        continue;
      }
      flush(i);
      ids.push_back(hit);
      i += len;
      start = i;
    }
    flush(text.size());
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
    if (sp_.IsByte(token)) return io_detail::spm_byte_piece_text(piece);  // "<0xNN>"
    std::string out = io_detail::spm_piece_text(piece);
    if (prev == bos_id() && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

  int vocab_size() const override { return sp_.GetPieceSize(); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }
  bool add_bos() const override { return true; }
  std::string kind() const override { return "sentencepiece"; }

 private:
  // One piece of text without special tokens; at_start: it begins at offset 0 of the text.
  void encode_piece(std::string_view piece, bool at_start, std::vector<int>& ids) const {
    const bool prefix = !prefix_first_ || (at_start && piece.front() != ' ');
    std::vector<int> out;
    const auto st =
        (prefix ? sp_ : sp_no_prefix_).Encode(absl::string_view(piece.data(), piece.size()), &out);
    if (!st.ok()) fail(path_, "encode failed: " + st.ToString());
    ids.insert(ids.end(), out.begin(), out.end());
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_, sp_no_prefix_;
  std::vector<std::pair<std::string, int>> specials_;  // control + unknown pieces, longest first
  std::array<bool, 256> first_byte_{};                 // bytes a special piece starts with
  bool prefix_first_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail(path, "tokenizer file not found");
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace lrc
