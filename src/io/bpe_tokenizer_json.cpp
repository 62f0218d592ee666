// HF tokenizer.json <-> BpeVocab (byte-level BPE only). Reading accepts what `tokenizers`
// writes for GPT-2-style models; anything that would change the ids and that lrc does not
// implement (a normalizer, a non-byte-level pre-tokenizer, subword prefixes) is an error
// naming the field rather than a silent difference.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lrc/core/error.h"
#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/json_file.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrc {

namespace {

constexpr int64_t kMaxVocab = 1 << 24;  // ids beyond this are a corrupt file, not a vocabulary

const json& member(const json& obj, const char* key, const std::string& field,
                   const std::string& where) {
  if (!obj.is_object() || !obj.contains(key)) fail(where, field + ": missing");
  return obj.at(key);
}

std::string type_of(const json& obj, const std::string& field, const std::string& where) {
  const json& t = member(obj, "type", field + ".type", where);
  if (!t.is_string()) fail(where, field + ".type: not a string");
  return t.get<std::string>();
}

bool bool_or(const json& obj, const char* key, bool dflt) {
  if (!obj.contains(key) || obj.at(key).is_null()) return dflt;
  return obj.at(key).is_boolean() ? obj.at(key).get<bool>() : dflt;
}

// A literal string as a PCRE2 pattern.
std::string quote_regex(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          (static_cast<unsigned char>(c) >= 0x80)))
      out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// Appends the steps of pre_tokenizer `p`; sets *byte_level when a ByteLevel step is seen.
void parse_pre_tokenizer(const json& p, const std::string& field, const std::string& where,
                         std::vector<PreTokenizerStep>* steps, bool* byte_level) {
  const std::string type = type_of(p, field, where);
  if (type == "Sequence") {
    const json& list = member(p, "pretokenizers", field + ".pretokenizers", where);
    if (!list.is_array()) fail(where, field + ".pretokenizers: not an array");
    for (size_t i = 0; i < list.size(); ++i)
      parse_pre_tokenizer(list[i], field + ".pretokenizers[" + std::to_string(i) + "]", where,
                          steps, byte_level);
  } else if (type == "ByteLevel") {
    *byte_level = true;
    const bool use_regex = bool_or(p, "use_regex", true);
    const bool prefix = bool_or(p, "add_prefix_space", true);
    if (use_regex || prefix) steps->push_back({use_regex ? kGpt2Pattern : "", prefix});
  } else if (type == "Digits") {
    steps->push_back({bool_or(p, "individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)", false});
  } else if (type == "Split") {
    const json& pat = member(p, "pattern", field + ".pattern", where);
    std::string regex;
    if (pat.contains("Regex") && pat["Regex"].is_string())
      regex = pat["Regex"].get<std::string>();
    else if (pat.contains("String") && pat["String"].is_string())
      regex = quote_regex(pat["String"].get<std::string>());
    else
      fail(where, field + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    const json& beh = member(p, "behavior", field + ".behavior", where);
    if (!beh.is_string() || beh.get<std::string>() != "Isolated")
      fail(where, field + ".behavior: only \"Isolated\" is supported, got " + beh.dump());
    if (bool_or(p, "invert", false)) fail(where, field + ".invert: true is not supported");
    steps->push_back({regex, false});
  } else {
    fail(where, field + ".type: pre-tokenizer '" + type +
                    "' is not supported (Sequence, ByteLevel, Digits, Split)");
  }
}

// "<s>" or {"content": "<s>", ...} (tokenizer_config.json's two spellings).
std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

int id_of(const BpeVocab& v, const std::string& text) {
  if (text.empty()) return -1;
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == text) return static_cast<int>(i);
  return -1;
}

// bos / eos / add_bos: tokenizer_config.json, then config.json ids, then the post-processor,
// then the usual token names.
void find_special_ids(const json& j, const fs::path& dir, BpeVocab* v) {
  bool add_bos_known = false;
  const fs::path tc = dir / "tokenizer_config.json";
  if (fs::exists(tc)) {
    const json c = read_json_file(tc.string());
    if (c.contains("bos_token")) v->bos_id = id_of(*v, token_text(c["bos_token"]));
    if (c.contains("eos_token")) v->eos_id = id_of(*v, token_text(c["eos_token"]));
    if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) {
      v->add_bos = c["add_bos_token"].get<bool>();
      add_bos_known = true;
    }
  }
  const fs::path mc = dir / "config.json";
  if ((v->bos_id < 0 || v->eos_id < 0) && fs::exists(mc)) {
    const json c = read_json_file(mc.string());
    const int n = static_cast<int>(v->tokens.size());
    auto take = [&](const char* key, int* id) {
      if (*id < 0 && c.contains(key) && c[key].is_number_integer()) {
        const int x = c[key].get<int>();
        if (x >= 0 && x < n) *id = x;
      }
    };
    take("bos_token_id", &v->bos_id);
    take("eos_token_id", &v->eos_id);
  }
  // TemplateProcessing "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": ...}]
  const json pp = j.value("post_processor", json());
  if (pp.is_object() && pp.value("type", "") == "TemplateProcessing" && pp.contains("single") &&
      pp["single"].is_array() && !pp["single"].empty()) {
    const json& first = pp["single"][0];
    if (first.contains("SpecialToken")) {
      const int id = id_of(*v, first["SpecialToken"].value("id", ""));
      if (id >= 0) {
        if (v->bos_id < 0) v->bos_id = id;
        if (!add_bos_known) v->add_bos = true;
      }
    }
  }
  for (const char* name : {"<s>", "<|begin_of_text|>", "<|endoftext|>"})
    if (v->bos_id < 0) v->bos_id = id_of(*v, name);
  for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>"})
    if (v->eos_id < 0) v->eos_id = id_of(*v, name);
}

}  // namespace

std::unique_ptr<BpeTokenizer> load_bpe_tokenizer_json(const std::string& path) {
  const json j = read_json_file(path);
  if (!j.is_object()) fail(path, "not a JSON object");
  const json& model = member(j, "model", "model", path);
  const std::string mtype = model.contains("type") ? type_of(model, "model", path) : "BPE";
  if (mtype != "BPE") fail(path, "model.type: '" + mtype + "' is not supported (only BPE)");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(k) && !model[k].is_null() &&
        !(model[k].is_string() && model[k].get<std::string>().empty()))
      fail(path, std::string("model.") + k + ": not supported");
  BpeVocab v;
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const std::string nt = type_of(j["normalizer"], "normalizer", path);
    if (nt != "NFC")
      fail(path, "normalizer: '" + nt + "' is not supported (lrc reads byte-level BPE without a "
                 "normalizer, or with NFC)");
    v.nfc = true;
  }
  v.ignore_merges = bool_or(model, "ignore_merges", false);

  // Vocabulary: {"token": id}; added tokens may extend it.
  const json& vocab = member(model, "vocab", "model.vocab", path);
  if (!vocab.is_object()) fail(path, "model.vocab: not an object");
  const json added = j.value("added_tokens", json::array());
  if (!added.is_array()) fail(path, "added_tokens: not an array");
  int64_t n = 0;
  auto check_id = [&](const json& id, const std::string& field) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxVocab)
      fail(path, field + ": id " + id.dump() + " is not a valid token id");
    n = std::max(n, id.get<int64_t>() + 1);
    return static_cast<size_t>(id.get<int64_t>());
  };
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    check_id(it.value(), "model.vocab['" + it.key() + "']");
  for (size_t i = 0; i < added.size(); ++i)
    check_id(member(added[i], "id", "added_tokens[" + std::to_string(i) + "].id", path),
             "added_tokens[" + std::to_string(i) + "].id");
  v.tokens.resize(static_cast<size_t>(n));
  v.token_types.assign(static_cast<size_t>(n), static_cast<int>(BpeTokenType::Normal));
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const size_t id = it.value().get<size_t>();
    if (!v.tokens[id].empty())
      fail(path, "model.vocab: id " + std::to_string(id) + " used by '" + v.tokens[id] + "' and '" +
                     it.key() + "'");
    v.tokens[id] = it.key();
  }
  for (size_t i = 0; i < added.size(); ++i) {
    const std::string f = "added_tokens[" + std::to_string(i) + "]";
    const json& c = member(added[i], "content", f + ".content", path);
    if (!c.is_string() || c.get<std::string>().empty()) fail(path, f + ".content: not a string");
    const size_t id = added[i]["id"].get<size_t>();
    v.tokens[id] = c.get<std::string>();
    v.token_types[id] = static_cast<int>(
        bool_or(added[i], "special", false) ? BpeTokenType::Control : BpeTokenType::UserDefined);
  }
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i].empty()) v.token_types[i] = static_cast<int>(BpeTokenType::Unused);

  // Merges: "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs.
  const json merges = model.value("merges", json::array());
  if (!merges.is_array()) fail(path, "model.merges: not an array");
  v.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    const std::string f = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() ||
          s.find(' ', sp + 1) != std::string::npos)
        fail(path, f + ": '" + s + "' is not two tokens separated by one space");
      v.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      v.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(path, f + ": expected \"a b\" or [\"a\", \"b\"]");
    }
  }

  // Pre-tokenizer: must be byte-level.
  bool byte_level = false;
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null())
    parse_pre_tokenizer(j["pre_tokenizer"], "pre_tokenizer", path, &v.pre_steps, &byte_level);
  if (!byte_level)
    fail(path, "pre_tokenizer: no ByteLevel step; lrc reads byte-level BPE tokenizers only");
  const auto same = [](const std::vector<PreTokenizerStep>& a,
                       const std::vector<PreTokenizerStep>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].regex != b[i].regex || a[i].add_prefix_space != b[i].add_prefix_space) return false;
    return true;
  };
  v.pre = "";
  for (const char* name : {"gpt2", "smollm", "llama3"})
    if (same(v.pre_steps, pre_tokenizer_steps(name, path))) v.pre = name;

  find_special_ids(j, fs::path(path).parent_path(), &v);
  return std::make_unique<BpeTokenizer>(std::move(v), path);
}

std::string bpe_tokenizer_json(const BpeVocab& v) {
  json byte_level = {{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  json pre;
  if (v.pre == "gpt2") {
    pre = byte_level;
  } else if (v.pre == "smollm") {
    pre = {{"type", "Sequence"},
           {"pretokenizers",
            json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level})}};
  } else {
    fail("tokenizer.json writer", "pre-tokenizer '" + v.pre + "' cannot be written");
  }
  json added = json::array();
  json vocab = json::object();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const int t = v.token_types.empty() ? 1 : v.token_types[i];
    if (v.tokens[i].empty()) continue;
    vocab[v.tokens[i]] = i;
    if (t == static_cast<int>(BpeTokenType::Control) ||
        t == static_cast<int>(BpeTokenType::UserDefined))
      added.push_back({{"id", i},
                       {"content", v.tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", t == static_cast<int>(BpeTokenType::Control)}});
  }
  json merges = json::array();
  for (const auto& [a, b] : v.merges) merges.push_back(a + " " + b);
  json post = {{"type", "ByteLevel"},
               {"add_prefix_space", false},
               {"trim_offsets", false},
               {"use_regex", true}};
  if (v.add_bos && v.bos_id >= 0) {
    const std::string bos = v.tokens[static_cast<size_t>(v.bos_id)];
    post = {{"type", "TemplateProcessing"},
            {"single", json::array({{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
            {"pair", json::array({{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
            {"special_tokens", {{bos, {{"id", bos}, {"ids", {v.bos_id}}, {"tokens", {bos}}}}}}};
  }
  json j = {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added},
            {"normalizer", v.nfc ? json{{"type", "NFC"}} : json(nullptr)},
            {"pre_tokenizer", pre},
            {"post_processor", post},
            {"decoder", byte_level},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},
              {"byte_fallback", false},
              {"ignore_merges", v.ignore_merges},
              {"vocab", vocab},
              {"merges", merges}}}};
  return j.dump();
}

}  // namespace lrc
