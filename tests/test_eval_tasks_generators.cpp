// Task generators: WikiText detokenization and structure, determinism in the seed, and each
// generator's rules on the real WikiText-2 test file; `lrc tasks make` end to end.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/eval/task_generators.h"
#include "lrc/eval/tasks.h"
#include "lrc/eval/text_corpus.h"
#include "support/paths.h"

namespace {

std::vector<std::string> split(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

const lrc::TextCorpus& wikitext() {
  static const lrc::TextCorpus c =
      lrc::read_text_corpus(lrc::test::shared("data/wikitext2-test.txt"));
  return c;
}

// Every paragraph of the corpus as normal text.
const std::vector<std::string>& wikitext_paragraphs() {
  static const std::vector<std::string> p = [] {
    std::vector<std::string> out;
    for (const lrc::Paragraph& para : wikitext().paragraphs)
      out.push_back(lrc::detokenize(para.tokens));
    return out;
  }();
  return p;
}

bool starts_some_paragraph(const std::string& prefix) {
  for (const std::string& p : wikitext_paragraphs())
    if (p.compare(0, prefix.size(), prefix) == 0) return true;
  return false;
}

bool inside_some_paragraph(const std::string& text) {
  for (const std::string& p : wikitext_paragraphs())
    if (p.find(text) != std::string::npos) return true;
  return false;
}

std::string leading_letters(const std::string& s) {
  size_t n = 0;
  while (n < s.size() && std::isalpha(static_cast<unsigned char>(s[n]))) ++n;
  return s.substr(0, n);
}

bool same(const std::vector<lrc::TaskExample>& a, const std::vector<lrc::TaskExample>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].context != b[i].context || a[i].choices != b[i].choices || a[i].label != b[i].label ||
        a[i].target != b[i].target)
      return false;
  return true;
}

TEST(EvalTasksGenerators, DetokenizeAndStructure) {
  EXPECT_EQ(
      lrc::detokenize(split(
          "a guest @-@ starring role , 1 @,@ 000 people and 3 @.@ 5 m ( 11 ft ) in \" Teddy 's "
          "Story \" . They do n't")),
      "a guest-starring role, 1,000 people and 3.5 m (11 ft) in \"Teddy's Story\". They don't");
  EXPECT_TRUE(lrc::is_word_token("<unk>"));
  EXPECT_FALSE(lrc::is_word_token("@-@"));
  EXPECT_FALSE(lrc::is_alphabetic("<unk>"));
  EXPECT_FALSE(lrc::is_alphabetic("don't"));
  EXPECT_TRUE(lrc::is_alphabetic("Dead"));

  const lrc::TextCorpus c = lrc::parse_text_corpus(
      "\xEF\xBB\xBF \n = Robert = \n \n He was born . He acted in \" Mercury Fur . \" Then more\n"
      " = = Career = = \n Second paragraph of Robert .\n = Other article = \n Text here .\n");
  ASSERT_EQ(c.paragraphs.size(), 3u);
  EXPECT_EQ(c.n_documents, 2);
  EXPECT_EQ(c.paragraphs[0].document, 0);
  EXPECT_EQ(c.paragraphs[1].document, 0);  // a section heading does not start a document
  EXPECT_EQ(c.paragraphs[2].document, 1);
  const lrc::Paragraph& p = c.paragraphs[0];
  ASSERT_EQ(p.sentences.size(), 3u);
  EXPECT_EQ(lrc::detokenize(p.tokens, p.sentences[1].begin, p.sentences[1].end),
            "He acted in \"Mercury Fur.\"");  // the closing quote stays with its sentence
  EXPECT_EQ(lrc::detokenize(p.tokens, p.sentences[2].begin, p.sentences[2].end), "Then more");

  // Plain (non-WikiText) text: sentences end at a glued period before a capital.
  const lrc::TextCorpus plain = lrc::parse_text_corpus("It rained. We stayed in. e.g. this one.\n");
  EXPECT_EQ(plain.paragraphs.at(0).sentences.size(), 2u);
  EXPECT_THROW(lrc::read_text_corpus("/nonexistent.txt"), lrc::Error);
}

TEST(EvalTasksGenerators, DeterministicInSeed) {
  for (auto kind : {lrc::GeneratorKind::LastWord, lrc::GeneratorKind::Continuation,
                    lrc::GeneratorKind::Cloze}) {
    const auto a = lrc::generate_tasks(kind, wikitext(), 200, 0);
    const auto b = lrc::generate_tasks(kind, wikitext(), 200, 0);
    const auto c = lrc::generate_tasks(kind, wikitext(), 200, 1);
    EXPECT_EQ(a.size(), 200u) << lrc::generator_kind_name(kind);
    EXPECT_TRUE(same(a, b)) << lrc::generator_kind_name(kind);
    EXPECT_FALSE(same(a, c)) << lrc::generator_kind_name(kind);
    // A smaller n is a prefix of a larger one (the walk order depends only on the seed).
    const auto d = lrc::generate_tasks(kind, wikitext(), 50, 0);
    EXPECT_TRUE(same(d, std::vector<lrc::TaskExample>(a.begin(), a.begin() + 50)));
  }
  EXPECT_THROW(lrc::parse_generator_kind("hellaswag"), lrc::Error);
}

TEST(EvalTasksGenerators, LastWordRules) {
  const auto ex = lrc::generate_lastword(wikitext(), 1000, 0);
  ASSERT_EQ(ex.size(), 1000u);
  std::set<std::string> contexts;
  for (const auto& e : ex) {
    EXPECT_TRUE(lrc::is_alphabetic(e.target)) << e.target;
    // >= 40 words with the target (detokenized text has fewer, glued, tokens: count words).
    int words = 1;
    for (const std::string& w : split(e.context)) words += lrc::is_word_token(w);
    EXPECT_GE(words, 40) << e.context;
    // The context plus " target" is the start of a real paragraph that ends right after it.
    EXPECT_TRUE(starts_some_paragraph(e.context + " " + e.target)) << e.target;
    EXPECT_TRUE(contexts.insert(e.context).second);  // one example a paragraph
  }
}

TEST(EvalTasksGenerators, ContinuationRules) {
  const auto ex = lrc::generate_continuation(wikitext(), 1000, 0);
  ASSERT_EQ(ex.size(), 1000u);
  int label_count[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < ex.size(); ++i) {
    const auto& e = ex[i];
    ASSERT_EQ(e.choices.size(), 4u);
    ASSERT_GE(e.label, 0);
    ASSERT_LT(e.label, 4);
    label_count[e.label]++;
    EXPECT_EQ(std::set<std::string>(e.choices.begin(), e.choices.end()).size(), 4u);
    if (i < 100) {  // the paragraph check is slow-ish; 100 examples are plenty
      EXPECT_TRUE(starts_some_paragraph(e.context + " " + e.choices[e.label]));
      for (int c = 0; c < 4; ++c)
        if (c != e.label) {
          EXPECT_FALSE(starts_some_paragraph(e.context + " " + e.choices[c]));
        }
    }
  }
  for (int n : label_count) EXPECT_NEAR(n, 250, 60);  // the true ending's position is shuffled
}

TEST(EvalTasksGenerators, ClozeRules) {
  const auto ex = lrc::generate_cloze(wikitext(), 1000, 0);
  ASSERT_EQ(ex.size(), 1000u);
  int label1 = 0;
  for (size_t i = 0; i < ex.size(); ++i) {
    const auto& e = ex[i];
    ASSERT_EQ(e.choices.size(), 2u);
    ASSERT_TRUE(e.label == 0 || e.label == 1);
    label1 += e.label;
    // Same rest of the sentence after a different first word of the same shape.
    const std::string& right = e.choices[e.label];
    const std::string& wrong = e.choices[1 - e.label];
    const std::string rw = leading_letters(right), ww = leading_letters(wrong);
    EXPECT_NE(rw, ww);
    EXPECT_EQ(right.substr(rw.size()), wrong.substr(ww.size()));
    EXPECT_GE(rw.size(), 4u);
    EXPECT_GE(ww.size(), 4u);
    EXPECT_EQ(std::isupper(static_cast<unsigned char>(rw[0])) != 0,
              std::isupper(static_cast<unsigned char>(ww[0])) != 0)
        << rw << " / " << ww;
    EXPECT_GE(split(e.context).size(), 3u);
    if (i < 100) {
      EXPECT_TRUE(inside_some_paragraph(e.context + " " + e.choices[e.label]));
    }
  }
  EXPECT_NEAR(label1, 500, 60);
}

TEST(EvalTasksGenerators, CliMakeWritesTaskFile) {
  const std::string dir = lrc::test::temp_dir("eval-tasks-make");
  const std::string out = dir + "/cloze.jsonl";
  const std::string cmd = lrc::test::lrc_binary() + " tasks make --kind cloze --input " +
                          lrc::test::shared("data/wikitext2-test.txt") + " --out " + out +
                          " --n 25 --seed 3 > " + dir + "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const lrc::TaskSet set = lrc::read_task_file(out);
  EXPECT_EQ(set.examples.size(), 25u);
  EXPECT_TRUE(same(set.examples, lrc::generate_cloze(wikitext(), 25, 3)));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  // A bad input fails with a message and writes nothing.
  const std::string bad = lrc::test::lrc_binary() + " tasks make --kind lastword --input " + dir +
                          "/missing.txt --out " + dir + "/x.jsonl > " + dir + "/err.txt 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.jsonl"));
  std::ifstream err(dir + "/err.txt");
  const std::string msg((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_NE(msg.find("missing.txt"), std::string::npos) << msg;
}

}  // namespace
