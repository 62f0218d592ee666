// Zero-shot task generators (include/lrc/eval/task_generators.h).
//
// All three walk the paragraphs in an order shuffled by the seed and take the first n that
// yield an example, so every example comes from a different paragraph. Every random choice
// (sentence, blank, distractors, label position) is drawn from one splitmix64 stream in that
// walk order, which makes the output a pure function of (text, n, seed).
//
// Texts are rebuilt with detokenize() (WikiText markup undone). The scorer joins context and
// choice with one space, so an example is kept only when
//     detokenize(context tokens) + " " + detokenize(choice tokens) == detokenize(all tokens),
// i.e. the split point is an ordinary space ("well-known" or "(word" are never split).
#include "lrc/eval/task_generators.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "lrc/core/error.h"

namespace lrc {

namespace {

// splitmix64 (Steele et al.): tiny, portable, deterministic on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) up to a bias of n / 2^64.
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t s_;
};

// Paragraph indices in a seeded random order (Fisher-Yates).
std::vector<int> shuffled_paragraphs(const TextCorpus& c, Rng& rng) {
  std::vector<int> order(c.paragraphs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i)
    std::swap(order[i], order[rng.below(i + 1)]);
  return order;
}

int count_words(const std::vector<std::string>& tokens, int begin, int end) {
  int n = 0;
  for (int i = begin; i < end; ++i) n += is_word_token(tokens[i]);
  return n;
}

// Words as a reader counts them in normal text ("guest-starring" is one).
int count_words(const std::string& text) {
  int n = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t b = text.find_first_not_of(' ', i);
    if (b == std::string::npos) break;
    size_t e = text.find(' ', b);
    if (e == std::string::npos) e = text.size();
    n += is_word_token(std::string_view(text).substr(b, e - b));
    i = e;
  }
  return n;
}

// True when tokens [begin, split) and [split, end) detokenize to two texts joined by one space.
bool splits_at_space(const std::vector<std::string>& tokens, int begin, int split, int end) {
  const std::vector<std::string> head(tokens.begin() + begin, tokens.begin() + split);
  const std::vector<std::string> tail(tokens.begin() + split, tokens.begin() + end);
  const std::vector<std::string> all(tokens.begin() + begin, tokens.begin() + end);
  return !head.empty() && !tail.empty() &&
         detokenize(head) + " " + detokenize(tail) == detokenize(all);
}

std::string lowercase(std::string s) {
  for (char& ch : s)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return s;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// ---------------------------------------------------------------------------------------------
// lastword (LAMBADA style)

std::vector<TaskExample> lastword(const TextCorpus& c, int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<TaskExample> out;
  for (int p : shuffled_paragraphs(c, rng)) {
    if (static_cast<int64_t>(out.size()) >= n) break;
    const std::vector<std::string>& tok = c.paragraphs[p].tokens;
    const int nt = static_cast<int>(tok.size());
    if (count_words(detokenize(tok)) < 40) continue;
    // The last word may only be followed by sentence-final punctuation and closing quotes
    // ("... Dead ." or '... " alone . "'), not by ")" or "@-@" (a target inside brackets or
    // half of a compound).
    int last = nt - 1;
    while (last >= 0 && (tok[last] == "." || tok[last] == "!" || tok[last] == "?" ||
                         tok[last] == "\"" || tok[last] == "'"))
      --last;
    if (last <= 0 || !is_word_token(tok[last])) continue;
    // Plain text may glue punctuation to the word ("wheel."): the target is the word alone.
    std::string target = tok[last];
    while (!target.empty() &&
           std::string_view(".,;:!?\"')]").find(target.back()) != std::string_view::npos)
      target.pop_back();
    if (!is_alphabetic(target)) continue;
    std::vector<std::string> with_target(tok.begin(), tok.begin() + last);
    with_target.push_back(target);
    if (!splits_at_space(with_target, 0, last, last + 1)) continue;
    TaskExample ex;
    ex.context = detokenize(tok, 0, static_cast<size_t>(last));
    ex.target = target;
    out.push_back(std::move(ex));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// continuation (HellaSwag style)

constexpr int kMinEndingWords = 4, kMaxEndingWords = 50;

struct PooledSentence {
  int paragraph;
  int words;
  std::string text;
};

std::vector<TaskExample> continuation(const TextCorpus& c, int64_t n, uint64_t seed) {
  // Distractor pool: sentences that follow another sentence in their paragraph, like the true
  // ending does (first sentences read differently: they introduce the subject).
  std::vector<PooledSentence> pool;
  for (int p = 0; p < static_cast<int>(c.paragraphs.size()); ++p) {
    const Paragraph& para = c.paragraphs[p];
    for (size_t s = 1; s < para.sentences.size(); ++s) {
      const Sentence& se = para.sentences[s];
      const int w = count_words(para.tokens, se.begin, se.end);
      if (w >= kMinEndingWords && w <= kMaxEndingWords)
        pool.push_back({p, w, detokenize(para.tokens, se.begin, se.end)});
    }
  }
  Rng rng(seed);
  std::vector<TaskExample> out;
  if (pool.size() < 4) return out;
  for (int p : shuffled_paragraphs(c, rng)) {
    if (static_cast<int64_t>(out.size()) >= n) break;
    const Paragraph& para = c.paragraphs[p];
    const int ns = static_cast<int>(para.sentences.size());
    if (ns < 2) continue;
    const int k = 1 + static_cast<int>(rng.below(std::min(3, ns - 1)));  // context sentences
    const Sentence& end = para.sentences[k];
    const int w = count_words(para.tokens, end.begin, end.end);
    if (w < kMinEndingWords || w > kMaxEndingWords) continue;
    if (!splits_at_space(para.tokens, 0, end.begin, end.end)) continue;
    const std::string truth = detokenize(para.tokens, end.begin, end.end);

    // Three distractors from other paragraphs, within 25% (at least 2 words) of the true
    // ending's length so that neither acc nor acc_norm can win on length alone; after 1000
    // misses any length will do.
    const int tolerance = std::max(2, w / 4);
    std::vector<std::string> picks;
    for (int tries = 0; picks.size() < 3 && tries < 2000; ++tries) {
      const PooledSentence& cand = pool[rng.below(static_cast<int64_t>(pool.size()))];
      if (cand.paragraph == p) continue;
      if (tries < 1000 && std::abs(cand.words - w) > tolerance) continue;
      if (cand.text == truth || std::find(picks.begin(), picks.end(), cand.text) != picks.end())
        continue;
      picks.push_back(cand.text);
    }
    if (picks.size() < 3) continue;
    TaskExample ex;
    ex.context = detokenize(para.tokens, 0, static_cast<size_t>(end.begin));
    ex.label = static_cast<int>(rng.below(4));
    ex.choices = picks;
    ex.choices.insert(ex.choices.begin() + ex.label, truth);
    out.push_back(std::move(ex));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// cloze (WinoGrande style)

bool is_stopword(const std::string& lower) {
  static const std::set<std::string> kStop = {
      "about",      "above",     "after",   "again",    "against", "also",    "although", "among",
      "another",    "around",    "because", "been",     "before",  "being",   "between",  "both",
      "could",      "does",      "doing",   "down",     "during",  "each",    "either",   "even",
      "ever",       "every",     "first",   "from",     "further", "have",    "having",   "here",
      "however",    "including", "into",    "itself",   "just",    "last",    "later",    "less",
      "many",       "more",      "most",    "much",     "must",    "neither", "never",    "next",
      "once",       "only",      "other",   "others",   "over",    "same",    "several",  "should",
      "since",      "some",      "such",    "than",     "that",    "their",   "theirs",   "them",
      "themselves", "then",      "there",   "these",    "they",    "this",    "those",    "though",
      "three",      "through",   "thus",    "together", "too",     "under",   "until",    "upon",
      "very",       "well",      "were",    "what",     "when",    "where",   "whether",  "which",
      "while",      "whom",      "whose",   "will",     "with",    "within",  "without",  "would",
      "your",       "unk"};
  return kStop.count(lower) > 0;
}

// Content word: >= 4 ASCII letters and not a function word.
bool is_content_word(const std::string& w) {
  return w.size() >= 4 && is_alphabetic(w) && !is_stopword(lowercase(w));
}

// Capitalisation class: 0 lower, 1 Capitalised, 2 UPPER, 3 mixed (McDonald).
int capitalisation(const std::string& w) {
  auto upper = [](char ch) { return ch >= 'A' && ch <= 'Z'; };
  const int n_upper = static_cast<int>(std::count_if(w.begin(), w.end(), upper));
  if (n_upper == 0) return 0;
  if (n_upper == static_cast<int>(w.size())) return 2;
  if (n_upper == 1 && upper(w[0])) return 1;
  return 3;
}

// Suffix class, a rough part of speech: -ing, -ed, -ly, -tion/-sion, -ment/-ness, adjective
// endings, -er/-or, plural -s, other.
int suffix_class(const std::string& word) {
  const std::string w = lowercase(word);
  if (ends_with(w, "ing")) return 1;
  if (ends_with(w, "ed")) return 2;
  if (ends_with(w, "ly")) return 3;
  if (ends_with(w, "tion") || ends_with(w, "sion")) return 4;
  if (ends_with(w, "ment") || ends_with(w, "ness")) return 5;
  for (const char* a : {"al", "ic", "ous", "ive", "ful", "able", "ible"})
    if (ends_with(w, a)) return 6;
  if (ends_with(w, "er") || ends_with(w, "or")) return 7;
  if (ends_with(w, "s") && !ends_with(w, "ss") && !ends_with(w, "us") && !ends_with(w, "is"))
    return 8;
  return 0;
}

constexpr int kMinClozeTokens = 6, kMaxClozeTokens = 40, kMinContextWords = 3;

std::vector<TaskExample> cloze(const TextCorpus& c, int64_t n, uint64_t seed) {
  // Corpus frequency of each word form, and the distinct content words of each document in
  // order of first appearance.
  std::unordered_map<std::string, int64_t> freq;
  std::vector<std::vector<std::string>> doc_words(static_cast<size_t>(std::max(1, c.n_documents)));
  {
    std::vector<std::set<std::string>> seen(doc_words.size());
    for (const Paragraph& para : c.paragraphs)
      for (const std::string& t : para.tokens) {
        ++freq[t];
        if (is_content_word(t) && seen[para.document].insert(t).second)
          doc_words[para.document].push_back(t);
      }
  }

  Rng rng(seed);
  std::vector<TaskExample> out;
  for (int p : shuffled_paragraphs(c, rng)) {
    if (static_cast<int64_t>(out.size()) >= n) break;
    const Paragraph& para = c.paragraphs[p];
    const std::vector<std::string>& tok = para.tokens;

    // One sentence of a reasonable length, then one content word in it with at least
    // kMinContextWords words before it (the context needs something to go on).
    std::vector<const Sentence*> sentences;
    for (const Sentence& s : para.sentences)
      if (s.n_tokens() >= kMinClozeTokens && s.n_tokens() <= kMaxClozeTokens)
        sentences.push_back(&s);
    if (sentences.empty()) continue;
    const Sentence& s = *sentences[rng.below(static_cast<int64_t>(sentences.size()))];
    std::vector<int> blanks;
    for (int i = s.begin + 1; i < s.end; ++i)
      if (is_content_word(tok[i]) &&
          count_words(detokenize(tok, static_cast<size_t>(s.begin), static_cast<size_t>(i))) >=
              kMinContextWords &&
          splits_at_space(tok, s.begin, i, s.end))
        blanks.push_back(i);
    if (blanks.empty()) continue;
    const int b = blanks[rng.below(static_cast<int64_t>(blanks.size()))];
    const std::string& word = tok[b];

    // Distractor: same document, capitalisation and suffix class, not the word itself nor any
    // word of this sentence; corpus frequency within a factor 2 (uniform among those), else
    // the closest frequency within a factor 4.
    std::set<std::string> in_sentence;
    for (int i = s.begin; i < s.end; ++i) in_sentence.insert(lowercase(tok[i]));
    const double log_f = std::log(static_cast<double>(freq[word]));
    std::vector<const std::string*> close;
    const std::string* closest = nullptr;
    double closest_gap = std::log(4.0);
    for (const std::string& cand : doc_words[para.document]) {
      if (capitalisation(cand) != capitalisation(word) ||
          suffix_class(cand) != suffix_class(word) || in_sentence.count(lowercase(cand)))
        continue;
      const double gap = std::fabs(std::log(static_cast<double>(freq[cand])) - log_f);
      if (gap <= std::log(2.0)) close.push_back(&cand);
      if (gap < closest_gap) closest_gap = gap, closest = &cand;
    }
    const std::string* distractor =
        close.empty() ? closest : close[rng.below(static_cast<int64_t>(close.size()))];
    if (!distractor) continue;

    std::vector<std::string> right(tok.begin() + b, tok.begin() + s.end);
    std::vector<std::string> wrong = right;
    wrong[0] = *distractor;
    TaskExample ex;
    ex.context = detokenize(tok, static_cast<size_t>(s.begin), static_cast<size_t>(b));
    ex.label = static_cast<int>(rng.below(2));
    ex.choices = {detokenize(wrong), detokenize(wrong)};
    ex.choices[ex.label] = detokenize(right);
    out.push_back(std::move(ex));
  }
  return out;
}

}  // namespace

GeneratorKind parse_generator_kind(const std::string& name) {
  if (name == "lastword") return GeneratorKind::LastWord;
  if (name == "continuation") return GeneratorKind::Continuation;
  if (name == "cloze") return GeneratorKind::Cloze;
  fail("--kind", "unknown task kind '" + name + "' (lastword, continuation or cloze)");
}

const char* generator_kind_name(GeneratorKind k) {
  switch (k) {
    case GeneratorKind::LastWord:
      return "lastword";
    case GeneratorKind::Continuation:
      return "continuation";
    case GeneratorKind::Cloze:
      return "cloze";
  }
  return "?";
}

TaskKind generated_task_kind(GeneratorKind k) {
  return k == GeneratorKind::LastWord ? TaskKind::LastWord : TaskKind::MultipleChoice;
}

std::vector<TaskExample> generate_lastword(const TextCorpus& corpus, int64_t n, uint64_t seed) {
  return lastword(corpus, n, seed);
}
std::vector<TaskExample> generate_continuation(const TextCorpus& corpus, int64_t n, uint64_t seed) {
  return continuation(corpus, n, seed);
}
std::vector<TaskExample> generate_cloze(const TextCorpus& corpus, int64_t n, uint64_t seed) {
  return cloze(corpus, n, seed);
}

std::vector<TaskExample> generate_tasks(GeneratorKind kind, const TextCorpus& corpus, int64_t n,
                                        uint64_t seed) {
  if (n <= 0) fail("--n", "number of examples must be positive");
  switch (kind) {
    case GeneratorKind::LastWord:
      return lastword(corpus, n, seed);
    case GeneratorKind::Continuation:
      return continuation(corpus, n, seed);
    case GeneratorKind::Cloze:
      return cloze(corpus, n, seed);
  }
  return {};
}

}  // namespace lrc
