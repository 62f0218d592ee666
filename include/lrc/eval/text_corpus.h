// A plain-text file cut into documents, paragraphs, sentences and words, for the zero-shot
// task generators. Any text with one paragraph a line works; WikiText's tokenized release gets
// special care:
//   - " = Title = " lines start a new document (article), " = = Section = = " lines are
//     skipped, blank lines separate nothing (every line is already a paragraph);
//   - tokens stay as in the file ("Ben", "@-@", ",", "'s"), and detokenize() joins them back
//     into normal text: "guest @-@ starring" -> "guest-starring", "1 @,@ 000" -> "1,000",
//     "3 @.@ 5" -> "3.5", "Dead ." -> "Dead.", "Teddy 's" -> "Teddy's", "( 2005 )" -> "(2005)",
//     '" Craig "' -> '"Craig"'. <unk> is kept as the literal text "<unk>".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lrc {

struct Sentence {
  int begin = 0, end = 0;  // token range [begin, end) within its paragraph
  int n_tokens() const { return end - begin; }
};

struct Paragraph {
  int document = 0;                 // index of the document (WikiText article) it belongs to
  std::vector<std::string> tokens;  // whitespace-separated, as in the file
  std::vector<Sentence> sentences;  // covers all tokens, in order
};

struct TextCorpus {
  std::vector<Paragraph> paragraphs;
  int n_documents = 0;
};

TextCorpus read_text_corpus(const std::string& path);  // throws lrc::Error naming the file
TextCorpus parse_text_corpus(std::string_view text);

// Normal text from tokens[begin, end) (WikiText markup undone; other text joins with spaces).
std::string detokenize(const std::vector<std::string>& tokens, size_t begin, size_t end);
inline std::string detokenize(const std::vector<std::string>& tokens) {
  return detokenize(tokens, 0, tokens.size());
}

// A word: contains a letter or digit and is not WikiText markup (@-@ @,@ @.@).
bool is_word_token(std::string_view token);
// Only ASCII letters (so "<unk>", "don't", "1990" and "well-known" are not).
bool is_alphabetic(std::string_view token);

}  // namespace lrc
