// Documents, paragraphs, sentences and words of a text file (include/lrc/eval/text_corpus.h).
#include "lrc/eval/text_corpus.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lrc/core/error.h"

namespace lrc {

namespace {

bool is_ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

bool is_markup(std::string_view t) { return t == "@-@" || t == "@,@" || t == "@.@"; }

// Tokens written without a space before them: closing punctuation and clitics.
bool glues_to_previous(std::string_view t) {
  static const char* const kGlue[] = {".",   ",",   ":",  ";",   "!",  "?",  ")",
                                      "]",   "}",   "%",  "n't", "'s", "'S", "'re",
                                      "'ve", "'ll", "'d", "'m",  "'",  "N'T"};
  for (const char* g : kGlue)
    if (t == g) return true;
  return false;
}

bool opens_bracket(std::string_view t) { return t == "(" || t == "[" || t == "{"; }

bool ends_sentence_alone(std::string_view t) { return t == "." || t == "!" || t == "?"; }

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Sentences of a token list: WikiText's stand-alone ". ! ?" always end one (a closing quote
// right after joins it); in other text a token ending in . ! ? ends one when the next token
// starts with a capital letter or a quote, or the paragraph ends.
std::vector<Sentence> split_sentences(const std::vector<std::string>& tokens) {
  std::vector<Sentence> out;
  const int n = static_cast<int>(tokens.size());
  int start = 0;
  bool in_quote = false;
  for (int i = 0; i < n; ++i) {
    const std::string& t = tokens[i];
    if (t == "\"") in_quote = !in_quote;
    bool end_here = ends_sentence_alone(t);
    if (!end_here && t.size() > 1 && !is_markup(t) &&
        std::string_view(".!?").find(t.back()) != std::string_view::npos) {
      const bool last = i + 1 == n;
      const char next = last ? 'A' : tokens[i + 1][0];
      end_here = (next >= 'A' && next <= 'Z') || next == '"';
    }
    if (!end_here) continue;
    int j = i + 1;
    if (j < n && in_quote && tokens[j] == "\"") {
      ++j;
      in_quote = false;
    }
    out.push_back({start, j});
    start = j;
    i = j - 1;
  }
  if (start < n) out.push_back({start, n});
  return out;
}

}  // namespace

bool is_word_token(std::string_view token) {
  if (is_markup(token)) return false;
  return std::any_of(token.begin(), token.end(),
                     [](char c) { return is_ascii_letter(c) || is_ascii_digit(c); });
}

bool is_alphabetic(std::string_view token) {
  return !token.empty() && std::all_of(token.begin(), token.end(), is_ascii_letter);
}

std::string detokenize(const std::vector<std::string>& tokens, size_t begin, size_t end) {
  std::string out;
  bool glue_next = false;  // the previous token wants no space after it: ( [ { @-@ opening "
  bool in_quote = false;   // inside "..." : the next " closes
  for (size_t i = begin; i < end && i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (is_markup(t)) {  // " @-@ " -> "-", " @,@ " -> ",", " @.@ " -> "."
      out += t[1];
      glue_next = true;
      continue;
    }
    bool glue_prev = glues_to_previous(t), opens = opens_bracket(t);
    if (t == "\"") {
      glue_prev = in_quote;
      opens = !in_quote;
      in_quote = !in_quote;
    }
    if (!out.empty() && !glue_prev && !glue_next) out += ' ';
    out += t;
    glue_next = opens;
  }
  return out;
}

TextCorpus parse_text_corpus(std::string_view text) {
  TextCorpus c;
  int doc = -1;
  size_t pos = 0;
  bool first_line = true;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (first_line && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);  // BOM
    first_line = false;
    line = trim(line);
    if (line.empty()) continue;
    if (line.size() >= 2 && line.front() == '=' && line.back() == '=') {
      // "= Title =" starts a document; "= = Section = =" (and deeper) does not.
      const bool top_level =
          line.size() >= 3 && line[1] == ' ' && trim(line.substr(1)).substr(0, 1) != "=";
      if (top_level) ++doc;
      continue;
    }
    if (doc < 0) doc = 0;
    Paragraph p;
    p.document = doc;
    std::istringstream words{std::string(line)};
    for (std::string w; words >> w;) p.tokens.push_back(w);
    p.sentences = split_sentences(p.tokens);
    c.paragraphs.push_back(std::move(p));
  }
  c.n_documents = doc + 1;
  return c;
}

TextCorpus read_text_corpus(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open text file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path, "read error");
  TextCorpus c = parse_text_corpus(ss.str());
  if (c.paragraphs.empty()) fail(path, "no paragraphs (empty text file)");
  return c;
}

}  // namespace lrc
